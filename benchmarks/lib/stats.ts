/**
 * Summary statistics for benchmark samples. Every figure in RESULTS.md is a
 * median with its min–max over the repeated runs; latency distributions add
 * percentiles. Pure functions, no I/O, so `test/benchmarks/stats.test.ts`
 * pins them down.
 */

export interface Summary {
  /** Number of samples. */
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
}

function sorted(values: readonly number[]): number[] {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) throw new RangeError('no finite samples');
  return [...finite].sort((a, b) => a - b);
}

/**
 * Percentile by linear interpolation between closest ranks (the "R-7" method
 * numpy and spreadsheets use): p in [0, 100]; p 50 of an even count is the
 * mean of the middle two. Non-finite samples are ignored.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100] (got ${p})`);
  const s = sorted(values);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function min(values: readonly number[]): number {
  return sorted(values)[0]!;
}

export function max(values: readonly number[]): number {
  const s = sorted(values);
  return s[s.length - 1]!;
}

export function mean(values: readonly number[]): number {
  const s = sorted(values);
  return s.reduce((a, b) => a + b, 0) / s.length;
}

export function summarize(values: readonly number[]): Summary {
  const s = sorted(values);
  return { n: s.length, median: median(s), min: s[0]!, max: s[s.length - 1]!, mean: mean(s) };
}

/**
 * Ratio of two medians, or undefined when either side is missing or the
 * denominator is zero (a target then reads "not measured", never a pass).
 */
export function ratio(numerator: readonly number[] | undefined, denominator: readonly number[] | undefined): number | undefined {
  if (!numerator?.length || !denominator?.length) return undefined;
  const d = median(denominator);
  return d === 0 ? undefined : median(numerator) / d;
}

/** Rounds to `digits` significant digits for tables (3 by default): 1234.5 → "1230", 0.012345 → "0.0123". */
export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return decimals > 0 ? value.toFixed(decimals) : String(Math.round(value / 10 ** (magnitude - digits + 1)) * 10 ** (magnitude - digits + 1));
}
