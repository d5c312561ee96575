import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ClassificationInput } from '../../engines/engine.ts';
import { errorResponses } from '../../schemas/common.ts';
import { ClassificationRequestSchema, ClassificationResponseSchema, type ClassificationRequest } from '../../schemas/classification.ts';
import { clientSignal } from '../client-signal.ts';

/** The wire input as engine items: strings are texts (a data URL string is an image), objects are images. */
export function toClassificationInputs(input: ClassificationRequest['input']): ClassificationInput[] {
  const list = Array.isArray(input) ? input : [input];
  return list.map((item): ClassificationInput => {
    if (typeof item !== 'string') return { type: 'image', image: item.image };
    return /^data:image\//i.test(item) ? { type: 'image', image: item } : { type: 'text', text: item };
  });
}

/** POST /v1/classifications: onnx image and text classifiers (not in OpenAI's API). */
const classificationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/v1/classifications', {
    schema: {
      tags: ['classifications'],
      summary: 'Classify texts or images',
      description:
        'Runs an onnx classifier. `input` is a string or an array of strings for text models, `{image}` or an array of them for image models (base64 or data URL; PNG, JPEG, WebP). ' +
        'Concurrent requests to a model with a dynamic batch dimension are batched into one run. Each item gets its best `label` and `score`; `top_k` or `scores: true` add `scores`. ' +
        'Errors: 400 invalid_image, image_too_large, input_too_long, wrong_input_kind, unsupported_model_inputs; 503 queue_full with retry-after.',
      body: ClassificationRequestSchema,
      response: { 200: ClassificationResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body;
    const entry = app.registry.resolve(body.model);
    const inputs = toClassificationInputs(body.input);
    const signal = clientSignal(reply);
    const result = await app.manager.run(entry, { capability: 'classification', signal, keepAlive: body.keep_alive }, (loaded, runSignal) =>
      loaded.classify!(inputs, { topK: body.top_k, scores: body.scores }, runSignal),
    );
    if (result.usage.prompt_tokens) app.metrics.tokens.inc({ model: entry.id, kind: 'prompt' }, result.usage.prompt_tokens);
    return { object: 'list' as const, model: entry.id, data: result.data, usage: result.usage };
  });
};
export default classificationRoutes;
