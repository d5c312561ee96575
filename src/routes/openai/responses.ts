import type { FastifyInstance } from 'fastify';
import type { ChatResult, TokenLogprob, ToolCallDelta } from '../../engines/engine.ts';
import { errorResponses } from '../../schemas/common.ts';
import { InputTokensSchema } from '../../schemas/openai/common.ts';
import { ApiError } from '../../errors.ts';
import {
  ResponseDeletedSchema, ResponseIdParamsSchema, ResponseInputItemListSchema, ResponseInputItemsQuerySchema, ResponseRequestSchema, ResponseSchema,
  type ResponseInputItemsQuery, type ResponseObject, type ResponseOutputItem, type ResponseRequest,
} from '../../schemas/openai/responses.ts';
import { clientSignal } from '../client-signal.ts';
import { randomId } from '../ids.ts';
import { listedInput, ResponseStore } from './response-store.ts';
import { inputItems, rejectUnsupportedState, toResponseMessages, toResponseTools, toTextFormat, type InputItem } from './responses-request.ts';
import { countTokens, promptTokenCount, requestParams, sendEventStream, unixNow } from './inference.ts';
import { chatLogprobs } from './logprobs.ts';
import { postAt } from '../route-aliases.ts';


type OutputText = { type: 'output_text'; text: string; annotations: unknown[]; logprobs?: ReturnType<typeof wireLogprobs> };
type Message = Extract<ResponseOutputItem, { type: 'message' }> & { content: [OutputText] };
type Reasoning = Extract<ResponseOutputItem, { type: 'reasoning' }>;
type FunctionCall = Extract<ResponseOutputItem, { type: 'function_call' }>;

/** Output logprobs as the Responses API shows them (chat's, without the null-able wrapper). */
const wireLogprobs = (lps: TokenLogprob[]) => chatLogprobs(lps).content!;

const reasoningItem = (text: string): Reasoning => ({ type: 'reasoning', id: randomId('rs_'), summary: [], content: text ? [{ type: 'reasoning_text', text }] : [], status: 'completed' });
const messageItem = (text: string, logprobs?: TokenLogprob[]): Message => ({
  type: 'message', id: randomId('msg_'), status: 'completed', role: 'assistant',
  content: [{ type: 'output_text', text, annotations: [], ...(logprobs ? { logprobs: wireLogprobs(logprobs) } : {}) }],
});
const callItem = (name: string, args: string): FunctionCall => ({ type: 'function_call', id: randomId('fc_'), call_id: randomId('call_', 24), name, arguments: args, status: 'completed' });

/** The output items of an answer: its thought, its text (even empty, unless it only calls), its calls. */
function outputItems(r: ChatResult): ResponseOutputItem[] {
  const items: ResponseOutputItem[] = [];
  if (r.reasoning) items.push(reasoningItem(r.reasoning));
  // The answer's logprobs cover its thought too: the text's are those after it.
  if (r.text || !r.toolCalls) items.push(messageItem(r.text, r.logprobs?.slice(r.usage.reasoningTokens ?? 0)));
  for (const c of r.toolCalls ?? []) items.push(callItem(c.name, c.arguments));
  return items;
}

/**
 * A streamed answer as the Responses API streams it: output items opened and closed in turn
 * (the thought, the text, each call), each with its `added`, delta and `done` events, every
 * event numbered. An item closes when the next kind of output begins.
 */
class OutputStream {
  readonly items: ResponseOutputItem[] = [];
  readonly #emit: (event: Record<string, unknown>) => void;
  #sequence = 0;
  #open: { kind: 'reasoning' | 'message' | 'call'; index: number; text: string; logprobs: TokenLogprob[] } | undefined;
  /** Output index of each streamed call, by the engine's call index. */
  readonly #calls: number[] = [];
  /** Token logprobs that came with streamed text, the thought's included. */
  #logprobsSeen = 0;

  constructor(emit: (event: Record<string, unknown>) => void) {
    this.#emit = emit;
  }

  event(type: string, fields: Record<string, unknown>): void {
    this.#emit({ type, sequence_number: this.#sequence++, ...fields });
  }

