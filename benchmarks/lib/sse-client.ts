/**
 * A streaming OpenAI `/v1/completions` and `/v1/chat/completions` client that times what a user sees:
 * time to the first token and the decode rate after it. The same client
 * drives modeld and llama-server, so both pay the same HTTP and parsing cost.
 */

export interface StreamRequest {
  baseUrl: string;
  /** Model id (llama-server ignores it). */
  model: string;
  /** A raw prompt for `/v1/completions`, or chat messages for `/v1/chat/completions`. */
  prompt: string | Array<{ role: string; content: string }>;
  /** Tokens to generate. */
  maxTokens: number;
  /** Extra body fields (server-specific switches such as `ignore_eos`). */
  extra?: Record<string, unknown>;
  signal?: AbortSignal;
}

export interface StreamResult {
  /** Send to first non-empty text chunk, ms. */
  ttftMs: number;
  /** Send to `[DONE]`, ms. */
  totalMs: number;
  /** Completion tokens: usage.completion_tokens when reported, else the number of text chunks. */
  tokens: number;
  /** Prompt tokens as the server counted them (undefined when not reported). */
  promptTokens: number | undefined;
  /** Text chunks received (≈ tokens for llama.cpp servers, which send one per token). */
  chunks: number;
  /** (tokens − 1) / (last chunk − first chunk): decode speed excluding prompt processing, tokens/s. */
  decodeTps: number;
  /** Wall-clock times (performance.now) of send, first token and end, for aggregate figures. */
  sentAt: number;
  firstAt: number;
  endAt: number;
  finishReason: string | undefined;
  /** The generated text. */
  text: string;
}

interface Chunk {
  choices?: Array<{ text?: string; delta?: { content?: string }; finish_reason?: string | null }>;
  usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
  timings?: { predicted_n?: number; prompt_n?: number };
}

/** Streams one completion to the end and returns its timings; throws on HTTP errors. */
export async function streamCompletion(req: StreamRequest): Promise<StreamResult> {
  const sentAt = performance.now();
  const chat = typeof req.prompt !== 'string';
  const res = await fetch(`${req.baseUrl}/v1/${chat ? 'chat/completions' : 'completions'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({
      model: req.model,
      ...(chat ? { messages: req.prompt } : { prompt: req.prompt }),
      max_tokens: req.maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ...req.extra,
    }),
    signal: req.signal,
  });
  if (!res.ok || !res.body) throw new Error(`POST ${res.url}: HTTP ${res.status} ${await res.text()}`);

  let firstAt = 0;
  let lastAt = 0;
  let chunks = 0;
  let usageTokens: number | undefined;
  let promptTokens: number | undefined;
  let finishReason: string | undefined;
  let buffer = '';
  let generated = '';
  const decoder = new TextDecoder();
  const handle = (data: string): void => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as Chunk;
    const now = performance.now();
    for (const choice of chunk.choices ?? []) {
      const text = choice.text ?? choice.delta?.content ?? '';
      if (text.length > 0) {
        generated += text;
        chunks++;
        if (firstAt === 0) firstAt = now;
        lastAt = now;
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
    if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
    if (chunk.usage?.prompt_tokens !== undefined) promptTokens = chunk.usage.prompt_tokens;
    if (usageTokens === undefined && chunk.timings?.predicted_n !== undefined) usageTokens = chunk.timings.predicted_n;
    if (promptTokens === undefined && chunk.timings?.prompt_n !== undefined) promptTokens = chunk.timings.prompt_n;
  };
  for await (const part of res.body) {
    buffer += decoder.decode(part as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line.startsWith('data:')) handle(line.slice(5).trim());
    }
  }
  const endAt = performance.now();
  const tokens = usageTokens ?? chunks;
  return {
    ttftMs: firstAt - sentAt,
    totalMs: endAt - sentAt,
    tokens,
    promptTokens,
    chunks,
    decodeTps: tokens > 1 && lastAt > firstAt ? (tokens - 1) / ((lastAt - firstAt) / 1000) : NaN,
    sentAt,
    firstAt,
    endAt,
    finishReason,
    text: generated,
  };
}

export interface ConcurrentResult {
  streams: StreamResult[];
  /** All completion tokens over first send → last end, tokens/s. */
  aggregateTps: number;
}

/** Runs `n` streams at once (distinct prompts from `promptFor`) and aggregates them. */
export async function concurrentStreams(n: number, make: (i: number) => StreamRequest): Promise<ConcurrentResult> {
  const streams = await Promise.all(Array.from({ length: n }, (_, i) => streamCompletion(make(i))));
  const start = Math.min(...streams.map((s) => s.sentAt));
  const end = Math.max(...streams.map((s) => s.endAt));
  const tokens = streams.reduce((a, s) => a + s.tokens, 0);
  return { streams, aggregateTps: tokens / ((end - start) / 1000) };
}

export interface PhaseFigures {
  /** As `ConcurrentResult.aggregateTps`: prefill included. */
  aggregate: number;
  /** Tokens after each stream's first / (last end − last first token): the decode phase alone. */
  phase: number;
  /** Mean of the streams' own decode tok/s. */
  perStream: number;
  /** First send → the last stream's first token, ms: the prefill of them all. */
  lastFirstTokenMs: number;
}

/** Splits a concurrent run into its prefill and decode phases (diagnostics that take the prefill out). */
export function phaseFigures(r: ConcurrentResult): PhaseFigures {
  const lastFirst = Math.max(...r.streams.map((s) => s.firstAt));
  const lastEnd = Math.max(...r.streams.map((s) => s.endAt));
  return {
    aggregate: r.aggregateTps,
    phase: r.streams.reduce((a, s) => a + s.tokens - 1, 0) / ((lastEnd - lastFirst) / 1000),
    perStream: r.streams.reduce((a, s) => a + s.decodeTps, 0) / r.streams.length,
    lastFirstTokenMs: lastFirst - Math.min(...r.streams.map((s) => s.sentAt)),
  };
}
