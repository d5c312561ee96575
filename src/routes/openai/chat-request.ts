import { Ajv } from 'ajv';
import type { ChatMessage, ChatToolCall, ResponseFormat, ToolOptions } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { ChatCompletionRequest } from '../../schemas/openai/chat.ts';

// A chat request's parts in the engine's terms, each refused with a 400 naming its field.

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

type RequestMessage = ChatCompletionRequest['messages'][number];

/**
 * OpenAI messages to the engine's: text only, a clear 400 for what the server cannot read.
 * Each `tool` message is folded into the assistant message whose call it answers, and
 * every call must be answered before the next message, as OpenAI requires.
 */
export function toChatMessages(messages: ChatCompletionRequest['messages']): ChatMessage[] {
  const out: ChatMessage[] = [];
  // Calls waiting for their answer: id → the call and where it was made.
  const open = new Map<string, { call: ChatToolCall; param: string }>();
  const unanswered = () => {
    const [id, { param }] = open.entries().next().value!;
    return new ApiError('invalid_value', `tool call '${id}' (${param}) has no 'tool' message answering it before the next message`, { param });
  };
  for (const [i, m] of messages.entries()) {
    if (m.role === 'tool') {
      const id = m.tool_call_id;
      if (typeof id !== 'string') throw new ApiError('missing_required_parameter', `messages[${i}] is a 'tool' message without its 'tool_call_id'`, { param: `messages[${i}].tool_call_id` });
      const waiting = open.get(id);
      if (!waiting) throw new ApiError('invalid_value', `messages[${i}].tool_call_id '${id}' answers no call of the assistant message before it`, { param: `messages[${i}].tool_call_id` });
      waiting.call.result = contentText(m, i);
      open.delete(id);
      continue;
    }
    if (open.size > 0) throw unanswered();
    const role = ROLES[m.role];
    if (!role) {
      throw new ApiError('invalid_value', `messages[${i}].role '${m.role}' is not supported; use system, developer, user, assistant or tool`, { param: `messages[${i}].role` });
    }
    const message: ChatMessage = { role, content: contentText(m, i) };
    if (m.tool_calls?.length) {
      if (role !== 'assistant') throw new ApiError('invalid_value', `messages[${i}] has tool_calls but is a '${m.role}' message; only an assistant calls tools`, { param: `messages[${i}].tool_calls` });
      message.toolCalls = m.tool_calls.map((tc, j) => {
        const param = `messages[${i}].tool_calls[${j}]`;
        if (open.has(tc.id)) throw new ApiError('invalid_value', `${param}.id '${tc.id}' is used twice`, { param: `${param}.id` });
        const call: ChatToolCall = { name: tc.function.name, arguments: parseArguments(tc.function.arguments, `${param}.function.arguments`), result: '' };
        open.set(tc.id, { call, param: `${param}.id` });
        return call;
      });
    }
    out.push(message);
  }
  if (open.size > 0) throw unanswered();
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

function parseArguments(text: string, param: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError('invalid_value', `${param} is not JSON: ${(err as Error).message}`, { param });
  }
}

/** OpenAI `tools`/`tool_choice`/`parallel_tool_calls` to the engine's; none when no tool may be called. */
export function toToolOptions(body: ChatCompletionRequest): ToolOptions | undefined {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? 'auto';
  if (tools.length === 0) {
    if (choice !== 'auto' && choice !== 'none') throw new ApiError('invalid_value', `tool_choice needs 'tools' to choose from`, { param: 'tool_choice' });
    return undefined;
  }
  const seen = new Set<string>();
  for (const [i, t] of tools.entries()) {
    if (seen.has(t.function.name)) throw new ApiError('invalid_value', `tools[${i}].function.name '${t.function.name}' is given twice`, { param: `tools[${i}].function.name` });
    seen.add(t.function.name);
    const parameters = t.function.parameters;
    if (parameters && !checkSchema(parameters)) {
      throw new ApiError('invalid_value', `tools[${i}].function.parameters is not a valid JSON Schema: ${schemaErrors('parameters')}`, { param: `tools[${i}].function.parameters` });
    }
  }
  if (choice === 'none') return undefined;
  if (typeof choice === 'object' && !seen.has(choice.function.name)) {
    throw new ApiError('invalid_value', `tool_choice names '${choice.function.name}', which is not one of tools`, { param: 'tool_choice.function.name' });
  }
  if (body.response_format && body.response_format.type !== 'text') {
    throw new ApiError('invalid_value', `response_format cannot be combined with tools: both constrain the answer's form`, { param: 'response_format' });
  }
  return {
    functions: tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description ? { description: t.function.description } : {}),
      ...(t.function.parameters ? { parameters: t.function.parameters } : {}),
    })),
    choice: typeof choice === 'object' ? { name: choice.function.name } : choice,
    parallel: body.parallel_tool_calls !== false,
  };
}

/** Only checks schemas (`validateSchema`); never compiles or runs one. */
const schemaChecker = new Ajv({ strict: false, validateFormats: false });

/**
 * A JSON Schema checked against the meta-schema: node-llama-cpp's grammar builder takes
 * `{"type": "foo"}` without a word and the answer is then nonsense. Its own `$schema`
 * (2020-12, say) would send ajv looking for a meta-schema it lacks; the draft-07 one checks what matters.
 */
function checkSchema(schema: Record<string, unknown>): boolean {
  const { $schema: _dialect, ...body } = schema;
  return schemaChecker.validateSchema(body) as boolean;
}

const schemaErrors = (name: string) => schemaChecker.errorsText(schemaChecker.errors, { dataVar: name });

export function toResponseFormat(rf: ChatCompletionRequest['response_format']): ResponseFormat | undefined {
  if (!rf || rf.type === 'text') return undefined;
  if (rf.type === 'json_object') return { type: 'json_object' };
  const schema = rf.json_schema?.schema;
  if (!schema) throw new ApiError('missing_required_parameter', `response_format.json_schema.schema is required for type 'json_schema'`, { param: 'response_format.json_schema.schema' });
  if (!checkSchema(schema)) {
    throw new ApiError('invalid_value', `response_format.json_schema.schema is not a valid JSON Schema: ${schemaErrors('schema')}`, {
      param: 'response_format.json_schema.schema',
    });
  }
  return { type: 'json_schema', schema };
}

/** Request fields this server refuses, and field pairs that need each other. */
export function rejectUnsupported(body: Record<string, unknown>): void {
  if (body.functions != null) throw new ApiError('unsupported_feature', `'functions' are not supported by this server`, { param: 'functions' });
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new ApiError('invalid_value', `'top_logprobs' needs 'logprobs': true`, { param: 'top_logprobs' });
  }
  if (body.audio != null) throw new ApiError('unsupported_feature', `audio output is not supported by this server`, { param: 'audio' });
}
