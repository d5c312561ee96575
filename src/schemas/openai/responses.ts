import { Type, type Static } from '../typebox.ts';
import { SamplingFields } from './common.ts';

const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

// OpenAI's Responses API (POST /v1/responses): the conversation comes whole in `input`, or
// continues a stored response (`previous_response_id`).

export const ResponseInputItemSchema = Type.Object(
  {
    type: Type.Optional(Type.String({ description: '`message` (the default when `role` is set), `function_call`, `function_call_output` or `reasoning` (skipped: templates drop earlier thoughts).' })),
    role: Type.Optional(Type.String({ description: 'A message\'s: `system`, `developer` (read as system), `user` or `assistant`.' })),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Object(
      {
        type: Type.String({ description: '`input_text`, `output_text` (and `text`) are read; images, files and audio are a 400.' }),
        text: Type.Optional(Type.String()),
      },
      { additionalProperties: true },
    ))])),
    id: Type.Optional(Type.String({ description: 'The item\'s id (an earlier output item keeps its own); `input_items` lists it.' })),
    call_id: Type.Optional(Type.String({ description: 'A `function_call`\'s id, which its `function_call_output` gives back.' })),
    name: Type.Optional(Type.String({ description: 'A `function_call`\'s function.' })),
    arguments: Type.Optional(Type.String({ description: 'A `function_call`\'s arguments as JSON text.' })),
    output: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }, { additionalProperties: true }))], {
      description: 'A `function_call_output`\'s answer: text, or text parts.',
    })),
  },
  { additionalProperties: true, description: 'A message, a function call the model made, or a call\'s answer.' },
);

export const ResponseToolSchema = Type.Object(
  {
    type: Type.String({ description: '`function`; hosted tools (web search, file search, ...) are a 400.' }),
    name: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$', description: 'Letters, digits, _ and -, at most 64.' })),
    description: Type.Optional(nullable(Type.String())),
    parameters: Type.Optional(nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the arguments object; the arguments of a forced call follow it by grammar.' }))),
    strict: Type.Optional(nullable(Type.Boolean())),
  },
  { additionalProperties: true, description: 'A function the model may call.' },
);

export const ResponseToolChoiceSchema = Type.Union([
  Type.Literal('none'), Type.Literal('auto'), Type.Literal('required'),
  Type.Object({ type: Type.Literal('function'), name: Type.String() }, { additionalProperties: true }),
], { description: '`auto` (the default with tools): the model decides; `required`: it calls one or more tools; `{"type":"function","name":…}`: it calls that one; `none`: it answers in text. `required` and a named function are grammar-constrained, so the calls always parse.' });

export const ResponseTextFormatSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('text'), Type.Literal('json_object'), Type.Literal('json_schema')], {
      description: '`json_object` and `json_schema` constrain the output with a grammar: it parses (and validates against the schema).',
    }),
    name: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    strict: Type.Optional(nullable(Type.Boolean())),
  },
  { additionalProperties: true },
);

const { max_tokens: _max, n: _n, stream_options: _so, stream: _stream, ...sampling } = SamplingFields;

export const ResponseRequestSchema = Type.Object(
  {
    model: Type.String({ description: 'Model id; a stopped model is loaded first (just-in-time).' }),
    input: Type.Union([Type.String({ description: 'One user message.' }), Type.Array(ResponseInputItemSchema, { minItems: 1 })]),
    instructions: Type.Optional(nullable(Type.String({ description: 'A system message before the input.' }))),
    ...sampling,
    max_output_tokens: Type.Optional(nullable(Type.Integer({ description: 'Most tokens to generate, thought included; unset = until the context of the sequence (ctx_len) is full.' }))),
    stream: Type.Optional(nullable(Type.Boolean({ description: 'Server-sent events, each naming its type (`response.created`, `response.output_text.delta`, ..., `response.completed`).' }))),
    tools: Type.Optional(nullable(Type.Array(ResponseToolSchema, { maxItems: 128, description: 'Functions the model may call; the chat template shows them to the model.' }))),
    tool_choice: Type.Optional(nullable(ResponseToolChoiceSchema)),
    parallel_tool_calls: Type.Optional(nullable(Type.Boolean({ description: 'More than one call in an answer (default true).' }))),
    text: Type.Optional(nullable(Type.Object({ format: Type.Optional(ResponseTextFormatSchema) }, { additionalProperties: true }))),
    top_logprobs: Type.Optional(nullable(Type.Integer({ minimum: 0, maximum: 20, description: 'With `include: ["message.output_text.logprobs"]`: this many likeliest tokens at each place, 0–20.' }))),
    include: Type.Optional(nullable(Type.Array(Type.String(), { description: '`message.output_text.logprobs` adds each output token\'s logprob; other values are accepted and add nothing.' }))),
    store: Type.Optional(nullable(Type.Boolean({ description: 'Keep the answer (default true), in memory, the most recently used 1,000: `previous_response_id` continues it, `GET /v1/responses/{id}` reads it. A restart forgets them.' }))),
    previous_response_id: Type.Optional(nullable(Type.String({ description: 'Continue a stored response: its conversation (inputs and output, not its instructions) comes before this input. Unknown or forgotten: 404 response_not_found.' }))),
    metadata: Type.Optional(nullable(Type.Record(Type.String(), Type.String(), { description: 'Echoed in the answer.' }))),
  },
  { additionalProperties: true, description: 'OpenAI Responses API request. Fields not listed (reasoning, truncation, service_tier, ...) are accepted and ignored, except the ones that need server-side conversations, prompts or background runs (conversation, prompt, background), which are a 400.' },
);
export type ResponseRequest = Static<typeof ResponseRequestSchema>;

