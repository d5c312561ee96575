import { KeepAliveField } from './common.ts';
import { ToolSchema } from './openai/chat.ts';
import { Type, type Static } from './typebox.ts';

// Ollama's native API (/api/*), the subset its clients need to chat, generate, embed and list
// models, over the same models and engines.

const model = Type.String({ description: 'Model id (Ollama\'s model name); a stopped model is loaded first.' });

export const OllamaOptionsSchema = Type.Object(
  {
    temperature: Type.Optional(Type.Number()),
    top_p: Type.Optional(Type.Number()),
    top_k: Type.Optional(Type.Integer()),
    min_p: Type.Optional(Type.Number()),
    seed: Type.Optional(Type.Integer()),
    stop: Type.Optional(Type.Array(Type.String(), { maxItems: 4 })),
    num_predict: Type.Optional(Type.Integer({ description: 'Most tokens to generate; -1 (or -2) = until the context of the sequence is full.' })),
    repeat_penalty: Type.Optional(Type.Number()),
    presence_penalty: Type.Optional(Type.Number()),
    frequency_penalty: Type.Optional(Type.Number()),
  },
  { additionalProperties: true, description: 'Sampling options; the load options (num_ctx, num_gpu, num_thread, ...) are accepted and ignored: they are the model\'s run parameters here.' },
);
export type OllamaOptions = Static<typeof OllamaOptionsSchema>;

const format = Type.Optional(Type.Union([Type.Literal('json'), Type.Literal(''), Type.Record(Type.String(), Type.Unknown())], {
  description: '`json`, or a JSON Schema: the answer is constrained by a grammar to parse (and follow it).',
}));
const stream = Type.Optional(Type.Boolean({ default: true, description: 'Newline-delimited JSON chunks (the default, as in Ollama); false = one answer.' }));

export const OllamaMessageSchema = Type.Object(
  {
    role: Type.String({ description: '`system`, `user`, `assistant` or `tool`.' }),
    content: Type.Optional(Type.String()),
    images: Type.Optional(Type.Array(Type.String(), { description: 'Not supported: a 400.' })),
    tool_calls: Type.Optional(Type.Array(Type.Object({
      function: Type.Object({ name: Type.String(), arguments: Type.Optional(Type.Unknown({ description: 'An object (Ollama), or JSON text.' })) }, { additionalProperties: true }),
    }, { additionalProperties: true }))),
    tool_name: Type.Optional(Type.String({ description: 'A tool message: the function it answers (else the first unanswered call).' })),
  },
  { additionalProperties: true },
);

export const OllamaChatRequestSchema = Type.Object({
  model,
  messages: Type.Array(OllamaMessageSchema, { minItems: 1 }),
  tools: Type.Optional(Type.Array(ToolSchema, { maxItems: 128 })),
  format,
  options: Type.Optional(OllamaOptionsSchema),
  stream,
  ...KeepAliveField,
}, { additionalProperties: true, description: 'Ollama /api/chat.' });
export type OllamaChatRequest = Static<typeof OllamaChatRequestSchema>;

export const OllamaGenerateRequestSchema = Type.Object({
  model,
  prompt: Type.Optional(Type.String({ description: 'Empty or absent: only loads the model (or unloads it with keep_alive 0).' })),
  system: Type.Optional(Type.String()),
  raw: Type.Optional(Type.Boolean({ description: 'The prompt as it is, without the chat template.' })),
  images: Type.Optional(Type.Array(Type.String(), { description: 'Not supported: a 400.' })),
  suffix: Type.Optional(Type.String({ description: 'Fill in the middle: the text after the gap (the prompt is the text before it), for models with fill-in-the-middle tokens.' })),
  format,
  options: Type.Optional(OllamaOptionsSchema),
  stream,
  ...KeepAliveField,
}, { additionalProperties: true, description: 'Ollama /api/generate.' });
export type OllamaGenerateRequest = Static<typeof OllamaGenerateRequestSchema>;

export const OllamaEmbedRequestSchema = Type.Object({
  model,
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]),
  dimensions: Type.Optional(Type.Integer({ minimum: 1, description: 'Keep the first n values of each vector, made unit length again; more than the model gives is a 400.' })),
  ...KeepAliveField,
}, { additionalProperties: true, description: 'Ollama /api/embed.' });
export type OllamaEmbedRequest = Static<typeof OllamaEmbedRequestSchema>;

