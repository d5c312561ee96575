import { Compile, type Validator } from 'typebox/compile';
import { Type, type TSchema } from '../../schemas/typebox.ts';

// What the api engine reads of an upstream's answers, checked before it is read: an upstream
// that answers 200 with something else (an HTML page, a proxy's JSON, a truncated body) is a
// 502 naming the field, not an internal error or an empty answer. Only the fields read are
// checked, and loosely (null where servers send null); everything else may be anything.

const text = Type.Optional(Type.Union([Type.String(), Type.Null()]));
const count = Type.Optional(Type.Union([Type.Number(), Type.Null()]));
const Usage = Type.Optional(Type.Union([
  Type.Object({ prompt_tokens: count, completion_tokens: count, total_tokens: count }),
  Type.Null(),
]));
const finish_reason = text;
const choiceLogprob = { token: Type.String(), logprob: Type.Number(), bytes: Type.Optional(Type.Union([Type.Array(Type.Integer()), Type.Null()])) };
const chatLogprobs = Type.Optional(Type.Union([
  Type.Object({ content: Type.Optional(Type.Union([Type.Array(Type.Object({ ...choiceLogprob, top_logprobs: Type.Array(Type.Object(choiceLogprob)) })), Type.Null()])) }),
  Type.Null(),
]));
/** Legacy completions logprobs: parallel arrays. */
const completionLogprobs = Type.Optional(Type.Union([
  Type.Object({
    tokens: Type.Optional(Type.Array(Type.String())),
    token_logprobs: Type.Optional(Type.Array(Type.Union([Type.Number(), Type.Null()]))),
    top_logprobs: Type.Optional(Type.Union([Type.Array(Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()])), Type.Null()])),
  }),
  Type.Null(),
]));

const nullableArray = (item: TSchema) => Type.Optional(Type.Union([Type.Array(item), Type.Null()]));

/** A chat choice: the whole answer's `message`, or a stream chunk's `delta`, each with its own call shape. */
const chatChoice = (part: 'message' | 'delta', call: TSchema) => Type.Object({
  [part]: Type.Object({ content: text, reasoning_content: text, tool_calls: nullableArray(call) }),
  finish_reason,
  logprobs: chatLogprobs,
});

export const UpstreamChatCompletion = Type.Object({
  choices: Type.Array(chatChoice('message', Type.Object({
    function: Type.Object({ name: Type.String(), arguments: Type.Optional(Type.String()) }),
  })), { minItems: 1 }),
  usage: Usage,
});

export const UpstreamChatChunk = Type.Object({
  choices: Type.Array(chatChoice('delta', Type.Object({
    // The index files each piece under its call; a bound keeps a wild one from sizing an array.
    index: Type.Integer({ minimum: 0, maximum: 127 }),
    function: Type.Optional(Type.Object({ name: text, arguments: text })),
  }))),
  usage: Usage,
});

const completionChoice = Type.Object({ text: Type.String(), finish_reason, logprobs: completionLogprobs });
export const UpstreamCompletion = Type.Object({ choices: Type.Array(completionChoice, { minItems: 1 }), usage: Usage });
export const UpstreamCompletionChunk = Type.Object({ choices: Type.Array(completionChoice), usage: Usage });

export const UpstreamEmbeddings = Type.Object({
  data: Type.Array(Type.Object({ index: Type.Integer({ minimum: 0 }), embedding: Type.Array(Type.Number()) })),
  usage: Usage,
});

/**
 * Each shape compiled on its first use: stream chunks are checked one per token, and the
 * compiled check takes ~0.3 µs a chunk where Value.Errors took ~15 µs.
 */
const validators = new Map<TSchema, Validator>();

/** The first way `value` is not `schema`, as `field: message` (`the answer` for the whole), or undefined. */
export function shapeProblem(schema: TSchema, value: unknown): string | undefined {
  let validator = validators.get(schema);
  if (!validator) validators.set(schema, (validator = Compile(schema)));
  if (validator.Check(value)) return undefined;
  const e = [...validator.Errors(value)][0]!;
  const field = e.instancePath.slice(1).split('/').map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : `${i > 0 ? '.' : ''}${s}`)).join('');
  return `${field || 'the answer'} ${e.message}`;
}
