import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import path from 'node:path';
import PQueue from 'p-queue';
import { ApiError, isApiError } from '../errors.ts';
import type { BinaryRef } from '../registry/binaries.ts';
import type { ModelEntry, ModelRegistry } from '../registry/registry.ts';
import { staticState } from '../registry/registry.ts';
import { ensureFreeSpace } from './disk-space.ts';
import { downloadFile, type FileDownloadResult } from './download-file.ts';
import { discardPart, peekPart } from './part-files.ts';

/** Download progress as the wire reports it (`Progress` in the API). */
export interface DownloadProgress {
  downloaded_bytes: number;
  total_bytes: number | null;
  percent: number | null;
  bytes_per_second: number;
}

export type DownloadPhase = 'queued' | 'downloading' | 'done' | 'failed' | 'cancelled';

export interface DownloadEnd {
  phase: 'done' | 'failed' | 'cancelled';
  error?: ApiError;
}

export interface DownloadManagerOptions {
  registry: ModelRegistry;
  /** Files transferred at once across all models; more wait their turn. Default 2. */
  maxConcurrent?: number;
  /** Extra request headers for a URL (the hub token goes to the hub only). */
  headersFor?: (url: string) => Record<string, string> | undefined;
  /** Failed attempts in a row per file before giving up. Default 5. */
  retries?: number;
  /** First retry delay, ms, doubled per failure. Default 500. */
  backoffMs?: number;
  /** Least time between two `progress` events of one model, ms. Default 250. */
  progressIntervalMs?: number;
  log?: { info(obj: unknown, msg?: string): void; warn(obj: unknown, msg?: string): void };
}

interface FileSlot {
  dest: string;
  bytes: number;
  total?: number;
  /** Bytes at the last progress callback; undefined before the first (which is the resume offset). */
  seen?: number;
}

/** A job waiting on a file transfer, and the slot of its progress that the transfer feeds. */
interface Subscriber {
  job: DownloadJob;
  slot: FileSlot;
}

/**
 * One file's transfer, shared by every job that needs that file: two model objects may list
 * the same binary path, and two writers of one part file would mix their bytes. It runs while
 * any job waits on it and stops (keeping the part) when the last one leaves.
 */
class FileTransfer {
  readonly controller = new AbortController();
  readonly subscribers = new Set<Subscriber>();
  /** Out of the queue and transferring. */
  started = false;
  bytes?: number;
  total?: number;
  promise!: Promise<FileDownloadResult>;

  constructor(
    readonly ref: BinaryRef,
    /** The model whose job started it (named when another model's object contradicts it). */
    readonly owner: string,
  ) {}
}

/** Bytes-per-second over the last few seconds of received bytes (resumed bytes excluded). */
class SpeedMeter {
  readonly #samples: Array<{ t: number; bytes: number }> = [];
  #received = 0;
  static readonly WINDOW_MS = 3000;

