import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ChatResult, TokenLogprob, ToolCallDelta, ToolCallOut } from '../../engines/engine.ts';
import { errorResponses } from '../../schemas/common.ts';
import { InputTokensSchema } from '../../schemas/openai/common.ts';
import {
  ChatCompletionRequestSchema, ChatCompletionSchema, type ChatCompletion, type ChatCompletionRequest,
} from '../../schemas/openai/chat.ts';
import { mapWithLimit } from '../../scheduler/map-with-limit.ts';
import { clientSignal } from '../client-signal.ts';
import { randomId } from '../ids.ts';
import { rejectUnsupported, toChatMessages, toResponseFormat, toToolOptions } from './chat-request.ts';
import { answerSignal, answerUsage, countTokens, promptTokenCount, requestParams, sendEventStream, unixNow, wireUsage } from './inference.ts';
import { chatLogprobs } from './logprobs.ts';
import { postAt } from '../route-aliases.ts';
import { AnswerClock } from '../lmstudio/figures.ts';
import { LmStudioFiguresSchema } from '../../schemas/lmstudio.ts';
import { Type } from '../../schemas/typebox.ts';

const callId = () => randomId('call_', 24);

/** A call as OpenAI sends it, with a fresh id for its `tool` answer to name. */
const wireToolCall = (c: ToolCallOut) => ({ id: callId(), type: 'function' as const, function: { name: c.name, arguments: c.arguments } });

/**
 * One streamed choice's tool calls: each call's first delta (id and name) and its arguments'
 * pieces as the engine writes them; at the end, whatever of the final calls has not gone out.
 */
class StreamedCalls {
  readonly #send: (toolCalls: unknown[]) => void;
  readonly #ids: string[] = [];
  readonly #args: string[] = [];

  constructor(send: (toolCalls: unknown[]) => void) {
    this.#send = send;
  }

  delta(d: ToolCallDelta): void {
    if (d.name !== undefined) {
      this.#ids[d.index] = callId();
      this.#args[d.index] = '';
      this.#send([{ index: d.index, id: this.#ids[d.index], type: 'function', function: { name: d.name, arguments: '' } }]);
    }
    if (d.arguments) {
      this.#args[d.index] += d.arguments;
      this.#send([{ index: d.index, function: { arguments: d.arguments } }]);
    }
  }

