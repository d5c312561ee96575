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
  /**
   * Makes the target sequence's KV cells a copy of the source's (with one KV stream per
   * sequence, the stream's whole buffer, copied at the next decode). Resolves with the last
   * position copied, −1 when the source is empty.
   */
  copySequenceStateFromOtherSequence(targetSequenceId: number, sourceSequenceId: number): Promise<number>;
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

const METHODS = ['initBatch', 'addToBatch', 'decodeBatch', 'sampleToken', 'removeTokenCellsFromSequence', 'copySequenceStateFromOtherSequence'] as const;

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

/**
 * Samplers that only read the model's distribution at a position (they pick nothing that is
 * used): `norm`, a greedy chain, leaves every logit of the vocabulary as the model gave it
 * (no temperature, penalties, biases or truncation); `top`, a top-k chain, leaves the k
 * highest, partially sorted by llama.cpp — where asking `norm` for its highest would sort
 * the whole vocabulary (+5 ms a token at 49k tokens, +17 ms at 152k, measured here).
 */
export interface LogprobReaders {
  norm: NativeSampler;
  top?: NativeSampler;
}

export function createLogprobReaders(llama: Llama, model: LlamaModel, top: number): LogprobReaders {
  const norm = createNativeSampler(llama, model);
  norm.applyConfig({ temperature: 0, minP: 0, topK: 0, topP: 1, seed: 0 });
  if (top === 0) return { norm };
  const best = createNativeSampler(llama, model);
  best.applyConfig({ temperature: 1, minP: 0, topK: top, topP: 1, seed: 0 });
  return { norm, top: best };
}

export function disposeLogprobReaders(readers: LogprobReaders): void {
  readers.norm.dispose();
  readers.top?.dispose();
}

/**
 * `sampleToken`'s long form: also returns logits the sampler chain left — the `includeTop`
 * highest, then those of `tokens` (and of the token it picked, with `includeSelected`) — as
 * flat [token, logit, …] pairs, and with `returnTotalLogitWeight` Σ exp(logit − highest logit).
 */
type SampleWithLogits = (
  batchLogitIndex: number, sampler: NativeSampler, returnProbabilities: false, returnConfidence: false,
  logits: [tokens: number[], includeHighest: false, includeLowest: false, includeSelected: boolean, includeTop: number],
  returnTotalLogitWeight: boolean,
) => Promise<[token: number, probabilities: undefined, confidence: undefined, logits: number[], totalLogitWeight: number]>;

/**
 * Log-probabilities at a position of the last decode, read before the next one: `token`'s
 * and those of the `top` likeliest, likeliest first.
 */
export async function readLogprobs(
  native: NativeContext, batchLogitIndex: number, readers: LogprobReaders, token: number, top: number,
): Promise<{ logprob: number; top: Array<[token: number, logprob: number]> }> {
  const sample = native.sampleToken.bind(native) as unknown as SampleWithLogits;
  // The greedy pick is the highest logit: with `token`'s, and the sum, it gives log Σ exp(logits).
  const normed = sample(batchLogitIndex, readers.norm, false, false, [[token], false, false, true, 0], true);
  const best = readers.top && top > 0 ? sample(batchLogitIndex, readers.top, false, false, [[], false, false, false, top], false) : undefined;
  const [, , , pairs, weight] = await normed;
  let highest = Number.NEGATIVE_INFINITY;
  let own = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < pairs.length; i += 2) {
    highest = Math.max(highest, pairs[i + 1]!);
    if (pairs[i] === token) own = pairs[i + 1]!;
  }
  const logZ = highest + Math.log(weight);
  const likeliest: Array<[number, number]> = [];
  if (best) {
    const [, , , topPairs] = await best;
    for (let i = 0; i < topPairs.length && likeliest.length < top; i += 2) likeliest.push([topPairs[i]!, topPairs[i + 1]! - logZ]);
  }
  return { logprob: own - logZ, top: likeliest };
}
