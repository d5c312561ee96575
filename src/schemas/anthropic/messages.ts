import { KeepAliveField } from '../common.ts';
import { Type, type Static } from '../typebox.ts';

// Anthropic's Messages API (POST /v1/messages), as llama-server and Ollama offer it for
// clients built on Anthropic's SDK.

const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const ContentBlockSchema = Type.Object(
  {
    type: Type.String({ description: '`text`; in an assistant message also `tool_use` and `thinking` (skipped); in a user message `tool_result`. Images and documents are a 400.' }),
    text: Type.Optional(Type.String()),
    id: Type.Optional(Type.String({ description: 'A `tool_use` block\'s id, which its `tool_result` gives back as `tool_use_id`.' })),
    name: Type.Optional(Type.String()),
    input: Type.Optional(Type.Unknown({ description: 'A `tool_use` block\'s arguments (an object).' })),
    tool_use_id: Type.Optional(Type.String()),
    is_error: Type.Optional(Type.Boolean({ description: 'A `tool_result` that reports a failed tool: the model reads its text after `Error: `.' })),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }, { additionalProperties: true }))], {
      description: 'A `tool_result` block\'s answer: text, or text blocks.',
    })),
  },
  { additionalProperties: true },
);

export const AnthropicMessageSchema = Type.Object(
  {
    role: Type.String({ description: '`user` or `assistant`; a trailing assistant message is a prefix the answer continues.' }),
    content: Type.Union([Type.String(), Type.Array(ContentBlockSchema)]),
  },
  { additionalProperties: true },
);

export const AnthropicToolSchema = Type.Object(
  {
    type: Type.Optional(nullable(Type.String({ description: '`custom` or absent; server tools (web search, code execution, ...) are a 400.' }))),
    name: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$', description: 'Letters, digits, _ and -, at most 64.' }),
    description: Type.Optional(Type.String()),
    input_schema: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the input object; a forced call follows it by grammar.' })),
  },
  { additionalProperties: true },
);

export const AnthropicToolChoiceSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('auto'), Type.Literal('any'), Type.Literal('tool'), Type.Literal('none')], {
      description: '`auto` (the default with tools): the model decides; `any`: it calls one or more tools; `tool`: it calls the one named; `none`: it answers in text. `any` and `tool` are grammar-constrained, so the calls always parse.',
    }),
    name: Type.Optional(Type.String()),
    disable_parallel_tool_use: Type.Optional(Type.Boolean({ description: 'At most one call in the answer.' })),
  },
  { additionalProperties: true },
);

const textOrBlocks = Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }, { additionalProperties: true }))]);

export const MessagesRequestSchema = Type.Object(
  {
    model: Type.String({ description: 'Model id; a stopped model is loaded first (just-in-time).' }),
    messages: Type.Array(AnthropicMessageSchema, { minItems: 1 }),
    system: Type.Optional(textOrBlocks),
    max_tokens: Type.Optional(Type.Integer({ description: 'Most tokens to generate, thought included (required by Anthropic; unset here = until the context of the sequence is full).' })),
    temperature: Type.Optional(Type.Number()),
    top_p: Type.Optional(Type.Number()),
    top_k: Type.Optional(Type.Integer()),
    stop_sequences: Type.Optional(Type.Array(Type.String(), { maxItems: 4, description: 'Up to 4 sequences that end the answer; `stop_reason` is then `stop_sequence` and `stop_sequence` names it.' })),
    stream: Type.Optional(Type.Boolean({ description: 'Server-sent events, each naming its type: `message_start`, content block start, delta and stop events, `message_delta`, `message_stop`.' })),
    tools: Type.Optional(Type.Array(AnthropicToolSchema, { maxItems: 128 })),
    tool_choice: Type.Optional(AnthropicToolChoiceSchema),
    ...KeepAliveField,
  },
  { additionalProperties: true, description: 'Anthropic Messages API request. Fields not listed (metadata, thinking, service_tier, ...) are accepted and ignored.' },
);
export type MessagesRequest = Static<typeof MessagesRequestSchema>;

export const CountTokensRequestSchema = Type.Object(
  {
    model: MessagesRequestSchema.properties.model,
    messages: MessagesRequestSchema.properties.messages,
    system: MessagesRequestSchema.properties.system,
    tools: MessagesRequestSchema.properties.tools,
    tool_choice: MessagesRequestSchema.properties.tool_choice,
    ...KeepAliveField,
  },
  { additionalProperties: true },
);
export type CountTokensRequest = Static<typeof CountTokensRequestSchema>;

export const CountTokensSchema = Type.Object({ input_tokens: Type.Integer({ description: 'Tokens of the prompt the model would read, template included.' }) });

export const AnthropicUsageSchema = Type.Object({
  input_tokens: Type.Integer({ description: 'Tokens of the prompt the model read, template included, less those read from the KV cache.' }),
  output_tokens: Type.Integer(),
  cache_read_input_tokens: Type.Integer({ description: 'Leading prompt tokens reused from the KV cache.' }),
  cache_creation_input_tokens: Type.Integer({ description: 'Always 0.' }),
});

export const AnthropicResponseBlockSchema = Type.Union([
  Type.Object({ type: Type.Literal('thinking'), thinking: Type.String(), signature: Type.String({ description: 'Empty: nothing to verify.' }) }),
  Type.Object({ type: Type.Literal('text'), text: Type.String() }),
  Type.Object({ type: Type.Literal('tool_use'), id: Type.String(), name: Type.String(), input: Type.Record(Type.String(), Type.Unknown()) }),
]);

export const MessageSchema = Type.Object({
  id: Type.String(),
  type: Type.Literal('message'),
  role: Type.Literal('assistant'),
  model: Type.String(),
  content: Type.Array(AnthropicResponseBlockSchema, { description: 'The thought (`thinking`), the text, the calls (`tool_use`).' }),
  stop_reason: Type.Union([Type.Literal('end_turn'), Type.Literal('max_tokens'), Type.Literal('stop_sequence'), Type.Literal('tool_use')]),
  stop_sequence: nullable(Type.String()),
  usage: AnthropicUsageSchema,
}, { description: 'Anthropic Messages API response.' });
export type AnthropicMessage = Static<typeof MessageSchema>;
