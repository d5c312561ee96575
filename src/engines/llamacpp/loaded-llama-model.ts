import {
  LlamaChat, LlamaCompletion, LlamaVocabularyType,
  type ChatHistoryItem, type ChatWrapper, type Llama, type LlamaContext, type LlamaContextSequence,
  type LlamaEmbeddingContext, type LlamaGrammar, type LLamaContextualRepeatPenalty, type LlamaModel, type Token,
} from 'node-llama-cpp';
import { ApiError } from '../../errors.ts';
import { resolveParams } from '../descriptors.ts';
import type {
  Capability, ChatMessage, EmbeddingResult, GenerateOptions, GenerationResult, LoadedModel, ResponseFormat,
} from '../engine.ts';
import type { BatchScheduler, BatchStats } from './batch-schedule.ts';
import { LLAMACPP_DESCRIPTORS } from './descriptors.ts';
import { SequencePool } from './sequence-pool.ts';
import { StopText } from './stop-text.ts';

export interface LoadedLlamaModelParts {
  id: string;
  llama: Llama;
  model: LlamaModel;
  /** The generation context with `n_parallel` sequences; absent for embedding-only models. */
  context?: LlamaContext;
  embeddingContext?: LlamaEmbeddingContext;
  /** Tokens the embedding context holds (an input must be shorter). */
  embeddingContextSize?: number;
  chatWrapper?: ChatWrapper;
  /** Run parameters in effect after the load (every scope), the base of each request's. */
  params: Record<string, unknown>;
  /** The batch barrier the context was created with (`batching: scheduler.batching`); counts every decode. */
  scheduler: BatchScheduler;
  /** Facts shown in the model state beside the live batching counters. */
  facts: Record<string, unknown>;
}

interface SamplerOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed?: number;
  repeatPenalty: false | LLamaContextualRepeatPenalty;
}

type GenerationCallOptions = SamplerOptions & {
  signal: AbortSignal;
  stopOnAbortSignal: boolean;
  onTextChunk: (text: string) => void;
  onToken: (tokens: Token[]) => void;
};

/** Request parameters after precedence, as the sampler reads them. */
interface Sampling {
  maxTokens?: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed?: number;
  stop: string[];
  presencePenalty: number;
  frequencyPenalty: number;
  repeatPenalty: number;
  repeatLastN: number;
}

/** Prompt-cache counters since the load, shown in the model state as `info.prompt_cache`. */
interface PromptCacheCounters {
  /** Generations run. */
  requests: number;
  /** Prompt tokens taken from a sequence's KV cache (the sum of `cached_tokens`). */
  cached_tokens: number;
  /** Prompt tokens evaluated, as node-llama-cpp's token meter counted them. */
  evaluated_tokens: number;
}

/**
 * A GGUF model loaded for serving: one context with `n_parallel` sequences that node-llama-cpp
 * decodes in shared batches (held together by the batch barrier), plus an embedding context
 * when the model embeds. Each request leases, from a {@link SequencePool}, the free sequence
 * whose cached tokens share the longest prefix with its prompt; the sequence keeps its KV cache
 * after the request, so the next turn of a conversation evaluates only its new tokens.
 */
export class LoadedLlamaModel implements LoadedModel {
  readonly capabilities: ReadonlySet<Capability>;
  readonly concurrency: number;
  readonly #p: LoadedLlamaModelParts;
  readonly #pool: SequencePool<LlamaContextSequence> | undefined;
  readonly #cache: PromptCacheCounters = { requests: 0, cached_tokens: 0, evaluated_tokens: 0 };
  #disposed: Promise<void> | undefined;
  /** The JSON grammar holds no per-generation state, so one serves every json_object request. */
  #jsonGrammar: Promise<LlamaGrammar> | undefined;

