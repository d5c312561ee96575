import { KeepAliveField } from './common.ts';
import { Type, type Static } from './typebox.ts';

// llama-server's native /completion and /infill, for the editors' code completion (llama.vim,
// llama.vscode) and scripts written against llama-server, with the model named on a server
// of many models. Its other fields (cache_prompt, samplers, t_max_prompt_ms, response_fields, …)
// are accepted and ignored.

const sampling = {
  model: Type.Optional(Type.String({ description: 'Model id; may be left out while exactly one model runs (llama-server serves one).' })),
  n_predict: Type.Optional(Type.Integer({ description: 'Most tokens to generate; -1 = until the context is full; 0 = read the prompt only (warms the cache) and answer nothing.' })),
  temperature: Type.Optional(Type.Number()),
  top_k: Type.Optional(Type.Integer()),
  top_p: Type.Optional(Type.Number()),
  min_p: Type.Optional(Type.Number()),
  seed: Type.Optional(Type.Integer({ description: '-1 = random, as llama-server reads it.' })),
  stop: Type.Optional(Type.Array(Type.String(), { maxItems: 16 })),
  repeat_penalty: Type.Optional(Type.Number()),
  presence_penalty: Type.Optional(Type.Number()),
  frequency_penalty: Type.Optional(Type.Number()),
  ignore_eos: Type.Optional(Type.Boolean()),
  t_max_predict_ms: Type.Optional(Type.Integer({ minimum: 0, description: 'End the answer (stop_type limit) once this many milliseconds have passed since its first token and it holds a new line, as llama-server does for editors\' completion; 0 = no limit.' })),
  stream: Type.Optional(Type.Boolean({ default: false, description: 'Server-sent events `data: {content, stop: false}` per piece of text, then the whole answer with `stop: true` (no `[DONE]`, as llama-server).' })),
  ...KeepAliveField,
};

export const NativeCompletionRequestSchema = Type.Object({
  prompt: Type.Union([Type.String(), Type.Array(Type.Union([Type.Integer(), Type.String()]), { minItems: 1 })], { description: 'A text (after BOS when the model adds one), or token ids and texts mixed.' }),
  ...sampling,
}, { additionalProperties: true, description: 'As llama-server\'s /completion.' });
export type NativeCompletionRequest = Static<typeof NativeCompletionRequestSchema>;

export const InfillRequestSchema = Type.Object({
  input_prefix: Type.Optional(Type.String({ default: '', description: 'The text before the gap.' })),
  input_suffix: Type.Optional(Type.String({ default: '', description: 'The text after the gap.' })),
  input_extra: Type.Optional(Type.Array(Type.Object({
    filename: Type.Optional(Type.String({ default: 'tmp' })),
    text: Type.String(),
  }, { additionalProperties: true }), { maxItems: 1024, description: 'Other files\' text, shown before the prefix (with the model\'s `<|repo_name|>`/`<|file_sep|>` tokens when it has them).' })),
  prompt: Type.Optional(Type.String({ default: '', description: 'Text after the prefix that the middle continues (what is typed so far).' })),
  ...sampling,
}, { additionalProperties: true, description: 'As llama-server\'s /infill.' });
export type InfillRequest = Static<typeof InfillRequestSchema>;

const Timings = Type.Object({
  cache_n: Type.Integer({ description: 'Prompt tokens taken from the cache.' }),
  prompt_n: Type.Integer({ description: 'Prompt tokens read.' }),
  prompt_ms: Type.Number(),
  prompt_per_token_ms: Type.Number(),
  prompt_per_second: Type.Number(),
  predicted_n: Type.Integer(),
  predicted_ms: Type.Number(),
  predicted_per_token_ms: Type.Number(),
  predicted_per_second: Type.Number(),
});