export const OllamaEmbeddingsRequestSchema = Type.Object({
  model,
  prompt: Type.String({ description: 'One text; empty gives an empty vector.' }),
  options: Type.Optional(OllamaOptionsSchema),
  ...KeepAliveField,
}, { additionalProperties: true, description: 'Ollama\'s legacy /api/embeddings.' });
export type OllamaEmbeddingsRequest = Static<typeof OllamaEmbeddingsRequestSchema>;

export const OllamaEmbeddingsResponseSchema = Type.Object({
  embedding: Type.Array(Type.Number(), { description: 'Unit length, as /api/embed and /v1/embeddings give it.' }),
});

const modelName = {
  model: Type.Optional(Type.String({ description: 'A model id, or `hf.co/<org>/<repo>[:<quantization>]`.' })),
  name: Type.Optional(Type.String({ description: 'Older clients\' name for `model`.' })),
};

export const OllamaPullRequestSchema = Type.Object({
  ...modelName,
  insecure: Type.Optional(Type.Boolean({ description: 'Accepted and ignored: sources are checked by their sha256.' })),
  stream,
}, { additionalProperties: true, description: 'Ollama /api/pull.' });
export type OllamaPullRequest = Static<typeof OllamaPullRequestSchema>;

export const OllamaPullStatusSchema = Type.Object({
  status: Type.String({ description: '`pulling manifest`, `pulling <model id>` (with the byte counts), `verifying sha256 digest`, `success`.' }),
  digest: Type.Optional(Type.String({ description: 'The file\'s sha256, when the source gave one.' })),
  total: Type.Optional(Type.Integer()),
  completed: Type.Optional(Type.Integer()),
});

export const OllamaCopyRequestSchema = Type.Object({
  source: Type.String({ description: 'The model to copy: a model id, or `hf.co/<org>/<repo>[:<quantization>]`.' }),
  destination: Type.String({ description: 'The new model\'s name: `<name>` (id `<name>/model`; `:latest` is dropped) or `<folder>/<file>`.' }),
}, { additionalProperties: true, description: 'Ollama /api/copy.' });
export type OllamaCopyRequest = Static<typeof OllamaCopyRequestSchema>;

export const OllamaCreateRequestSchema = Type.Object({
  ...modelName,
  from: Type.Optional(Type.String({ description: 'The model to build on (a model id or `hf.co/...` name); or send `files`.' })),
  system: Type.Optional(Type.String({ description: 'The system message used when a chat has none (stored as the `pre_prompt` run parameter).' })),
  parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Ollama\'s parameter names (`num_ctx`, `temperature`, `stop`, `num_predict`, …) stored as the new model\'s run parameters under modeld\'s names; an unknown name is a 400.' })),
  license: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Kept in the model object\'s `metadata.license`.' })),
  template: Type.Optional(Type.String({ description: 'Not supported (Go templates are not run here; the GGUF\'s own chat template is): a non-empty value is a 400.' })),
  messages: Type.Optional(Type.Array(Type.Unknown(), { description: 'Not supported: a non-empty list is a 400.' })),
  files: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'GGUF file names and the digests (`sha256:<hex>`) they were uploaded under to /api/blobs; the new model\'s binaries, in this order.' })),
  adapters: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Not supported: a non-empty map is a 400.' })),
  quantize: Type.Optional(Type.String({ description: 'Not supported: a 400.' })),
  stream,
}, { additionalProperties: true, description: 'Ollama /api/create: a new model from an existing one, with its own system message, parameters and license.' });
export type OllamaCreateRequest = Static<typeof OllamaCreateRequestSchema>;

export const OllamaStatusSchema = Type.Object({
  status: Type.String({ description: '`reading model metadata`, `creating model object`, `success`.' }),
});

export const OllamaDeleteRequestSchema = Type.Object(modelName, { additionalProperties: true, description: 'Ollama /api/delete.' });
export type OllamaDeleteRequest = Static<typeof OllamaDeleteRequestSchema>;

