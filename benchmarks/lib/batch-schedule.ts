import type { BatchItem, BatchingOptions, PrioritizedBatchItem } from 'node-llama-cpp';

/**
 * Batch scheduling for N concurrent sequences in one node-llama-cpp context — a diagnostic
 * of node-llama-cpp's own dispatch, used by `benchmarks/batching.ts` and
 * `benchmarks/decode-threads.ts`. modeld served with it until its own decode loop
 * (src/engines/llamacpp/decode-loop.ts) replaced node-llama-cpp's scheduling; it stays
 * here because it is how those diagnostics make node-llama-cpp's batches full.
 *
 * Why: node-llama-cpp 3.22.1 decodes one batch per turn of the `while (queue
 * not empty)` loop inside `LlamaContext.dispatchPendingBatch`, under the
 * context lock. After a decode it samples every sequence's next token
 * (`sampleToken`, an async native worker), resolves each sequence's decode
 * promise as soon as its own sample is ready, awaits all samples, and
 * immediately re-checks the queue. A sequence needs a dozen or so promise hops
 * (decode promise → `_evaluate` generator → `LlamaCompletion`/`LlamaChat` token
 * handling → evaluate lock → `_decodeTokens`) before its next token is queued;
 * the loop needs two or three. So the sequence whose sample resolved last is
 * never queued in time: it misses the batch, the others miss the next one, and
 * with 4 sequences almost every decode carries 3 tokens (see
 * docs/cpu-batching.md for the trace). `dispatchSchedule` cannot help: it only
 * runs when the loop has drained the queue, which never happens while ≥ 2
 * sequences generate.
 *
 * The fix uses the one hook the loop consults on every turn,
 * `itemPrioritizationStrategy`: while fewer items are queued than sequences
 * are generating, it returns no items, so the loop decodes nothing and turns
 * again after a microtask, which lets the straggler's promise chain reach the
 * queue (it needs no macrotask). After `maxWaitMs` it gives up and decodes what
 * is queued; after two timeouts in a row it stops waiting for the missing
 * sequences for `reprobeAfter` decodes, so a sequence that stays stuck costs a
 * couple of waits, not one per step. The
 * same strategy counts every batch it hands out, which is the batch-size
 * metric. One scheduler per context.
 */

/** One decoded batch, as handed to node-llama-cpp. */
export interface BatchRecord {
  /** Sequences with tokens in the batch. */
  sequences: number;
  /** Tokens in the batch (prompt tokens and generated tokens). */
  tokens: number;
  /** True when the barrier gave up waiting for a straggler. */
  timedOut: boolean;
}

/** Counters of the batches a scheduler handed out; reset with {@link BatchScheduler.resetStats}. */
export interface BatchStats {
  /** Decode calls. */
  batches: number;
  /** Tokens decoded, summed over batches. */
  tokens: number;
  /** Decode calls by number of sequences in the batch (key: sequences, value: batches). */
  histogram: Record<number, number>;
  /** Batches decoded short because a generating sequence did not queue within `maxWaitMs`. */
  timeouts: number;
}

export interface BatchSchedulerOptions {
  /**
   * Hold each decode until every generating sequence has queued its next
   * tokens (bounded by `maxWaitMs`). Default true; false gives node-llama-cpp's
   * own `maximumParallelism` behaviour, still counted.
   */
  barrier?: boolean;
  /**
   * Longest time in milliseconds one decode waits for stragglers. The wait
   * runs on the main thread (microtask turns); a straggler normally arrives
   * within 0.5 ms, the margin covers a preempted main thread on a busy
   * machine. Default 5.
   */
  maxWaitMs?: number;
  /**
   * After two waits in a row time out, the missing generations are not
   * waited for during this many decodes, then waited for once more. Default 32. A generation
   * can stay missing for long: node-llama-cpp's dispatch loop holds the
   * context lock while any sequence has tokens queued, so a request whose
   * first step needs that lock (erasing a stale KV-cache suffix) waits until
   * the other generations pause (see docs/cpu-batching.md).
   */
  reprobeAfter?: number;
  /**
   * How many sequences are generating right now. Default: the count of
   * {@link BatchScheduler.track}ed generations. Pass your own when generations
   * are counted elsewhere (e.g. a sequence pool's busy count).
   */
  activeSequences?: () => number;
  /** Called once per decode batch, e.g. to feed a batch-size histogram. */
  onBatch?: (batch: BatchRecord) => void;
}