export const NativeCompletionResponseSchema = Type.Object({
  index: Type.Integer(),
  content: Type.String({ description: 'The generated text (the middle, for /infill); a stream\'s last event has it empty.' }),
  tokens: Type.Array(Type.Integer(), { description: 'Empty: ids are not returned.' }),
  id_slot: Type.Integer(),
  stop: Type.Boolean({ description: 'True on the whole answer and a stream\'s last event.' }),
  model: Type.Optional(Type.String()),
  tokens_predicted: Type.Optional(Type.Integer()),
  tokens_evaluated: Type.Optional(Type.Integer({ description: 'Prompt tokens, cached ones included.' })),
  tokens_cached: Type.Optional(Type.Integer({ description: 'Tokens the sequence keeps after the answer (prompt and answer).' })),
  has_new_line: Type.Optional(Type.Boolean()),
  truncated: Type.Optional(Type.Boolean({ description: 'The prompt and the answer filled the context (the answer ended for want of room).' })),
  stop_type: Type.Optional(Type.Union([Type.Literal('eos'), Type.Literal('word'), Type.Literal('limit')])),
  stopping_word: Type.Optional(Type.String()),
  generation_settings: Type.Optional(Type.Object({ n_ctx: Type.Integer(), n_predict: Type.Integer(), model: Type.String() }, { additionalProperties: true })),
  timings: Type.Optional(Timings),
});
export type NativeCompletionResponse = Static<typeof NativeCompletionResponseSchema>;

// llama-server's router mode: models loaded and unloaded by name, properties per model.

export const RouterModelBodySchema = Type.Object({
  model: Type.String({ description: 'The model\'s id (or a name that resolves to it).' }),
}, { additionalProperties: true });
export type RouterModelBody = Static<typeof RouterModelBodySchema>;

export const RouterSuccessSchema = Type.Object({ success: Type.Literal(true) });

export const PropsQuerySchema = Type.Object({
  model: Type.Optional(Type.String({ description: 'The model to describe; without it the router answers for itself.' })),
  autoload: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
    description: 'Load the model first when it does not run (default: true, unless the server loads nothing on demand, MODELD_JIT=false); false answers 409 model_not_running instead.',
  })),
});
export type PropsQuery = Static<typeof PropsQuerySchema>;

export const RouterPropsSchema = Type.Object({
  role: Type.Optional(Type.Literal('router', { description: 'Only in the router\'s own answer (no `model`).' })),
  models_autoload: Type.Optional(Type.Boolean({ description: 'Whether requests load models on demand (MODELD_JIT).' })),
  default_generation_settings: Type.Object({
    params: Type.Record(Type.String(), Type.Unknown(), { description: 'The model\'s sampling defaults under llama-server\'s names (`n_predict` -1: no limit).' }),
    n_ctx: Type.Integer({ description: 'Context per slot (per parallel sequence), tokens.' }),
  }),
  total_slots: Type.Optional(Type.Integer({ description: 'Parallel sequences (n_parallel).' })),
  model_alias: Type.String(),
  model_path: Type.String(),
  modalities: Type.Optional(Type.Object({ vision: Type.Boolean(), audio: Type.Boolean() })),
  endpoint_slots: Type.Optional(Type.Boolean({ description: 'True: GET /slots lists the model\'s sequences.' })),
  endpoint_props: Type.Optional(Type.Boolean({ description: 'False: POST /props is not served.' })),
  endpoint_metrics: Type.Optional(Type.Boolean()),
  chat_template: Type.Optional(Type.String({ description: 'The GGUF\'s own Jinja chat template; empty when it has none.' })),
  bos_token: Type.Optional(Type.String()),
  eos_token: Type.Optional(Type.String()),
  build_info: Type.String(),
  is_sleeping: Type.Optional(Type.Boolean()),
});

export const SlotsQuerySchema = Type.Object({
  model: Type.Optional(Type.String({ description: 'The model whose slots to list; may be left out while exactly one model runs.' })),
});
export type SlotsQuery = Static<typeof SlotsQuerySchema>;

export const SlotListSchema = Type.Array(Type.Object({
  id: Type.Integer(),
  n_ctx: Type.Integer({ description: 'Tokens the sequence holds at most.' }),
  speculative: Type.Boolean({ description: 'Always false: no draft model.' }),
  is_processing: Type.Boolean({ description: 'A request holds the sequence now.' }),
  n_ctx_used: Type.Integer({ description: 'Tokens whose KV state the sequence keeps, for the next request sharing that prefix.' }),
}));
