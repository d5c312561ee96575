import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../errors.ts';
import { OPENAPI_INFO } from '../../plugins/swagger.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import type { ModelStateView } from '../../runtime/model-manager.ts';
import { routerStatus, stateOf } from '../../runtime/model-view.ts';
import { errorResponses } from '../../schemas/common.ts';
import {
  PropsQuerySchema, RouterModelBodySchema, RouterPropsSchema, RouterSuccessSchema, SlotListSchema, SlotsQuerySchema,
  type PropsQuery, type RouterModelBody, type SlotsQuery,
} from '../../schemas/llama-server.ts';
import { openEventStream } from '../event-stream.ts';
import { targetModel } from './target-model.ts';

const tags = ['llama-server'];

/** Seconds between SSE comments that keep proxies from closing a quiet stream. */
const SSE_HEARTBEAT_MS = 15_000;

/** Run parameters llama-server's `default_generation_settings.params` shows, which modeld names alike. */
const GENERATION_PARAMS = [
  'temperature', 'top_k', 'top_p', 'min_p', 'seed', 'stop', 'repeat_penalty', 'repeat_last_n', 'presence_penalty', 'frequency_penalty',
];

/**
 * llama-server's router mode (`llama-server --models-dir`), over modeld's own model table: the
 * llama-server web UI and router clients list models with a `status` (GET /models, /v1/models),
 * load and unload them (POST /models/load, /models/unload), read a model's properties
 * (GET /props?model=) and follow state changes (GET /models/sse).
 */
