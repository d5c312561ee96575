import { randomInt } from 'node:crypto';
import {
  LlamaGrammarEvaluationState, LlamaText, LlamaVocabularyType, isChatModelResponseFunctionCall, isLlamaText,
  type ChatHistoryItem, type ChatModelFunctions, type ChatModelResponse, type ChatWrapper, type GbnfJsonSchema, type Llama, type LlamaContext,
  type LlamaEmbeddingContext, type LlamaGrammar, type LlamaModel, type Token,
} from 'node-llama-cpp';
import { ApiError } from '../../errors.ts';
import { resolveParams } from '../descriptors.ts';
import { unitLength } from '../unit-length.ts';
import type {
  Capability, ChatMessage, ChatResult, EmbeddingResult, GenerateOptions, GenerationResult, InfillOptions, LoadedModel, PromptPiece, RankResult, ResponseFormat, SlotView,
  TokenLogprob, ToolFunction, ToolOptions,
} from '../engine.ts';
import { DecodeLoop, type KvSequence } from './decode-loop.ts';
import { CPU_ATTENTION_TILE } from './prompt-chunks.ts';
import { LLAMACPP_DESCRIPTORS } from './descriptors.ts';
import { Generation, type RepeatPenalty, type TokenPiece } from './generation.ts';
import { rawTokenBytes } from './token-bytes.ts';
import { createLogprobReaders, createNativeSampler, disposeLogprobReaders, nativeContext, nativeGrammarState, type NativeSamplerConfig } from './native-context.ts';
import type { RerankPrompt } from './rerank-prompt.ts';
import { SequencePool } from './sequence-pool.ts';
import type { ThoughtSegment } from './thought-split.ts';
import { plainText, templateText } from './llama-text.ts';
import { callHeads, parseToolCalls, ToolCallSplit, ToolCallStream, toolCallGrammar, toolCallSyntax, type ToolCallSyntax } from './tool-calls.ts';

export interface LoadedLlamaModelParts {
  id: string;
  llama: Llama;
  model: LlamaModel;
  /** The generation context with `n_parallel` sequences; absent for embedding-only models. */
  context?: LlamaContext;
  embeddingContext?: LlamaEmbeddingContext;
  /** Tokens the embedding context holds (an input must be shorter). */
  embeddingContextSize?: number;
  /**
   * Set for a reranker (GGUF pooling type rank), whose embedding context yields a relevance
   * head's output instead of an embedding: how a pair is laid out, and how the head's first
   * value becomes the score.
   */
  reranker?: { prompt: RerankPrompt; relevance: (output: number) => number };
  chatWrapper?: ChatWrapper;
  /** Run parameters in effect after the load (every scope), the base of each request's. */
  params: Record<string, unknown>;
  /** Called once per decode with the number of sequences in the batch (the batch-size metric). */
  onBatch?: (sequences: number) => void;
  /** Sample behind each decode on the pool thread (only with a one-thread libuv pool; see DecodeLoop). */
  pipelineSampling?: boolean;
  /** Facts shown in the model state beside the live batching counters. */
  facts: Record<string, unknown>;
}

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
  /** Token id → logit bias (OpenAI logit_bias, plus −Infinity on end-of-generation tokens for ignore_eos). */
  tokenBias: Map<number, number>;
}

/** Counters of the decodes since the load, shown in the model state as `info.batching`. */
interface BatchStats {
  /** Decode calls. */
  batches: number;
  /** Tokens decoded, summed over batches. */
  tokens: number;
  /** Decode calls by number of sequences in the batch (key: sequences, value: batches). */
  histogram: Record<number, number>;
}

/** Lets a caller of `#generate` look at the finished generation (its tokens). */
interface GenerationProbe {
  generation?: Generation;
}

/**
 * How the prompt's kind shapes the answer: what ends it besides the model's end-of-generation
 * tokens, what its start drops, where its thought is, whether its text continues the prompt.
 */
interface AnswerShape {
  strings: string[];
  tokens: Set<Token>;
  ignoreStart?: string[];
  thought?: ThoughtSegment;
  /** A raw completion: the answer's text continues the prompt's (see GenerationOptions). */
  continuesPrompt?: boolean;
  /** Ends the answer when it returns true (see GenerationOptions). */
  endWhen?: () => boolean;
}

/**
 * A request whose prompt shares at least this many tokens it would read with a running
 * request's (OpenAI `n`, one system prompt for several users) copies them from that request's
 * sequence instead (DecodeLoop's `sharePromptsFrom`). Below it, reading the tokens costs about
 * what copying a sequence's whole KV buffer does.
 */
const SHARE_PROMPTS_FROM = 32;

