import type { Llama, LlamaContext, LlamaGrammarEvaluationState, LlamaModel } from 'node-llama-cpp';

/**
 * The native (addon) side of a node-llama-cpp 3.22 context, which modeld's own decode loop
 * drives directly: one batch per step for every sequence, sampling right after it, and no
 * per-token promise chain through `LlamaContextSequence`/`LlamaCompletion` (see
 * docs/cpu-batching.md §5 for why and what it gains). These members are internal to
 * node-llama-cpp; this file is the only place that reaches for them, and `nativeContext`
 * checks they are there, so a node-llama-cpp upgrade that moves them fails at model load
 * with a clear message rather than mid-request. The version is pinned in package.json.
 */
export interface NativeContext {
  /** Starts a batch of at most `tokens` tokens (frees the previous one). */
  initBatch(tokens: number): void;
  /**
   * Adds tokens of one sequence at positions `firstPosition`…; `logitIndexes` (indexes into
   * `tokens`, ascending) get logits. Returns their indexes in the batch, for sampling.
   */
  addToBatch(sequenceId: number, firstPosition: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  /** Decodes the batch on a libuv pool thread. */
  decodeBatch(): Promise<void>;
  /** Samples one token from the logits at `batchLogitIndex` of the last decode. */
  sampleToken(batchLogitIndex: number, sampler: NativeSampler): Promise<number>;
  /** Drops the KV cells of positions [start, end) of a sequence; end −1 = to the end. */
  removeTokenCellsFromSequence(sequenceId: number, start: number, end: number): boolean;
}

/** node-llama-cpp's `AddonSampler`: a sampler chain configured by `applyConfig`. */
export interface NativeSampler {
  applyConfig(config: NativeSamplerConfig): void;
  dispose(): void;
}

/** The `applyConfig` fields modeld sets (node-llama-cpp's `_resolveSamplerConfig` output). */
export interface NativeSamplerConfig {
  temperature: number;
  minP: number;
  topK: number;
  topP: number;
  seed: number;
  repeatPenalty?: number;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
  /** Logit biases, token ids and their biases in the same order (−Infinity bans a token). */
  tokenBiasKeys?: Uint32Array;
  tokenBiasValues?: Float32Array;
  /** The native grammar state; the sampler accepts each sampled token into it. */
  grammarEvaluationState?: unknown;
}

interface Internals {
  _ctx?: Partial<NativeContext>;
}

const METHODS = ['initBatch', 'addToBatch', 'decodeBatch', 'sampleToken', 'removeTokenCellsFromSequence'] as const;

/** The native context behind a `LlamaContext`; throws when this node-llama-cpp lays it out differently. */
export function nativeContext(context: LlamaContext): NativeContext {
  const ctx = (context as unknown as Internals)._ctx;
  const missing = METHODS.filter((m) => typeof ctx?.[m] !== 'function');
  if (!ctx || missing.length > 0) {
    throw new Error(`this node-llama-cpp version has no native context methods ${missing.join(', ')}; modeld's decode loop needs node-llama-cpp 3.22`);
  }
  return ctx as NativeContext;
}

/** A new native sampler for one generation. */
export function createNativeSampler(llama: Llama, model: LlamaModel): NativeSampler {
  const bindings = (llama as unknown as { _bindings?: { AddonSampler?: new (model: unknown) => NativeSampler } })._bindings;
  const native = (model as unknown as { _model?: unknown })._model;
  if (!bindings?.AddonSampler || !native) throw new Error("this node-llama-cpp version has no AddonSampler; modeld's decode loop needs node-llama-cpp 3.22");
  return new bindings.AddonSampler(native);
}

/** The native handle of a grammar evaluation state, for `NativeSamplerConfig.grammarEvaluationState`. */
export function nativeGrammarState(state: LlamaGrammarEvaluationState): unknown {
  return (state as unknown as { _state: unknown })._state;
}
