/**
 * Prompt-prefix reuse across requests, the way llama-server's `cache_prompt`
 * plus slot selection does it.
 *
 * A sequence keeps its KV cache between generations, and the decode loop
 * (decode-loop.ts) erases only the cached tokens from the first one that
 * differs from the new prompt, then evaluates only the rest. What that cannot
 * do is pick the sequence: a request that lands on another conversation's
 * sequence re-evaluates its whole history. This pool
 * hands each request the free sequence whose cached tokens share the longest
 * prefix with its prompt (ties: the one released longest ago, so hot
 * conversations keep their cache), and queues requests while every sequence
 * is busy. As in llama-server (`--slot-prompt-similarity`, default 0.5), a
 * match covering less than `minSimilarity` of the prompt does not count: a new
 * conversation that shares only BOS or a short preamble with a cached one
 * takes the least recently used sequence instead of wiping that history.
 */

export interface SequencePoolOptions {
  /**
   * Smallest share of the prompt (cached prefix ÷ prompt tokens, 0..1) that
   * makes a sequence preferred for its cache; below it the least recently used
   * free sequence is taken. Default 0.5.
   */
  minSimilarity?: number;
}

/** What the pool needs of a sequence; `LlamaContextSequence` fits. */
export interface CachedSequence {
  /** Tokens whose KV state the sequence holds, in order. */
  readonly contextTokens: readonly number[];
}

/** A sequence handed out by {@link SequencePool.acquire}. */
export interface SequenceLease<S extends CachedSequence> {
  readonly sequence: S;
  /**
   * Leading prompt tokens already in the sequence's cache at acquire time: what node-llama-cpp
   * will not evaluate again. At most the prompt's length − 1 (the last prompt token is always evaluated).
   */
  readonly cachedPrefix: number;
  /** Gives the sequence back; later calls do nothing. */
  release(): void;
  [Symbol.dispose](): void;
}

interface Slot<S> {
  sequence: S;
  busy: boolean;
  /** Monotonic release counter; lower = released longer ago. */
  releasedAt: number;
}

interface Waiter<S extends CachedSequence> {
  tokens: readonly number[];
  resolve(lease: SequenceLease<S>): void;
  reject(reason: unknown): void;
  cleanup(): void;
}

/** Least recently released first; among never-released ones, the smaller cache (less to lose). */
function isColder(a: Slot<CachedSequence>, b: Slot<CachedSequence>): boolean {
  if (a.releasedAt !== b.releasedAt) return a.releasedAt < b.releasedAt;
  return a.sequence.contextTokens.length < b.sequence.contextTokens.length;
}

/** Length of the common prefix of two token lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class SequencePool<S extends CachedSequence> {
  readonly #slots: Slot<S>[];
  readonly #waiters: Waiter<S>[] = [];
  #clock = 0;
  readonly #minSimilarity: number;

  /** @param sequences every sequence of one context, e.g. `Array.from({length: n}, () => context.getSequence())`. */
  constructor(sequences: readonly S[], options: SequencePoolOptions = {}) {
    if (sequences.length === 0) throw new Error('SequencePool needs at least one sequence');
    this.#minSimilarity = options.minSimilarity ?? 0.5;
    this.#slots = sequences.map((sequence) => ({ sequence, busy: false, releasedAt: 0 }));
  }

  /** Sequences in the pool. */
  get size(): number {
    return this.#slots.length;
  }

  /** Each sequence and whether a request holds it, in sequence order. */
  get sequences(): Array<{ sequence: S; busy: boolean }> {
    return this.#slots.map(({ sequence, busy }) => ({ sequence, busy }));
  }

  /** Sequences handed out now. */
  get busy(): number {
    return this.#slots.filter((s) => s.busy).length;
  }

  /** Requests waiting for a sequence. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Resolves with the free sequence that caches the longest prefix of
   * `promptTokens` (the tokens the generation will evaluate), waiting in FIFO
   * order while all are busy. Rejects with `signal.reason` if the signal
   * aborts first.
   */
  acquire(promptTokens: readonly number[], signal?: AbortSignal): Promise<SequenceLease<S>> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#waiters.length === 0) {
      const lease = this.#take(promptTokens);
      if (lease) return Promise.resolve(lease);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter<S> = {
        tokens: promptTokens,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #take(tokens: readonly number[]): SequenceLease<S> | undefined {
    let best: Slot<S> | undefined;
    let bestScore = -1;
    let bestPrefix = 0;
    const minPrefix = Math.max(1, Math.ceil(this.#minSimilarity * tokens.length));
    for (const slot of this.#slots) {
      if (slot.busy) continue;
      // node-llama-cpp always evaluates the prompt's last token again (its logits pick the first answer token).
      const prefix = Math.min(commonPrefixLength(slot.sequence.contextTokens, tokens), Math.max(tokens.length - 1, 0));
      const score = prefix >= minPrefix ? prefix : 0;
      if (score > bestScore || (best !== undefined && score === bestScore && isColder(slot, best))) {
        best = slot;
        bestScore = score;
        bestPrefix = prefix;
      }
    }
    if (!best) return undefined;
    const slot = best;
    slot.busy = true;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      slot.busy = false;
      slot.releasedAt = ++this.#clock;
      this.#drain();
    };
    return { sequence: slot.sequence, cachedPrefix: bestPrefix, release, [Symbol.dispose]: release };
  }

  #drain(): void {
    while (this.#waiters.length > 0) {
      const lease = this.#take(this.#waiters[0].tokens);
      if (!lease) return;
      const waiter = this.#waiters.shift()!;
      waiter.cleanup();
      waiter.resolve(lease);
    }
  }
}
