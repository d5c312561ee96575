import type { FastifyInstance, FastifyReply } from 'fastify';
import { errorResponses } from '../../schemas/common.ts';
import {
  ModelControlSchema, ModelDeletedSchema, ModelListSchema, ModelRefBodySchema, ModelStateSchema, StartBodySchema,
} from '../../schemas/models.ts';
import { Type } from '../../schemas/typebox.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { metadataOf, stateOf, toWireModel, toWireState, wireModelJson } from '../../runtime/model-view.ts';
import { deleteModel } from './delete-model.ts';
import { modelRoute } from './model-route.ts';

const tags = ['models'];

/** The model table (OpenAI) and Jan model control. */
export default async function modelRoutes(app: FastifyInstance) {
  const list = { tags: ['openai', ...tags], summary: 'List models', description: 'Every model object in the models folder, sorted by id. Also answered on /models, as llama-server\'s router mode lists its models there (each with its `status`).', response: { 200: ModelListSchema, ...errorResponses } };
  const listModels = async (_request: unknown, reply: FastifyReply) => {
    const data = app.registry.list().map((e) => wireModelJson(app, e));
    return reply.type('application/json; charset=utf-8').send(`{"object":"list","data":[${data.join(',')}]}`);
  };
  app.get('/v1/models', { schema: list }, listModels);
  app.get('/models', { schema: { ...list, hide: true } }, listModels);

  modelRoute(app, {
    method: 'GET', suffix: '',
    schema: { tags: ['openai', ...tags], summary: 'Retrieve a model', response: { 200: Type.Ref('Model'), ...errorResponses } },
    handler: (entry) => toWireModel(app, entry),
  });

  modelRoute(app, {
    method: 'DELETE', suffix: '',
    schema: {
      tags: ['openai', ...tags], summary: 'Delete a model',
      description: 'Stops the model if running, deletes the binaries the server downloaded into the model folder and the model object. Never deletes a file outside the models folder.',
      response: { 200: ModelDeletedSchema, ...errorResponses },
    },
    handler: async (entry, request) => {
      await deleteModel(app, entry, request.log);
      return { id: entry.id, object: 'model' as const, deleted: true };
    },
  });

  modelRoute(app, {
    method: 'GET', suffix: '/state',
    schema: { tags, summary: 'Model state', description: 'State, download progress and queue.', response: { 200: Type.Ref('ModelState'), ...errorResponses } },
    handler: (entry) => toWireState(app, entry),
  });

  modelRoute(app, {
    method: 'GET', suffix: '/metadata',
    schema: {
      tags, summary: 'Model metadata',
      description: 'The metadata map, with what was read from the GGUF or ONNX header (architecture, parameter count, quantization, context length, chat template presence, inputs/outputs, labels).',
      response: { 200: Type.Record(Type.String(), Type.Unknown()), ...errorResponses },
    },
    handler: (entry) => metadataOf(entry),
  });

  const control = (entry: ModelEntry, s = stateOf(app, entry)) => {
    return {
      id: entry.id, object: 'model' as const, state: s.state,
      ...(s.error ? { error: s.error } : {}),
      ...(s.queue ? { queue: s.queue } : {}),
      ...(s.params ? { parameters: s.params } : {}),
    };
  };
  const start = async (entry: ModelEntry, overrides: Record<string, unknown>) => {
    await app.manager.start(entry, overrides);
    return control(entry);
  };
  const stop = async (entry: ModelEntry) => {
    await app.manager.stop(entry.id);
    // A start sent after this stop may already be loading the model again; that is its answer.
    return control(entry, stateOf(app, entry, { loaded: false }));
  };

  modelRoute(app, {
    method: ['POST', 'PUT'], suffix: '/start',
    schema: {
      tags, summary: 'Start (load) a model',
      description: 'Loads the model with its parameters and the optional overrides in the body; answers once it runs. Concurrent starts share one load.',
      body: StartBodySchema, response: { 200: ModelControlSchema, ...errorResponses },
    },
    handler: (entry, request) => start(entry, (request.body as Record<string, unknown> | null) ?? {}),
  });

  modelRoute(app, {
    method: ['POST', 'PUT'], suffix: '/stop',
    schema: {
      tags, summary: 'Stop (unload) a model',
      description: 'Waiting requests get 503 model_stopped; running ones are aborted after a grace period (2 s); memory is freed before the answer.',
      response: { 200: ModelControlSchema, ...errorResponses },
    },
    handler: (entry) => stop(entry),
  });

  // Jan 0.4 / cortex clients send the id in the body.
  for (const action of ['start', 'stop'] as const) {
    app.route({
      method: ['POST', 'PUT'],
      url: `/v1/models/${action}`,
      schema: { tags, summary: `${action === 'start' ? 'Start' : 'Stop'} a model (id in the body)`, body: ModelRefBodySchema, response: { 200: ModelControlSchema, ...errorResponses } },
      handler: async (request) => {
        const { model, ...rest } = request.body as { model: string } & Record<string, unknown>;
        const entry = app.registry.resolve(model);
        return action === 'start' ? start(entry, rest) : stop(entry);
      },
    });
  }

}
