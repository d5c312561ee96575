import OpenAI from 'openai';
import { ApiError } from '../../errors.ts';
import type {
  Capability, ChatMessage, ChatResult, EmbeddingResult, GenerateOptions, GenerationResult, LoadedModel, PromptPiece, TokenChoice,
  TokenLogprob, TokenUsage, ToolCallOut,
} from '../engine.ts';
import { API_REQUEST_PARAMS } from './api-descriptors.ts';
import {
  shapeProblem, UpstreamChatChunk, UpstreamChatCompletion, UpstreamCompletion, UpstreamCompletionChunk, UpstreamEmbeddings,
} from './upstream-shapes.ts';
import type { TSchema } from '../../schemas/typebox.ts';

export interface ApiModelConfig {
  id: string;
  /** The upstream's OpenAI base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  /** The model name upstream. */
  model: string;
  apiKey?: string;
  /** Where the key comes from, to name in errors (never the key). */
  apiKeyEnv?: string;
  concurrency: number;
  timeoutMs: number;
  /** Request parameters of the model object and the start, beneath each request's own. */
  defaults: Record<string, unknown>;
}

/** Fields the OpenAI client may send that its types do not list (llama-server's and Ollama's). */
type Extra = Record<string, unknown>;

/**
 * A model served by another OpenAI-compatible server (OpenAI, llama-server, Ollama, another
 * modeld): each request goes upstream through the official OpenAI client, streamed when the
 * client streams, and comes back in the engine's terms so the routes shape it as for a local
 * model. Nothing is loaded; the queue bounds the requests in flight upstream.
 */
export class LoadedApiModel implements LoadedModel {
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(['chat', 'completion', 'embedding']);
  readonly concurrency: number;
  readonly info: Record<string, unknown>;
  readonly #c: ApiModelConfig;
  readonly #client: OpenAI;

  constructor(config: ApiModelConfig) {
    this.#c = config;
    this.concurrency = config.concurrency;
    this.info = { base_url: config.baseUrl, upstream_model: config.model, ...(config.apiKeyEnv ? { api_key_env: config.apiKeyEnv } : {}) };
    // No retries: the model's queue and the client's own retries are the places for them.
    // The client's own log is off: what it would log (an unreadable event) comes back as the request's error.
    this.#client = new OpenAI({ baseURL: config.baseUrl, apiKey: config.apiKey ?? 'none', maxRetries: 0, timeout: config.timeoutMs, logLevel: 'off' });
  }

