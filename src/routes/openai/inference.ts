import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { resolveParams } from '../../engines/descriptors.ts';
import type { ChatMessage, TokenUsage, ToolOptions } from '../../engines/engine.ts';
import { ApiError, isApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { SAMPLING_PARAM_NAMES } from '../../schemas/openai/common.ts';
import { openEventStream } from '../event-stream.ts';


interface SamplingBody {
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /** The Responses API's name for it. */
  max_output_tokens?: number | null;
  [k: string]: unknown;
}

/**
 * The request's run parameters under the engine's descriptor names, checked against the
 * engine's descriptors before the request queues (a 400 naming the parameter and bounds).
 * Only what the request sets is returned: the model layers its own defaults beneath.
 * `fieldOf` names a parameter as the request's shape spells it (Anthropic's `stop_sequences`,
 * Ollama's `options.temperature`), so the 400 names the field the client sent.
 */
export function requestParams(
  app: FastifyInstance, entry: ModelEntry, body: SamplingBody, fieldOf: (name: string) => string = (name) => name,
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const k of SAMPLING_PARAM_NAMES) if (body[k] != null) values[k] = body[k];
  // The descriptor is max_tokens; the client may have sent it under another name.
  const maxField = (['max_completion_tokens', 'max_output_tokens', 'max_tokens'] as const).find((k) => body[k] != null);
  if (maxField) values.max_tokens = body[maxField];
  const engine = app.manager.engine(entry);
  try {
    resolveParams(engine.descriptors, [{ source: 'request', values }], ['request']);
  } catch (err) {
    if (!isApiError(err) || !err.param) throw err;
    const field = fieldOf(err.param === 'max_tokens' ? (maxField ?? err.param) : err.param);
    if (field === err.param) throw err;
    throw new ApiError(err.code, err.message.replaceAll(`'${err.param}'`, `'${field}'`), { param: field });
  }
  return values;
}

export function wireUsage(u: TokenUsage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    ...(u.cachedPromptTokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cachedPromptTokens } } : {}),
    ...(u.reasoningTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
  };
}

/** Sums the usage of several generations (one per prompt); cache counts only when every one has them. */
export function sumUsage(usages: TokenUsage[]): TokenUsage {
  const sum = (f: (u: TokenUsage) => number | undefined) =>
    usages.every((u) => f(u) !== undefined) ? usages.reduce((n, u) => n + f(u)!, 0) : undefined;
  return {
    promptTokens: sum((u) => u.promptTokens)!,
    completionTokens: sum((u) => u.completionTokens)!,
    reasoningTokens: sum((u) => u.reasoningTokens),
    cachedPromptTokens: sum((u) => u.cachedPromptTokens),
    evaluatedPromptTokens: sum((u) => u.evaluatedPromptTokens),
  };
}

/**
 * One answer's usage over its choices (`n` per prompt, in order): each prompt counted once, as
 * OpenAI counts with `n`, from the choice that read it (the fewest cached tokens: the others
 * may have copied it from that one, which is no cache hit); the completion tokens of every choice.
 */
export function answerUsage(usages: TokenUsage[], n: number): TokenUsage {
  const readers: TokenUsage[] = [];
  for (let p = 0; p < usages.length; p += n) {
    readers.push(usages.slice(p, p + n).reduce((a, b) => ((b.cachedPromptTokens ?? 0) < (a.cachedPromptTokens ?? 0) ? b : a)));
  }
  const all = sumUsage(usages);
  return { ...sumUsage(readers), completionTokens: all.completionTokens, reasoningTokens: all.reasoningTokens };
}

/**
 * The signal of an answer made of parallel generations (prompts, choices): the client leaving
 * or one generation failing stops them all; `fail` rethrows that failure after stopping the rest.
 */
export function answerSignal(client: AbortSignal, generations: number): { signal: AbortSignal; fail: (err: unknown) => never } {
  const failed = new AbortController();
  const signal = AbortSignal.any([client, failed.signal]);
  setMaxListeners(generations + 10, signal);
  return {
    signal,
    fail: (err) => {
      failed.abort(err);
      throw err;
    },
  };
}

