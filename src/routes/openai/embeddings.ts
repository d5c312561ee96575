import type { FastifyInstance } from 'fastify';
import { unitLength } from '../../engines/unit-length.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';
import { EmbeddingListSchema, EmbeddingRequestSchema, type EmbeddingList, type EmbeddingRequest } from '../../schemas/openai/embeddings.ts';
import { clientSignal } from '../client-signal.ts';
import { postAt } from '../route-aliases.ts';

/** Little-endian float32 bytes in base64, what the OpenAI SDKs decode. */
export function toBase64(vector: number[]): string {
  const f = new Float32Array(vector);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}

/** POST /v1/embeddings. */
export default async function embeddingRoutes(app: FastifyInstance) {
  postAt(app, '/v1/embeddings', ['/api/v0/embeddings'], {
    schema: {
      tags: ['openai'], summary: 'Create embeddings',
      description: 'One unit-length vector per input, in order. The model must embed: an embedding GGUF (pooling type in its header, or metadata.task "embedding"), or a model started with `embedding: true`; any other is a 400 model_not_capable.',
      body: EmbeddingRequestSchema,
      response: { 200: EmbeddingListSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as EmbeddingRequest;
    const entry = app.registry.resolve(body.model);
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    const signal = clientSignal(reply);
    const r = await app.manager.run(entry, { capability: 'embedding', signal, keepAlive: body.keep_alive }, (loaded, sig) => loaded.embed!(inputs, sig));
    r.vectors = shortened(r.vectors, body.dimensions, 'dimensions');
    app.metrics.tokens.inc({ model: entry.id, kind: 'embedding' }, r.promptTokens);
    const base64 = body.encoding_format === 'base64';
    const answer: EmbeddingList = {
      object: 'list',
      data: r.vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? toBase64(v) : v })),
      model: entry.id,
      usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
    };
    return answer;
  });
}

/**
 * Vectors cut to their first `dimensions` values and made unit length again, as OpenAI's
 * `dimensions` and Ollama's shorten them (models trained Matryoshka-style keep their meaning in
 * the leading values); more than the model gives is a 400 naming `param`.
 */
export function shortened(vectors: number[][], dimensions: number | null | undefined, param: string): number[][] {
  const size = vectors[0]?.length ?? 0;
  if (dimensions == null || dimensions === size || size === 0) return vectors;
  if (dimensions > size) throw new ApiError('invalid_value', `'${param}' is ${dimensions}, but this model's vectors have ${size} values`, { param });
  return vectors.map((v) => unitLength(v.slice(0, dimensions)));
}