  async chat(messages: ChatMessage[], options: GenerateOptions): Promise<ChatResult> {
    const body: Extra = { ...this.#params(options), messages: wireMessages(messages) };
    const rf = options.responseFormat;
    if (rf?.type === 'json_object') body.response_format = { type: 'json_object' };
    if (rf?.type === 'json_schema') body.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema: rf.schema } };
    const tools = options.tools;
    if (tools) {
      body.tools = tools.functions.map((f) => ({ type: 'function', function: { name: f.name, ...(f.description ? { description: f.description } : {}), ...(f.parameters ? { parameters: f.parameters } : {}) } }));
      body.tool_choice = typeof tools.choice === 'object' ? { type: 'function', function: { name: tools.choice.name } } : tools.choice;
      if (!tools.parallel) body.parallel_tool_calls = false;
    }
    if (options.logprobs !== undefined) Object.assign(body, { logprobs: true, top_logprobs: options.logprobs });
    if (!options.onText && !options.onReasoning) {
      const r = this.#expect(UpstreamChatCompletion, await this.#call(() => this.#client.chat.completions.create({ ...body, stream: false } as never, { signal: options.signal }), options.signal), 'a chat completion');
      options.onStart?.();
      const choice = (r as OpenAI.ChatCompletion).choices[0];
      const message = choice?.message as (OpenAI.ChatCompletionMessage & { reasoning_content?: string }) | undefined;
      const toolCalls = fromWireToolCalls(message?.tool_calls);
      return {
        text: message?.content ?? '',
        ...(message?.reasoning_content ? { reasoning: message.reasoning_content } : {}),
        finishReason: toolCalls ? 'tool_calls' : finishReason(choice?.finish_reason),
        ...(toolCalls ? { toolCalls } : {}),
        usage: usage((r as OpenAI.ChatCompletion).usage),
        ...(choice?.logprobs?.content ? { logprobs: choice.logprobs.content.map(fromWireLogprob) } : {}),
      };
    }
    const stream = await this.#stream(() => this.#client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never, { signal: options.signal }).withResponse(), options.signal);
    options.onStart?.();
    let text = '';
    let reasoning = '';
    const calls: Array<{ name: string; arguments: string }> = [];
    const lps: TokenLogprob[] = [];
    const { used, finish } = await this.#read<OpenAI.ChatCompletionChunk.Choice>(stream, UpstreamChatChunk, options.signal, (choice) => {
      const delta = choice.delta as OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };
      const pieceLps = choice.logprobs?.content?.map(fromWireLogprob);
      if (pieceLps) lps.push(...pieceLps);
      if (delta.reasoning_content) {
        reasoning += delta.reasoning_content;
        options.onReasoning?.(delta.reasoning_content, pieceLps);
      }
      if (delta.content) {
        text += delta.content;
        options.onText?.(delta.content, pieceLps);
      }
      for (const tc of delta.tool_calls ?? []) {
        const call = (calls[tc.index] ??= { name: '', arguments: '' });
        if (tc.function?.name) {
          call.name += tc.function.name;
          options.onToolCall?.({ index: tc.index, name: call.name });
        }
        if (tc.function?.arguments) {
          call.arguments += tc.function.arguments;
          options.onToolCall?.({ index: tc.index, arguments: tc.function.arguments });
        }
      }
    });
    const toolCalls = calls.length > 0 ? calls.filter(Boolean) : undefined;
    return {
      text,
      ...(reasoning ? { reasoning } : {}),
      finishReason: toolCalls ? 'tool_calls' : finishReason(finish),
      ...(toolCalls ? { toolCalls } : {}),
      usage: usage(used),
      ...(options.logprobs !== undefined ? { logprobs: lps } : {}),
    };
  }

  async complete(prompt: string | readonly PromptPiece[], options: GenerateOptions): Promise<GenerationResult> {
    const body: Extra = { ...this.#params(options), prompt, ...(options.suffix !== undefined ? { suffix: options.suffix } : {}) };
    if (options.responseFormat && options.responseFormat.type !== 'text') {
      throw new ApiError('unsupported_feature', `response_format is not sent upstream for completions of the api model '${this.#c.id}'`, { param: 'response_format' });
    }
    if (options.logprobs !== undefined) body.logprobs = options.logprobs;
    if (!options.onText) {
      const r = this.#expect(UpstreamCompletion, await this.#call(() => this.#client.completions.create({ ...body, stream: false } as never, { signal: options.signal }), options.signal), 'a completion') as OpenAI.Completion;
      options.onStart?.();
      const choice = r.choices[0];
      return {
        text: choice?.text ?? '',
        finishReason: finishReason(choice?.finish_reason),
        usage: usage(r.usage),
        ...(choice?.logprobs ? { logprobs: fromLegacyLogprobs(choice.logprobs) } : {}),
      };
    }
    const stream = await this.#stream(() => this.#client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as never, { signal: options.signal }).withResponse(), options.signal);
    options.onStart?.();
    let text = '';
    const lps: TokenLogprob[] = [];
    const { used, finish } = await this.#read<OpenAI.CompletionChoice>(stream, UpstreamCompletionChunk, options.signal, (choice) => {
      const pieceLps = choice.logprobs ? fromLegacyLogprobs(choice.logprobs) : undefined;
      if (pieceLps) lps.push(...pieceLps);
      if (choice.text) {
        text += choice.text;
        options.onText!(choice.text, pieceLps);
      }
    });
    return {
      text,
      finishReason: finishReason(finish),
      usage: usage(used),
      ...(options.logprobs !== undefined ? { logprobs: lps } : {}),
    };
  }

  async embed(inputs: string[], signal: AbortSignal): Promise<EmbeddingResult> {
    const r = this.#expect(UpstreamEmbeddings, await this.#call(() => this.#client.embeddings.create({ model: this.#c.model, input: inputs, encoding_format: 'float' }, { signal }), signal), 'embeddings') as OpenAI.CreateEmbeddingResponse;
    const indices = new Set(r.data.map((d) => d.index));
    if (r.data.length !== inputs.length || inputs.some((_, i) => !indices.has(i))) {
      throw this.#unreadable(`${r.data.length} vectors (indices ${[...indices].slice(0, 8).join(', ')}) for ${inputs.length} inputs`);
    }
    const vectors = [...r.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    return { vectors, promptTokens: r.usage?.prompt_tokens ?? 0 };
  }

  async dispose(): Promise<void> {
    // Nothing is held: requests in flight end with their own signals.
  }

  /** The model, and the request parameters: the model object's and the start's beneath the request's. */
  #params(options: GenerateOptions): Extra {
    const out: Extra = { model: this.#c.model };
    for (const name of API_REQUEST_PARAMS) if (this.#c.defaults[name] != null) out[name] = this.#c.defaults[name];
    for (const [name, value] of Object.entries(options.params)) if (value != null) out[name] = value;
    // OpenAI `n`: the route asks for each choice apart; a fixed seed is offset as for local models.
    if (typeof out.seed === 'number' && out.seed >= 0 && options.choice) out.seed = out.seed + options.choice;
    return out;
  }

  /** Sends a request; the upstream's refusal becomes an error in this server's terms. */
  async #call<T>(send: () => PromiseLike<T>, signal: AbortSignal): Promise<T> {
    try {
      return await send();
    } catch (err) {
      throw this.#upstreamError(err, signal);
    }
  }

  /**
   * Opens a stream; an answer that is not an event stream (a JSON body, an HTML page) is an
   * upstream error, not a stream read as empty.
   */
  async #stream<T>(send: () => PromiseLike<{ data: T; response: Response }>, signal: AbortSignal): Promise<T> {
    const { data, response } = await this.#call(send, signal);
    const type = response.headers.get('content-type') ?? 'no content type';
    if (!type.includes('text/event-stream')) {
      (data as { controller?: AbortController }).controller?.abort();
      throw this.#unreadable(`${type} for a streamed request, not an event stream`);
    }
    return data;
  }

  /**
   * Reads a stream to its end, checking each chunk and handing its first choice to `each`, and
   * keeps what the chunks say of the whole answer (its usage and finish reason). A connection
   * lost midway, or an event that cannot be read, becomes an error in this server's terms; what
   * `each` throws stays the route's own.
   */
  async #read<C extends StreamChoice>(
    stream: unknown, shape: TSchema, signal: AbortSignal, each: (choice: C) => void,
  ): Promise<{ used?: OpenAI.CompletionUsage; finish?: string | null }> {
    const out: { used?: OpenAI.CompletionUsage; finish?: string | null } = {};
    const chunks = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    for (;;) {
      const next = await this.#call(() => chunks.next(), signal);
      if (next.done) return out;
      const chunk = this.#expect(shape, next.value, 'a stream chunk') as { usage?: OpenAI.CompletionUsage | null; choices: C[] };
      if (chunk.usage) out.used = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      each(choice);
      out.finish = choice.finish_reason ?? out.finish;
    }
  }

  /** `value` if it has the shape this engine reads, else the upstream error that names what is off. */
  #expect<T>(shape: TSchema, value: T, what: string): T {
    const problem = shapeProblem(shape, value);
    if (problem) throw this.#unreadable(`something that is not ${what}: ${problem}`);
    return value;
  }

  #unreadable(what: string): ApiError {
    return new ApiError('upstream_error', `the upstream of api model '${this.#c.id}' (${this.#c.baseUrl}) answered ${what}`);
  }

  #upstreamError(err: unknown, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    const where = `the upstream of api model '${this.#c.id}' (${this.#c.baseUrl})`;
    if (err instanceof OpenAI.APIConnectionTimeoutError) {
      return new ApiError('request_timeout', `${where} did not answer within ${this.#c.timeoutMs / 1000} s (timeout_s)`, { cause: err });
    }
    if (err instanceof OpenAI.APIConnectionError) {
      return new ApiError('upstream_unreachable', `${where} cannot be reached: ${err.cause instanceof Error ? err.cause.message : err.message}`, { cause: err });
    }
    if (err instanceof OpenAI.APIError && err.status !== undefined) {
      const said = upstreamMessage(err);
      if (err.status === 401 || err.status === 403) {
        const key = this.#c.apiKeyEnv ? `the key in $${this.#c.apiKeyEnv}` : 'no key (set metadata.api.api_key_env)';
        return new ApiError('upstream_error', `${where} refused ${key} with ${err.status}: ${said}`, { cause: err });
      }
      if (err.status === 400 || err.status === 404 || err.status === 413 || err.status === 422) {
        return new ApiError('upstream_rejected', `${where} rejected the request with ${err.status}: ${said}`, { ...(err.param ? { param: err.param } : {}), cause: err });
      }
      if (err.status === 429 || err.status === 503) {
        const after = Number(err.headers?.get('retry-after'));
        return new ApiError('upstream_busy', `${where} is busy (${err.status}): ${said}`, { cause: err, ...(after > 0 ? { retryAfter: Math.ceil(after) } : {}) });
      }
      return new ApiError('upstream_error', `${where} failed with ${err.status}: ${said}`, { cause: err });
    }
    // An error event inside a stream (the client raises it without a status).
    if (err instanceof OpenAI.APIError) return new ApiError('upstream_error', `${where} reported an error: ${upstreamMessage(err)}`, { cause: err });
    // Only the client's own calls come here: a body that is not JSON, an event that is not, a
    // connection cut mid-answer.
    if (err instanceof Error && !(err instanceof ApiError)) {
      // undici's word for a body cut short.
      if (err.message === 'terminated') return new ApiError('upstream_error', `${where} dropped the connection mid-answer`, { cause: err });
      return new ApiError('upstream_error', `${where} answered with something this server cannot read: ${err.message}`, { cause: err });
    }
    return err;
  }
}

