import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { parseDuration, type Config } from '../config/config.ts';
import { ApiError } from '../errors.ts';
import { COMMON_DESCRIPTORS } from '../engines/common-descriptors.ts';
import { checkParam, resolveParams, rejectUnknownParams } from '../engines/descriptors.ts';
import { ModelObjectError, type Capability, type Engine, type EngineName, type LoadedModel } from '../engines/engine.ts';
import type { ModelEntry, ModelRegistry } from '../registry/registry.ts';
import { staticState } from '../registry/registry.ts';
import { ModelQueue, type QueueStats } from '../scheduler/model-queue.ts';

const KEEP_ALIVE = COMMON_DESCRIPTORS.find((d) => d.name === 'keep_alive')!;

/** A request's keep_alive, checked as the parameter (a 400 naming it). */
function requestKeepAlive(value: unknown): string | number {
  return checkParam(KEEP_ALIVE, value, 'request') as string | number;
}

function notCapable(id: string, capability: Capability, has: ReadonlySet<Capability>): ApiError {
  return new ApiError('model_not_capable', `the model '${id}' does not support ${capability} (it supports: ${[...has].join(', ') || 'nothing'})`, { param: 'model' });
}

export type RuntimeState = 'starting' | 'running' | 'stopping' | 'error';

interface Slot {
  state: RuntimeState;
  load?: Promise<void>;
  abort?: AbortController;
  loaded?: LoadedModel;
  queue?: ModelQueue;
  error?: string;
  params?: Record<string, unknown>;
  keepAliveMs: number;
  /** keep_alive as the load set it (model object, start): what a request without one gets. */
  loadKeepAlive: string | number | undefined;
  idleTimer?: NodeJS.Timeout;
  /** When the armed idle timer unloads the model (ms since the epoch); unset while it works. */
  unloadsAt?: number;
  stopping?: Promise<void>;
  /** Stop calls so far: a start that waits for a stop fails if another stop comes meanwhile. */
  stops: number;
  /** The files a failed load read ({@link fingerprint}); the error lasts until they change. */
  failed?: string;
}

/** The model works (or stops): no idle unload is due. */
function disarmIdle(slot: Slot): void {
  clearTimeout(slot.idleTimer);
  slot.unloadsAt = undefined;
}

/** keep_alive on a loaded model, as a start or a request sets it. */
function setKeepAlive(slot: Slot, value: string | number): void {
  slot.keepAliveMs = parseDuration(value);
  slot.params = { ...slot.params, keep_alive: value };
}

/**
 * A request without keep_alive puts back the load's value, as Ollama puts back its default:
 * one request's `keep_alive: -1` does not pin the model for every later request.
 */
function restoreKeepAlive(slot: Slot, fallback: string | number): void {
  const { keep_alive: _, ...rest } = slot.params ?? {};
  slot.keepAliveMs = parseDuration(slot.loadKeepAlive ?? fallback);
  slot.params = slot.loadKeepAlive === undefined ? rest : { ...rest, keep_alive: slot.loadKeepAlive };
}

/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a load reads: its object file and its binaries, as path, size and modification time. */
async function fingerprint(entry: ModelEntry): Promise<string> {
  const files = [entry.file, ...entry.binaries.map((b) => b.path)];
  const stats = await Promise.all(files.map((f) => stat(f).then((s) => [f, s.size, s.mtimeMs], () => [f])));
  return JSON.stringify(stats);
}

export interface ModelStateView {
  state: 'not-downloaded' | 'downloading' | 'stopped' | 'starting' | 'running' | 'stopping' | 'error';
  error?: string;
  queue?: QueueStats;
  params?: Record<string, unknown>;
  info?: Record<string, unknown>;
}

export interface ManagerLogger {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export interface ModelManagerOptions {
  registry: ModelRegistry;
  engines: ReadonlyMap<EngineName, Engine>;
  config: Config;
  log: ManagerLogger;
}

export interface RunRequest {
  /** What the route needs the model to do; a model without it answers 400. */
  capability: Capability;
  signal?: AbortSignal;
  /**
   * The request's own `keep_alive` (Ollama): how long the model stays loaded after this
   * request; a request without one puts back the load's value (model object, start, server
   * default), as Ollama puts back its default. Checked as the keep_alive parameter (400).
   */
  keepAlive?: unknown;
}

/** Time running requests get to finish when their model stops, ms. */
export const STOP_GRACE_MS = 2000;

/**
 * Owns every loaded model: the start/stop state machine, one queue per running model,
 * just-in-time loading, keep-alive unloading and the maintenance switch. Concurrent starts
 * share one load; a stop during a load, or while a start waits for an earlier stop, aborts
 * that start (model_stopped): the latest request counts. Emits `state` (id, state) on every
 * transition and `batch` (id, rows) for every batch an engine runs.
 */
export class ModelManager extends EventEmitter {
  readonly #slots = new Map<string, Slot>();
  readonly #opts: ModelManagerOptions;
  #active = 0;
  /** While true, inference answers 503 maintenance; model control still works. */
  maintenance = false;

