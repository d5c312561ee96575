import { Ajv } from 'ajv';
import type { ChatMessage, ChatToolCall, ResponseFormat, ToolOptions } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { ChatCompletionRequest } from '../../schemas/openai/chat.ts';

// A chat request's parts in the engine's terms, each refused with a 400 naming its field.

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

type RequestMessage = ChatCompletionRequest['messages'][number];

/**
 * Calls waiting for their answers while a conversation is read: every call must be answered
 * before the next message, as OpenAI requires. `answerName` is how the request spells an
 * answer (a `tool` message, a `function_call_output` item).
 */
export class CallLedger {
  readonly #answerName: string;
  /** Calls waiting for their answer: id → the call and the field that gave its id. */
  readonly #open = new Map<string, { call: ChatToolCall; param: string }>();

  constructor(answerName: string) {
    this.#answerName = answerName;
  }

  open(id: string, call: ChatToolCall, param: string): void {
    if (this.#open.has(id)) throw new ApiError('invalid_value', `${param} '${id}' is used twice`, { param });
    this.#open.set(id, { call, param });
  }

  /** The answer to call `id`, given by the field `param`. */
  answer(id: string, result: string, param: string): void {
    const waiting = this.#open.get(id);
    if (!waiting) throw new ApiError('invalid_value', `${param} '${id}' answers no call made before it`, { param });
    waiting.call.result = result;
    this.#open.delete(id);
  }

  /** Before the next message, and at the end: no call may be left unanswered. */
  closeTurn(): void {
    if (this.#open.size === 0) return;
    const [id, { param }] = this.#open.entries().next().value!;
    throw new ApiError('invalid_value', `tool call '${id}' (${param}) has no ${this.#answerName} answering it before the next message`, { param });
  }
}

/**
 * OpenAI messages to the engine's: text only, a clear 400 for what the server cannot read.
 * Each `tool` message is folded into the assistant message whose call it answers.
 */
export function toChatMessages(messages: ChatCompletionRequest['messages']): ChatMessage[] {
  const out: ChatMessage[] = [];
  const calls = new CallLedger(`'tool' message`);
  for (const [i, m] of messages.entries()) {
    if (m.role === 'tool') {
      const id = m.tool_call_id;
      if (typeof id !== 'string') throw new ApiError('missing_required_parameter', `messages[${i}] is a 'tool' message without its 'tool_call_id'`, { param: `messages[${i}].tool_call_id` });
      calls.answer(id, contentText(m, i), `messages[${i}].tool_call_id`);
      continue;
    }
    calls.closeTurn();
    const role = ROLES[m.role];
    if (!role) {
      throw new ApiError('invalid_value', `messages[${i}].role '${m.role}' is not supported; use system, developer, user, assistant or tool`, { param: `messages[${i}].role` });
    }
    const message: ChatMessage = { role, content: contentText(m, i) };
    if (m.tool_calls?.length) {
      if (role !== 'assistant') throw new ApiError('invalid_value', `messages[${i}] has tool_calls but is a '${m.role}' message; only an assistant calls tools`, { param: `messages[${i}].tool_calls` });
      message.toolCalls = m.tool_calls.map((tc, j) => {
        const param = `messages[${i}].tool_calls[${j}]`;
        const call: ChatToolCall = { name: tc.function.name, arguments: parseArguments(tc.function.arguments, `${param}.function.arguments`), result: '' };
        calls.open(tc.id, call, `${param}.id`);
        return call;
      });
    }
    out.push(message);
  }
  calls.closeTurn();
  return out;
}

function contentText(m: RequestMessage, i: number): string {
  if (m.content === null) return '';
  if (typeof m.content === 'string') return m.content;
  const texts = m.content.map((part, j) => {
    if (part.type === 'text' && typeof part.text !== 'string') {
      throw new ApiError('missing_required_parameter', `messages[${i}].content[${j}] is a text part without its 'text' string`, {
        param: `messages[${i}].content[${j}].text`,
      });
    }
    if (part.type !== 'text' || typeof part.text !== 'string') {
      throw new ApiError('unsupported_feature', `messages[${i}].content[${j}] is '${part.type}' content; this server reads text parts only (no images or audio)`, {
        param: `messages[${i}].content[${j}].type`,
      });
    }
    return part.text;
  });
  return texts.join('\n');
}

export function parseArguments(text: string, param: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError('invalid_value', `${param} is not JSON: ${(err as Error).message}`, { param });
  }
}

/** A function offered to the model, and the request field that gave it (for errors). */
export interface ToolSpec {
  name: string;
  description?: string | undefined;
  parameters?: Record<string, unknown> | undefined;
  /** The field of the function, e.g. `tools[0].function`. */
  param: string;
  /** The field of its parameters' schema, when not `<param>.parameters` (Anthropic's `input_schema`). */
  schemaParam?: string;
}

export type ToolChoiceIn = 'none' | 'auto' | 'required' | { name: string; param: string };

/**
 * Tools, the choice among them and whether calls may come several at once, to the engine's;
 * none when no tool may be called. `formatField` names a set output format, which cannot
 * go with tools.
 */
export function buildToolOptions(specs: ToolSpec[], choice: ToolChoiceIn, parallel: boolean | null | undefined, formatField?: string): ToolOptions | undefined {
  if (specs.length === 0) {
    if (choice !== 'auto' && choice !== 'none') throw new ApiError('invalid_value', `tool_choice needs 'tools' to choose from`, { param: 'tool_choice' });
    return undefined;
  }
  const seen = new Set<string>();
  const schemaParam = (t: ToolSpec) => t.schemaParam ?? `${t.param}.parameters`;
  for (const t of specs) {
    if (seen.has(t.name)) throw new ApiError('invalid_value', `${t.param}.name '${t.name}' is given twice`, { param: `${t.param}.name` });
    seen.add(t.name);
    const problem = t.parameters && schemaProblem(t.parameters, 'parameters');
    if (problem) throw new ApiError('invalid_value', `${schemaParam(t)} is not a valid JSON Schema: ${problem}`, { param: schemaParam(t) });
  }
  if (choice === 'none') return undefined;
  if (typeof choice === 'object' && !seen.has(choice.name)) {
    throw new ApiError('invalid_value', `tool_choice names '${choice.name}', which is not one of tools`, { param: choice.param });
  }
  if (formatField) throw new ApiError('invalid_value', `${formatField} cannot be combined with tools: both constrain the answer's form`, { param: formatField });
  return {
    functions: specs.map((t) => ({
      name: t.name,
      ...(t.description ? { description: t.description } : {}),
      ...(t.parameters ? { parameters: t.parameters, parametersField: schemaParam(t) } : {}),
    })),
    choice: typeof choice === 'object' ? { name: choice.name } : choice,
    parallel: parallel !== false,
  };
}

/** OpenAI chat `tools`/`tool_choice`/`parallel_tool_calls` to the engine's. */
export function toToolOptions(body: ChatCompletionRequest): ToolOptions | undefined {
  const choice = body.tool_choice ?? 'auto';
  return buildToolOptions(
    (body.tools ?? []).map((t, i) => ({ ...t.function, param: `tools[${i}].function` })),
    typeof choice === 'object' ? { name: choice.function.name, param: 'tool_choice.function.name' } : choice,
    body.parallel_tool_calls,
    body.response_format && body.response_format.type !== 'text' ? 'response_format' : undefined,
  );
}

/** Only checks schemas (`validateSchema`); never compiles or runs one. */
const schemaChecker = new Ajv({ strict: false, validateFormats: false });

/**
 * A JSON Schema checked against the meta-schema: node-llama-cpp's grammar builder takes
 * `{"type": "foo"}` without a word and the answer is then nonsense. Its own `$schema`
 * (2020-12, say) would send ajv looking for a meta-schema it lacks; the draft-07 one checks what matters.
 * Returns what is wrong with it (`name` is the schema's field as the message calls it), or undefined.
 */
function schemaProblem(schema: Record<string, unknown>, name: string): string | undefined {
  // ajv's meta-schema check (and the grammar builder after it) recurse once per level: a
  // schema 1,000 objects deep overflowed the stack, a 500.
  const depth = nestingDepth(schema);
  if (depth > MAX_SCHEMA_DEPTH) return `${name} is nested ${depth > 10_000 ? 'over 10000' : depth} levels deep; at most ${MAX_SCHEMA_DEPTH} are taken`;
  const { $schema: _dialect, ...body } = schema;
  return schemaChecker.validateSchema(body) ? undefined : schemaChecker.errorsText(schemaChecker.errors, { dataVar: name });
}

const MAX_SCHEMA_DEPTH = 128;

/** How deep objects and arrays nest in a JSON value, counted without recursion (to 10,001). */
function nestingDepth(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, d);
    if (deepest > 10_000) return deepest;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

/** An output format (`type`, and `schema` for `json_schema`, given by the field `schemaParam`) to the engine's. */
export function buildResponseFormat(type: string, schema: Record<string, unknown> | undefined, schemaParam: string): ResponseFormat | undefined {
  if (type === 'text') return undefined;
  if (type === 'json_object') return { type: 'json_object' };
  if (!schema) throw new ApiError('missing_required_parameter', `${schemaParam} is required for type 'json_schema'`, { param: schemaParam });
  const problem = schemaProblem(schema, 'schema');
  if (problem) throw new ApiError('invalid_value', `${schemaParam} is not a valid JSON Schema: ${problem}`, { param: schemaParam });
  return { type: 'json_schema', schema };
}

export function toResponseFormat(rf: ChatCompletionRequest['response_format']): ResponseFormat | undefined {
  return rf ? buildResponseFormat(rf.type, rf.json_schema?.schema, 'response_format.json_schema.schema') : undefined;
}

/** Request fields this server refuses, and field pairs that need each other. */
export function rejectUnsupported(body: Record<string, unknown>): void {
  if (body.functions != null) throw new ApiError('unsupported_feature', `'functions' are not supported by this server`, { param: 'functions' });
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new ApiError('invalid_value', `'top_logprobs' needs 'logprobs': true`, { param: 'top_logprobs' });
  }
  if (body.audio != null) throw new ApiError('unsupported_feature', `audio output is not supported by this server`, { param: 'audio' });
}