/** `modeld_tokens_total`: prompt, completion, and for engines with a prompt cache prompt_cached and prompt_evaluated. */
export function countTokens(app: FastifyInstance, model: string, usage: TokenUsage): void {
  const count = (kind: string, n: number | undefined) => {
    if (n !== undefined && n > 0) app.metrics.tokens.inc({ model, kind }, n);
  };
  count('prompt', usage.promptTokens);
  count('completion', usage.completionTokens);
  count('prompt_cached', usage.cachedPromptTokens);
  count('prompt_evaluated', usage.evaluatedPromptTokens);
}

export const unixNow = () => Math.floor(Date.now() / 1000);

/**
 * The prompt's length in tokens as a chat would give it to the model (template and tools
 * included), from the model's tokenizer without a turn in its queue: Anthropic's count_tokens,
 * OpenAI's and llama-server's input_tokens.
 */
export function promptTokenCount(app: FastifyInstance, entry: ModelEntry, keepAlive: unknown, messages: ChatMessage[], tools?: ToolOptions): Promise<number> {
  return app.manager.use(entry, { capability: 'chat', keepAlive }, (loaded) => {
    if (!loaded.renderChat) throw new ApiError('model_not_capable', `the model '${entry.id}' chats through a server whose tokenizer this server cannot read`, { param: 'model' });
    return loaded.renderChat(messages, tools).tokens;
  });
}

/** How a stream's frames are written. */
export interface EventStreamStyle {
  /** Each frame names its event (`event: <data.type>`), as the Responses API's stream does. */
  named?: boolean;
  /** Ends with `data: [DONE]` (chat and completions; default true). */
  done?: boolean;
  /** Newline-delimited JSON instead of server-sent events, as Ollama's API streams (no [DONE]). */
  ndjson?: boolean;
}

/**
 * Answers with server-sent events (`data: {json}` frames ending in `data: [DONE]`) once `run`
 * emits its first event. A failure before that (unknown model, full queue, failed load) is an
 * ordinary JSON error with its status; after it, an `data: {"error": ...}` frame the OpenAI
 * SDKs raise as an APIError.
 *
 * The response is taken over at the first frame (`openEventStream`): a frame per token through
 * a PassThrough piped into the response cost a stream transform, a pipe hop and a deferred
 * uncork per token on the event loop, which shares 2 cores with the decode (docs/cpu-batching.md §6).
 */
export async function sendEventStream(
  reply: FastifyReply,
  run: (emit: (data: unknown) => void) => Promise<void>,
  style: EventStreamStyle = {},
): Promise<FastifyReply> {
  const raw = reply.raw;
  let started = false;
  let onStart!: () => void;
  const start = new Promise<void>((resolve) => (onStart = resolve));
  // Writes after the client left are dropped; the AbortSignal stops the generation.
  const write = (frame: string) => {
    if (!raw.destroyed && !raw.writableEnded) raw.write(frame);
  };
  const open = () => {
    started = true;
    openEventStream(reply, style.ndjson ? 'application/x-ndjson' : undefined);
    onStart();
  };
  const frame = (data: unknown) =>
    style.ndjson ? `${JSON.stringify(data)}\n`
    : style.named ? `event: ${(data as { type: string }).type}\ndata: ${JSON.stringify(data)}\n\n` : `data: ${JSON.stringify(data)}\n\n`;
  const emit = (data: unknown) => {
    if (!started) open();
    write(frame(data));
  };
  const done = run(emit).then(
    () => {
      if (style.done !== false && !style.ndjson) write('data: [DONE]\n\n');
      raw.end();
    },
    (err: unknown) => {
      if (!started) throw err;
      const e = isApiError(err) ? err : new ApiError('internal_error', 'internal server error', { cause: err });
      if (e.code !== 'request_aborted') reply.log.warn({ err }, 'stream failed');
      // The OpenAI SDKs raise a frame with an `error` member as an APIError.
      write(frame(style.named ? { type: 'error', ...e.toJSON() } : e.toJSON()));
      raw.end();
    },
  );
  await Promise.race([start, done]);
  return reply;
}