const LogprobFields = {
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Type.Array(Type.Integer()),
};

export const OutputTextSchema = Type.Object({
  type: Type.Literal('output_text'),
  text: Type.String(),
  annotations: Type.Array(Type.Unknown(), { description: 'Always empty.' }),
  logprobs: Type.Optional(Type.Array(Type.Object({
    ...LogprobFields,
    top_logprobs: Type.Array(Type.Object(LogprobFields)),
  }), { description: 'With `include: ["message.output_text.logprobs"]`: one per token of the text.' })),
});

export const ReasoningTextSchema = Type.Object({ type: Type.Literal('reasoning_text'), text: Type.String() });

const ItemStatus = Type.Union([Type.Literal('in_progress'), Type.Literal('completed'), Type.Literal('incomplete')]);

export const OutputMessageSchema = Type.Object({
  type: Type.Literal('message'),
  id: Type.String(),
  status: ItemStatus,
  role: Type.Literal('assistant'),
  content: Type.Array(OutputTextSchema),
});

export const FunctionCallItemSchema = Type.Object({
  type: Type.Literal('function_call'),
  id: Type.String(),
  call_id: Type.String({ description: 'The id its `function_call_output` gives back.' }),
  name: Type.String(),
  arguments: Type.String({ description: 'The arguments as JSON text.' }),
  status: ItemStatus,
});

export const ReasoningItemSchema = Type.Object({
  type: Type.Literal('reasoning'),
  id: Type.String(),
  summary: Type.Array(Type.Unknown(), { description: 'Always empty: the thought itself is in `content`.' }),
  content: Type.Array(ReasoningTextSchema, { description: 'A reasoning model\'s thought (the chat template\'s thought segment), as gpt-oss servers return it.' }),
  status: ItemStatus,
});

export const ResponseOutputItemSchema = Type.Union([ReasoningItemSchema, OutputMessageSchema, FunctionCallItemSchema]);

export const ResponseUsageSchema = Type.Object({
  input_tokens: Type.Integer({ description: 'Tokens of the prompt as the model saw it, template and special tokens included.' }),
  input_tokens_details: Type.Object({ cached_tokens: Type.Integer({ description: 'Leading prompt tokens reused from the KV cache (0 when the engine has no cache).' }) }),
  output_tokens: Type.Integer({ description: 'Tokens the model generated, thought included.' }),
  output_tokens_details: Type.Object({ reasoning_tokens: Type.Integer({ description: 'Of output_tokens, those of the thought.' }) }),
  total_tokens: Type.Integer(),
});

export const ResponseSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('response'),
  created_at: Type.Integer({ description: 'Unix seconds.' }),
  completed_at: Type.Optional(nullable(Type.Integer())),
  status: Type.Union([Type.Literal('in_progress'), Type.Literal('completed'), Type.Literal('incomplete')], {
    description: '`incomplete` when max_output_tokens or the context ran out (incomplete_details says which).',
  }),
  error: Type.Null(),
  incomplete_details: nullable(Type.Object({ reason: Type.Literal('max_output_tokens') })),
  instructions: nullable(Type.String()),
  max_output_tokens: nullable(Type.Integer()),
  model: Type.String(),
  output: Type.Array(ResponseOutputItemSchema, { description: 'In order: the thought (a `reasoning` item), the text (a `message`), the calls (`function_call` items).' }),
  parallel_tool_calls: Type.Boolean(),
  previous_response_id: nullable(Type.String()),
  store: Type.Boolean({ description: 'Whether the answer was kept (see the request\'s `store`).' }),
  temperature: nullable(Type.Number()),
  top_p: nullable(Type.Number()),
  text: Type.Object({ format: Type.Object({ type: Type.String() }, { additionalProperties: true }) }),
  tool_choice: Type.Unknown(),
  tools: Type.Array(Type.Object({}, { additionalProperties: true })),
  truncation: Type.Literal('disabled'),
  usage: nullable(ResponseUsageSchema),
  metadata: Type.Record(Type.String(), Type.String()),
}, { description: 'OpenAI Responses API response.' });
export type ResponseObject = Static<typeof ResponseSchema>;
export type ResponseOutputItem = Static<typeof ResponseOutputItemSchema>;

export const ResponseIdParamsSchema = Type.Object({ id: Type.String({ description: 'A response id (`resp_…`).' }) });

export const ResponseDeletedSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('response'),
  deleted: Type.Literal(true),
});

export const ResponseInputItemsQuerySchema = Type.Object({
  // A query string is text (types are not coerced): the number is checked by its pattern.
  limit: Type.Optional(Type.String({ pattern: '^(100|[1-9][0-9]?)$', description: 'Items per page, 1 to 100; default 20.' })),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')], { default: 'desc', description: '`desc` (the default, as OpenAI): the last input item first.' })),
  after: Type.Optional(Type.String({ description: 'An item id: the page starts after it, in `order`.' })),
  include: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Accepted and ignored.' })),
}, { additionalProperties: false });
export type ResponseInputItemsQuery = Static<typeof ResponseInputItemsQuerySchema>;

export const ResponseInputItemListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Object({ ...ResponseInputItemSchema.properties, id: Type.String(), type: Type.String() }, { additionalProperties: true }), {
    description: 'The items this response\'s `input` gave (not those of the responses it continued), each with an id, messages with content parts.',
  }),
  first_id: nullable(Type.String()),
  last_id: nullable(Type.String()),
  has_more: Type.Boolean(),
});