  constructor(options: ModelManagerOptions) {
    super();
    this.#opts = options;
    options.registry.on('change', () => {
      void this.#onRegistryChange().catch((err) => this.#opts.log.warn({ err }, 'registry change handling failed'));
    });
  }

  engine(entry: ModelEntry): Engine {
    const name = entry.engine ?? 'llamacpp';
    const engine = this.#opts.engines.get(name);
    if (!engine) {
      throw new ApiError('engine_unavailable', `engine '${name}' of model '${entry.id}' is not available in this server`, { param: 'metadata.engine' });
    }
    return engine;
  }

  state(entry: ModelEntry): ModelStateView {
    const slot = this.#slots.get(entry.id);
    if (!slot) return this.unloadedState(entry);
    return {
      state: slot.state,
      ...(slot.error ? { error: slot.error } : {}),
      ...(slot.queue && slot.state === 'running' ? { queue: slot.queue.stats() } : {}),
      ...(slot.params ? { params: slot.params } : {}),
      ...(slot.loaded?.info ? { info: slot.loaded.info } : {}),
    };
  }

  /** The state of the model with nothing loaded: what a stop leaves, whatever starts after it. */
  unloadedState(entry: ModelEntry): ModelStateView {
    const s = staticState(entry);
    return s === 'error' ? { state: 'error', error: entry.problem?.message } : { state: s };
  }

  /**
   * When a running model will be unloaded for idleness: the armed timer's time, or keep_alive
   * after now while requests run; `null` when it stays loaded (keep_alive -1); undefined when not running.
   */
  unloadTime(id: string): Date | null | undefined {
    const slot = this.#slots.get(id);
    if (slot?.state !== 'running') return undefined;
    if (slot.keepAliveMs < 0) return null;
    return new Date(slot.unloadsAt ?? Date.now() + slot.keepAliveMs);
  }

  /** The loaded instance of a running model, for what its state does not carry (its chat template). */
  loaded(id: string): LoadedModel | undefined {
    const slot = this.#slots.get(id);
    return slot?.state === 'running' ? slot.loaded : undefined;
  }

