import type { FastifyInstance } from 'fastify';
import type { ChatResult, ToolCallDelta } from '../../engines/engine.ts';
import {
  CountTokensRequestSchema, CountTokensSchema, MessageSchema, MessagesRequestSchema,
  type AnthropicMessage, type CountTokensRequest, type MessagesRequest,
} from '../../schemas/anthropic/messages.ts';
import { errorResponses } from '../../schemas/common.ts';
import { clientSignal } from '../client-signal.ts';
import { randomId } from '../ids.ts';
import { countTokens, promptTokenCount, requestParams, sendEventStream } from '../openai/inference.ts';
import { toAnthropicMessages, toAnthropicTools } from './messages-request.ts';


type Block = AnthropicMessage['content'][number];

/** What ended the answer, in Anthropic's words. */
function stopReason(r: ChatResult): Pick<AnthropicMessage, 'stop_reason' | 'stop_sequence'> {
  if (r.finishReason === 'tool_calls') return { stop_reason: 'tool_use', stop_sequence: null };
  if (r.finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  return r.stopSequence !== undefined ? { stop_reason: 'stop_sequence', stop_sequence: r.stopSequence } : { stop_reason: 'end_turn', stop_sequence: null };
}

/** Anthropic counts the prompt's cached tokens apart from the rest. */
function usage(r: ChatResult): AnthropicMessage['usage'] {
  const cached = r.usage.cachedPromptTokens ?? 0;
  return { input_tokens: r.usage.promptTokens - cached, output_tokens: r.usage.completionTokens, cache_read_input_tokens: cached, cache_creation_input_tokens: 0 };
}

const toolUse = (name: string, args: string): Block => ({ type: 'tool_use', id: randomId('toolu_', 24), name, input: JSON.parse(args) as Record<string, unknown> });

/** The content blocks of an answer: its thought, its text (unless it is only calls), its calls. */
function contentBlocks(r: ChatResult): Block[] {
  const blocks: Block[] = [];
  if (r.reasoning) blocks.push({ type: 'thinking', thinking: r.reasoning, signature: '' });
  if (r.text || !r.toolCalls) blocks.push({ type: 'text', text: r.text });
  for (const c of r.toolCalls ?? []) blocks.push(toolUse(c.name, c.arguments));
  return blocks;
}

/**
 * A streamed answer as Anthropic streams it: content blocks opened and closed in turn (the
 * thought, the text, each call), each a `content_block_start`, its deltas and a
 * `content_block_stop`. A block closes when the next kind of output begins.
 */
class BlockStream {
  readonly #emit: (event: Record<string, unknown>) => void;
  #count = 0;
  #open: { kind: 'thinking' | 'text' | 'tool_use'; index: number } | undefined;
  /** The arguments streamed so far of each call whose start streamed, by the engine's call index. */
  readonly #sent = new Map<number, { block: number; args: string }>();

  constructor(emit: (event: Record<string, unknown>) => void) {
    this.#emit = emit;
  }

  event(type: string, fields: Record<string, unknown> = {}): void {
    this.#emit({ type, ...fields });
  }

  #begin(kind: 'thinking' | 'text' | 'tool_use', block: Block): void {
    this.close();
    this.#open = { kind, index: this.#count++ };
    this.event('content_block_start', { index: this.#open.index, content_block: block });
  }

  #delta(delta: Record<string, unknown>): void {
    this.event('content_block_delta', { index: this.#open!.index, delta });
  }

  thinking(text: string): void {
    if (this.#open?.kind !== 'thinking') this.#begin('thinking', { type: 'thinking', thinking: '', signature: '' });
    this.#delta({ type: 'thinking_delta', thinking: text });
  }

  text(text: string): void {
    if (this.#open?.kind !== 'text') this.#begin('text', { type: 'text', text: '' });
    this.#delta({ type: 'text_delta', text });
  }

  call(d: ToolCallDelta): void {
    if (d.name !== undefined) {
      this.#begin('tool_use', { type: 'tool_use', id: randomId('toolu_', 24), name: d.name, input: {} });
      this.#sent.set(d.index, { block: this.#open!.index, args: '' });
    }
    if (d.arguments) {
      this.#sent.get(d.index)!.args += d.arguments;
      this.#delta({ type: 'input_json_delta', partial_json: d.arguments });
    }
  }

  /**
   * The answer is done: the open call gets what of its final arguments did not stream (a held
   * back end), calls read after the fact come whole, an answer with no block gets an empty text.
   */
  finish(r: ChatResult): void {
    for (const [i, c] of (r.toolCalls ?? []).entries()) {
      const sent = this.#sent.get(i);
      if (!sent) {
        this.call({ index: i, name: c.name, arguments: c.arguments });
      } else if (sent.block === this.#open?.index && c.arguments.startsWith(sent.args) && c.arguments.length > sent.args.length) {
        this.call({ index: i, arguments: c.arguments.slice(sent.args.length) });
      }
    }
    if (this.#count === 0) this.text('');
    this.close();
  }

  close(): void {
    if (!this.#open) return;
    this.event('content_block_stop', { index: this.#open.index });
    this.#open = undefined;
  }
}


/** POST /v1/messages (Anthropic's Messages API, plain or streamed) and its token count. */
export default async function anthropicRoutes(app: FastifyInstance) {
  app.post('/v1/messages', {
    schema: {
      tags: ['anthropic'], summary: 'Create a message (Anthropic Messages API)',
      description: 'Anthropic\'s Messages API over the same models as chat, for clients built on Anthropic\'s SDK: `system` and `messages` (text, `tool_use` and `tool_result` blocks) go through the model\'s chat template; the answer\'s `content` holds the thought (a `thinking` block), the text and the calls (`tool_use` blocks). `stream: true` answers with Anthropic\'s named server-sent events. Errors keep the OpenAI envelope, with `type` inside `error` as Anthropic\'s SDK reads it.',
      body: MessagesRequestSchema,
      response: { 200: MessageSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as MessagesRequest;
    const entry = app.registry.resolve(body.model);
    const messages = toAnthropicMessages(body);
    const tools = toAnthropicTools(body);
    // llama.cpp's own fields (seed, min_p, logit_bias, ...) are read as on chat.
    const params = requestParams(app, entry, { ...body, stop: body.stop_sequences }, (name) => (name === 'stop' ? 'stop_sequences' : name));
    const run = { capability: 'chat' as const, signal: clientSignal(reply), keepAlive: body.keep_alive };
    const id = randomId('msg_', 24);

    if (!body.stream) {
      const r = await app.manager.run(entry, run, (loaded, sig) => loaded.chat!(messages, { params, tools, signal: sig }));
      countTokens(app, entry.id, r.usage);
      const answer: AnthropicMessage = { id, type: 'message', role: 'assistant', model: entry.id, content: contentBlocks(r), ...stopReason(r), usage: usage(r) };
      return answer;
    }

    return sendEventStream(reply, async (emit) => {
      const out = new BlockStream(emit);
      const r = await app.manager.run(entry, run, (loaded, sig) =>
        loaded.chat!(messages, {
          params, tools, signal: sig,
          // The first event starts the HTTP answer; a request refused before it keeps its status.
          onStart: (prompt) => out.event('message_start', {
            message: {
              id, type: 'message', role: 'assistant', model: entry.id, content: [], stop_reason: null, stop_sequence: null,
              // What the engine expects now; message_delta carries the counts as they came out.
              usage: prompt
                ? { input_tokens: prompt.tokens - prompt.cachedTokens, output_tokens: 0, cache_read_input_tokens: prompt.cachedTokens, cache_creation_input_tokens: 0 }
                : { input_tokens: 0, output_tokens: 0 },
            },
          }),
          onReasoning: (text) => {
            if (text) out.thinking(text);
          },
          onText: (text) => {
            if (text) out.text(text);
          },
          onToolCall: (d) => out.call(d),
        }));
      countTokens(app, entry.id, r.usage);
      out.finish(r);
      out.event('message_delta', { delta: stopReason(r), usage: usage(r) });
      out.event('message_stop');
    }, { named: true, done: false });
  });

  app.post('/v1/messages/count_tokens', {
    schema: {
      tags: ['anthropic'], summary: 'Count the tokens of a message request',
      description: 'The prompt\'s length in tokens as POST /v1/messages would give it to the model (the chat template and tools included), read from the model\'s tokenizer without a turn in its queue.',
      body: CountTokensRequestSchema,
      response: { 200: CountTokensSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as CountTokensRequest;
    const entry = app.registry.resolve(body.model);
    const messages = toAnthropicMessages(body);
    const tools = toAnthropicTools(body);
    return { input_tokens: await promptTokenCount(app, entry, body.keep_alive, messages, tools) };
  });
}