function upstreamMessage(err: InstanceType<typeof OpenAI.APIError>): string {
  const e = err.error as { message?: unknown } | undefined;
  return typeof e?.message === 'string' ? e.message : err.message;
}

/** The engine's messages back in OpenAI's form: each call's answer as a `tool` message after its assistant message. */
function wireMessages(messages: ChatMessage[]): OpenAI.ChatCompletionMessageParam[] {
  const out: OpenAI.ChatCompletionMessageParam[] = [];
  let n = 0;
  for (const m of messages) {
    if (m.role !== 'assistant' || !m.toolCalls?.length) {
      out.push({ role: m.role, content: m.content } as OpenAI.ChatCompletionMessageParam);
      continue;
    }
    const ids = m.toolCalls.map(() => `call_${n++}`);
    out.push({
      role: 'assistant',
      content: m.content || null,
      tool_calls: m.toolCalls.map((c, i) => ({ id: ids[i]!, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments) } })),
    });
    m.toolCalls.forEach((c, i) => out.push({ role: 'tool', tool_call_id: ids[i]!, content: c.result }));
  }
  return out;
}

function fromWireToolCalls(calls: OpenAI.ChatCompletionMessageToolCall[] | undefined): ToolCallOut[] | undefined {
  const fns = (calls ?? []).filter((c): c is OpenAI.ChatCompletionMessageFunctionToolCall => c.type === 'function');
  return fns.length > 0 ? fns.map((c) => ({ name: c.function.name, arguments: c.function.arguments })) : undefined;
}

