import type { ChatMessage, ChatToolCall, ResponseFormat, ToolOptions } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { ResponseRequest } from '../../schemas/openai/responses.ts';
import { buildResponseFormat, buildToolOptions, CallLedger, parseArguments } from './chat-request.ts';

// A Responses API request's parts in the engine's terms, each refused with a 400 naming its field.

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };
const TEXT_PARTS = new Set(['input_text', 'output_text', 'text']);

export type InputItem = Exclude<ResponseRequest['input'], string>[number];

/** An input item and the request field that gave it (for errors). */
export interface PlacedItem {
  item: InputItem;
  param: string;
}

/** A request's `input` as items, each with its field: a string is one user message. */
export function inputItems(input: ResponseRequest['input']): PlacedItem[] {
  if (typeof input === 'string') return [{ item: { role: 'user', content: input }, param: 'input' }];
  return input.map((item, i) => ({ item, param: `input[${i}]` }));
}

/**
 * `instructions` and the conversation's items to the engine's messages. Function calls that
 * follow each other (and the assistant text just before them) are one assistant turn; each
 * `function_call_output` is folded into the call it answers, and every call must be answered
 * before the next message.
 */
export function toResponseMessages(instructions: string | null | undefined, items: PlacedItem[]): ChatMessage[] {
  const out: ChatMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
  const calls = new CallLedger('function_call_output');
  // The assistant turn that calls may still join: none once an answer or a message came.
  let turn: ChatMessage | undefined;
  for (const { item, param } of items) {
    const type = item.type ?? (item.role !== undefined ? 'message' : undefined);
    const field = (name: string) => `${param}.${name}`;
    const need = (name: 'call_id' | 'name' | 'arguments') => {
      const v = item[name];
      if (typeof v !== 'string') throw new ApiError('missing_required_parameter', `${param} is a '${type}' item without its '${name}'`, { param: field(name) });
      return v;
    };
    if (type === 'function_call_output') {
      calls.answer(need('call_id'), partsText(item.output, field('output')), field('call_id'));
      turn = undefined;
    } else if (type === 'function_call') {
      const call: ChatToolCall = { name: need('name'), arguments: parseArguments(need('arguments'), field('arguments')), result: '' };
      if (!turn) {
        calls.closeTurn();
        turn = { role: 'assistant', content: '' };
        out.push(turn);
      }
      (turn.toolCalls ??= []).push(call);
      calls.open(need('call_id'), call, field('call_id'));
    } else if (type === 'message') {
      calls.closeTurn();
      const role = ROLES[item.role ?? ''];
      if (!role) throw new ApiError('invalid_value', `${param}.role '${item.role}' is not supported; use system, developer, user or assistant`, { param: field('role') });
      const message: ChatMessage = { role, content: partsText(item.content, field('content')) };
      out.push(message);
      turn = role === 'assistant' ? message : undefined;
    } else if (type === 'reasoning') {
      // An earlier answer's thought: chat templates leave it out of the prompt.
    } else {
      throw new ApiError('unsupported_feature', `${param} is a '${type ?? '(no type)'}' item; this server reads message, function_call, function_call_output and reasoning items`, { param: field('type') });
    }
  }
  calls.closeTurn();
  return out;
}

/** A message's content or a call's output: a string, or text parts joined by newlines. */
function partsText(content: InputItem['content'] | InputItem['output'], param: string): string {
  if (content === undefined) throw new ApiError('missing_required_parameter', `${param} is required`, { param });
  if (typeof content === 'string') return content;
  return content.map((part, j) => {
    if (!TEXT_PARTS.has(part.type)) {
      throw new ApiError('unsupported_feature', `${param}[${j}] is '${part.type}' content; this server reads text parts only (no images, files or audio)`, { param: `${param}[${j}].type` });
    }
    if (typeof part.text !== 'string') throw new ApiError('missing_required_parameter', `${param}[${j}] is a text part without its 'text' string`, { param: `${param}[${j}].text` });
    return part.text;
  }).join('\n');
}

/** Responses `tools`/`tool_choice`/`parallel_tool_calls` to the engine's. */
export function toResponseTools(body: ResponseRequest): ToolOptions | undefined {
  const tools = body.tools ?? [];
  for (const [i, t] of tools.entries()) {
    if (t.type !== 'function') throw new ApiError('unsupported_feature', `tools[${i}] is a '${t.type}' tool; this server runs function tools only`, { param: `tools[${i}].type` });
    if (t.name === undefined) throw new ApiError('missing_required_parameter', `tools[${i}] is a function without its 'name'`, { param: `tools[${i}].name` });
  }
  const choice = body.tool_choice ?? 'auto';
  const format = body.text?.format?.type;
  return buildToolOptions(
    tools.map((t, i) => ({ name: t.name!, description: t.description ?? undefined, parameters: t.parameters ?? undefined, param: `tools[${i}]` })),
    typeof choice === 'object' ? { name: choice.name, param: 'tool_choice.name' } : choice,
    body.parallel_tool_calls,
    format && format !== 'text' ? 'text.format' : undefined,
  );
}

export function toTextFormat(body: ResponseRequest): ResponseFormat | undefined {
  const format = body.text?.format;
  return format ? buildResponseFormat(format.type, format.schema, 'text.format.schema') : undefined;
}

/** Request fields that need state or hosted tools this server does not have. */
export function rejectUnsupportedState(body: Record<string, unknown>): void {
  for (const field of ['conversation', 'prompt']) {
    if (body[field] != null) {
      throw new ApiError('unsupported_feature', `'${field}' needs server-side conversations or prompts, which this server does not keep: send the conversation in 'input', or continue one with 'previous_response_id'`, { param: field });
    }
  }
  if (body.background === true) throw new ApiError('unsupported_feature', `background responses are not supported by this server`, { param: 'background' });
}
