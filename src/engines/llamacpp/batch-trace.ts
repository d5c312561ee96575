import type { BatchItem, BatchingOptions, PrioritizedBatchItem } from 'node-llama-cpp';

/**
 * Empty batches in a row while waiting for a generating sequence. Each costs a few
 * microtasks; 3 suffice on node-llama-cpp 3.22 (measured), the cap bounds the wait when a
 * sequence is held up by something slower (then the batch goes without it).
 */
const GATHER_MAX_DEFERRALS = 200;

export interface BatchTraceSnapshot {
  /** Native decode calls made by the context. */
  batches: number;
  /** Tokens evaluated across all batches (prompt and generated). */
  tokens: number;
  /** Batches that decoded tokens of two or more sequences at once. */
  shared_batches: number;
  /** Most sequences seen in one batch. */
  max_sequences: number;
  /** How many batches decoded 1, 2, 3, ... sequences: `{"1": 10, "4": 37}`. */
  sequences_per_batch: Record<string, number>;
  /** Times `gather` held a batch back for a sequence still sampling its previous token. */
  deferrals: number;
}

/**
 * node-llama-cpp's `maximumParallelism` strategy (same arithmetic): every queued sequence gets
 * an even share of the batch, leftovers go to the clipped ones by priority.
 */
function maximumParallelism(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  let left = size;
  const fair = Math.floor(left / items.length);
  const res: PrioritizedBatchItem[] = [];
  const clipped: PrioritizedBatchItem[] = [];
  for (const item of items) {
    const p = { item, processAmount: Math.min(item.tokens.length, left, fair) };
    res.push(p);
    left -= p.processAmount;
    if (p.processAmount < item.tokens.length) clipped.push(p);
    if (left === 0) break;
  }
  clipped.sort((a, b) => (b.item.evaluationPriority ?? 5) - (a.item.evaluationPriority ?? 5));
  for (const p of clipped) {
    if (left <= 0) break;
    const more = Math.min(p.item.tokens.length - p.processAmount, left);
    p.processAmount += more;
    left -= more;
  }
  return res;
}

/**
 * Counts how many sequences each native decode call of a context carries, by standing in
 * for node-llama-cpp's prioritization strategy (called once per batch with every queued
 * sequence). This is what proves that parallel requests decode in shared batches.
 */
export class BatchTrace {
  #batches = 0;
  #tokens = 0;
  #shared = 0;
  #max = 0;
  readonly #histogram = new Map<number, number>();

  #deferrals = 0;
  #deferredTotal = 0;
  readonly #onBatch: ((sequences: number) => void) | undefined;

  /** @param onBatch told the number of sequences of every batch (the `modeld_batch_size` metric). */
  constructor(onBatch?: (sequences: number) => void) {
    this.#onBatch = onBatch;
  }

  #active: () => number = () => 0;

  /**
   * Options for `model.createContext({batching})`. node-llama-cpp's own strategy composes the
   * next batch as soon as the previous one is sampled; the sequence whose sampling finished
   * last is then still on its way back and misses it, so 4 streams decode ~3 tokens per step.
   * With `gather`, a batch that lacks a generating sequence is deferred (an empty batch, which
   * node-llama-cpp answers by looking again after a few microtasks) until that sequence has
   * queued its token, at most GATHER_MAX_DEFERRALS times in a row.
   */
  batchingOptions(gather: boolean): BatchingOptions {
    return {
      dispatchSchedule: 'nextCycle',
      itemPrioritizationStrategy: ({ items, size }) => {
        if (gather && items.length < this.#active() && this.#deferrals < GATHER_MAX_DEFERRALS) {
          this.#deferrals++;
          this.#deferredTotal++;
          return [];
        }
        this.#deferrals = 0;
        const res = maximumParallelism(items, size);
        this.#record(res);
        return res;
      },
    };
  }

  /** `active` counts the sequences inside a generation (borrowed by a request). */
  attach(active: () => number): void {
    this.#active = active;
  }

  #record(batch: PrioritizedBatchItem[]): void {
    let sequences = 0;
    let tokens = 0;
    for (const p of batch) {
      if (p.processAmount > 0) {
        sequences++;
        tokens += p.processAmount;
      }
    }
    if (sequences === 0) return;
    this.#batches++;
    this.#tokens += tokens;
    if (sequences > 1) this.#shared++;
    this.#max = Math.max(this.#max, sequences);
    this.#histogram.set(sequences, (this.#histogram.get(sequences) ?? 0) + 1);
    this.#onBatch?.(sequences);
  }

  snapshot(): BatchTraceSnapshot {
    return {
      batches: this.#batches,
      tokens: this.#tokens,
      shared_batches: this.#shared,
      max_sequences: this.#max,
      deferrals: this.#deferredTotal,
      sequences_per_batch: Object.fromEntries([...this.#histogram].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v])),
    };
  }
}