export default async function llamaServerRouterRoutes(app: FastifyInstance) {
  app.post('/models/load', {
    schema: {
      tags, summary: 'Load a model (llama-server router)',
      description: 'As POST /v1/models/{id}/start, answered `{success: true}` once the model runs. A model that already runs is a success too (llama-server refuses it; nothing is lost by taking it).',
      body: RouterModelBodySchema, response: { 200: RouterSuccessSchema, ...errorResponses },
    },
  }, async (request) => {
    await app.manager.start(app.registry.resolve((request.body as RouterModelBody).model));
    return { success: true as const };
  });

  app.post('/models/unload', {
    schema: {
      tags, summary: 'Unload a model (llama-server router)',
      description: 'As POST /v1/models/{id}/stop, answered `{success: true}` once its memory is freed; a model that does not run is a 409 model_not_running, as llama-server refuses it.',
      body: RouterModelBodySchema, response: { 200: RouterSuccessSchema, ...errorResponses },
    },
  }, async (request) => {
    const entry = app.registry.resolve((request.body as RouterModelBody).model);
    const { state } = stateOf(app, entry);
    if (state !== 'running' && state !== 'starting') throw notRunning(entry);
    await app.manager.stop(entry.id);
    return { success: true as const };
  });

  app.get('/props', {
    schema: {
      tags, summary: 'Server or model properties (llama-server)',
      description:
        'With `model`: that model\'s properties as llama-server reports them (`default_generation_settings` with `n_ctx` per slot and the sampling defaults, `total_slots`, `model_path`, `chat_template`, `bos_token`, `eos_token`), loading it first unless `autoload=false`. ' +
        'Without: the router\'s own answer (`role: "router"`), as llama-server in router mode gives it.',
      querystring: PropsQuerySchema, response: { 200: RouterPropsSchema, ...errorResponses },
    },
  }, async (request) => {
    const { model, autoload } = request.query as PropsQuery;
    if (model === undefined) {
      return {
        role: 'router', model_alias: 'modeld', model_path: 'none',
        default_generation_settings: { params: {}, n_ctx: 0 },
        build_info: `modeld ${OPENAPI_INFO.version}`, models_autoload: app.config.jit,
      };
    }
    const entry = app.registry.resolve(model);
    // As llama-server's router: autoload unless asked not to, or unless the server loads nothing on demand.
    const load = autoload === undefined ? app.config.jit : autoload === 'true' || autoload === '1';
    if (load) await app.manager.start(entry);
    else if (stateOf(app, entry).state !== 'running') throw notRunning(entry);
    return modelProps(app, entry);
  });

  app.get('/slots', {
    schema: {
      tags, summary: 'Slots of a model (llama-server)',
      description: 'The running model\'s parallel sequences as llama-server\'s slots: `id`, `n_ctx`, `is_processing`, and `n_ctx_used`, the tokens its KV cache keeps for the next request to reuse. `model` may be left out while exactly one model runs. A model that does not run is a 409 model_not_running; one without sequences (not a GGUF chat model) lists none.',
      querystring: SlotsQuerySchema, response: { 200: SlotListSchema, ...errorResponses },
    },
  }, async (request) => {
    const entry = targetModel(app, (request.query as SlotsQuery).model);
    const loaded = app.manager.loaded(entry.id);
    if (!loaded) throw notRunning(entry);
    return (loaded.slots?.() ?? []).map((s) => ({ id: s.id, n_ctx: s.nCtx, speculative: false, is_processing: s.processing, n_ctx_used: s.cachedTokens }));
  });

  // One listener per source for every open event stream: a stream only joins the set.
  const streams = new Set<ServerResponse>();
  const broadcast = (data: unknown) => {
    if (streams.size === 0) return;
    const frame = `data: ${JSON.stringify(data)}\n\n`;
    for (const raw of streams) raw.write(frame);
  };
  const modelStatus = (id: string, state?: ModelStateView['state']) => {
    const entry = app.registry.get(id);
    if (!entry) return;
    const s = routerStatus(state ?? stateOf(app, entry).state);
    broadcast({ model: id, event: 'model_status', data: { status: s.value, ...(s.failed ? { failed: true } : {}) } });
  };
  app.manager.on('state', (id: string, state: ModelStateView['state']) => modelStatus(id, state));
  app.downloads.on('end', (id: string) => modelStatus(id));
  app.downloads.on('progress', (id: string, progress: { downloaded_bytes: number; total_bytes: number | null }) => {
    const url = app.registry.get(id)?.binaries.find((b) => b.url)?.url ?? id;
    broadcast({ model: id, event: 'download_progress', data: { [url]: { done: progress.downloaded_bytes, total: progress.total_bytes } } });
  });
  app.registry.on('change', () => broadcast({ model: '*', event: 'models_reload' }));
  // An event stream never ends by itself: closing the server ends it, or close would wait on it.
  app.addHook('preClose', async () => {
    for (const raw of streams) raw.end();
  });

  app.get('/models/sse', {
    schema: {
      tags, summary: 'Model state events (llama-server router)',
      description:
        'Server-Sent Events, one `data:` JSON per change, in llama-server\'s shape: `{model, event: "model_status", data: {status}}` (status as in the model list: loading, loaded, unloaded, downloading; `failed: true` for an error), ' +
        '`{model, event: "download_progress", data: {<url>: {done, total}}}` while a model downloads, and `{model: "*", event: "models_reload"}` when the models folder changes.',
    },
  }, async (_request, reply) => {
    const raw = openEventStream(reply);
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS);
    streams.add(raw);
    raw.on('close', () => {
      clearInterval(heartbeat);
      streams.delete(raw);
    });
  });
}

function notRunning(entry: ModelEntry): ApiError {
  return new ApiError('model_not_running', `the model '${entry.id}' is not running`, { param: 'model' });
}

/** What llama-server's /props says of a model, from the running model's state. */
function modelProps(app: FastifyInstance, entry: ModelEntry) {
  const s = app.manager.state(entry);
  const params = s.params ?? {};
  const info = s.info ?? {};
  const generation: Record<string, unknown> = {};
  for (const name of GENERATION_PARAMS) if (params[name] !== undefined) generation[name] = params[name];
  generation.n_predict = typeof params.max_tokens === 'number' ? params.max_tokens : -1;
  const loaded = app.manager.loaded(entry.id);
  return {
    default_generation_settings: { params: generation, n_ctx: typeof info.ctx_len === 'number' ? info.ctx_len : 0 },
    total_slots: typeof info.n_parallel === 'number' ? info.n_parallel : 1,
    model_alias: entry.id,
    model_path: entry.binaries[0]?.path ?? entry.file,
    modalities: { vision: false, audio: false },
    endpoint_slots: true,
    endpoint_props: false,
    endpoint_metrics: true,
    chat_template: loaded?.chatTemplate ?? '',
    bos_token: typeof info.bos_token === 'string' ? info.bos_token : '',
    eos_token: typeof info.eos_token === 'string' ? info.eos_token : '',
    build_info: `modeld ${OPENAPI_INFO.version}`,
    is_sleeping: false,
  };
}
