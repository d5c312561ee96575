import { ApiError } from '../../errors.ts';
import type { ClassificationItem, ClassifyOptions } from '../engine.ts';

export type Activation = 'softmax' | 'sigmoid' | 'none';

/**
 * Turns one row of raw outputs into scores; softmax subtracts the max for stability. A row
 * with NaN or ±Infinity has no scores to rank: that is the model's failure, said as such
 * (JSON has no NaN either).
 */
export function activate(row: ArrayLike<number>, activation: Activation): number[] {
  const v = Array.from(row, Number);
  let max = -Infinity;
  for (const x of v) {
    if (!Number.isFinite(x)) {
      throw new ApiError('inference_failed', `the model's output holds a non-finite value (${x}): its weights or its input preparation are broken`);
    }
    // A loop, not Math.max(...v): spreading a row of 125k+ classes overflows the call stack.
    if (x > max) max = x;
  }
  if (activation === 'none') return v;
  if (activation === 'sigmoid') return v.map((x) => 1 / (1 + Math.exp(-x)));
  const exps = v.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** The label of class `i`: the model's name for it, else its index. */
export function labelOf(labels: readonly string[] | undefined, i: number): string {
  return labels?.[i] ?? String(i);
}

/**
 * One result item from a row of scores: the best class, plus `scores` (the k best, best
 * first, with `topK`; every class in index order with `scores`). Ties keep index order.
 */
export function toItem(index: number, scores: readonly number[], labels: readonly string[] | undefined, options: ClassifyOptions): ClassificationItem {
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const [bestScore, best] = order[0] ?? [0, 0];
  const item: ClassificationItem = { index, label: labelOf(labels, best), score: bestScore };
  if (options.topK !== undefined) {
    item.scores = order.slice(0, options.topK).map(([score, i]) => ({ label: labelOf(labels, i), score }));
  } else if (options.scores) {
    item.scores = scores.map((score, i) => ({ label: labelOf(labels, i), score }));
  }
  return item;
}
