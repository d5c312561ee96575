import type { ChatMessage, ChatToolCall, ToolOptions } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { CountTokensRequest, MessagesRequest } from '../../schemas/anthropic/messages.ts';
import { buildToolOptions, CallLedger } from '../openai/chat-request.ts';

// An Anthropic Messages request's parts in the engine's terms, each refused with a 400 naming its field.

type TextOrBlocks = string | Array<{ type: string; text?: string | undefined }>;

/** A string, or text blocks joined by newlines; any other block is a 400 naming it. */
function blocksText(content: TextOrBlocks, param: string): string {
  if (typeof content === 'string') return content;
  return content.map((block, j) => textOf(block, `${param}[${j}]`)).join('\n');
}

function textOf(block: { type: string; text?: string | undefined }, param: string): string {
  if (block.type !== 'text') {
    throw new ApiError('unsupported_feature', `${param} is a '${block.type}' block; this server reads text (no images or documents)`, { param: `${param}.type` });
  }
  if (typeof block.text !== 'string') throw new ApiError('missing_required_parameter', `${param} is a text block without its 'text' string`, { param: `${param}.text` });
  return block.text;
}

/**
 * `system` and `messages` to the engine's messages. An assistant message's `tool_use` blocks
 * are its calls; the next user message answers them with `tool_result` blocks (before any
 * text of its own), and every call must be answered before the conversation goes on.
 */
export function toAnthropicMessages(body: Pick<MessagesRequest, 'system' | 'messages'>): ChatMessage[] {
  const out: ChatMessage[] = body.system !== undefined ? [{ role: 'system', content: blocksText(body.system, 'system') }] : [];
  const calls = new CallLedger('tool_result block');
  for (const [i, m] of body.messages.entries()) {
    const param = `messages[${i}]`;
    if (m.role !== 'user' && m.role !== 'assistant') {
      throw new ApiError('invalid_value', `${param}.role '${m.role}' is not supported; use user or assistant (the system prompt goes in 'system')`, { param: `${param}.role` });
    }
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    const texts: string[] = [];
    const toolCalls: ChatToolCall[] = [];
    for (const [j, block] of blocks.entries()) {
      const at = typeof m.content === 'string' ? `${param}.content` : `${param}.content[${j}]`;
      if (block.type === 'tool_result' && m.role === 'user') {
        if (typeof block.tool_use_id !== 'string') throw new ApiError('missing_required_parameter', `${at} is a tool_result without its 'tool_use_id'`, { param: `${at}.tool_use_id` });
        if (texts.length > 0) throw new ApiError('invalid_value', `${at}: tool_result blocks come before the message's text`, { param: at });
        const result = block.content === undefined ? '' : blocksText(block.content, `${at}.content`);
        // Chat templates have no error flag for a tool message: the model reads it in the text.
        calls.answer(block.tool_use_id, block.is_error === true ? `Error: ${result}` : result, `${at}.tool_use_id`);
      } else if (block.type === 'tool_use' && m.role === 'assistant') {
        if (typeof block.id !== 'string' || typeof block.name !== 'string') {
          throw new ApiError('missing_required_parameter', `${at} is a tool_use without its 'id' or 'name'`, { param: `${at}.${typeof block.id !== 'string' ? 'id' : 'name'}` });
        }
        const call: ChatToolCall = { name: block.name, arguments: block.input ?? {}, result: '' };
        toolCalls.push(call);
        calls.open(block.id, call, `${at}.id`);
      } else if (block.type === 'thinking' || block.type === 'redacted_thinking') {
        // An earlier answer's thought: chat templates leave it out of the prompt.
      } else {
        if (texts.length === 0) calls.closeTurn();
        texts.push(textOf(block, at));
      }
    }
    if (texts.length > 0 || toolCalls.length > 0 || m.role === 'assistant') {
      out.push({ role: m.role, content: texts.join('\n'), ...(toolCalls.length > 0 ? { toolCalls } : {}) });
    }
  }
  calls.closeTurn();
  return out;
}

/** Anthropic `tools`/`tool_choice` to the engine's. */
export function toAnthropicTools(body: Pick<CountTokensRequest, 'tools' | 'tool_choice'>): ToolOptions | undefined {
  const tools = body.tools ?? [];
  for (const [i, t] of tools.entries()) {
    if (t.type != null && t.type !== 'custom') throw new ApiError('unsupported_feature', `tools[${i}] is a '${t.type}' server tool; this server runs custom tools only`, { param: `tools[${i}].type` });
  }
  const choice = body.tool_choice;
  const type = choice?.type ?? 'auto';
  if (type === 'tool' && typeof choice?.name !== 'string') throw new ApiError('missing_required_parameter', `tool_choice of type 'tool' needs its 'name'`, { param: 'tool_choice.name' });
  return buildToolOptions(
    tools.map((t, i) => ({ name: t.name, description: t.description, parameters: t.input_schema, param: `tools[${i}]`, schemaParam: `tools[${i}].input_schema` })),
    type === 'tool' ? { name: choice!.name!, param: 'tool_choice.name' } : type === 'any' ? 'required' : type,
    choice?.disable_parallel_tool_use === true ? false : undefined,
  );
}
