/** Options of a DynamicBatcher. */
export interface DynamicBatcherOptions<R, O> {
  /** Most rows one run takes (>= 1). */
  maxRows: number;
  /**
   * How long the oldest waiting row waits for others to join its batch, ms, while a batch
   * is running or rows are already waiting. Rows that find the batcher idle run at once.
   */
  delayMs: number;
  /** Runs one batch; returns one output per row, in order. Never called twice at once. */
  run: (rows: R[]) => Promise<O[]>;
  /** Called with the row count of every batch, before it runs. */
  onBatch?: (rows: number) => void;
}

interface Request<O> {
  outputs: O[];
  remaining: number;
  done: boolean;
  resolve: (outputs: O[]) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

interface Pending<R, O> {
  row: R;
  position: number;
  request: Request<O>;
  at: number;
}

/**
 * Gathers the rows of concurrent requests into batches, one batch at a time (a session runs
 * one batch at once). Rows that find nothing running and nothing waiting run at once, with
 * whatever else arrives in the same event-loop turn: waiting could only add latency, as
 * nothing else is there to join (Triton's dynamic batcher does the same with an empty
 * queue). Otherwise a batch runs when it is full, or when the session is free and its
 * oldest row has waited `delayMs`. A request's rows may span batches; it resolves when all
 * of them have run. An aborted request leaves the waiting rows at once; a batch already
 * running completes.
 */
export class DynamicBatcher<R, O> {
  readonly #opts: DynamicBatcherOptions<R, O>;
  #pending: Pending<R, O>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #running: Promise<void> | undefined;
  #closed: unknown;
  #runs = 0;
  #rows = 0;
  #delayed = 0;

  constructor(options: DynamicBatcherOptions<R, O>) {
    this.#opts = { ...options, maxRows: Math.max(1, Math.floor(options.maxRows)), delayMs: Math.max(0, options.delayMs) };
  }

  /** Batches run so far. */
  get runs(): number {
    return this.#runs;
  }

  /** Rows run so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Batches that waited for `delayMs` to pass (the others ran when full, idle or already late). */
  get delayed(): number {
    return this.#delayed;
  }

  /** Rows waiting for a batch. */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Adds one request's rows; resolves with their outputs in order. */
  add(rows: R[], signal?: AbortSignal): Promise<O[]> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (rows.length === 0) return Promise.resolve([]);
    return new Promise<O[]>((resolve, reject) => {
      const onAbort = () => this.#fail(request, signal!.reason);
      const request: Request<O> = {
        outputs: new Array(rows.length),
        remaining: rows.length,
        done: false,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const idle = !this.#running && this.#pending.length === 0;
      // Idle rows count as having waited already, so the batch runs in this turn's check phase.
      const at = idle ? -Infinity : performance.now();
      rows.forEach((row, position) => this.#pending.push({ row, position, request, at }));
      this.#schedule();
    });
  }

  /** Rejects every waiting request with `reason`, refuses new ones and waits for the running batch. */
  async close(reason: unknown): Promise<void> {
    this.#closed = reason;
    this.#clearTimers();
    for (const p of [...this.#pending]) this.#fail(p.request, reason);
    await this.#running;
  }

  #fail(request: Request<O>, err: unknown): void {
    if (request.done) return;
    request.done = true;
    request.cleanup();
    this.#pending = this.#pending.filter((p) => p.request !== request);
    request.reject(err);
  }

  #clearTimers(): void {
    clearTimeout(this.#timer);
    clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  #schedule(): void {
    if (this.#running || this.#pending.length === 0 || this.#closed !== undefined) return;
    if (this.#pending.length >= this.#opts.maxRows) {
      this.#flush(false);
      return;
    }
    if (this.#timer || this.#immediate) return;
    const wait = this.#opts.delayMs - (performance.now() - this.#pending[0]!.at);
    // setTimeout(0) waits at least 1 ms; setImmediate still takes the rows that arrive in this turn.
    if (wait <= 0) this.#immediate = setImmediate(() => this.#flush(false));
    else this.#timer = setTimeout(() => this.#flush(true), wait);
  }

  #flush(delayed: boolean): void {
    this.#clearTimers();
    if (this.#running || this.#pending.length === 0) return;
    if (delayed) this.#delayed++;
    const batch = this.#pending.splice(0, this.#opts.maxRows);
    this.#runs++;
    this.#rows += batch.length;
    this.#opts.onBatch?.(batch.length);
    this.#running = this.#execute(batch).finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
  }

  async #execute(batch: Pending<R, O>[]): Promise<void> {
    let outputs: O[];
    try {
      outputs = await this.#opts.run(batch.map((p) => p.row));
      if (outputs.length !== batch.length) throw new Error(`batch run returned ${outputs.length} outputs for ${batch.length} rows`);
    } catch (err) {
      for (const p of batch) this.#fail(p.request, err);
      return;
    }
    batch.forEach((p, i) => {
      const r = p.request;
      if (r.done) return;
      r.outputs[p.position] = outputs[i]!;
      if (--r.remaining === 0) {
        r.done = true;
        r.cleanup();
        r.resolve(r.outputs);
      }
    });
  }
}