/** The upstream's finish reason in the engine's terms (a call is told apart by its calls). */
function finishReason(reason: string | null | undefined): GenerationResult['finishReason'] {
  return reason === 'length' ? 'length' : 'stop';
}

/** What a streamed chunk's choice says of the whole answer. */
interface StreamChoice {
  finish_reason: string | null;
}

function usage(u: OpenAI.CompletionUsage | undefined): TokenUsage {
  const cached = u?.prompt_tokens_details?.cached_tokens;
  const reasoning = u?.completion_tokens_details?.reasoning_tokens;
  return {
    promptTokens: u?.prompt_tokens ?? 0,
    completionTokens: u?.completion_tokens ?? 0,
    ...(cached != null ? { cachedPromptTokens: cached } : {}),
    ...(reasoning != null ? { reasoningTokens: reasoning } : {}),
  };
}

function fromWireLogprob(lp: OpenAI.ChatCompletionTokenLogprob): TokenLogprob {
  const choice = (c: { token: string; logprob: number; bytes: number[] | null }): TokenChoice => ({ token: c.token, logprob: c.logprob, bytes: c.bytes ?? [...Buffer.from(c.token)] });
  return { ...choice(lp), top: lp.top_logprobs.map(choice) };
}

/** Legacy completions logprobs (parallel arrays) as the engine's entries. */
function fromLegacyLogprobs(lp: OpenAI.CompletionChoice.Logprobs): TokenLogprob[] {
  return (lp.tokens ?? []).map((token, i) => ({
    token,
    logprob: lp.token_logprobs?.[i] ?? 0,
    bytes: [...Buffer.from(token)],
    top: Object.entries(lp.top_logprobs?.[i] ?? {}).map(([t, l]) => ({ token: t, logprob: l, bytes: [...Buffer.from(t)] })),
  }));
}
