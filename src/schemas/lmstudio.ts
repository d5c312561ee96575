import { Type, type Static } from './typebox.ts';

// LM Studio's REST API v0 (/api/v0): its model table, and the figures it adds to OpenAI's answers.

export const LmStudioModelSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  type: Type.Union([Type.Literal('llm'), Type.Literal('vlm'), Type.Literal('embeddings'), Type.Literal('reranker'), Type.Literal('classifier')], {
    description: 'LM Studio\'s llm, vlm, embeddings; modeld adds reranker (a GGUF with rank pooling) and classifier (ONNX).',
  }),
  publisher: Type.String({ description: 'The source\'s owner (a Hugging Face organisation), else the local user.' }),
  arch: Type.String(),
  compatibility_type: Type.String({ description: 'The file format: gguf, onnx (api for a model served elsewhere).' }),
  quantization: Type.String(),
  state: Type.Union([Type.Literal('loaded'), Type.Literal('not-loaded')]),
  max_context_length: Type.Integer({ description: 'The model\'s training context, tokens.' }),
});
export type LmStudioModel = Static<typeof LmStudioModelSchema>;

export const LmStudioModelListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(LmStudioModelSchema),
});

export const LmStudioStatsSchema = Type.Object({
  tokens_per_second: Type.Number({ description: 'Answer tokens per second of generation (after the first token).' }),
  time_to_first_token: Type.Number({ description: 'Seconds from the request to the first piece of answer text or thought (an answer of tool calls alone: to its end).' }),
  generation_time: Type.Number({ description: 'Seconds from that first piece to the end of the answer.' }),
  stop_reason: Type.Union([Type.Literal('eosFound'), Type.Literal('stopStringFound'), Type.Literal('maxPredictedTokensReached'), Type.Literal('contextLengthReached'), Type.Literal('toolCalls')], {
    description: 'Why the answer ended: the model\'s end token, a stop string, max_tokens, the sequence\'s context full (prompt and answer fill ctx_len), or tool calls.',
  }),
});

export const LmStudioModelInfoSchema = Type.Object({
  arch: Type.String(),
  quant: Type.String(),
  format: Type.String(),
  context_length: Type.Integer({ description: 'Tokens the loaded context holds per sequence.' }),
});

export const LmStudioRuntimeSchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  supported_formats: Type.Array(Type.String()),
});

/** What LM Studio's REST API v0 adds to an OpenAI answer. */
export const LmStudioFiguresSchema = Type.Object({
  stats: LmStudioStatsSchema,
  model_info: LmStudioModelInfoSchema,
  runtime: LmStudioRuntimeSchema,
});