  add(n: number): void {
    this.#received += n;
    const t = performance.now();
    this.#samples.push({ t, bytes: this.#received });
    while (this.#samples.length > 2 && t - this.#samples[0]!.t > SpeedMeter.WINDOW_MS) this.#samples.shift();
  }

  rate(): number {
    if (this.#samples.length < 2) return 0;
    const first = this.#samples[0]!;
    const last = this.#samples.at(-1)!;
    // A stalled transfer reads as slowing down rather than frozen at its last speed.
    const dt = (Math.max(last.t, performance.now() - 250) - first.t) / 1000;
    return dt > 0 ? Math.round((last.bytes - first.bytes) / dt) : 0;
  }
}

/** One model's download: every missing binary, each a task on the shared queue. */
export class DownloadJob {
  readonly modelId: string;
  readonly controller = new AbortController();
  readonly files: FileSlot[];
  readonly startedAt = Date.now();
  readonly meter = new SpeedMeter();
  phase: DownloadPhase = 'queued';
  error?: ApiError;
  cancelled = false;
  promise!: Promise<DownloadEnd>;
  lastEmit = 0;

  constructor(modelId: string, files: FileSlot[]) {
    this.modelId = modelId;
    this.files = files;
  }

  get active(): boolean {
    return this.phase === 'queued' || this.phase === 'downloading';
  }

  progress(): DownloadProgress {
    const downloaded = this.files.reduce((a, f) => a + f.bytes, 0);
    const known = this.files.every((f) => f.total !== undefined);
    const total = known ? this.files.reduce((a, f) => a + f.total!, 0) : null;
    return {
      downloaded_bytes: downloaded,
      total_bytes: total,
      percent: total ? Math.min(100, Math.round((downloaded / total) * 10000) / 100) : total === 0 ? 100 : null,
      bytes_per_second: this.meter.rate(),
    };
  }
}

function sizeOnDisk(b: BinaryRef): number | undefined {
  try {
    return statSync(b.path).size;
  } catch {
    return undefined;
  }
}

/**
 * Owns every model download: starts or joins one per model, runs the files through a queue
 * bounded by `maxConcurrent`, reports progress (events and a synchronous view for the model
 * table), cancels (keeping or discarding the part files) and rescans the registry as files
 * land. Knows nothing of HTTP routes.
 *
 * Events: `progress` (modelId, DownloadProgress), throttled; `end` (modelId, DownloadEnd).
 */
type IdleView = { state?: 'downloading'; progress?: DownloadProgress; error?: string };

export class DownloadManager extends EventEmitter {
  readonly #registry: ModelRegistry;
  readonly #queue: PQueue;
  readonly #opts: DownloadManagerOptions;
  readonly #jobs = new Map<string, DownloadJob>();
  /** In-flight transfers by absolute destination path: one per file, whatever the models. */
  readonly #transfers = new Map<string, FileTransfer>();
  readonly #starting = new Map<string, Promise<DownloadJob | undefined>>();
  /** The last failure per model, shown with its `not-downloaded` state until the next attempt. */
  readonly #errors = new Map<string, string>();
  #idleViews = new WeakMap<ModelEntry, IdleView | undefined>();

  constructor(options: DownloadManagerOptions) {
    super();
    this.#opts = options;
    this.#registry = options.registry;
    this.#queue = new PQueue({ concurrency: options.maxConcurrent ?? 2 });
    this.setMaxListeners(0);
  }

  job(modelId: string): DownloadJob | undefined {
    const j = this.#jobs.get(modelId);
    return j?.active ? j : undefined;
  }

  /**
   * Starts the download of every missing binary of a model, or joins the one under way.
   * Resolves with the job, or undefined when every binary is already there. Throws 409
   * model_not_downloadable when a missing binary has no URL, 507 insufficient_storage when
   * the known sizes do not fit on the disk (nothing is written then).
   */
  start(entry: ModelEntry): Promise<DownloadJob | undefined> {
    const running = this.job(entry.id);
    if (running) return Promise.resolve(running);
    const pending = this.#starting.get(entry.id);
    if (pending) return pending;
    const p = this.#start(entry).finally(() => this.#starting.delete(entry.id));
    this.#starting.set(entry.id, p);
    return p;
  }

  async #start(entry: ModelEntry): Promise<DownloadJob | undefined> {
    if (entry.problem && entry.binaries.length === 0) {
      throw new ApiError('model_invalid', entry.problem.message, { param: entry.problem.field ?? 'model' });
    }
    const missing = entry.binaries.filter((b) => !b.present);
    if (entry.binaries.length > 0 && missing.length === 0) return undefined;
    if (entry.binaries.length === 0) {
      throw new ApiError('model_not_downloadable', `the model '${entry.id}' names no binary to download (no source_url or metadata.binaries)`, { param: 'source_url' });
    }
    const local = missing.find((b) => !b.url);
    if (local) {
      throw new ApiError('model_not_downloadable', `the model '${entry.id}' needs ${local.path}, which is missing and has no URL to download it from`, { param: 'source_url' });
    }
    const outside = missing.find((b) => !b.managed);
    if (outside) {
      throw new ApiError('model_not_downloadable', `the model '${entry.id}' would download to ${outside.path}, outside its folder`, { param: 'metadata.binaries' });
    }
    const files: FileSlot[] = entry.binaries.map((b) => {
      if (b.present) {
        const size = b.size ?? sizeOnDisk(b) ?? 0;
        return { dest: b.path, bytes: size, total: size };
      }
      const part = peekPart(b.path);
      // metadata.size of a one-file model (read with HEAD at import) only seeds the display; the server's answer decides.
      const declared = entry.binaries.length === 1 && typeof entry.object.metadata?.size === 'number' ? entry.object.metadata.size : undefined;
      const total = b.size ?? part?.total ?? declared;
      return { dest: b.path, bytes: part?.bytes ?? 0, ...(total !== undefined ? { total } : {}) };
    });
    const needed = files.reduce((a, f, i) => a + (entry.binaries[i]!.present || f.total === undefined ? 0 : Math.max(0, f.total - f.bytes)), 0);
    await ensureFreeSpace(entry.folder, needed, `the model '${entry.id}'`);

    const job = new DownloadJob(entry.id, files);
    this.#jobs.set(entry.id, job);
    this.#errors.delete(entry.id);
    this.#idleViews = new WeakMap();
    job.promise = this.#run(job, entry);
    return job;
  }

  async #run(job: DownloadJob, entry: ModelEntry): Promise<DownloadEnd> {
    const signal = job.controller.signal;
    let firstError: ApiError | undefined;
    const tasks = entry.binaries.map((b, i) => {
      if (b.present) return Promise.resolve();
      const slot = job.files[i]!;
      return this.#fetchFor(job, b, slot).catch((err: unknown) => {
        if (!signal.aborted) {
          firstError = isApiError(err) ? err : new ApiError('download_failed', `downloading ${path.basename(b.path)} failed: ${(err as Error).message}`, { param: 'source_url' });
          // One file failing fails the model: stop its other files now.
          job.controller.abort(firstError);
        }
        throw err;
      });
    });
    const results = await Promise.allSettled(tasks);
    let end: DownloadEnd;
    if (results.every((r) => r.status === 'fulfilled')) {
      end = { phase: 'done' };
    } else if (job.cancelled || (!firstError && signal.aborted)) {
      end = { phase: 'cancelled' };
    } else {
      end = { phase: 'failed', error: firstError };
      this.#errors.set(entry.id, firstError!.message);
      this.#opts.log?.warn({ model: entry.id, code: firstError!.code, error: firstError!.message }, 'download failed');
    }
    // The table must show the files that landed before the job stops reporting `downloading`.
    await this.#registry.scan().catch(() => undefined);
    job.phase = end.phase;
    job.error = end.error;
    this.#idleViews = new WeakMap();
    this.emit('end', job.modelId, end);
    return end;
  }

  /**
   * Gets one binary of a job's model: joins the transfer of that file under way (started by
   * this or another model's job) or starts one on the shared queue, and waits for its result.
   * When the job stops (cancelled, or another of its files failed) it leaves the transfer; the
   * last job to leave stops it and waits for it to stop writing.
   */
  async #fetchFor(job: DownloadJob, b: BinaryRef, slot: FileSlot): Promise<void> {
    const signal = job.controller.signal;
    signal.throwIfAborted();
    const transfer = this.#transferOf(b, job.modelId);
    const sub: Subscriber = { job, slot };
    transfer.subscribers.add(sub);
    if (transfer.started) {
      job.phase = 'downloading';
      if (transfer.bytes !== undefined) this.#feed(sub, transfer.bytes, transfer.total);
      this.#emitProgress(job, true);
    }
    let result: FileDownloadResult;
    try {
      result = await new Promise<FileDownloadResult>((resolve, reject) => {
        const onAbort = () => {
          transfer.subscribers.delete(sub);
          if (transfer.subscribers.size > 0) {
            reject(signal.reason);
            return;
          }
          transfer.controller.abort(signal.reason);
          // Nothing may touch the part (a discard, a new transfer) until this one stops writing.
          void transfer.promise.catch(() => undefined).then(() => reject(signal.reason));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        transfer.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    } finally {
      transfer.subscribers.delete(sub);
    }
    if (b.sha256 && !transfer.ref.sha256 && result.sha256 !== b.sha256) {
      throw new ApiError(
        'checksum_mismatch',
        `sha256 mismatch for ${path.basename(b.path)}: expected ${b.sha256}, got ${result.sha256} (downloaded for '${transfer.owner}', whose model object names no sha256)`,
        { param: 'metadata.binaries' },
      );
    }
  }

  /** The transfer of a binary's file: the one under way, else a new one on the queue. */
  #transferOf(b: BinaryRef, modelId: string): FileTransfer {
    const key = path.resolve(b.path);
    const current = this.#transfers.get(key);
    if (current && !current.controller.signal.aborted) {
      const other = current.ref;
      const conflict =
        other.url !== b.url
          ? `from ${other.url}, not ${b.url}`
          : b.sha256 && other.sha256 && b.sha256 !== other.sha256
            ? `with sha256 ${other.sha256}, not ${b.sha256}`
            : b.size !== undefined && other.size !== undefined && b.size !== other.size
              ? `of ${other.size} bytes, not ${b.size}`
              : undefined;
      if (conflict) {
        throw new ApiError(
          'model_not_downloadable',
          `${b.path} is being downloaded for '${current.owner}' ${conflict} as the model '${modelId}' says; two model objects name different files for one path`,
          { param: 'metadata.binaries' },
        );
      }
      return current;
    }
    const transfer = new FileTransfer(b, modelId);
    // A stopping transfer of this file (its last job left) must finish writing before the next starts.
    const previous = current?.promise.catch(() => undefined);
    this.#transfers.set(key, transfer);
    const signal = transfer.controller.signal;
    let running: Promise<FileDownloadResult> | undefined;
    const run = async (): Promise<FileDownloadResult> => {
      signal.throwIfAborted();
      transfer.started = true;
      for (const sub of transfer.subscribers) {
        sub.job.phase = 'downloading';
        this.#emitProgress(sub.job, true);
      }
      const result = await downloadFile({
        url: b.url!,
        dest: b.path,
        sha256: b.sha256,
        size: b.size,
        headers: this.#opts.headersFor?.(b.url!),
        signal,
        retries: this.#opts.retries,
        backoffMs: this.#opts.backoffMs,
        onProgress: (bytes, total) => {
          transfer.bytes = bytes;
          transfer.total = total;
          for (const sub of transfer.subscribers) this.#feed(sub, bytes, total);
        },
      });
      const models = [...transfer.subscribers].map((sub) => sub.job.modelId);
      this.#opts.log?.info({ model: models.length === 1 ? models[0] : models, file: path.basename(b.path), bytes: result.bytes }, 'file downloaded');
      await this.#registry.scan();
      return result;
    };
    transfer.promise = (async () => {
      await previous;
      try {
        return await this.#queue.add(() => (running = run()), { signal });
      } catch (err) {
        // The queue answers an abort at once, while the download may still be writing its last
        // chunk: the transfer is over (the part free to discard or resume) only once it stopped.
        await running?.catch(() => undefined);
        throw err;
      }
    })().finally(() => {
      if (this.#transfers.get(key) === transfer) this.#transfers.delete(key);
    });
    // Each waiting job handles the outcome; this one only keeps an unwaited failure quiet.
    transfer.promise.catch(() => undefined);
    return transfer;
  }

  #feed(sub: Subscriber, bytes: number, total: number | undefined): void {
    const { job, slot } = sub;
    if (slot.seen !== undefined && bytes > slot.seen) job.meter.add(bytes - slot.seen);
    slot.seen = bytes;
    slot.bytes = bytes;
    if (total !== undefined) slot.total = total;
    this.#emitProgress(job);
  }

  #emitProgress(job: DownloadJob, force = false): void {
    const now = performance.now();
    if (!force && now - job.lastEmit < (this.#opts.progressIntervalMs ?? 250)) return;
    job.lastEmit = now;
    this.emit('progress', job.modelId, job.progress());
  }

  /**
   * Cancels a model's download (waiting for its files to stop). The part files stay for a
   * later resume unless `discard`, which also deletes parts left by an earlier run.
   * Resolves true when a download was running.
   */
  async cancel(entry: ModelEntry, { discard = false } = {}): Promise<boolean> {
    await this.#starting.get(entry.id)?.catch(() => undefined);
    const job = this.job(entry.id);
    if (job) {
      job.cancelled = true;
      job.controller.abort(new ApiError('request_aborted', `the download of '${entry.id}' was cancelled`));
      await job.promise;
    }
    if (discard) {
      for (const b of entry.binaries) {
        // A part another model's download is still writing (a shared binary) is that download's.
        if (!b.present && b.managed && !this.#transfers.has(path.resolve(b.path))) await discardPart(b.path);
      }
      this.#errors.delete(entry.id);
    }
    this.#idleViews = new WeakMap();
    return job !== undefined;
  }

  /**
   * What the model view adds for this model: `downloading` with live progress while a job
   * runs; otherwise, for a model not yet downloaded, the bytes already in part files (after a
   * cancel or a restart) and the last failure.
   */
  view(entry: ModelEntry): IdleView | undefined {
    const job = this.job(entry.id);
    if (job) return { state: 'downloading', progress: job.progress() };
    // Listing reads this for every model on every request: the part files are peeked once per
    // scan (entries are replaced) or download event, not once per request.
    if (this.#idleViews.has(entry)) return this.#idleViews.get(entry);
    const view = this.#idleView(entry);
    this.#idleViews.set(entry, view);
    return view;
  }

  #idleView(entry: ModelEntry): IdleView | undefined {
    if (staticState(entry) !== 'not-downloaded' || entry.binaries.length === 0) return undefined;
    let downloaded = 0;
    let total: number | null = 0;
    let anyPart = false;
    for (const b of entry.binaries) {
      if (b.present) {
        const size = b.size ?? sizeOnDisk(b) ?? 0;
        downloaded += size;
        if (total !== null) total += size;
        continue;
      }
      const part = peekPart(b.path);
      if (part) anyPart = true;
      downloaded += part?.bytes ?? 0;
      const t = b.size ?? part?.total;
      total = total === null || t === undefined ? null : total + t;
    }
    const error = this.#errors.get(entry.id);
    if (!anyPart && !error) return undefined;
    return {
      ...(anyPart || downloaded > 0
        ? { progress: { downloaded_bytes: downloaded, total_bytes: total, percent: total ? Math.round((downloaded / total) * 10000) / 100 : null, bytes_per_second: 0 } }
        : {}),
      ...(error ? { error } : {}),
    };
  }

  /** Forgets a model's last failure (its model object was deleted). */
  forget(modelId: string): void {
    this.#errors.delete(modelId);
    if (!this.#jobs.get(modelId)?.active) this.#jobs.delete(modelId);
    this.#idleViews = new WeakMap();
  }

  /** Pauses every download (part files stay for a resume) and waits for them to stop. */
  async close(): Promise<void> {
    const jobs = [...this.#jobs.values()].filter((j) => j.active);
    for (const j of jobs) {
      j.cancelled = true;
      j.controller.abort(new ApiError('request_aborted', 'the server is shutting down'));
    }
    await Promise.all(jobs.map((j) => j.promise.catch(() => undefined)));
    this.#queue.clear();
  }
}
