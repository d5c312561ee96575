import PQueue from 'p-queue';
import { ApiError } from '../errors.ts';

export interface QueueStats {
  running: number;
  waiting: number;
  concurrency: number;
  max_waiting: number;
}

export interface ModelQueueOptions {
  /** Requests that run at once: the loaded model's real parallelism. */
  concurrency: number;
  /** Requests allowed to wait beyond `concurrency`; more get 503 queue_full. */
  maxWaiting: number;
}

export interface RunOptions {
  /** Aborts the request: removes it from the queue, or is passed to the engine while it runs. */
  signal?: AbortSignal;
  /** Time limit for queue wait plus run, ms (0 = none). */
  timeoutMs?: number;
}

/**
 * One queue per loaded model. Every request gets its own AbortSignal that fires on client
 * abort, on timeout or when the model stops, so a waiting request leaves the queue at once
 * and a running one stops its native call.
 */
export class ModelQueue {
  readonly #queue: PQueue;
  readonly #maxWaiting: number;
  readonly #controllers = new Set<AbortController>();
  readonly #started = new WeakSet<AbortController>();
  #closed: ApiError | undefined;

  constructor(options: ModelQueueOptions) {
    this.#queue = new PQueue({ concurrency: Math.max(1, options.concurrency) });
    this.#maxWaiting = options.maxWaiting;
  }

  stats(): QueueStats {
    return {
      running: this.#queue.pending,
      waiting: this.#queue.size,
      concurrency: this.#queue.concurrency,
      max_waiting: this.#maxWaiting,
    };
  }

  get idle(): boolean {
    return this.#queue.pending === 0 && this.#queue.size === 0;
  }

  async run<T>(fn: (signal: AbortSignal) => Promise<T>, options: RunOptions = {}): Promise<T> {
    if (this.#closed) throw this.#closed;
    if (this.#queue.pending >= this.#queue.concurrency && this.#queue.size >= this.#maxWaiting) {
      throw new ApiError(
        'queue_full',
        `the model's queue is full (${this.#queue.pending} running, ${this.#queue.size} waiting, max_waiting ${this.#maxWaiting}); retry later`,
      );
    }
    const ac = new AbortController();
    const onAbort = () => ac.abort(new ApiError('request_aborted', 'the client closed the request'));
    const timer =
      options.timeoutMs && options.timeoutMs > 0
        ? setTimeout(() => ac.abort(new ApiError('request_timeout', `the request took longer than ${options.timeoutMs} ms`)), options.timeoutMs)
        : undefined;
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // p-queue races a running task against its signal and frees the slot at the abort, while
    // the engine may still hold the sequence for a token; so it only sees a signal that fires
    // while the request waits, and a running request keeps its slot until the engine returns.
    const waitAc = new AbortController();
    const onAbortWaiting = () => {
      if (!this.#started.has(ac)) waitAc.abort(ac.signal.reason);
    };
    ac.signal.addEventListener('abort', onAbortWaiting, { once: true });
    if (ac.signal.aborted) onAbortWaiting();
    this.#controllers.add(ac);
    try {
      return await this.#queue.add(
        () => {
          this.#started.add(ac);
          ac.signal.throwIfAborted();
          return fn(ac.signal);
        },
        { signal: waitAc.signal },
      );
    } catch (err) {
      // p-queue rejects an aborted waiting task with the signal's reason.
      if (ac.signal.aborted && !(err instanceof ApiError)) throw ac.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      ac.signal.removeEventListener('abort', onAbortWaiting);
      options.signal?.removeEventListener('abort', onAbort);
      this.#controllers.delete(ac);
    }
  }

  /** Rejects everything waiting with `reason` and refuses new work; running work continues. */
  close(reason: ApiError): void {
    this.#closed = reason;
    // Aborting (rather than p-queue's clear(), which never settles the dropped promises)
    // rejects each waiting request with the reason.
    for (const ac of this.#controllers) {
      if (!this.#started.has(ac)) ac.abort(reason);
    }
  }

  /** Aborts running work (after a stop's grace period). */
  abortRunning(reason: ApiError): void {
    for (const ac of this.#controllers) ac.abort(reason);
  }

  onIdle(): Promise<void> {
    return this.#queue.onIdle();
  }
}