export interface BatchScheduler {
  /** Pass as `createContext({ batching })`. */
  readonly batching: BatchingOptions;
  /**
   * Runs one generation (a `generateCompletion`, `generateResponse`, …) and
   * counts it as active while it runs, so the barrier knows how many
   * sequences to wait for.
   */
  track<T>(generation: () => Promise<T>): Promise<T>;
  /** Generations currently tracked. */
  readonly active: number;
  /** A copy of the counters. */
  stats(): BatchStats;
  resetStats(): void;
}

/** Creates the batching options and batch counters for one context. */
export function createBatchScheduler(options: BatchSchedulerOptions = {}): BatchScheduler {
  const barrier = options.barrier ?? true;
  const maxWaitMs = options.maxWaitMs ?? 5;
  const reprobeAfter = options.reprobeAfter ?? 32;
  let tracked = 0;
  const activeSequences = options.activeSequences ?? (() => tracked);
  let stats = emptyStats();
  let waitingSince = -1;

  // Generations that stopped queueing (see `reprobeAfter`), the decodes left before waiting for them again,
  // and timeouts since the last full batch: one can be a preempted main thread, two in a row is a stuck sequence.
  let excused = 0;
  let reprobeIn = 0;
  let strikes = 0;

  const itemPrioritizationStrategy = ({ items, size }: { items: readonly BatchItem[]; size: number }): PrioritizedBatchItem[] => {
    let timedOut = false;
    const active = activeSequences();
    if (items.length >= active) {
      excused = 0;
      strikes = 0;
    }
    if (barrier && items.length < active - excused) {
      const now = performance.now();
      if (waitingSince < 0) waitingSince = now;
      if (now - waitingSince < maxWaitMs) return [];
      timedOut = true;
      if (++strikes >= 2) {
        excused = active - items.length;
        reprobeIn = reprobeAfter;
      }
    } else if (excused > 0 && --reprobeIn <= 0) {
      excused = 0;
      strikes = 1;
    }
    waitingSince = -1;
    const prioritized = maximumParallelism(items, size);
    let tokens = 0;
    for (const p of prioritized) tokens += Math.min(Math.max(p.processAmount, 1), p.item.tokens.length);
    if (prioritized.length > 0) {
      const record: BatchRecord = { sequences: prioritized.length, tokens, timedOut };
      stats.batches++;
      stats.tokens += tokens;
      stats.histogram[record.sequences] = (stats.histogram[record.sequences] ?? 0) + 1;
      if (timedOut) stats.timeouts++;
      options.onBatch?.(record);
    }
    return prioritized;
  };

  return {
    batching: { dispatchSchedule: 'nextCycle', itemPrioritizationStrategy },
    async track<T>(generation: () => Promise<T>): Promise<T> {
      tracked++;
      try {
        return await generation();
      } finally {
        tracked--;
      }
    },
    get active() {
      return tracked;
    },
    stats: () => ({ ...stats, histogram: { ...stats.histogram } }),
    resetStats() {
      stats = emptyStats();
    },
  };
}

function emptyStats(): BatchStats {
  return { batches: 0, tokens: 0, histogram: {}, timeouts: 0 };
}

/**
 * node-llama-cpp's default `maximumParallelism` strategy (not exported by the
 * package): every queued sequence gets an equal share of the batch, the rest
 * goes to the clipped items by evaluation priority.
 */
export function maximumParallelism(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  let left = size;
  const share = Math.floor(left / Math.max(items.length, 1));
  const result: PrioritizedBatchItem[] = [];
  const clipped: PrioritizedBatchItem[] = [];
  for (const item of items) {
    const processAmount = Math.min(item.tokens.length, left, share);
    const prioritized = { item, processAmount };
    result.push(prioritized);
    left -= processAmount;
    if (processAmount < item.tokens.length) clipped.push(prioritized);
    if (left === 0) break;
  }
  for (let passes = 3; left > 0 && clipped.length > 0 && passes > 0; passes--) {
    const increase = Math.ceil(left / clipped.length);
    for (let i = 0; i < clipped.length && left > 0; i++) {
      const p = clipped[i];
      const unprocessed = p.item.tokens.length - p.processAmount;
      const amount = Math.min(unprocessed, left, increase);
      p.processAmount += amount;
      left -= amount;
      if (amount === unprocessed) clipped.splice(i--, 1);
    }
  }
  clipped.sort((a, b) => b.item.evaluationPriority - a.item.evaluationPriority);
  for (let i = 0; i < clipped.length && left > 0; i++) {
    const p = clipped[i];
    const unprocessed = p.item.tokens.length - p.processAmount;
    const amount = Math.min(unprocessed, left);
    p.processAmount += amount;
    left -= amount;
    if (amount === unprocessed) clipped.splice(i--, 1);
  }
  return result;
}
