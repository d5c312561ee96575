import { Type, type Static } from './typebox.ts';

export const ModelStateEnum = Type.Union(
  [
    Type.Literal('not-downloaded'), Type.Literal('downloading'), Type.Literal('stopped'), Type.Literal('starting'),
    Type.Literal('running'), Type.Literal('stopping'), Type.Literal('error'),
  ],
  { description: 'Derived by the server, never read from the file.' },
);

export const QueueSchema = Type.Object(
  {
    running: Type.Integer(),
    waiting: Type.Integer(),
    concurrency: Type.Integer({ description: 'Requests that run at once (parallel sequences or batch slots).' }),
    max_waiting: Type.Integer(),
  },
  { $id: 'Queue' },
);

export const ProgressSchema = Type.Object(
  {
    downloaded_bytes: Type.Integer(),
    total_bytes: Type.Union([Type.Integer(), Type.Null()]),
    percent: Type.Union([Type.Number(), Type.Null()]),
    bytes_per_second: Type.Number(),
  },
  { $id: 'Progress' },
);

/** llama-server's router-mode `status` of a listed model, derived from `state`. */
export const RouterStatusSchema = Type.Object(
  {
    value: Type.Union([Type.Literal('loaded'), Type.Literal('loading'), Type.Literal('unloaded'), Type.Literal('downloading')], {
      description: 'running → loaded; starting → loading; downloading; anything else → unloaded.',
    }),
    failed: Type.Optional(Type.Literal(true, { description: 'The model is in the error state (llama-server: its instance failed).' })),
  },
  { description: 'The model\'s state as llama-server\'s router mode lists it (`GET /models`), for its web UI and router clients.' },
);
export type RouterStatus = Static<typeof RouterStatusSchema>;

export const ModelSchema = Type.Object(
  {
    id: Type.String({ description: '`<folder>/<file>`: where the model object lies in the models folder.' }),
    object: Type.Literal('model'),
    created: Type.Integer({ description: 'Unix seconds the model object file was created.' }),
    owned_by: Type.String({ description: 'Author of a remote source_url (e.g. the Hugging Face organisation), else the local user.' }),
    name: Type.String(),
    description: Type.String(),
    state: ModelStateEnum,
    error: Type.Optional(Type.String({ description: 'Why the model is in the error state, naming the file and the field.' })),
    status: RouterStatusSchema,
    queue: Type.Optional(Type.Ref('Queue')),
    progress: Type.Optional(Type.Ref('Progress')),
    source_url: Type.String(),
    parameters: Type.Record(Type.String(), Type.Unknown()),
    metadata: Type.Record(Type.String(), Type.Unknown(), { description: 'The model object metadata with what was read from the binary header filled in.' }),
  },
  { $id: 'Model' },
);
export type Model = Static<typeof ModelSchema>;

export const ModelListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Ref('Model')),
});

export const ModelDeletedSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  deleted: Type.Boolean(),
});

export const ModelStateSchema = Type.Object(
  {
    id: Type.String(),
    state: ModelStateEnum,
    error: Type.Optional(Type.String()),
    progress: Type.Optional(Type.Ref('Progress')),
    queue: Type.Optional(Type.Ref('Queue')),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Load parameters in effect while running.' })),
    info: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Facts about the loaded instance.' })),
  },
  { $id: 'ModelState' },
);
export type ModelState = Static<typeof ModelStateSchema>;

export const ModelControlSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  state: ModelStateEnum,
  error: Type.Optional(Type.String()),
  queue: Type.Optional(Type.Ref('Queue')),
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const StartBodySchema = Type.Union([
  Type.Record(Type.String(), Type.Unknown(), {
    description: 'Load-parameter overrides for this load (ctx_len, ngl, n_parallel, threads, keep_alive, ...), validated against the engine descriptors (GET /v1/engines).',
  }),
  Type.Null(),
]);

export const ModelRefBodySchema = Type.Object(
  {
    model: Type.String({ maxLength: 1000, description: 'Model id.' }),
  },
  { additionalProperties: true, description: 'Jan 0.4 / cortex form: the id in the body; other keys are load overrides on start.' },
);