/** Prompt-cache counters since the load, shown in the model state as `info.prompt_cache`. */
interface PromptCacheCounters {
  /** Generations run. */
  requests: number;
  /** Prompt tokens taken from a sequence's KV cache (the sum of `cached_tokens`). */
  cached_tokens: number;
  /** Of those, tokens copied from another running request's sequence. */
  shared_tokens: number;
  /** Prompt tokens evaluated, as node-llama-cpp's token meter counted them. */
  evaluated_tokens: number;
}

/**
 * A GGUF model loaded for serving: one context with `n_parallel` sequences that modeld's
 * {@link DecodeLoop} decodes in shared batches, plus an embedding context when the model
 * embeds. Each request leases, from a {@link SequencePool}, the free sequence whose cached
 * tokens share the longest prefix with its prompt; the sequence keeps its KV cache after the
 * request, so the next turn of a conversation evaluates only its new tokens.
 */
export class LoadedLlamaModel implements LoadedModel {
  readonly capabilities: ReadonlySet<Capability>;
  readonly concurrency: number;
  readonly #p: LoadedLlamaModelParts;
  readonly #pool: SequencePool<KvSequence> | undefined;
  readonly #loop: DecodeLoop | undefined;
  readonly #cache: PromptCacheCounters = { requests: 0, cached_tokens: 0, shared_tokens: 0, evaluated_tokens: 0 };
  readonly #batches: BatchStats = { batches: 0, tokens: 0, histogram: {} };
  #disposed: Promise<void> | undefined;
  /** The JSON grammar holds no per-generation state, so one serves every json_object request. */
  #jsonGrammar: Promise<LlamaGrammar> | undefined;
  #repoTokens: { repo?: Token; file?: Token } | undefined;
  #vocab: number | undefined;
  #eog: number[] | undefined;
  /** Token texts and bytes for logprobs (special tokens with their own text), filled as asked for. */
  readonly #tokenPieces = new Map<Token, TokenPiece>();
  #pieceLead: Token[] | undefined;

