import type { Capability, Engine, EngineStatus, LoadedModel, LoadSpec, ParamDescriptor } from '../engine.ts';
import { ModelObjectError } from '../engine.ts';
import { API_DESCRIPTORS } from './api-descriptors.ts';
import { apiServer } from './api-server.ts';
import { LoadedApiModel } from './loaded-api-model.ts';

export interface ApiEngineOptions {
  /** Where keys are read (`metadata.api.api_key_env` names one); the process environment by default. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The api engine: models that live on another OpenAI-compatible server, named by the model
 * object's `metadata.api` (`base_url`, `model`, `api_key_env`). "Loading" checks that object
 * and reads the key; the queue then bounds the requests in flight upstream.
 */
export class ApiEngine implements Engine {
  readonly name = 'api' as const;
  readonly descriptors: readonly ParamDescriptor[] = API_DESCRIPTORS;
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(['chat', 'completion', 'embedding']);
  readonly #env: NodeJS.ProcessEnv;

  constructor(options: ApiEngineOptions = {}) {
    this.#env = options.env ?? process.env;
  }

  async status(): Promise<EngineStatus> {
    return { available: true, reason: 'forwards to OpenAI-compatible servers named by metadata.api' };
  }

  async load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel> {
    signal.throwIfAborted();
    const api = (spec.metadata.api ?? {}) as { base_url?: unknown; model?: unknown; api_key_env?: unknown };
    const server = apiServer(api, spec.sourceUrl);
    if (server.problem) throw new ModelObjectError(`the api model '${spec.id}' ${server.problem}`, server.field);
    const baseUrl = server.url!;
    const keyEnv = typeof api.api_key_env === 'string' && api.api_key_env !== '' ? api.api_key_env : undefined;
    const apiKey = keyEnv ? this.#env[keyEnv] : undefined;
    if (keyEnv && !apiKey) {
      // The server's environment is at fault, not the model object: a 500 that names the variable.
      throw new Error(`the api model '${spec.id}' reads its key from $${keyEnv}, which is not set in the server's environment`);
    }
    const model = typeof api.model === 'string' && api.model !== '' ? api.model : spec.id.split('/').pop()!;
    return new LoadedApiModel({
      id: spec.id,
      baseUrl: baseUrl.replace(/\/+$/, ''),
      model,
      ...(apiKey ? { apiKey } : {}),
      ...(keyEnv ? { apiKeyEnv: keyEnv } : {}),
      concurrency: (spec.params.n_parallel as number | undefined) ?? 4,
      timeoutMs: ((spec.params.timeout_s as number | undefined) ?? 600) * 1000,
      defaults: spec.params,
    });
  }

  async dispose(): Promise<void> {
    // Nothing native.
  }
}
