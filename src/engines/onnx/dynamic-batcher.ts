/** Options of a DynamicBatcher. */
export interface DynamicBatcherOptions<R, O> {
  /** Most rows one run takes (>= 1). */
  maxRows: number;
  /** How long the first waiting row waits for others to join its batch, ms (0 = only rows added in the same turn). */
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
 * Gathers the rows of concurrent requests into batches: a batch runs when it is full or
 * when its oldest row has waited `delayMs`, one batch at a time (a session runs one batch
 * at once). A request's rows may span batches; it resolves when all of them have run. An
 * aborted request leaves the waiting rows at once; a batch already running completes.
 */
export class DynamicBatcher<R, O> {
  readonly #opts: DynamicBatcherOptions<R, O>;
  #pending: Pending<R, O>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed: unknown;
  #runs = 0;
  #rows = 0;

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
      const at = performance.now();
      rows.forEach((row, position) => this.#pending.push({ row, position, request, at }));
      this.#schedule();
    });
  }

  /** Rejects every waiting request with `reason`, refuses new ones and waits for the running batch. */
  async close(reason: unknown): Promise<void> {
    this.#closed = reason;
    clearTimeout(this.#timer);
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

  #schedule(): void {
    if (this.#running || this.#pending.length === 0 || this.#closed !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length >= this.#opts.maxRows) {
      this.#flush();
      return;
    }
    const wait = this.#opts.delayMs - (performance.now() - this.#pending[0]!.at);
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, wait));
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running || this.#pending.length === 0) return;
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
