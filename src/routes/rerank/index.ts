import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../errors.ts';
import { GGUF_POOLING_RANK } from '../../registry/headers/gguf-header.ts';
import { errorResponses } from '../../schemas/common.ts';
import { RerankRequestSchema, RerankResponseSchema, type RerankRequest } from '../../schemas/rerank.ts';
import { clientSignal } from '../client-signal.ts';

/** The paths llama-server answers reranking on; `/v1/rerank` is the documented one. */
const ALIASES = ['/rerank', '/reranking', '/v1/reranking'];

/**
 * POST /v1/rerank: documents ordered by their relevance to a query, from a cross-encoder
 * (llama-server's, Jina's and Cohere's shape), for retrieval pipelines that rerank what a
 * vector search found. On an ONNX model it queues and batches like /v1/classifications.
 */
export default async function rerankRoutes(app: FastifyInstance) {
  const schema = {
    tags: ['rerank'],
    summary: 'Rerank documents for a query',
    description:
      'Scores each document\'s relevance to `query` with a cross-encoder, most relevant first: an ONNX text classifier that reads the pair as `[CLS] query [SEP] document [SEP]`, or a GGUF reranker (llama.cpp\'s rank pooling: bge-reranker, jina-reranker, Qwen3-Reranker) that reads it as llama-server lays it out. `top_n` keeps the best n, `return_documents` (default true) echoes the texts. ' +
      'Too long a pair loses tokens from its longer text first. A model that is no cross-encoder is a 400 model_not_capable. Also answered on /rerank, /reranking and /v1/reranking, as llama-server does.',
    body: RerankRequestSchema,
    response: { 200: RerankResponseSchema, ...errorResponses },
  };
  const handler = async (request: { body: unknown }, reply: Parameters<typeof clientSignal>[0]) => {
    const body = request.body as RerankRequest;
    const entry = app.registry.resolve(body.model);
    // A GGUF says in its header whether it reranks: a chat model is not loaded just to refuse.
    if (entry.header.format === 'gguf' && entry.header.pooling_type !== GGUF_POOLING_RANK) throw notReranker(entry.id, entry.engine);
    const texts = body.documents.map((d) => (typeof d === 'string' ? d : d.text));
    const result = await app.manager.run(entry, { capability: 'rerank', signal: clientSignal(reply), keepAlive: body.keep_alive }, (loaded, signal) => {
      if (!loaded.rank) throw notReranker(entry.id, entry.engine);
      return loaded.rank(body.query, texts, signal);
    });
    app.metrics.tokens.inc({ model: entry.id, kind: 'prompt' }, result.usage.prompt_tokens);
    const order = result.scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score || a.index - b.index);
    return {
      object: 'list' as const,
      model: entry.id,
      results: order.slice(0, body.top_n ?? order.length).map(({ index, score }) => ({
        index, relevance_score: score, ...(body.return_documents !== false ? { document: { text: texts[index]! } } : {}),
      })),
      usage: { prompt_tokens: result.usage.prompt_tokens, total_tokens: result.usage.prompt_tokens },
    };
  };
  app.post('/v1/rerank', { schema }, handler);
  for (const url of ALIASES) app.post(url, { schema: { ...schema, hide: true } }, handler);
}

function notReranker(id: string, engine: string | undefined) {
  return new ApiError('model_not_capable', `the model '${id}' (engine ${engine ?? 'llamacpp'}) does not rerank; a reranker is a cross-encoder: an ONNX text classifier that reads a query and a document as a pair, or a GGUF whose pooling type is rank`, { param: 'model' });
}
