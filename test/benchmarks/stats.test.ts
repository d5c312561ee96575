import t from 'tap';
import { formatNumber, max, mean, median, min, percentile, ratio, summarize } from '../../benchmarks/lib/stats.ts';

t.test('median of odd and even counts, unsorted input', async (t) => {
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([7]), 7);
});

t.test('percentiles interpolate between closest ranks', async (t) => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.equal(percentile(xs, 0), 1);
  t.equal(percentile(xs, 100), 10);
  t.equal(percentile(xs, 50), 5.5);
  t.equal(percentile(xs, 90), 9.1);
  t.ok(Math.abs(percentile(xs, 99) - 9.91) < 1e-9);
  t.equal(percentile([42], 99), 42);
  t.throws(() => percentile(xs, 101), RangeError);
  t.throws(() => percentile(xs, -1), RangeError);
});

t.test('min, max, mean ignore non-finite samples; no samples throws', async (t) => {
  const xs = [3, NaN, 1, Infinity, 2];
  t.equal(min(xs), 1);
  t.equal(max(xs), 3);
  t.equal(mean(xs), 2);
  t.throws(() => median([]), RangeError);
  t.throws(() => median([NaN]), RangeError);
});

t.test('summarize does not reorder its input', async (t) => {
  const xs = [3, 1, 2];
  t.same(summarize(xs), { n: 3, median: 2, min: 1, max: 3, mean: 2 });
  t.same(xs, [3, 1, 2]);
});

t.test('ratio of medians, undefined when a side is missing or zero', async (t) => {
  t.equal(ratio([2, 4, 6], [1, 2, 3]), 2);
  t.equal(ratio(undefined, [1]), undefined);
  t.equal(ratio([1], []), undefined);
  t.equal(ratio([1], [0, 0, 0]), undefined);
});

t.test('formatNumber keeps three significant digits', async (t) => {
  t.equal(formatNumber(1234.5), '1230');
  t.equal(formatNumber(98.76), '98.8');
  t.equal(formatNumber(0.012345), '0.0123');
  t.equal(formatNumber(0), '0');
  t.equal(formatNumber(-5.678), '-5.68');
});
