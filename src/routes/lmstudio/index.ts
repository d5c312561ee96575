import type { FastifyInstance } from 'fastify';
import { GGUF_POOLING_RANK } from '../../registry/headers/gguf-header.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { stateOf } from '../../runtime/model-view.ts';
import { errorResponses } from '../../schemas/common.ts';
import { LmStudioModelListSchema, LmStudioModelSchema, type LmStudioModel } from '../../schemas/lmstudio.ts';
import { modelRoute } from '../models/model-route.ts';

const tags = ['lmstudio'];

/** What kind of model LM Studio would call it: an LLM, an embedding model, or (not LM Studio's) a reranker or classifier. */
function modelType(entry: ModelEntry): LmStudioModel['type'] {
  const h = entry.header;
  const metadata = (entry.object.metadata ?? {}) as Record<string, unknown>;
  if (entry.engine === 'onnx') return 'classifier';
  if (h.pooling_type === GGUF_POOLING_RANK) return 'reranker';
  if (metadata.task === 'embedding' || (typeof h.pooling_type === 'number' && h.pooling_type !== 0)) return 'embeddings';
  return 'llm';
}

/** A model as LM Studio's REST API v0 lists it. */
export function lmStudioModel(app: FastifyInstance, entry: ModelEntry): LmStudioModel {
  const h = entry.header;
  const s = stateOf(app, entry);
  return {
    id: entry.id,
    object: 'model',
    type: modelType(entry),
    publisher: entry.ownedBy,
    arch: typeof h.architecture === 'string' ? h.architecture : (entry.engine ?? 'unknown'),
    compatibility_type: typeof h.format === 'string' ? h.format : (entry.engine ?? 'unknown'),
    quantization: typeof h.quantization === 'string' ? h.quantization : 'unknown',
    state: s.state === 'running' ? 'loaded' : 'not-loaded',
    // The header's training context; a model without one (an api model) says what its running context holds.
    max_context_length: typeof h.context_length === 'number' ? h.context_length : typeof s.info?.ctx_len === 'number' ? s.info.ctx_len : 0,
  };
}

/**
 * LM Studio's REST API v0 (`/api/v0/*`) over the same models: the model list with type, load
 * state and context length, and (in chat.ts, completions.ts, embeddings.ts) the OpenAI routes
 * with LM Studio's `stats`, `model_info` and `runtime`.
 */
export default async function lmStudioRoutes(app: FastifyInstance) {
  app.get('/api/v0/models', {
    schema: {
      tags, summary: 'List models (LM Studio)',
      description: 'Every model as LM Studio\'s REST API v0 lists it: `type` (llm, embeddings; modeld adds reranker and classifier), `publisher`, `arch`, `compatibility_type` (gguf, onnx), `quantization`, `state` (loaded, not-loaded), `max_context_length`.',
      response: { 200: LmStudioModelListSchema, ...errorResponses },
    },
  }, async () => ({ object: 'list' as const, data: app.registry.list().map((e) => lmStudioModel(app, e)) }));

  modelRoute(app, {
    prefix: '/api/v0/models', method: 'GET', suffix: '',
    schema: { tags, summary: 'Retrieve a model (LM Studio)', response: { 200: LmStudioModelSchema, ...errorResponses } },
    handler: (entry) => lmStudioModel(app, entry),
  });
}