  #begin(kind: 'reasoning' | 'message' | 'call', item: ResponseOutputItem): number {
    this.#close();
    const index = this.items.push(item) - 1;
    this.#open = { kind, index, text: '', logprobs: [] };
    this.event('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress' } });
    return index;
  }

  reasoning(delta: string, logprobs: TokenLogprob[] = []): void {
    this.#logprobsSeen += logprobs.length;
    if (this.#open?.kind !== 'reasoning') {
      const index = this.#begin('reasoning', reasoningItem(''));
      this.event('response.content_part.added', { item_id: this.items[index]!.id, output_index: index, content_index: 0, part: { type: 'reasoning_text', text: '' } });
    }
    const open = this.#open!;
    open.text += delta;
    this.event('response.reasoning_text.delta', { item_id: this.items[open.index]!.id, output_index: open.index, content_index: 0, delta });
  }

  text(delta: string, logprobs: TokenLogprob[] = []): void {
    if (this.#open?.kind !== 'message') {
      const index = this.#begin('message', messageItem(''));
      this.event('response.content_part.added', { item_id: this.items[index]!.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
    }
    const open = this.#open!;
    open.text += delta;
    open.logprobs.push(...logprobs);
    this.#logprobsSeen += logprobs.length;
    this.event('response.output_text.delta', { item_id: this.items[open.index]!.id, output_index: open.index, content_index: 0, delta, logprobs: wireLogprobs(logprobs) });
  }

  call(d: ToolCallDelta): void {
    if (d.name !== undefined) this.#calls[d.index] = this.#begin('call', callItem(d.name, ''));
    if (d.arguments) {
      const index = this.#calls[d.index]!;
      (this.items[index] as FunctionCall).arguments += d.arguments;
      this.event('response.function_call_arguments.delta', { item_id: this.items[index]!.id, output_index: index, delta: d.arguments });
    }
  }

  /**
   * The answer is done: the open item closes, calls read after the fact (never streamed) come
   * whole, an answer with no output gets its empty message, and the last item closes as
   * incomplete when the answer was cut.
   */
  finish(r: ChatResult): void {
    // Tokens whose text never streamed (trailing whitespace held back, say) end the text's list.
    const unsent = r.logprobs?.slice(this.#logprobsSeen) ?? [];
    if (this.#open?.kind === 'message') this.#open.logprobs.push(...unsent);
    const calls = r.toolCalls ?? [];
    for (const [i, c] of calls.entries()) {
      const index = this.#calls[i];
      // Whatever of a streamed call's final arguments did not stream.
      if (index !== undefined && c.arguments.startsWith((this.items[index] as FunctionCall).arguments)) (this.items[index] as FunctionCall).arguments = c.arguments;
    }
    const rest = calls.flatMap((c, i) => (this.#calls[i] === undefined ? [{ c, i }] : []));
    const needsMessage = calls.length === 0 && !this.items.some((item) => item.type === 'message');
    const cut = r.finishReason === 'length';
    this.#close(cut && rest.length === 0 && !needsMessage);
    for (const [k, { c, i }] of rest.entries()) {
      this.call({ index: i, name: c.name, arguments: c.arguments });
      this.#close(cut && k === rest.length - 1 && !needsMessage);
    }
    if (needsMessage) {
      this.text('', unsent);
      this.#close(cut);
    }
  }

  /** Closes the open item, as cut short by max_output_tokens when `incomplete`. */
  #close(incomplete = false): void {
    const open = this.#open;
    if (!open) return;
    this.#open = undefined;
    const item = this.items[open.index]!;
    if (incomplete) item.status = 'incomplete';
    const at = { item_id: item.id, output_index: open.index };
    if (item.type === 'reasoning') {
      const part = { type: 'reasoning_text' as const, text: open.text };
      item.content = [part];
      this.event('response.reasoning_text.done', { ...at, content_index: 0, text: open.text });
      this.event('response.content_part.done', { ...at, content_index: 0, part });
    } else if (item.type === 'message') {
      const part = item.content[0]!;
      part.text = open.text;
      if (open.logprobs.length > 0) part.logprobs = wireLogprobs(open.logprobs);
      this.event('response.output_text.done', { ...at, content_index: 0, text: open.text, logprobs: part.logprobs ?? [] });
      this.event('response.content_part.done', { ...at, content_index: 0, part });
    } else {
      this.event('response.function_call_arguments.done', { ...at, name: item.name, arguments: item.arguments });
    }
    this.event('response.output_item.done', { output_index: open.index, item });
  }
}

/** Responses kept for `previous_response_id` and `GET /v1/responses/{id}`. */
const STORED_RESPONSES = 1000;

/** OpenAI's Responses API: POST /v1/responses (plain or streamed), and the stored responses. */
export default async function responseRoutes(app: FastifyInstance) {
  const store = new ResponseStore(STORED_RESPONSES);
  const notFound = (id: string, param?: string) =>
    new ApiError('response_not_found', `no response '${id}' is stored (responses are kept in memory, the ${STORED_RESPONSES} most recently used; a restart forgets them)`, param ? { param } : {});
  const stored = (id: string, param?: string) => {
    const found = store.get(id);
    if (!found) throw notFound(id, param);
    return found;
  };

  postAt(app, '/v1/responses/input_tokens', ['/responses/input_tokens'], {
    schema: {
      tags: ['openai'], summary: 'Count the input tokens of a response request',
      description: 'The prompt\'s length in tokens as POST /v1/responses would give it to the model: `instructions`, the stored conversation of `previous_response_id`, `input` and `tools` through the chat template, read from the model\'s tokenizer without a turn in its queue (OpenAI\'s `responses.inputTokens.count`).',
      body: ResponseRequestSchema,
      response: { 200: InputTokensSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as ResponseRequest;
    const entry = app.registry.resolve(body.model);
    rejectUnsupportedState(body as Record<string, unknown>);
    const previous = body.previous_response_id ? stored(body.previous_response_id, 'previous_response_id') : undefined;
    const history = (previous?.items ?? []).map((item) => ({ item, param: 'previous_response_id' }));
    const messages = toResponseMessages(body.instructions, [...history, ...inputItems(body.input)]);
    const input_tokens = await promptTokenCount(app, entry, body.keep_alive, messages, toResponseTools(body));
    return { object: 'response.input_tokens' as const, input_tokens };
  });

  postAt(app, '/v1/responses', ['/responses'], {
    schema: {
      tags: ['openai'], summary: 'Create a response (Responses API)',
      description: 'OpenAI\'s Responses API over the same models as chat: `input` (a string, or message, function_call and function_call_output items) with `instructions` goes through the model\'s chat template; the answer\'s `output` holds the thought (a `reasoning` item), the text (a `message`) and the calls (`function_call` items). Answers are kept in memory (unless `store: false`), the 1,000 most recently used: `previous_response_id` continues one, its inputs and output coming before the new input. `stream: true` answers with the Responses API\'s named server-sent events, from `response.created` to `response.completed` (or `response.incomplete` when max_output_tokens ran out).',
      body: ResponseRequestSchema,
      response: { 200: ResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as ResponseRequest;
    const entry = app.registry.resolve(body.model);
    rejectUnsupportedState(body as Record<string, unknown>);
    const previous = body.previous_response_id ? stored(body.previous_response_id, 'previous_response_id') : undefined;
    const input = inputItems(body.input);
    // The stored conversation's items were read once already; an open call among them is the new input's to answer.
    const history = (previous?.items ?? []).map((item) => ({ item, param: 'previous_response_id' }));
    const messages = toResponseMessages(body.instructions, [...history, ...input]);
    const keep = body.store !== false;
    const params = requestParams(app, entry, body);
    const responseFormat = toTextFormat(body);
    const tools = toResponseTools(body);
    const logprobs = body.include?.includes('message.output_text.logprobs') ? (body.top_logprobs ?? 0) : undefined;
    const signal = clientSignal(reply);
    const run = { capability: 'chat' as const, signal, keepAlive: body.keep_alive };

    const id = randomId('resp_');
    const created = unixNow();
    const response = (status: ResponseObject['status'], output: ResponseOutputItem[], r?: ChatResult): ResponseObject => ({
      id, object: 'response', created_at: created, completed_at: status === 'in_progress' ? null : unixNow(), status, error: null,
      incomplete_details: r?.finishReason === 'length' ? { reason: 'max_output_tokens' } : null,
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      model: entry.id,
      output,
      parallel_tool_calls: body.parallel_tool_calls !== false,
      previous_response_id: body.previous_response_id ?? null,
      store: keep,
      temperature: body.temperature ?? null,
      top_p: body.top_p ?? null,
      text: { format: body.text?.format ?? { type: 'text' } },
      tool_choice: body.tool_choice ?? 'auto',
      tools: body.tools ?? [],
      truncation: 'disabled',
      usage: r ? wireResponseUsage(r) : null,
      metadata: body.metadata ?? {},
    });
    const status = (r: ChatResult) => (r.finishReason === 'length' ? 'incomplete' : 'completed');
    /** The answer, kept with its conversation when the request lets it be. */
    const done = (answer: ResponseObject) => {
      if (keep) {
        const own = input.map((p) => p.item);
        store.put({ response: answer, items: [...(previous?.items ?? []), ...own, ...(answer.output as InputItem[])], input: listedInput(own) });
      }
      return answer;
    };

    if (!body.stream) {
      const r = await app.manager.run(entry, run, (loaded, sig) => loaded.chat!(messages, { params, responseFormat, tools, logprobs, signal: sig }));
      countTokens(app, entry.id, r.usage);
      const output = outputItems(r);
      if (r.finishReason === 'length') output[output.length - 1]!.status = 'incomplete';
      return done(response(status(r), output, r));
    }

    return sendEventStream(reply, async (emit) => {
      const out = new OutputStream(emit);
      const r = await app.manager.run(entry, run, (loaded, sig) =>
        loaded.chat!(messages, {
          params, responseFormat, tools, logprobs, signal: sig,
          // The first event starts the HTTP answer; a request refused before it keeps its status.
          onStart: () => {
            const snapshot = response('in_progress', []);
            out.event('response.created', { response: snapshot });
            out.event('response.in_progress', { response: snapshot });
          },
          onReasoning: (text, lps) => {
            if (text) out.reasoning(text, lps);
          },
          onText: (text, lps) => {
            if (text) out.text(text, lps);
          },
          onToolCall: (d) => out.call(d),
        }));
      countTokens(app, entry.id, r.usage);
      out.finish(r);
      const answer = done(response(status(r), out.items, r));
      out.event(answer.status === 'completed' ? 'response.completed' : 'response.incomplete', { response: answer });
    }, { named: true, done: false });
  });

  app.get('/v1/responses/:id', {
    schema: {
      tags: ['openai'], summary: 'Get a stored response',
      description: 'A response kept by POST /v1/responses (not with `store: false`); 404 response_not_found once forgotten.',
      params: ResponseIdParamsSchema,
      response: { 200: ResponseSchema, ...errorResponses },
    },
  }, async (request) => stored((request.params as { id: string }).id).response);

  app.get('/v1/responses/:id/input_items', {
    schema: {
      tags: ['openai'], summary: 'List a stored response\'s input items',
      description: 'The items the response\'s own `input` gave (a string input is one user message), each with an id, messages with content parts; newest first unless `order=asc`, `limit` per page (default 20), `after` an item id. 404 response_not_found once the response is forgotten.',
      params: ResponseIdParamsSchema,
      querystring: ResponseInputItemsQuerySchema,
      response: { 200: ResponseInputItemListSchema, ...errorResponses },
    },
  }, async (request) => {
    const { input } = stored((request.params as { id: string }).id);
    const q = request.query as ResponseInputItemsQuery;
    const ordered = q.order === 'asc' ? input : [...input].reverse();
    const from = q.after === undefined ? 0 : ordered.findIndex((item) => item.id === q.after) + 1;
    if (from === 0 && q.after !== undefined) throw new ApiError('invalid_value', `'after': the response has no input item '${q.after}'`, { param: 'after' });
    const data = ordered.slice(from, from + Number(q.limit ?? 20));
    return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + data.length < ordered.length };
  });

  app.delete('/v1/responses/:id', {
    schema: {
      tags: ['openai'], summary: 'Delete a stored response',
      description: 'Forgets a stored response: it can no longer be read or continued. Responses that continued it keep their own conversations.',
      params: ResponseIdParamsSchema,
      response: { 200: ResponseDeletedSchema, ...errorResponses },
    },
  }, async (request) => {
    const { id } = request.params as { id: string };
    if (!store.delete(id)) throw notFound(id);
    return { id, object: 'response' as const, deleted: true as const };
  });
}

function wireResponseUsage(r: ChatResult) {
  const u = r.usage;
  return {
    input_tokens: u.promptTokens,
    input_tokens_details: { cached_tokens: u.cachedPromptTokens ?? 0 },
    output_tokens: u.completionTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens ?? 0 },
    total_tokens: u.promptTokens + u.completionTokens,
  };
}