  constructor(parts: LoadedLlamaModelParts) {
    this.#p = parts;
    const caps = new Set<Capability>();
    if (parts.context) {
      caps.add('chat');
      caps.add('completion');
      this.#pool = new SequencePool(Array.from({ length: parts.context.totalSequences }, () => parts.context!.getSequence()));
    }
    if (parts.embeddingContext) caps.add('embedding');
    this.capabilities = caps;
    this.concurrency = parts.context?.totalSequences ?? 1;
  }

  get info(): Record<string, unknown> {
    return { ...this.#p.facts, batching: batchingState(this.#p.scheduler.stats()), prompt_cache: { ...this.#cache } };
  }

  async complete(prompt: string, options: GenerateOptions): Promise<GenerationResult> {
    const s = this.#sampling(options.params);
    const model = this.#p.model;
    const bos = beginningToken(model);
    const tokens: Token[] = [...(bos != null ? [bos] : []), ...model.tokenize(prompt, false, bos != null ? 'trimLeadingSpace' : undefined)];
    const maxTokens = this.#budget(tokens.length, s.maxTokens, 'prompt');
    const grammar = await this.#grammar(options.responseFormat);
    // The BOS is ours: LlamaCompletion would prepend another to a token array.
    const input = bos != null ? tokens.slice(1) : tokens;
    return this.#onSequence(tokens, s, maxTokens, options, async (sequence, o) => {
      const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
      try {
        return await completion.generateCompletionWithMeta(input, { ...o, grammar });
      } finally {
        completion.dispose({ disposeSequence: false });
      }
    });
  }

  async chat(messages: ChatMessage[], options: GenerateOptions): Promise<GenerationResult> {
    const wrapper = this.#p.chatWrapper!;
    const s = this.#sampling(options.params);
    const history = this.#history(messages);
    // The tokens LlamaChat will evaluate (same wrapper, same history): they pick the sequence.
    const promptTokens = wrapper.generateContextState({ chatHistory: history }).contextText.tokenize(this.#p.model.tokenizer);
    const maxTokens = this.#budget(promptTokens.length, s.maxTokens, 'messages');
    const grammar = await this.#grammar(options.responseFormat);
    return this.#onSequence(promptTokens, s, maxTokens, options, async (sequence, o) => {
      const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: wrapper, autoDisposeSequence: false });
      try {
        return await chat.generateResponse(history, { ...o, grammar });
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    });
  }

  async embed(inputs: string[], signal: AbortSignal): Promise<EmbeddingResult> {
    const ctx = this.#p.embeddingContext!;
    const model = this.#p.model;
    const limit = this.#p.embeddingContextSize ?? 0;
    const vectors: number[][] = [];
    let promptTokens = 0;
    for (const [i, text] of inputs.entries()) {
      signal.throwIfAborted();
      const tokens = embeddingTokens(model, text);
      if (tokens.length >= limit) {
        throw new ApiError('context_length_exceeded', `input[${i}] has ${tokens.length} tokens; the model's embedding context holds ${limit - 1}`, { param: 'input' });
      }
      promptTokens += tokens.length;
      const { vector } = await ctx.getEmbeddingFor(tokens);
      vectors.push(normalize(vector));
    }
    return { vectors, promptTokens };
  }

  /** Waits for running generations to end (the manager aborts them first), then frees native memory. */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      await this.#p.embeddingContext?.dispose();
      await this.#p.context?.dispose();
      await this.#p.model.dispose();
    })();
    return this.#disposed;
  }

  /**
   * Runs one generation with the request's sampling, streaming text through the stop-sequence
   * filter; a stop match ends it like the model's own end. The client's abort rejects.
   */
  async #generate(
    s: Sampling,
    maxTokens: number,
    promptTokens: number,
    options: GenerateOptions,
    run: (o: GenerationCallOptions) => Promise<{ metadata: { stopReason: string } }>,
  ): Promise<GenerationResult> {
    const stopAc = new AbortController();
    const stop = new StopText(s.stop, options.onText);
    let generated = 0;
    const res = await run({
      ...this.#samplerOptions(s, maxTokens),
      signal: AbortSignal.any([options.signal, stopAc.signal]),
      stopOnAbortSignal: true,
      onTextChunk: (text) => {
        if (stop.push(text)) stopAc.abort();
      },
      onToken: (t) => (generated += t.length),
    });
    options.signal.throwIfAborted();
    stop.flush();
    return {
      text: stop.text,
      finishReason: !stop.matched && res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
      usage: { promptTokens, completionTokens: generated },
    };
  }

  #sampling(request: Record<string, unknown>): Sampling {
    const p = resolveParams(
      LLAMACPP_DESCRIPTORS,
      [
        { source: `the model's parameters`, values: this.#p.params },
        { source: 'request', values: request },
      ],
      ['request'],
    );
    const seed = p.seed as number | undefined;
    return {
      maxTokens: p.max_tokens as number | undefined,
      temperature: p.temperature as number,
      topP: p.top_p as number,
      topK: p.top_k as number,
      minP: p.min_p as number,
      seed: seed === undefined || seed < 0 ? undefined : seed,
      stop: (p.stop as string[] | undefined) ?? [],
      presencePenalty: p.presence_penalty as number,
      frequencyPenalty: p.frequency_penalty as number,
      repeatPenalty: p.repeat_penalty as number,
      repeatLastN: p.repeat_last_n as number,
    };
  }

  #samplerOptions(s: Sampling, maxTokens: number): SamplerOptions {
    const penalize = s.repeatPenalty !== 1 || s.presencePenalty !== 0 || s.frequencyPenalty !== 0;
    return {
      maxTokens,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      seed: s.seed,
      repeatPenalty: penalize && s.repeatLastN > 0
        ? { lastTokens: s.repeatLastN, penalty: s.repeatPenalty, presencePenalty: s.presencePenalty, frequencyPenalty: s.frequencyPenalty, penalizeNewLine: true }
        : (false as const),
    };
  }

  /** Tokens left for the answer in one sequence; a prompt that fills it is a 400. */
  #budget(promptTokens: number, maxTokens: number | undefined, param: 'prompt' | 'messages'): number {
    const ctxLen = this.#p.context!.contextSize;
    const room = ctxLen - promptTokens;
    if (room < 1) {
      throw new ApiError('context_length_exceeded', `the prompt has ${promptTokens} tokens; this model's context holds ${ctxLen} per sequence (ctx_len) including the answer`, { param });
    }
    return Math.min(room, maxTokens ?? room);
  }

  async #grammar(format: ResponseFormat | undefined): Promise<LlamaGrammar | undefined> {
    if (!format || format.type === 'text') return undefined;
    if (format.type === 'json_object') return (this.#jsonGrammar ??= this.#p.llama.getGrammarFor('json'));
    try {
      return await this.#p.llama.createGrammarForJsonSchema(format.schema as never);
    } catch (err) {
      throw new ApiError('invalid_value', `response_format.json_schema.schema cannot be turned into a grammar: ${(err as Error).message}`, {
        param: 'response_format.json_schema.schema', cause: err,
      });
    }
  }

  #history(messages: ChatMessage[]): ChatHistoryItem[] {
    const history: ChatHistoryItem[] = [];
    const pre = this.#p.params.pre_prompt as string | undefined;
    if (pre && !messages.some((m) => m.role === 'system') && this.#p.chatWrapper?.wrapperName === 'Jan') history.push({ type: 'system', text: pre });
    for (const m of messages) {
      if (m.role === 'system') history.push({ type: 'system', text: m.content });
      else if (m.role === 'user') history.push({ type: 'user', text: m.content });
      else history.push({ type: 'model', response: [m.content] });
    }
    // A trailing assistant message is a prefix the answer continues; otherwise the answer starts empty.
    if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] });
    return history;
  }

  /**
   * Leases the sequence that caches the longest prefix of `promptTokens` and runs one generation
   * on it, counted by the batch barrier. The sequence's history is never cleared: node-llama-cpp
   * erases only the cached tokens that differ from the new prompt and evaluates the rest.
   */
  async #onSequence(
    promptTokens: readonly Token[],
    s: Sampling,
    maxTokens: number,
    options: GenerateOptions,
    run: (sequence: LlamaContextSequence, o: GenerationCallOptions) => Promise<{ metadata: { stopReason: string } }>,
  ): Promise<GenerationResult> {
    const signal = options.signal;
    signal.throwIfAborted();
    // The manager's queue runs at most n_parallel requests, so a lease is free here.
    const lease = await this.#pool!.acquire(promptTokens, signal);
    try {
      const sequence = lease.sequence;
      const meter = sequence.tokenMeter;
      const decodedBefore = meter.usedInputTokens + meter.usedOutputTokens;
      const sampledBefore = meter.usedOutputTokens;
      const result = await this.#p.scheduler.track(() => this.#generate(s, maxTokens, promptTokens.length, options, (o) => run(sequence, o)));
      // Every sampled token counts, also the last few node-llama-cpp holds back as an incomplete
      // UTF-8 sequence when max_tokens cuts it (they never reach onToken).
      result.usage.completionTokens = Math.max(result.usage.completionTokens, meter.usedOutputTokens - sampledBefore);
      // Measured, not derived from the lease: every token decoded for this request, less the
      // generated ones the sequence now holds after the prompt.
      const decoded = meter.usedInputTokens + meter.usedOutputTokens - decodedBefore;
      const evaluated = decoded - (sequence.nextTokenIndex - promptTokens.length);
      result.usage.cachedPromptTokens = lease.cachedPrefix;
      result.usage.evaluatedPromptTokens = evaluated;
      this.#cache.requests++;
      this.#cache.cached_tokens += lease.cachedPrefix;
      this.#cache.evaluated_tokens += evaluated;
      return result;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      lease.release();
    }
  }
}

