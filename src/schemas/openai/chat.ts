import { Type, type Static } from '../typebox.ts';
import { ChatLogprobsSchema, SamplingFields, UsageSchema } from './common.ts';

export const ChatContentPartSchema = Type.Object(
  {
    type: Type.String({ description: '`text` is supported; images and audio are answered with 400.' }),
    text: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const ToolCallSchema = Type.Object(
  {
    id: Type.String({ description: 'Names the call; the `tool` message with its answer gives it as `tool_call_id`.' }),
    type: Type.Literal('function'),
    function: Type.Object({
      name: Type.String(),
      arguments: Type.String({ description: 'The arguments as JSON text.' }),
    }, { additionalProperties: true }),
  },
  { additionalProperties: true, description: 'A tool call the model made.' },
);

export const ChatMessageSchema = Type.Object(
  {
    role: Type.String({ description: '`system`, `developer` (read as system), `user`, `assistant` or `tool`; a trailing assistant message is a prefix the answer continues.' }),
    content: Type.Union([Type.String(), Type.Array(ChatContentPartSchema), Type.Null()]),
    name: Type.Optional(Type.String()),
    tool_calls: Type.Optional(Type.Array(ToolCallSchema, { description: 'An assistant message\'s calls; a `tool` message must answer each.' })),
    tool_call_id: Type.Optional(Type.String({ description: 'A `tool` message: the call it answers.' })),
  },
  { additionalProperties: true },
);

export const ToolSchema = Type.Object(
  {
    type: Type.Literal('function'),
    function: Type.Object(
      {
        name: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$', description: 'Letters, digits, _ and -, at most 64.' }),
        description: Type.Optional(Type.String()),
        parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the arguments object; the arguments of a forced call follow it by grammar.' })),
        strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
      },
      { additionalProperties: true },
    ),
  },
  { additionalProperties: true, description: 'A function the model may call.' },
);

export const ToolChoiceSchema = Type.Union([
  Type.Literal('none'), Type.Literal('auto'), Type.Literal('required'),
  Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String() }, { additionalProperties: true }) }, { additionalProperties: true }),
], { description: '`auto` (the default with tools): the model decides; `required`: it calls one or more tools; `{"type":"function","function":{"name":…}}`: it calls that one; `none`: it answers in text. `required` and a named function are grammar-constrained, so the calls always parse.' });

export const ResponseFormatSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('text'), Type.Literal('json_object'), Type.Literal('json_schema')], {
      description: '`json_object` and `json_schema` constrain the output with a grammar: it parses (and validates against the schema).',
    }),
    json_schema: Type.Optional(Type.Object(
      {
        name: Type.Optional(Type.String()),
        description: Type.Optional(Type.String()),
        schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
      },
      { additionalProperties: true },
    )),
  },
  { additionalProperties: true },
);

export const ChatCompletionRequestSchema = Type.Object(
  {
    model: Type.String({ description: 'Model id; a stopped model is loaded first (just-in-time).' }),
    messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
    ...SamplingFields,
    max_completion_tokens: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'Same as max_tokens (wins over it).' })),
    response_format: Type.Optional(Type.Union([ResponseFormatSchema, Type.Null()])),
    logprobs: Type.Optional(Type.Union([Type.Boolean(), Type.Null()], { description: 'Return the log-probability of each generated token (choices[].logprobs.content).' })),
    top_logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 20 }), Type.Null()], { description: 'With logprobs: this many likeliest tokens at each place, 0–20.' })),
    tools: Type.Optional(Type.Union([Type.Array(ToolSchema, { maxItems: 128 }), Type.Null()], { description: 'Functions the model may call; the chat template shows them to the model.' })),
    tool_choice: Type.Optional(Type.Union([ToolChoiceSchema, Type.Null()])),
    parallel_tool_calls: Type.Optional(Type.Union([Type.Boolean(), Type.Null()], { description: 'More than one call in an answer (default true).' })),
  },
  { additionalProperties: true, description: 'OpenAI chat completion request. Fields not listed are accepted and ignored, except the ones that change the answer (legacy functions, audio), which are a 400.' },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;

export const ChatFinishReasonSchema = Type.Union([Type.Literal('stop'), Type.Literal('length'), Type.Literal('tool_calls')], {
  description: '`stop`: the model ended or a stop sequence matched; `length`: max_tokens or the context ran out; `tool_calls`: the answer called tools.',
});

export const ChatCompletionSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer({ description: 'Unix seconds.' }),
  model: Type.String(),
  system_fingerprint: Type.Union([Type.String(), Type.Null()]),
  choices: Type.Array(Type.Object({
    index: Type.Integer(),
    message: Type.Object({
      role: Type.Literal('assistant'),
      content: Type.Union([Type.String(), Type.Null()], { description: 'null when the answer is only tool calls.' }),
      tool_calls: Type.Optional(Type.Array(ToolCallSchema)),
      reasoning_content: Type.Optional(Type.String({ description: `A reasoning model's thought (the chat template's thought segment, e.g. <think>…</think>), kept out of content, as llama-server and DeepSeek's API return it; absent when the answer had none.` })),
      refusal: Type.Null(),
    }),
    logprobs: ChatLogprobsSchema,
    finish_reason: ChatFinishReasonSchema,
  })),
  usage: UsageSchema,
}, { description: 'OpenAI chat completion.' });
export type ChatCompletion = Static<typeof ChatCompletionSchema>;

export const ChatCompletionChunkSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion.chunk'),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Union([Type.String(), Type.Null()]),
  choices: Type.Array(Type.Object({
    index: Type.Integer(),
    delta: Type.Object({
      role: Type.Optional(Type.Literal('assistant')),
      content: Type.Optional(Type.String()),
      reasoning_content: Type.Optional(Type.String({ description: 'A piece of the thought, streamed before the content.' })),
      tool_calls: Type.Optional(Type.Array(Type.Object({
        index: Type.Integer(),
        id: Type.Optional(Type.String({ description: 'In the first delta of a call.' })),
        type: Type.Optional(Type.Literal('function')),
        function: Type.Object({ name: Type.Optional(Type.String()), arguments: Type.Optional(Type.String()) }),
      }), { description: 'A call\'s first delta has its id, type and name; the following ones carry pieces of its arguments, as the grammar writes them (`required`, a named function, or a call the model opened), or whole after the content for a call read from free text.' })),
    }),
    logprobs: ChatLogprobsSchema,
    finish_reason: Type.Union([ChatFinishReasonSchema, Type.Null()]),
  })),
  usage: Type.Optional(Type.Union([UsageSchema, Type.Null()])),
}, { description: 'One server-sent event of a streamed chat completion: the role first, then reasoning_content deltas of a reasoning model\'s thought, content deltas, then tool_calls, then finish_reason; with include_usage a last chunk with usage and no choices.' });
export type ChatCompletionChunk = Static<typeof ChatCompletionChunkSchema>;
