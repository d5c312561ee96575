import { Type } from '../typebox.ts';
import { KeepAliveField } from '../common.ts';

const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/**
 * Sampling fields shared by chat and completions. Ranges are not in the schema: the engine's
 * run-parameter descriptors check them (GET /v1/engines), so an out-of-range value is a 400
 * naming the parameter and its bounds, whichever engine serves the model.
 */
export const SamplingFields = {
  ...KeepAliveField,
  max_tokens: Type.Optional(nullable(Type.Integer({ description: 'Most tokens to generate; unset = until the context of the sequence (ctx_len) is full.' }))),
  temperature: Type.Optional(nullable(Type.Number({ description: '0 is greedy (deterministic); the model default otherwise (llamacpp: 0.8).' }))),
  top_p: Type.Optional(nullable(Type.Number({ description: 'Nucleus sampling threshold.' }))),
  top_k: Type.Optional(nullable(Type.Integer({ description: 'Not in OpenAI (llama.cpp): keep the k most likely tokens; 0 disables.' }))),
  min_p: Type.Optional(nullable(Type.Number({ description: 'Not in OpenAI (llama.cpp): drop tokens less likely than min_p × the top one.' }))),
  seed: Type.Optional(nullable(Type.Integer({ description: 'The same seed and request give the same text.' }))),
  stop: Type.Optional(nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })], { description: 'Up to 4 sequences that end the generation; never part of the output.' }))),
  presence_penalty: Type.Optional(nullable(Type.Number())),
  frequency_penalty: Type.Optional(nullable(Type.Number())),
  repeat_penalty: Type.Optional(nullable(Type.Number({ description: 'Not in OpenAI (llama.cpp): repetition penalty; 1 disables.' }))),
  logit_bias: Type.Optional(nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }), {
    description: 'Token id (a decimal string) → bias added to that token\'s logit before sampling, −100…100: −100 all but bans the token, 100 all but forces it (OpenAI semantics). An id outside the model\'s vocabulary is a 400.',
  }))),
  ignore_eos: Type.Optional(nullable(Type.Boolean({ description: 'Not in OpenAI (llama.cpp): end-of-generation tokens are never sampled, so the answer runs to max_tokens or a stop string (for benchmarks).' }))),
  n: Type.Optional(nullable(Type.Integer({ minimum: 1, maximum: 128, description: 'Choices per prompt, 1–128: each is its own generation, run in parallel on the model\'s sequences. With a seed, choice j samples with seed + j, so the choices differ and the request still repeats.' }))),
  stream: Type.Optional(nullable(Type.Boolean({ description: 'Server-sent events, `data: {chunk}` lines ending with `data: [DONE]`.' }))),
  stream_options: Type.Optional(nullable(Type.Object({
    include_usage: Type.Optional(Type.Boolean({ description: 'Send a last chunk with `usage` and no choices; other chunks carry `usage: null`.' })),
  }))),
  user: Type.Optional(Type.String({ description: 'Accepted and ignored.' })),
};

export const UsageSchema = Type.Object({
  prompt_tokens: Type.Integer({ description: 'Tokens of the prompt as the model saw it, template and special tokens included.' }),
  completion_tokens: Type.Integer({ description: 'Tokens the model generated.' }),
  total_tokens: Type.Integer(),
  prompt_tokens_details: Type.Optional(Type.Object({
    cached_tokens: Type.Integer({
      description: 'Leading prompt tokens reused from the KV cache of the sequence that served the request (an earlier request with the same prefix, e.g. the previous chat turn) instead of being evaluated again. At most prompt_tokens − 1: the last prompt token is always evaluated.',
    }),
  }, { description: 'Prompt token breakdown, as in OpenAI. Present for models served with a prompt cache (llamacpp).' })),
  completion_tokens_details: Type.Optional(Type.Object({
    reasoning_tokens: Type.Integer({ description: 'Of completion_tokens, those of the thought (its tags included).' }),
  }, { description: 'Completion token breakdown, as in OpenAI. Present for chat answers of models whose template has a thought segment.' })),
});

export const FinishReasonSchema = Type.Union([Type.Literal('stop'), Type.Literal('length')], {
  description: '`stop`: the model ended or a stop sequence matched; `length`: max_tokens or the context ran out.',
});

/** The OpenAI request fields this server reads as run parameters, under their descriptor names. */
export const SAMPLING_PARAM_NAMES = [
  'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'presence_penalty', 'frequency_penalty', 'repeat_penalty', 'ignore_eos', 'logit_bias',
] as const;

/** A token as OpenAI's logprobs show it. */
const TokenChoiceFields = {
  token: Type.String({ description: 'The token\'s text (special tokens as written in the vocabulary).' }),
  logprob: Type.Number({ description: 'Natural log of its probability under the model (its logits\' softmax, before temperature, penalties and truncation, as llama-server reports it); −9999 for a token the model rules out.' }),
  bytes: Type.Union([Type.Array(Type.Integer()), Type.Null()], { description: 'The token\'s own bytes: UTF-8 of `token`, or part of a character for a byte token (whose `token` is then "\uFFFD").' }),
};

export const ChatLogprobsSchema = Type.Union([
  Type.Object({
    content: Type.Union([Type.Array(Type.Object({
      ...TokenChoiceFields,
      top_logprobs: Type.Array(Type.Object(TokenChoiceFields), { description: 'The `top_logprobs` likeliest tokens at this place, likeliest first.' }),
    })), Type.Null()], { description: 'One entry per generated token (a reasoning model\'s thought included); after a stop sequence, only the tokens wholly before it.' }),
    refusal: Type.Null(),
  }),
  Type.Null(),
], { description: 'With `logprobs: true`; null otherwise.' });

export const CompletionLogprobsSchema = Type.Union([
  Type.Object({
    tokens: Type.Array(Type.String()),
    token_logprobs: Type.Array(Type.Number()),
    // additionalProperties, not a Record: fast-json-stringify drops the keys its `^(.*)$` pattern misses (a "\n" token).
    top_logprobs: Type.Array(Type.Object({}, { additionalProperties: Type.Number() }), { description: 'Per token, the `logprobs` likeliest tokens → their logprob (tokens with the same text collapse into one key).' }),
    text_offset: Type.Array(Type.Integer(), { description: 'Where each token\'s text begins, in characters (code points) from the start of the prompt.' }),
  }),
  Type.Null(),
], { description: 'With `logprobs` set (legacy OpenAI shape); null otherwise. After a stop sequence, only the tokens wholly before it.' });

/** OpenAI's (and llama-server's) count of a request's input tokens. */
export const InputTokensSchema = Type.Object({
  object: Type.Literal('response.input_tokens'),
  input_tokens: Type.Integer({ description: 'Tokens of the prompt the model would read, chat template and tools included.' }),
});