/** The batch barrier's counters in the model state's `info.batching` form. */
function batchingState(stats: BatchStats) {
  const sizes = Object.keys(stats.histogram).map(Number);
  return {
    batches: stats.batches,
    tokens: stats.tokens,
    shared_batches: sizes.filter((n) => n > 1).reduce((sum, n) => sum + stats.histogram[n]!, 0),
    max_sequences: sizes.length > 0 ? Math.max(...sizes) : 0,
    sequences_per_batch: Object.fromEntries(sizes.sort((a, b) => a - b).map((n) => [String(n), stats.histogram[n]!])),
    timeouts: stats.timeouts,
  };
}

/**
 * The token llama.cpp puts before a prompt, by node-llama-cpp's rules (mirrors its internal
 * `resolveBeginningTokenToPrepend`, which is not exported).
 */
export function beginningToken(model: LlamaModel): Token | null {
  const v = model.vocabularyType;
  if (v === LlamaVocabularyType.rwkv || v === LlamaVocabularyType.ugm) return null;
  if (v === LlamaVocabularyType.wpm) return model.tokens.bos;
  return model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
}

/** The token llama.cpp puts after an input to embed (mirrors `resolveEndTokenToAppend`). */
function endToken(model: LlamaModel): Token | null {
  const v = model.vocabularyType;
  if (v === LlamaVocabularyType.rwkv) return null;
  if (v === LlamaVocabularyType.wpm) return model.tokens.sep;
  if (v === LlamaVocabularyType.ugm) return model.tokens.eos;
  return model.tokens.shouldAppendEosToken ? model.tokens.eos : null;
}

/** The tokens an embedding evaluates, special tokens included, so usage counts what ran. */
function embeddingTokens(model: LlamaModel, text: string): Token[] {
  const tokens = model.tokenize(text);
  const bos = beginningToken(model);
  const eos = endToken(model);
  if (bos != null && tokens[0] !== bos) tokens.unshift(bos);
  if (eos != null && tokens.at(-1) !== eos) tokens.push(eos);
  return tokens;
}

/** Unit length, as OpenAI's embeddings and llama-server's are. */
function normalize(v: readonly number[]): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? v.map((x) => x / norm) : [...v];
}