  finish(calls: ToolCallOut[]): void {
    const rest = calls.flatMap((c, index) => {
      if (this.#ids[index] === undefined) return [{ index, ...wireToolCall(c) }];
      const sent = this.#args[index]!;
      const more = c.arguments.startsWith(sent) ? c.arguments.slice(sent.length) : '';
      return more ? [{ index, function: { arguments: more } }] : [];
    });
    if (rest.length > 0) this.#send(rest);
  }
}

/** POST /v1/chat/completions: OpenAI chat, plain or streamed. */
export default async function chatRoutes(app: FastifyInstance) {
  postAt(app, '/v1/chat/completions/input_tokens', ['/chat/completions/input_tokens'], {
    schema: {
      tags: ['openai'], summary: 'Count the input tokens of a chat request',
      description: 'The prompt\'s length in tokens as POST /v1/chat/completions would give it to the model (the chat template and tools included), read from the model\'s tokenizer without a turn in its queue (llama-server\'s input_tokens route).',
      body: ChatCompletionRequestSchema,
      response: { 200: InputTokensSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as ChatCompletionRequest;
    const entry = app.registry.resolve(body.model);
    const input_tokens = await promptTokenCount(app, entry, body.keep_alive, toChatMessages(body.messages), toToolOptions(body));
    return { object: 'response.input_tokens' as const, input_tokens };
  });

  const chatSchema = {
    tags: ['openai'], summary: 'Create a chat completion',
    description: 'Answers through the model\'s own chat template (GGUF), or Jan\'s pre_prompt/user_prompt/ai_prompt for a model without one. With `tools`, the template shows them to the model and calls come back as `tool_calls` (finish_reason `tool_calls`), in the template\'s own call syntax or, for a template without tool support, node-llama-cpp\'s. A reasoning model\'s thought (its template\'s thought segment) comes as `reasoning_content`, apart from `content`. `stream: true` answers with server-sent events in the OpenAI chunk shape ending `data: [DONE]`. A stopped model is loaded first; a full queue is a 503 queue_full with retry-after; a client that disconnects frees its place within one token.',
    body: ChatCompletionRequestSchema,
    response: { 200: ChatCompletionSchema, ...errorResponses },
  };
  /** The chat answer; `lmStudio` adds LM Studio's `stats`, `model_info` and `runtime` to an answer that is not streamed. */
  const chat = (lmStudio: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as ChatCompletionRequest;
    const entry = app.registry.resolve(body.model);
    rejectUnsupported(body as Record<string, unknown>);
    const messages = toChatMessages(body.messages);
    const params = requestParams(app, entry, body);
    const responseFormat = toResponseFormat(body.response_format);
    const tools = toToolOptions(body);
    // OpenAI `n`: that many choices, run in parallel on the model's sequences (at most its
    // concurrency at once, read as it loads); one failing stops the others.
    const n = body.n ?? 1;
    const choices = Array.from({ length: n }, (_, choice) => choice);
    const parallel = () => app.manager.state(entry).queue?.concurrency ?? 1;
    const { signal, fail } = answerSignal(clientSignal(reply), n);
    const id = randomId('chatcmpl-');
    const created = unixNow();
    const run = { capability: 'chat' as const, signal, keepAlive: body.keep_alive };
    const logprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : undefined;
    const totalUsage = (results: ChatResult[]) => wireUsage(answerUsage(results.map((r) => r.usage), n));

    if (!body.stream) {
      const clock = lmStudio ? new AnswerClock() : undefined;
      const piece = clock ? { onText: clock.piece, onReasoning: clock.piece } : {};
      const results = await mapWithLimit(choices, parallel, (choice, _index, started) =>
        app.manager.run(entry, run, (loaded, sig) => loaded.chat!(messages, { params, responseFormat, tools, logprobs, choice, signal: sig, onStart: started, ...piece })).catch(fail));
      for (const r of results) countTokens(app, entry.id, r.usage);
      const answer: ChatCompletion = {
        id, object: 'chat.completion', created, model: entry.id, system_fingerprint: null,
        choices: results.map((r, index) => ({
          index,
          message: {
            role: 'assistant',
            // OpenAI: an answer that is only calls has no content.
            content: r.toolCalls && !r.text ? null : r.text,
            ...(r.toolCalls ? { tool_calls: r.toolCalls.map(wireToolCall) } : {}),
            ...(r.reasoning ? { reasoning_content: r.reasoning } : {}),
            refusal: null,
          },
          logprobs: r.logprobs ? chatLogprobs(r.logprobs) : null,
          finish_reason: r.finishReason,
        })),
        usage: totalUsage(results),
      };
      return clock ? { ...answer, ...clock.figures(app, entry, results) } : answer;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const base = { id, object: 'chat.completion.chunk', created, model: entry.id, system_fingerprint: null };
    const usageNull = includeUsage ? { usage: null } : {};
    const chunk = (index: number, delta: Record<string, unknown>, finish: string | null = null, lps?: TokenLogprob[]) =>
      ({ ...base, choices: [{ index, delta, logprobs: lps ? chatLogprobs(lps) : null, finish_reason: finish }], ...usageNull });
    return sendEventStream(reply, async (emit) => {
      const results = await mapWithLimit(choices, parallel, async (choice, index, started) => {
        let sent = 0;
        const frame = (delta: Record<string, unknown>, finish: string | null = null, lps?: TokenLogprob[]) => {
          sent += lps?.length ?? 0;
          emit(chunk(index, delta, finish, lps));
        };
        const calls = new StreamedCalls((toolCalls) => frame({ tool_calls: toolCalls }));
        const r = await app.manager.run(entry, run, (loaded, sig) =>
          loaded.chat!(messages, {
            params, responseFormat, tools, logprobs, choice, signal: sig,
            onToolCall: (d) => calls.delta(d),
            // The first frame starts the HTTP answer; a request refused before it keeps its status.
            onStart: () => {
              frame({ role: 'assistant', content: '' });
              started();
            },
            onText: (text, lps) => {
              if (text) frame({ content: text }, null, lps);
            },
            onReasoning: (text, lps) => {
              if (text) frame({ reasoning_content: text }, null, lps);
            },
          })).catch(fail);
        countTokens(app, entry.id, r.usage);
        if (r.toolCalls) calls.finish(r.toolCalls);
        // Tokens whose text never streamed (trailing whitespace held back, say) close the list.
        frame({}, r.finishReason, r.logprobs?.slice(sent));
        return r;
      });
      if (includeUsage) emit({ ...base, choices: [], usage: totalUsage(results) });
    });
  };
  postAt(app, '/v1/chat/completions', ['/chat/completions'], { schema: chatSchema }, chat(false));
  app.post('/api/v0/chat/completions', {
    schema: {
      ...chatSchema, tags: ['lmstudio'], summary: 'Create a chat completion (LM Studio)',
      description: 'As POST /v1/chat/completions, with LM Studio\'s REST API v0 figures beside the answer when it is not streamed: `stats` (tokens_per_second, time_to_first_token, generation_time, stop_reason), `model_info` and `runtime`.',
      response: { 200: Type.Object({ ...ChatCompletionSchema.properties, ...LmStudioFiguresSchema.properties }), ...errorResponses },
    },
  }, chat(true));
}