const Timings = {
  total_duration: Type.Optional(Type.Integer({ description: 'Nanoseconds from the request to the answer.' })),
  load_duration: Type.Optional(Type.Integer()),
  prompt_eval_count: Type.Optional(Type.Integer()),
  prompt_eval_duration: Type.Optional(Type.Integer({ description: 'Nanoseconds from the start of the generation to its first output.' })),
  eval_count: Type.Optional(Type.Integer()),
  eval_duration: Type.Optional(Type.Integer({ description: 'Nanoseconds from the first output to the end.' })),
};

export const OllamaChatResponseSchema = Type.Object({
  model: Type.String(),
  created_at: Type.String(),
  message: Type.Object({
    role: Type.Literal('assistant'),
    content: Type.String(),
    thinking: Type.Optional(Type.String()),
    tool_calls: Type.Optional(Type.Array(Type.Object({ function: Type.Object({ name: Type.String(), arguments: Type.Record(Type.String(), Type.Unknown()) }) }))),
  }),
  done: Type.Boolean(),
  done_reason: Type.Optional(Type.String({ description: '`stop` or `length`.' })),
  ...Timings,
});

export const OllamaGenerateResponseSchema = Type.Object({
  model: Type.String(),
  created_at: Type.String(),
  response: Type.String(),
  thinking: Type.Optional(Type.String()),
  done: Type.Boolean(),
  done_reason: Type.Optional(Type.String({ description: '`stop`, `length`, or for an empty prompt `load` / `unload`.' })),
  ...Timings,
});

export const OllamaEmbedResponseSchema = Type.Object({
  model: Type.String(),
  embeddings: Type.Array(Type.Array(Type.Number())),
  prompt_eval_count: Type.Integer(),
});

const Details = Type.Object({
  format: Type.String(),
  family: Type.String(),
  families: Type.Array(Type.String()),
  parameter_size: Type.String(),
  quantization_level: Type.String(),
});

export const OllamaTagsSchema = Type.Object({
  models: Type.Array(Type.Object({
    name: Type.String(),
    model: Type.String(),
    modified_at: Type.String(),
    size: Type.Integer(),
    digest: Type.String({ description: 'The sha256 of the model object and its binaries\' names, sizes and checksums (Ollama\'s is its manifest\'s): it changes when the model does.' }),
    details: Details,
  })),
});

export const OllamaPsSchema = Type.Object({
  models: Type.Array(Type.Object({
    name: Type.String(),
    model: Type.String(),
    size: Type.Integer(),
    size_vram: Type.Integer(),
    digest: Type.String(),
    expires_at: Type.String({ description: 'When the model unloads for idleness (keep_alive after its last request); a model kept loaded gets a date ~292 years ahead (the longest Go duration).' }),
    details: Details,
  })),
});

export const OllamaVersionSchema = Type.Object({ version: Type.String() });

export const OllamaShowRequestSchema = Type.Object({
  model,
  verbose: Type.Optional(Type.Boolean({ description: 'Accepted; the answer is the same.' })),
}, { additionalProperties: true, description: 'Ollama /api/show.' });
export type OllamaShowRequest = Static<typeof OllamaShowRequestSchema>;

export const OllamaShowSchema = Type.Object({
  modelfile: Type.String({ description: 'A Modelfile that says the same (FROM the id, SYSTEM, PARAMETER under Ollama\'s names, LICENSE), as `ollama show --modelfile` prints it; the template is the GGUF\'s own and left out.' }),
  parameters: Type.String({ description: 'The model object\'s run parameters, one `name value` per line (`ctx_len` also as Ollama\'s `num_ctx`).' }),
  template: Type.String({ description: 'Empty: the template is the GGUF\'s own (POST /apply-template renders it).' }),
  system: Type.Optional(Type.String({ description: 'The system message used when a chat has none (the `pre_prompt` run parameter), when set.' })),
  license: Type.Optional(Type.String({ description: 'The model object\'s `metadata.license`, when set.' })),
  details: Details,
  model_info: Type.Record(Type.String(), Type.Unknown(), { description: 'Header facts under GGUF key names (general.architecture, <arch>.context_length, ...).' }),
  capabilities: Type.Array(Type.String(), { description: '`completion` and `tools` for chat models, `embedding` for embedding ones, none for rerankers (/v1/rerank serves them).' }),
  modified_at: Type.String(),
});