  constructor(parts: LoadedLlamaModelParts) {
    this.#p = parts;
    const caps = new Set<Capability>(['tokenize']);
    if (parts.context) {
      caps.add('chat');
      caps.add('completion');
      const sequences = Array.from({ length: parts.context.totalSequences }, (_, id): KvSequence => ({ id, contextTokens: [] }));
      this.#pool = new SequencePool(sequences);
      this.#loop = new DecodeLoop(nativeContext(parts.context), {
        batchSize: parts.context.batchSize,
        pipelineSampling: parts.pipelineSampling,
        sharePromptsFrom: SHARE_PROMPTS_FROM,
        // ggml-cpu's flash attention tiles from 64 rows; without flash attention, attention is a matrix
        // product at any width, and offloaded layers attend on the GPU, whose kernels were not measured.
        minPromptChunk: parts.context.flashAttention && parts.model.gpuLayers === 0 ? CPU_ATTENTION_TILE : 0,
        onBatch: (sequences, tokens) => {
          const b = this.#batches;
          b.batches++;
          b.tokens += tokens;
          b.histogram[sequences] = (b.histogram[sequences] ?? 0) + 1;
          parts.onBatch?.(sequences);
        },
      });
    }
    if (parts.embeddingContext) caps.add(parts.reranker ? 'rerank' : 'embedding');
    this.capabilities = caps;
    this.concurrency = parts.context?.totalSequences ?? 1;
  }

  slots(): SlotView[] {
    const nCtx = this.#p.context?.contextSize ?? 0;
    return (this.#pool?.sequences ?? []).map(({ sequence, busy }) => ({ id: sequence.id, nCtx, processing: busy, cachedTokens: sequence.contextTokens.length }));
  }

  get chatTemplate(): string | undefined {
    return ggufChatTemplate(this.#p.model);
  }

  get info(): Record<string, unknown> {
    return { ...this.#p.facts, batching: batchingState(this.#batches), prompt_cache: { ...this.#cache } };
  }

  async complete(prompt: string | readonly PromptPiece[], options: GenerateOptions): Promise<GenerationResult> {
    const s = this.#sampling(options.params, options.choice);
    const tokens = options.suffix !== undefined ? this.#infillTokens(prompt, options.suffix, options.infill ?? {}, s.maxTokens)
      : typeof prompt === 'string' ? this.#textTokens(prompt, true) : this.#promptTokens(prompt);
    const maxTokens = this.#budget(tokens.length, s.maxTokens, 'prompt');
    const grammar = await this.#grammar(options.responseFormat);
    return this.#generate(tokens, s, maxTokens, options, grammar, { strings: [], tokens: new Set(), continuesPrompt: true });
  }

  /**
   * A fill-in-the-middle prompt as llama-server's /infill builds it (`format_infill`): the
   * extra files (after the repository token and a name, each after the file-separator token
   * and its name, or a `--- snippet ---` line when the model has no such tokens), BOS when the
   * model adds one, then prefix, the typed `prompt`, suffix, middle (PSM order). Texts are
   * tokenized without their special tokens (the typed prompt with them, as llama-server
   * does). The answer is the middle, ended by the model's end-of-generation tokens.
   */
  #infillTokens(prompt: string | readonly PromptPiece[], suffix: string, infill: InfillOptions, maxTokens: number | undefined): Token[] {
    const { prefix, suffix: suf, middle } = this.#p.model.tokens.infill;
    if (prefix == null || suf == null || middle == null) {
      throw new ApiError('model_not_capable', `'suffix': this model has no fill-in-the-middle tokens (a code model's <|fim_prefix|>, <|fim_suffix|>, <|fim_middle|>)`, { param: 'suffix' });
    }
    if (typeof prompt !== 'string') throw new ApiError('unsupported_feature', `'suffix' goes with a text prompt, not token ids`, { param: 'prompt' });
    let before = this.#textTokens(prompt, false);
    let after = this.#textTokens(suffix, false);
    const typed = infill.prompt ? this.tokenize(infill.prompt, { addSpecial: false, parseSpecial: true }) as Token[] : [];
    let extra = infill.extra?.length ? this.#infillExtra(infill.extra) : [];
    if (infill.fit) {
      // llama-server's shares: the prefix's last ¾ batch, the suffix's first ¼ batch less the
      // markers and the typed prompt, and the extra files' last tokens in what is left of the context.
      const batch = this.#p.params.n_batch as number;
      const ctx = this.#p.context!.contextSize;
      before = before.slice(Math.max(0, before.length - Math.floor((3 * batch) / 4)));
      after = after.slice(0, Math.max(0, Math.floor(batch / 4) - (2 + typed.length)));
      const room = Math.max(0, ctx - batch - 2 * Math.max(0, maxTokens ?? 0));
      extra = extra.slice(Math.max(0, extra.length - room));
    }
    const bos = beginningToken(this.#p.model);
    return [...extra, ...(bos != null ? [bos] : []), prefix, ...before, ...typed, suf, ...after, middle];
  }

  /** llama-server's repository-level context for /infill's `input_extra`. */
  #infillExtra(files: NonNullable<InfillOptions['extra']>): Token[] {
    const { repo, file } = this.#repoTokens ??= findRepoTokens(this.#p.model);
    const out: Token[] = [];
    if (repo != null) out.push(repo, ...this.#textTokens('myproject\n', false));
    for (const f of files) {
      if (file != null) out.push(file, ...this.#textTokens(`${f.filename}\n`, false));
      else out.push(...this.#textTokens('\n\n--- snippet ---\n\n', false));
      out.push(...this.#textTokens(f.text, false));
    }
    if (file != null) out.push(file, ...this.#textTokens('filename\n', false));
    return out;
  }

  promptText(prompt: readonly PromptPiece[]): string {
    const tokens = this.#promptTokens(prompt);
    // The BOS a mixed prompt's first text got is the server's, not something the client sent.
    const added = typeof prompt[0] === 'string' && beginningToken(this.#p.model) != null ? 1 : 0;
    return this.#p.model.detokenize(tokens.slice(added), true);
  }

  checkPrompt(prompt: string | readonly PromptPiece[]): void {
    const tokens = typeof prompt === 'string' ? this.#textTokens(prompt, true) : this.#promptTokens(prompt);
    this.#budget(tokens.length, undefined, 'prompt');
  }

  /** A text prompt's tokens; with `bos`, after the model's BOS token (node-llama-cpp's rule). */
  #textTokens(text: string, bos: boolean): Token[] {
    return this.tokenize(text, { addSpecial: bos, parseSpecial: false }) as Token[];
  }

  tokenize(text: string, options: { addSpecial: boolean; parseSpecial: boolean }): number[] {
    const model = this.#p.model;
    const first = options.addSpecial ? beginningToken(model) : undefined;
    return [...(first != null ? [first] : []), ...model.tokenize(text, options.parseSpecial, first != null ? 'trimLeadingSpace' : undefined)];
  }

  tokenPieces(tokens: readonly number[], field: string): TokenPiece[] {
    this.#checkIds(tokens, field);
    return tokens.map((t) => this.#tokenPiece(t as Token));
  }

  detokenize(tokens: readonly number[], field: string): string {
    this.#checkIds(tokens, field);
    return this.#p.model.detokenize(tokens as Token[], true);
  }

  /** Token ids checked against the vocabulary before they reach native code; a 400 names `field[i]`. */
  #checkIds(ids: readonly PromptPiece[], field: string): void {
    const vocab = this.#vocabularySize();
    const bad = ids.findIndex((id) => typeof id === 'number' && (!Number.isInteger(id) || id < 0 || id >= vocab));
    if (bad >= 0) {
      throw new ApiError('invalid_value', `token id ${ids[bad]} at ${field}[${bad}] is not in this model's vocabulary (0–${vocab - 1})`, { param: `${field}[${bad}]` });
    }
  }

  /**
   * A token prompt's ids, checked against the vocabulary before they reach native code. In a
   * mixed prompt the texts are tokenized in place, with BOS only when a text comes first, as
   * llama-server does; the ids stay verbatim.
   */
  #promptTokens(prompt: readonly PromptPiece[]): Token[] {
    this.#checkIds(prompt, 'prompt');
    if (prompt.every((piece) => typeof piece === 'number')) return prompt as Token[];
    return prompt.flatMap((piece, i) => (typeof piece === 'number' ? [piece as Token] : this.#textTokens(piece, i === 0)));
  }

  /**
   * The chat template's prompt for a conversation, as the answer will read it: with the
   * tools shown, and the thought opened where the template opens it on a fresh answer (not
   * when a grammar shapes the answer from its first token).
   */
  #chatPrompt(messages: ChatMessage[], tools: ToolOptions | undefined, constrained: boolean) {
    const wrapper = this.#p.chatWrapper!;
    const history = this.#history(messages);
    const thought = constrained ? undefined : thoughtSegment(wrapper, history);
    const state = wrapper.generateContextState({ chatHistory: history, ...(tools ? { availableFunctions: availableFunctions(tools.functions) } : {}) });
    return { wrapper, thought, state, promptTokens: state.contextText.tokenize(this.#p.model.tokenizer) };
  }

  renderChat(messages: ChatMessage[], tools?: ToolOptions): { prompt: string; tokens: number } {
    const { state, promptTokens } = this.#chatPrompt(messages, tools, tools !== undefined && tools.choice !== 'auto');
    return { prompt: templateText(state.contextText, this.#p.model), tokens: promptTokens.length };
  }

  async chat(messages: ChatMessage[], options: GenerateOptions): Promise<ChatResult> {
    const s = this.#sampling(options.params, options.choice);
    const tools = options.tools;
    // `required` or a named function: the answer is calls, by a grammar, from its first token.
    const forced = tools !== undefined && tools.choice !== 'auto';
    // A grammar shapes the answer from its first token: no thought is opened or split off.
    const constrained = forced || (options.responseFormat !== undefined && options.responseFormat.type !== 'text');
    const { wrapper, thought, state, promptTokens } = this.#chatPrompt(messages, tools, constrained);
    const maxTokens = this.#budget(promptTokens.length, s.maxTokens, 'messages');
    const syntax = tools ? toolCallSyntax(wrapper) : undefined;
    const grammar = forced ? await this.#toolGrammar(syntax!, tools) : await this.#grammar(options.responseFormat);
    const shape = stopTriggers(state.stopGenerationTriggers, this.#p.model);
    shape.ignoreStart = (state.ignoreStartText ?? []).map(plainText);
    if (thought) shape.thought = { ...thought, open: thought.open || (thought.prefix !== '' && plainText(state.contextText).trimEnd().endsWith(thought.prefix)) };
    if (!syntax) return this.#generate(promptTokens, s, maxTokens, options, grammar, shape);

    // Content streams until a call begins; the calls are read from the whole answer.
    const split = new ToolCallSplit(syntax, options.onText);
    // A forced answer is calls from its first token: they stream as they are written.
    const calls = forced && options.onToolCall ? new ToolCallStream(syntax, tools!.functions, options.onToolCall) : undefined;
    const streamed = {
      ...options,
      onText: (text: string, lps?: TokenLogprob[]) => {
        split.push(text, lps);
        calls?.push(text);
      },
    };
    // `auto`: free text until the model opens a call in its content (not its thought), then
    // the call under its grammar, as llama-server's lazy grammars do, so a begun call parses.
    const heads = forced ? [] : callHeads(syntax);
    const opened = () => heads.includes(split.opened ?? '');
    const probe: GenerationProbe = {};
    let result: ChatResult = await this.#generate(promptTokens, s, maxTokens, streamed, grammar, { ...shape, ...(heads.length ? { endWhen: opened } : {}) }, probe);
    if (opened()) result = await this.#continueCall(promptTokens, probe.generation!, split, result, s, maxTokens, options, syntax, tools!);
    const parsed = parseToolCalls(result.text, syntax, tools!.functions);
    split.finish(parsed.content);
    if (parsed.calls.length === 0) return result;
    return { ...result, text: parsed.content, toolCalls: parsed.calls, finishReason: 'tool_calls' };
  }

  /**
   * The model opened a tool call in its content: its answer is read again up to the call's
   * start, the call prefix written out, and the call generated under the grammar of the calls
   * (on the same sequence, so only the new tokens are read). The result's text is the content
   * before the call and the call; usage and logprobs cover both parts.
   */
  async #continueCall(
    prompt: readonly Token[], first: Generation, split: ToolCallSplit, result: ChatResult, s: Sampling, maxTokens: number,
    options: GenerateOptions, syntax: ToolCallSyntax, tools: ToolOptions,
  ): Promise<ChatResult> {
    const { model } = this.#p;
    const ctxLen = this.#p.context!.contextSize;
    const raw = model.detokenize(first.tokens, true);
    const at = raw.lastIndexOf(split.opened!);
    const prefix = this.#p.chatWrapper!.settings.functions.call.prefix;
    const continued = [...prompt, ...model.tokenize(at >= 0 ? raw.slice(0, at) : raw, true), ...LlamaText(prefix).tokenize(model.tokenizer)];
    const left = Math.min(maxTokens - first.tokens.length, ctxLen - continued.length);
    const before = { ...result, text: split.before };
    if (left < 1) return { ...before, finishReason: 'length' };
    const grammar = await this.#toolGrammar(syntax, tools, true);
    const stream = options.onToolCall && new ToolCallStream(syntax, tools.functions, options.onToolCall, true);
    const call = await this.#generate(continued, s, left, {
      ...options, onStart: undefined, onReasoning: undefined, onText: stream && ((text) => stream.push(text)),
    }, grammar, { strings: [], tokens: new Set() });
    return {
      ...before,
      text: `${split.before}${syntax.prefixes[0]}${call.text}`,
      finishReason: call.finishReason,
      usage: { ...result.usage, completionTokens: result.usage.completionTokens + call.usage.completionTokens },
      ...(result.logprobs ? { logprobs: [...result.logprobs, ...(call.logprobs ?? [])] } : {}),
    };
  }

  /** The grammar of an answer that is only tool calls: every function's, or the named one's. */
  async #toolGrammar(syntax: ToolCallSyntax, tools: ToolOptions, opened = false): Promise<LlamaGrammar> {
    const choice = tools.choice;
    const wanted = typeof choice === 'object' ? tools.functions.filter((f) => f.name === choice.name) : tools.functions;
    const functions = await Promise.all(wanted.map(async (f) => {
      const param = f.parametersField ?? `tools[${tools.functions.indexOf(f)}].function.parameters`;
      try {
        const params = await this.#p.llama.createGrammarForJsonSchema((f.parameters ?? { type: 'object', properties: {} }) as never);
        return { name: f.name, gbnf: params.grammar };
      } catch (err) {
        throw new ApiError('invalid_value', `${param} cannot be turned into a grammar: ${(err as Error).message}`, { param, cause: err });
      }
    }));
    return this.#p.llama.createGrammar({ grammar: toolCallGrammar(syntax, functions, tools.parallel, opened) });
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
      vectors.push(unitLength(vector));
    }
    return { vectors, promptTokens };
  }

  /**
   * Scores each document against the query through the reranker's head, one pair per
   * evaluation as node-llama-cpp's embedding context runs them (every pair is laid out first,
   * so a document too long even cut fails the request before any work).
   */
  async rank(query: string, documents: string[], signal: AbortSignal): Promise<RankResult> {
    const { reranker, embeddingContext: ctx } = this.#p;
    if (!reranker || !ctx) throw new ApiError('model_not_capable', `the model '${this.#p.id}' is not a reranker`, { param: 'model' });
    const limit = (this.#p.embeddingContextSize ?? 0) - 1;
    const inputs = documents.map((d, i) => reranker.prompt.tokens(query, d, limit, `documents[${i}]`));
    const scores: number[] = [];
    for (const tokens of inputs) {
      signal.throwIfAborted();
      const { vector } = await ctx.getEmbeddingFor(tokens);
      scores.push(reranker.relevance(vector[0] ?? 0));
    }
    return { scores, usage: { prompt_tokens: inputs.reduce((n, t) => n + t.length, 0) } };
  }

  /** Waits for running generations to end (the manager aborts them first), then frees native memory. */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      await this.#loop?.close();
      await this.#p.embeddingContext?.dispose();
      await this.#p.context?.dispose();
      await this.#p.model.dispose();
    })();
    return this.#disposed;
  }

  /**
   * Runs one generation on the free sequence that caches the longest prefix of `prompt`,
   * streaming text through `options.onText`. The client's abort rejects with its reason.
   */
  async #generate(
    prompt: readonly Token[],
    s: Sampling,
    maxTokens: number,
    options: GenerateOptions,
    grammar: LlamaGrammar | undefined,
    shape: AnswerShape,
    probe?: GenerationProbe,
  ): Promise<GenerationResult> {
    const signal = options.signal;
    signal.throwIfAborted();
    const { llama, model } = this.#p;
    // The manager's queue runs at most n_parallel requests, so a lease is free here.
    const lease = await this.#pool!.acquire(prompt, signal);
    const sampler = createNativeSampler(llama, model);
    const readers = options.logprobs === undefined ? undefined : createLogprobReaders(llama, model, options.logprobs);
    try {
      const generation = new Generation({
        model,
        sequence: lease.sequence,
        prompt,
        sampler,
        samplerConfig: samplerConfig(s, grammar ? new LlamaGrammarEvaluationState({ model, grammar }) : undefined),
        repeatPenalty: repeatPenalty(s),
        maxTokens,
        stopStrings: [...s.stop, ...shape.strings, ...(grammar ? grammar.stopGenerationTriggers.map(String) : [])],
        stopTokens: shape.tokens,
        trimWhitespaceSuffix: grammar?.trimWhitespaceSuffix ?? false,
        ignoreStart: shape.ignoreStart,
        thought: shape.thought,
        continuesPrompt: shape.continuesPrompt,
        endWhen: shape.endWhen,
        limitWhen: options.limitWhen,
        signal,
        ...(readers ? { logprobs: { readers, top: options.logprobs!, piece: (t: Token) => this.#tokenPiece(t) } } : {}),
        onText: options.onText,
        onReasoning: options.onReasoning,
      });
      if (probe) probe.generation = generation;
      options.onStart?.({ tokens: prompt.length, cachedTokens: lease.cachedPrefix });
      const use = await this.#loop!.run(generation);
      generation.finish();
      const cached = use.cachedTokens + (use.sharedTokens ?? 0);
      this.#cache.requests++;
      this.#cache.cached_tokens += cached;
      this.#cache.shared_tokens += use.sharedTokens ?? 0;
      this.#cache.evaluated_tokens += use.evaluatedTokens;
      // Which of the request's own stop strings ended the answer (not a template's trigger).
      const matched = generation.matchedStop;
      const stopSequence = matched !== undefined && s.stop.includes(matched) ? matched : undefined;
      return {
        text: generation.text,
        ...(shape.thought ? { reasoning: generation.reasoning } : {}),
        finishReason: generation.finishReason,
        ...(stopSequence !== undefined ? { stopSequence } : {}),
        usage: {
          promptTokens: prompt.length,
          completionTokens: generation.tokens.length,
          ...(shape.thought ? { reasoningTokens: generation.reasoningTokens } : {}),
          cachedPromptTokens: cached,
          evaluatedPromptTokens: use.evaluatedTokens,
        },
        ...(readers ? { logprobs: generation.tokenLogprobs } : {}),
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      sampler.dispose();
      if (readers) disposeLogprobReaders(readers);
      lease.release();
    }
  }

  #sampling(request: Record<string, unknown>, choice = 0): Sampling {
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
      // Wrapped below 2^32 − 1, which llama.cpp reads as "random".
      seed: seed === undefined || seed < 0 ? undefined : (seed + choice) % (2 ** 32 - 1),
      stop: (p.stop as string[] | undefined) ?? [],
      presencePenalty: p.presence_penalty as number,
      frequencyPenalty: p.frequency_penalty as number,
      repeatPenalty: p.repeat_penalty as number,
      repeatLastN: p.repeat_last_n as number,
      tokenBias: this.#tokenBias(request.logit_bias as Record<string, number> | undefined, p.ignore_eos === true),
    };
  }

  /** OpenAI `logit_bias` (ids checked against the vocabulary) and `ignore_eos` as one bias map. */
  #tokenBias(logitBias: Record<string, number> | undefined, ignoreEos: boolean): Map<number, number> {
    const bias = new Map<number, number>();
    const vocab = this.#vocabularySize();
    for (const [key, value] of Object.entries(logitBias ?? {})) {
      if (!/^\d+$/.test(key)) {
        throw new ApiError('invalid_value', `logit_bias keys are token ids (decimal integers); '${key}' is not one`, { param: 'logit_bias' });
      }
      const id = Number(key);
      if (id >= vocab) {
        // Named like the schema's errors name an entry (logit_bias[5]).
        throw new ApiError('invalid_value', `logit_bias: token id ${key} is not in this model's vocabulary (0–${vocab - 1})`, { param: `logit_bias[${key}]` });
      }
      bias.set(id, value);
    }
    if (ignoreEos) for (const id of this.#eogTokens()) bias.set(id, -Infinity);
    return bias;
  }

  #tokenPiece(token: Token): TokenPiece {
    let piece = this.#tokenPieces.get(token);
    if (piece === undefined) {
      // After a neutral token, so a SentencePiece piece keeps its leading space (" world"), as
      // llama-server shows it; a token detokenised alone at the start of a text loses it.
      const model = this.#p.model;
      this.#pieceLead ??= model.tokenize('a', false).slice(-1);
      const text = model.detokenize([token], true, this.#pieceLead);
      piece = { text, bytes: rawTokenBytes(model, token) ?? [...Buffer.from(text, 'utf8')] };
      this.#tokenPieces.set(token, piece);
    }
    return piece;
  }

  #vocabularySize(): number {
    this.#vocab ??= (this.#p.model.fileInfo.metadata.tokenizer?.ggml?.tokens ?? []).length;
    return this.#vocab;
  }

  /** The model's end-of-generation tokens, found once (a pass over the vocabulary: ~50 ms at 152k tokens). */
  #eogTokens(): number[] {
    if (!this.#eog) {
      this.#eog = [];
      for (let id = 0; id < this.#vocabularySize(); id++) if (this.#p.model.isEogToken(id as Token)) this.#eog.push(id);
    }
    return this.#eog;
  }

  /** Tokens left for the answer in one sequence; a prompt that fills it is a 400. */
  #budget(promptTokens: number, maxTokens: number | undefined, param: 'prompt' | 'messages'): number {
    if (promptTokens === 0) {
      // Nothing to read means no logits to pick the first token from (llama-server refuses it too).
      throw new ApiError('invalid_value', `the ${param === 'prompt' ? 'prompt' : 'chat prompt'} is empty and this model adds no BOS token to start from: send some text`, { param });
    }
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
    if (pre && !messages.some((m) => m.role === 'system')) history.push({ type: 'system', text: pre });
    for (const m of messages) {
      if (m.role === 'system') history.push({ type: 'system', text: m.content });
      else if (m.role === 'user') history.push({ type: 'user', text: m.content });
      else addModelMessage(history, m);
    }
    // A trailing assistant message is a prefix the answer continues (after tool results: the
    // answer that reads them); otherwise the answer starts empty.
    if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] });
    return history;
  }
}

