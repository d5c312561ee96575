import type { Capability, Engine, LoadedModel, LoadSpec, ParamDescriptor } from '../../src/engines/engine.ts';

export interface FakeEngineOptions {
  /** Load time, ms. */
  loadMs?: number;
  concurrency?: number;
  capabilities?: Capability[];
  /** What the engine says its models can do at most (checked before a JIT load). */
  engineCapabilities?: Capability[];
  failLoad?: string;
}

export interface FakeLoaded extends LoadedModel {
  spec: LoadSpec;
  disposed: boolean;
  /** Runs a job that takes `ms` or until aborted. */
  work(ms: number, signal: AbortSignal): Promise<string>;
}

/**
 * A stand-in engine for fast route and lifecycle tests. Every capability is also proven on the
 * real engines elsewhere in the suite.
 */
export class FakeEngine implements Engine {
  readonly name = 'llamacpp' as const;
  readonly descriptors: ParamDescriptor[] = [
    { name: 'ctx_len', type: 'integer', default: 512, min_value: 16, max_value: 4096, increment: 16, description: 'context', scope: 'load' },
    { name: 'n_parallel', type: 'integer', default: 1, min_value: 1, max_value: 8, increment: 1, description: 'parallel', scope: 'load' },
    { name: 'temperature', type: 'number', default: 0.8, min_value: 0, max_value: 2, increment: 0.1, description: 'temp', scope: 'request' },
  ];
  readonly capabilities: ReadonlySet<Capability>;
  loads = 0;
  disposedModels = 0;
  readonly opts: FakeEngineOptions;
  lastLoaded: FakeLoaded | undefined;

  constructor(opts: FakeEngineOptions = {}) {
    this.opts = opts;
    this.capabilities = new Set(opts.engineCapabilities ?? ['chat', 'completion', 'embedding']);
  }

  async status() {
    return { available: true, info: { fake: true } };
  }

  async load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel> {
    this.loads++;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, this.opts.loadMs ?? 0);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(signal.reason);
      }, { once: true });
    });
    if (this.opts.failLoad) throw new Error(this.opts.failLoad);
    const engine = this;
    const loaded: FakeLoaded = {
      spec,
      disposed: false,
      capabilities: new Set(this.opts.capabilities ?? ['chat', 'completion']),
      concurrency: (spec.params.n_parallel as number) ?? this.opts.concurrency ?? 1,
      info: { fake: true },
      async dispose() {
        if (!this.disposed) engine.disposedModels++;
        this.disposed = true;
      },
      work(ms, sig) {
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => resolve('done'), ms);
          sig.addEventListener('abort', () => {
            clearTimeout(t);
            reject(sig.reason);
          }, { once: true });
        });
      },
    };
    this.lastLoaded = loaded;
    return loaded;
  }

  async dispose() {}
}
