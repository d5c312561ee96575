import { Type, type Static } from '../typebox.ts';
import { ResponseFormatSchema } from './chat.ts';
import { CompletionLogprobsSchema, FinishReasonSchema, SamplingFields, UsageSchema } from './common.ts';

const TokenId = Type.Integer({ minimum: 0, description: 'A token id of the model\'s vocabulary.' });
/** One prompt as an array: token ids, or (llama-server's form) ids and texts mixed. */
const MixedPrompt = Type.Array(Type.Union([TokenId, Type.String()]), { minItems: 1 });

export const CompletionRequestSchema = Type.Object(
  {
    model: Type.String({ description: 'Model id; a stopped model is loaded first (just-in-time).' }),
    prompt: Type.Union([
      Type.String(),
      // Texts (several prompts), token ids (one prompt), or ids and texts mixed (one prompt).
      Type.Array(Type.Union([Type.String(), TokenId]), { minItems: 1 }),
      // Several prompts: texts, token arrays, mixed arrays.
      Type.Array(Type.Union([Type.String(), MixedPrompt]), { minItems: 1 }),
    ], {
      description: 'A prompt, or several: each becomes a choice with its index (they run in parallel, in shared batches). A prompt is a text, or an array of token ids taken verbatim (no BOS token added), or, as llama-server takes them, token ids and texts mixed in one array (`[12, " and ", 34]`: each text tokenized in place, BOS only when a text comes first). An array holding any number at its top level is one prompt; otherwise each element is a prompt.',
    }),
    ...SamplingFields,
    echo: Type.Optional(Type.Union([Type.Boolean(), Type.Null()], { description: 'Begin each choice\'s text with its prompt (a token prompt as the model\'s text for it). Not with logprobs (the prompt\'s own log-probabilities are not computed).' })),
    suffix: Type.Optional(Type.Union([Type.String(), Type.Null()], {
      description: 'Fill in the middle: the text after the gap, `prompt` being the text before it. Needs a model with fill-in-the-middle tokens (`<|fim_prefix|>`, … of a code model; else a 400 model_not_capable); the prompt is built as llama-server\'s /infill builds it.',
    })),
    best_of: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'Only 1 is supported.' })),
    response_format: Type.Optional(Type.Union([ResponseFormatSchema, Type.Null()], { description: 'Not in OpenAI\'s completions (llama-server has it): constrains the continuation like chat\'s response_format.' })),
    logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 5 }), Type.Null()], { description: 'Return the log-probability of each generated token and this many likeliest tokens at each place, 0–5 (choices[].logprobs).' })),
  },
  { additionalProperties: true, description: 'OpenAI (legacy) completion request. Unlike OpenAI, max_tokens defaults to the rest of the context, as in llama.cpp and Ollama.' },
);
export type CompletionRequest = Static<typeof CompletionRequestSchema>;

const CompletionChoiceSchema = Type.Object({
  text: Type.String(),
  index: Type.Integer(),
  logprobs: CompletionLogprobsSchema,
  finish_reason: FinishReasonSchema,
});

export const CompletionSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer({ description: 'Unix seconds.' }),
  model: Type.String(),
  system_fingerprint: Type.Union([Type.String(), Type.Null()]),
  choices: Type.Array(CompletionChoiceSchema),
  usage: UsageSchema,
}, { description: 'OpenAI completion.' });
export type Completion = Static<typeof CompletionSchema>;

export const CompletionChunkSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Union([Type.String(), Type.Null()]),
  choices: Type.Array(Type.Object({
    text: Type.String(),
    index: Type.Integer(),
    logprobs: CompletionLogprobsSchema,
    finish_reason: Type.Union([FinishReasonSchema, Type.Null()]),
  })),
  usage: Type.Optional(Type.Union([UsageSchema, Type.Null()])),
}, { description: 'One server-sent event of a streamed completion; with include_usage a last chunk with usage and no choices.' });
export type CompletionChunk = Static<typeof CompletionChunkSchema>;