/**
 * An assistant message as node-llama-cpp's model response: its text, then its calls with
 * their results. The model's turn goes on after tool results, so a message that follows
 * them joins the same response, its calls starting a new parallel group.
 */
function addModelMessage(history: ChatHistoryItem[], m: ChatMessage): void {
  const last = history.at(-1);
  const after = last?.type === 'model' && isChatModelResponseFunctionCall(last.response.at(-1)) ? last : undefined;
  const response: ChatModelResponse['response'] = [];
  if (m.content) response.push(m.content);
  for (const [j, call] of (m.toolCalls ?? []).entries()) {
    response.push({ type: 'functionCall', name: call.name, params: call.arguments, result: toolResult(call.result), ...(j === 0 && after ? { startsNewChunk: true } : {}) });
  }
  if (after) (after.response as ChatModelResponse['response']).push(...response);
  else history.push({ type: 'model', response });
}

/** node-llama-cpp writes a result as JSON: a JSON answer goes as its value, so it reads as sent; other text is quoted. */
function toolResult(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** OpenAI tool functions as node-llama-cpp's `availableFunctions` (the template shows them to the model). */
function availableFunctions(functions: readonly ToolFunction[]): ChatModelFunctions {
  return Object.fromEntries(functions.map((f) => [f.name, { ...(f.description ? { description: f.description } : {}), ...(f.parameters ? { params: f.parameters as GbnfJsonSchema } : {}) }]));
}

/** node-llama-cpp's sampler settings for a request (its `_resolveSamplerConfig`, less what modeld never sets). */
function samplerConfig(s: Sampling, grammar: LlamaGrammarEvaluationState | undefined): NativeSamplerConfig {
  return {
    temperature: s.temperature,
    minP: s.minP,
    topK: s.topK,
    topP: s.topP,
    // Unseeded: a fresh random seed per request, as llama-server's LLAMA_DEFAULT_SEED does
    // (node-llama-cpp's own default, the clock in seconds, repeats texts within a second).
    seed: s.seed ?? randomInt(2 ** 32),
    ...(s.tokenBias.size > 0
      ? { tokenBiasKeys: Uint32Array.from(s.tokenBias.keys()), tokenBiasValues: Float32Array.from(s.tokenBias.values()) }
      : {}),
    ...(grammar ? { grammarEvaluationState: nativeGrammarState(grammar) } : {}),
  };
}

/** The penalty window, or none when every penalty is neutral. */
function repeatPenalty(s: Sampling): RepeatPenalty | undefined {
  const penalize = s.repeatPenalty !== 1 || s.presencePenalty !== 0 || s.frequencyPenalty !== 0;
  if (!penalize || s.repeatLastN <= 0) return undefined;
  return { lastTokens: s.repeatLastN, penalty: s.repeatPenalty, presencePenalty: s.presencePenalty, frequencyPenalty: s.frequencyPenalty };
}

/**
 * A chat template's stop triggers: one whose first token is a special token (the template's
 * end-of-turn marker, maybe followed by formatting) ends the answer when that token is
 * sampled; the others join the stop strings as text. Templates list both forms (ChatML: the
 * special `<|im_end|>` and the text `<|im_end|>`), so a model that writes the marker as plain
 * text stops too.
 */
function stopTriggers(triggers: readonly LlamaText[], model: LlamaModel): AnswerShape {
  const out: AnswerShape = { strings: [], tokens: new Set() };
  for (const trigger of triggers) {
    const text = plainText(trigger);
    if (trigger.values.some((v) => typeof v !== 'string')) {
      const tokens = trigger.tokenize(model.tokenizer);
      if (tokens.length === 1 || (tokens.length > 1 && model.isSpecialToken(tokens[0]))) {
        out.tokens.add(tokens[0]!);
        continue;
      }
    }
    if (text) out.strings.push(text);
  }
  return out;
}

/**
 * The chat template's thought segment (node-llama-cpp reads it from the template, e.g.
 * `<think>`…`</think>`), as text without its surrounding whitespace. Like LlamaChat, a template
 * that opens the thought on a fresh answer (`openOnResponseStart`, Qwen3-style templates) gets an
 * open thought appended to `history`, so the prompt ends inside it.
 */
function thoughtSegment(wrapper: ChatWrapper, history: ChatHistoryItem[]): ThoughtSegment | undefined {
  const seg = wrapper.settings.segments?.thought;
  if (!seg?.suffix) return undefined;
  const asText = (v: string | LlamaText) => plainText(v).trim();
  const suffix = asText(seg.suffix);
  if (!suffix) return undefined;
  const openedByTemplate = typeof seg.prefix === 'object' && !isLlamaText(seg.prefix);
  const last = history.at(-1);
  const fresh = last?.type === 'model' && last.response.length === 0;
  if (fresh && seg.openOnResponseStart === true && !openedByTemplate) {
    (last.response as ChatModelResponse['response']).push({ type: 'segment', segmentType: 'thought', text: '', ended: false });
  }
  return {
    prefix: openedByTemplate ? '' : asText(seg.prefix as string | LlamaText),
    suffix,
    open: openedByTemplate && fresh,
  };
}


/** The decode counters in the model state's `info.batching` form. */
function batchingState(stats: BatchStats) {
  const sizes = Object.keys(stats.histogram).map(Number);
  return {
    batches: stats.batches,
    tokens: stats.tokens,
    shared_batches: sizes.filter((n) => n > 1).reduce((sum, n) => sum + stats.histogram[n]!, 0),
    max_sequences: sizes.length > 0 ? Math.max(...sizes) : 0,
    sequences_per_batch: Object.fromEntries(sizes.sort((a, b) => a - b).map((n) => [String(n), stats.histogram[n]!])),
  };
}

/** The GGUF's own chat template (`tokenizer.chat_template`), when it has one. */
export function ggufChatTemplate(model: LlamaModel): string | undefined {
  const template = (model.fileInfo.metadata.tokenizer as { chat_template?: unknown } | undefined)?.chat_template;
  return typeof template === 'string' ? template : undefined;
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


/** Texts llama.cpp takes for the repository-name and file-separator FIM tokens when the GGUF names no ids. */
const FIM_REPO_TEXTS = ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'];
const FIM_FILE_TEXTS = ['<|file_sep|>', '<|fim_sep|>', '<fim-sep>', '<file_sep>'];

/**
 * The repository-name and file-separator tokens of a code model (Qwen2.5-Coder's
 * `<|repo_name|>`, `<|file_sep|>`), by GGUF key or by their text as llama.cpp finds them;
 * node-llama-cpp exposes only prefix, suffix and middle.
 */
function findRepoTokens(model: LlamaModel): { repo?: Token; file?: Token } {
  const ggml = (model.fileInfo.metadata.tokenizer as { ggml?: Record<string, unknown> } | undefined)?.ggml ?? {};
  const byText = (texts: string[]): Token | undefined => {
    for (const text of texts) {
      const ids = model.tokenize(text, true);
      if (ids.length === 1 && model.detokenize(ids, true) === text) return ids[0];
    }
    return undefined;
  };
  const byKey = (key: string) => (typeof ggml[key] === 'number' ? (ggml[key] as Token) : undefined);
  const repo = byKey('fim_rep_token_id') ?? byText(FIM_REPO_TEXTS);
  const file = byKey('fim_sep_token_id') ?? byText(FIM_FILE_TEXTS);
  return { ...(repo !== undefined ? { repo } : {}), ...(file !== undefined ? { file } : {}) };
}
