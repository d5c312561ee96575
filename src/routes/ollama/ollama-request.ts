import type { FastifyInstance } from 'fastify';
import type { ChatMessage, ChatToolCall, ResponseFormat } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import type { OllamaChatRequest, OllamaOptions } from '../../schemas/ollama.ts';
import { buildResponseFormat } from '../openai/chat-request.ts';
import { requestParams } from '../openai/inference.ts';

// An Ollama request's parts in the engine's terms, each refused with a 400 naming its field.

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', user: 'user', assistant: 'assistant' };

/**
 * Ollama's messages to the engine's. Ollama's calls carry no ids: each `tool` message answers
 * the first unanswered call of the assistant message before it (the first with its
 * `tool_name`, when it names one), and every call must be answered before the next message.
 */
export function toOllamaMessages(messages: OllamaChatRequest['messages']): ChatMessage[] {
  const out: ChatMessage[] = [];
  const open: Array<{ call: ChatToolCall; param: string }> = [];
  for (const [i, m] of messages.entries()) {
    const param = `messages[${i}]`;
    if (m.images?.length) throw new ApiError('unsupported_feature', `${param}.images: this server reads text only`, { param: `${param}.images` });
    if (m.role === 'tool') {
      const k = m.tool_name === undefined ? 0 : open.findIndex((c) => c.call.name === m.tool_name);
      if (k < 0 || open.length === 0) {
        throw new ApiError('invalid_value', `${param} is a tool answer${m.tool_name ? ` for '${m.tool_name}'` : ''}, but no call of the assistant message before it waits for one`, { param });
      }
      open[k]!.call.result = m.content ?? '';
      open.splice(k, 1);
      continue;
    }
    if (open.length > 0) throw new ApiError('invalid_value', `the call of ${open[0]!.param} has no tool message answering it before the next message`, { param: open[0]!.param });
    const role = ROLES[m.role];
    if (!role) throw new ApiError('invalid_value', `${param}.role '${m.role}' is not supported; use system, user, assistant or tool`, { param: `${param}.role` });
    const message: ChatMessage = { role, content: m.content ?? '' };
    if (m.tool_calls?.length) {
      if (role !== 'assistant') throw new ApiError('invalid_value', `${param} has tool_calls but is a '${m.role}' message`, { param: `${param}.tool_calls` });
      message.toolCalls = m.tool_calls.map((tc, j) => {
        const call: ChatToolCall = { name: tc.function.name, arguments: callArguments(tc.function.arguments, `${param}.tool_calls[${j}].function.arguments`), result: '' };
        open.push({ call, param: `${param}.tool_calls[${j}]` });
        return call;
      });
    }
    out.push(message);
  }
  if (open.length > 0) throw new ApiError('invalid_value', `the call of ${open[0]!.param} has no tool message answering it`, { param: open[0]!.param });
  return out;
}

/** Ollama sends arguments as an object; some clients send JSON text. */
function callArguments(value: unknown, param: string): unknown {
  if (typeof value !== 'string') return value ?? {};
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new ApiError('invalid_value', `${param} is not JSON: ${(err as Error).message}`, { param });
  }
}

/** `format`: `json` or a JSON Schema. */
export function toOllamaFormat(format: OllamaChatRequest['format']): ResponseFormat | undefined {
  if (format === undefined || format === '') return undefined;
  if (format === 'json') return { type: 'json_object' };
  return buildResponseFormat('json_schema', format, 'format');
}

/** `options` as run parameters, checked against the engine's descriptors; errors name `options.<field>`. */
export function ollamaParams(app: FastifyInstance, entry: ModelEntry, options: OllamaOptions | undefined): Record<string, unknown> {
  const o = options ?? {};
  return requestParams(
    app, entry, { ...o, max_tokens: o.num_predict !== undefined && o.num_predict >= 0 ? o.num_predict : undefined },
    (name) => `options.${name === 'max_tokens' ? 'num_predict' : name}`,
  );
}