  runningIds(): string[] {
    return [...this.#slots].filter(([, s]) => s.state === 'running').map(([id]) => id).sort();
  }

  /** Inference requests in flight (queued or running). */
  get activeRequests(): number {
    return this.#active;
  }

  /**
   * Loads a model (or joins the load under way); resolves when it runs. Overrides are checked
   * even when the model already runs or loads: the same values join it, different ones are a
   * 409 (stop it first), as a start cannot change a loaded context.
   */
  async start(entry: ModelEntry, overrides: Record<string, unknown> = {}): Promise<void> {
    let existing = this.#slots.get(entry.id);
    // Every caller that waited for a stop looks again: the first one back starts, the rest join it.
    while (existing?.state === 'stopping') {
      const stops = existing.stops;
      await existing.stopping;
      // A stop sent after this start is the latest word, as when it comes during the load.
      if (existing.stops !== stops) throw new ApiError('model_stopped', `the model '${entry.id}' was stopped before it could load`);
      existing = this.#slots.get(entry.id);
    }
    const live = existing?.state === 'running' || (existing?.state === 'starting' && existing.load !== undefined);
    if (!live) this.#checkStartable(entry);
    const engine = this.engine(entry);
    const descriptors = [...engine.descriptors, ...COMMON_DESCRIPTORS];
    rejectUnknownParams(descriptors, overrides);
    const params = resolveParams(
      descriptors,
      [
        { source: `${entry.file} (parameters)`, values: entry.object.parameters },
        { source: 'the start request', values: overrides },
      ],
      // Request-scope values too: the model object and start overrides are the defaults each
      // request's own values are layered on (and a bad one fails the load, naming the file).
      ['load', 'request'],
    );
    if (live) {
      const slot = existing!;
      // A value the engine chose at load (ctx_len from the file) is in the loaded model's info.
      const current = (k: string) => slot.params?.[k] ?? slot.loaded?.info?.[k];
      const differ = Object.keys(overrides).filter((k) => k !== 'keep_alive' && JSON.stringify(params[k]) !== JSON.stringify(current(k)));
      if (differ.length > 0) {
        const k = differ[0]!;
        const now = current(k) === undefined ? `its engine's default ${k}` : `${k} ${JSON.stringify(current(k))}`;
        throw new ApiError('model_running', `the model '${entry.id}' already ${slot.state === 'running' ? 'runs' : 'loads'} with ${now}; stop it first to start it with ${k} ${JSON.stringify(params[k])}`, { param: k });
      }
      // keep_alive is the one setting a loaded model can change (a start refused above changes
      // nothing): as in Ollama, the latest start's counts.
      if (overrides.keep_alive !== undefined) {
        slot.loadKeepAlive = params.keep_alive as string | number;
        setKeepAlive(slot, slot.loadKeepAlive);
        if (slot.state === 'running' && slot.queue?.idle) this.#armIdle(entry.id, slot);
      }
      if (slot.state === 'running') return;
      return slot.load;
    }
    const keepAliveRaw = params.keep_alive ?? this.#opts.config.keepAlive;
    const slot: Slot = {
      state: 'starting',
      abort: new AbortController(),
      params,
      keepAliveMs: parseDuration(keepAliveRaw as string | number),
      loadKeepAlive: params.keep_alive as string | number | undefined,
      stops: 0,
    };
    this.#slots.set(entry.id, slot);
    this.emit('state', entry.id, 'starting');
    const t0 = performance.now();
    slot.load = (async () => {
      try {
        const loaded = await engine.load(
          {
            id: entry.id,
            files: entry.binaries.map((b) => b.path),
            folder: entry.folder,
            params,
            metadata: (entry.object.metadata ?? {}) as Record<string, unknown>,
            ...(entry.object.source_url ? { sourceUrl: entry.object.source_url } : {}),
            header: entry.header,
            onBatch: (rows) => this.emit('batch', entry.id, rows),
          },
          slot.abort!.signal,
        );
        if (slot.abort!.signal.aborted) {
          await loaded.dispose();
          throw slot.abort!.signal.reason;
        }
        slot.loaded = loaded;
        slot.queue = new ModelQueue({
          concurrency: loaded.concurrency,
          maxWaiting: (params.max_waiting as number | undefined) ?? this.#opts.config.maxWaiting,
        });
        slot.state = 'running';
        slot.load = undefined;
        this.#opts.log.info({ model: entry.id, ms: Math.round(performance.now() - t0), params }, 'model running');
        this.emit('state', entry.id, 'running');
        this.#armIdle(entry.id, slot);
      } catch (err) {
        if (slot.abort!.signal.aborted) {
          if (this.#slots.get(entry.id) === slot) this.#slots.delete(entry.id);
          throw new ApiError('model_stopped', `the model '${entry.id}' was stopped while loading`);
        }
        const message = err instanceof Error ? err.message : String(err);
        slot.failed = await fingerprint(entry);
        slot.state = 'error';
        slot.error = `failed to load ${entry.binaries[0]?.path ?? entry.id}: ${message}`;
        slot.load = undefined;
        this.#opts.log.warn({ model: entry.id, err }, 'model load failed');
        this.emit('state', entry.id, 'error');
        if (err instanceof ModelObjectError) throw new ApiError('model_invalid', slot.error, { param: err.field, cause: err });
        throw new ApiError('model_load_failed', slot.error, { param: 'model', cause: err });
      }
    })();
    return slot.load;
  }

  #checkStartable(entry: ModelEntry): void {
    const s = staticState(entry);
    if (s === 'error') {
      throw new ApiError('model_invalid', entry.problem?.message ?? `the model '${entry.id}' is broken`, { param: entry.problem?.field ?? 'model' });
    }
    if (s === 'not-downloaded') {
      // A missing file with no URL cannot be downloaded: say which file to put back instead.
      const lost = entry.binaries.find((b) => !b.present && !b.url);
      if (lost) throw new ApiError('model_not_downloaded', `the model '${entry.id}' needs ${lost.path}, which is missing and has no URL to download it from`, { param: 'model' });
      throw new ApiError('model_not_downloaded', `the model '${entry.id}' is not downloaded; POST /v1/models/${entry.id}/download first`, { param: 'model' });
    }
  }

  /**
   * Unloads a model: waiting requests get 503 model_stopped, running ones get `graceMs` to
   * finish and are then aborted; native memory is freed before this resolves.
   */
  async stop(id: string, graceMs = STOP_GRACE_MS): Promise<void> {
    const slot = this.#slots.get(id);
    if (!slot) return;
    slot.stops++;
    if (slot.stopping) return slot.stopping;
    if (slot.state === 'error') {
      this.#slots.delete(id);
      return;
    }
    disarmIdle(slot);
    const reason = new ApiError('model_stopped', `the model '${id}' was stopped`);
    slot.stopping = (async () => {
      const wasState = slot.state;
      slot.state = 'stopping';
      this.emit('state', id, 'stopping');
      if (wasState === 'starting') {
        slot.abort?.abort(reason);
        await slot.load?.catch(() => undefined);
      }
      if (slot.queue) {
        slot.queue.close(reason);
        const idle = slot.queue.onIdle();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
        const winner = await Promise.race([idle, grace]);
        clearTimeout(timer);
        if (winner === 'timeout') {
          slot.queue.abortRunning(reason);
          await idle;
        }
      }
      await slot.loaded?.dispose().catch((err) => this.#opts.log.warn({ model: id, err }, 'dispose failed'));
      if (this.#slots.get(id) === slot) this.#slots.delete(id);
      this.#opts.log.info({ model: id }, 'model stopped');
      this.emit('state', id, 'stopped');
    })();
    return slot.stopping;
  }

  /**
   * Runs one inference request on a model: loads it first when stopped (JIT), waits in its
   * queue, and hands the engine an AbortSignal that fires on client abort, timeout or stop.
   */
  async run<T>(entry: ModelEntry, req: RunRequest, fn: (loaded: LoadedModel, signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.#withModel(entry, req, (loaded, slot) =>
      slot.queue!.run((signal) => fn(loaded, signal), { signal: req.signal, timeoutMs: this.#opts.config.requestTimeoutMs }));
  }

  /**
   * Uses a model for work that takes no turn in its queue (reading its tokenizer): loads it
   * first when stopped (JIT), as {@link run} does, and runs `fn` at once beside its requests.
   */
  async use<T>(entry: ModelEntry, req: RunRequest, fn: (loaded: LoadedModel) => T): Promise<T> {
    return this.#withModel(entry, req, async (loaded) => fn(loaded));
  }

  async #withModel<T>(entry: ModelEntry, req: RunRequest, fn: (loaded: LoadedModel, slot: Slot) => Promise<T>): Promise<T> {
    if (this.maintenance) {
      throw new ApiError('maintenance', 'the server is in maintenance mode (dev_mode); inference is paused');
    }
    const keepAlive = req.keepAlive == null ? undefined : requestKeepAlive(req.keepAlive);
    this.#active++;
    try {
      let slot = this.#slots.get(entry.id);
      if (!slot || slot.state !== 'running') {
        // A broken model object says what is wrong with it first (its engine may be unknown).
        this.#checkStartable(entry);
        const possible = this.engine(entry).capabilities;
        if (!possible.has(req.capability)) throw notCapable(entry.id, req.capability, possible);
        if (!this.#opts.config.jit && slot?.state !== 'starting') {
          throw new ApiError('model_not_running', `the model '${entry.id}' is not running; POST /v1/models/${entry.id}/start first`, { param: 'model' });
        }
        await this.start(entry);
        slot = this.#slots.get(entry.id);
        if (!slot || slot.state !== 'running') throw new ApiError('model_stopped', `the model '${entry.id}' was stopped`);
      }
      const loaded = slot.loaded!;
      if (!loaded.capabilities.has(req.capability)) throw notCapable(entry.id, req.capability, loaded.capabilities);
      if (keepAlive !== undefined) setKeepAlive(slot, keepAlive);
      else restoreKeepAlive(slot, this.#opts.config.keepAlive);
      disarmIdle(slot);
      const s = slot;
      try {
        return await fn(loaded, s);
      } finally {
        if (s.queue!.idle) this.#armIdle(entry.id, s);
      }
    } finally {
      this.#active--;
    }
  }

  #armIdle(id: string, slot: Slot, ms = slot.keepAliveMs): void {
    disarmIdle(slot);
    if (ms < 0 || slot.state !== 'running') return;
    slot.unloadsAt = Date.now() + ms;
    // setTimeout fires at once past 2^31 − 1 ms (~24.8 days): longer keep-alives wait in legs.
    const leg = Math.min(ms, MAX_TIMER_MS);
    slot.idleTimer = setTimeout(() => {
      if (ms > leg) return this.#armIdle(id, slot, ms - leg);
      if (slot.queue?.idle && this.#slots.get(id) === slot) {
        void this.stop(id).catch((err) => this.#opts.log.warn({ model: id, err }, 'keep-alive unload failed'));
      }
    }, leg);
    slot.idleTimer.unref();
  }

  /**
   * The registry rescanned: a failed load is forgotten once its files changed (or it was
   * deleted), so the table shows the fixed model again; a running model whose object file is
   * gone is stopped — nobody could address it to stop it any more.
   */
  async #onRegistryChange(): Promise<void> {
    for (const [id, slot] of this.#slots) {
      const entry = this.#opts.registry.get(id);
      if (slot.state === 'error') {
        if (!entry || (await fingerprint(entry)) !== slot.failed) {
          if (this.#slots.get(id) === slot) this.#slots.delete(id);
        }
      } else if (!entry && slot.state !== 'stopping') {
        this.#opts.log.info({ model: id }, 'model object gone: stopping the model');
        void this.stop(id).catch((err) => this.#opts.log.warn({ model: id, err }, 'stop failed'));
      }
    }
  }

  /** Stops everything (server shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.#slots.keys()].map((id) => this.stop(id, 500)));
  }
}
