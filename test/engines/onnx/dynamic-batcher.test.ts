import t from 'tap';
import { DynamicBatcher } from '../../../src/engines/onnx/dynamic-batcher.ts';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A batcher whose runs finish only when the test says so; records each batch's rows. */
function controlled(options: { maxRows?: number; delayMs?: number } = {}) {
  const batches: number[][] = [];
  const finish: Array<() => void> = [];
  const batcher = new DynamicBatcher<number, number>({
    maxRows: options.maxRows ?? 8,
    // Long enough that a test passing through the delay would time out instead of passing.
    delayMs: options.delayMs ?? 60_000,
    run: (rows) => {
      batches.push(rows);
      return new Promise((resolve) => finish.push(() => resolve(rows.map((r) => r * 10))));
    },
  });
  t.teardown(() => batcher.close(new Error('test over')));
  return { batcher, batches, finish };
}

t.test('a lone request on an idle batcher runs at once, without waiting for the delay', async (t) => {
  const { batcher, batches, finish } = controlled();
  const out = batcher.add([1]);
  await turn();
  t.same(batches, [[1]], 'ran in the same event-loop turn');
  t.equal(batcher.delayed, 0);
  finish.shift()!();
  t.same(await out, [10]);
});

t.test('requests arriving in the same turn on an idle batcher share one batch', async (t) => {
  const { batcher, batches, finish } = controlled();
  const outs = [batcher.add([1]), batcher.add([2, 3])];
  await turn();
  t.same(batches, [[1, 2, 3]]);
  finish.shift()!();
  t.same(await Promise.all(outs), [[10], [20, 30]]);
});

t.test('rows arriving while a batch runs wait and then run together', async (t) => {
  const { batcher, batches, finish } = controlled({ delayMs: 0 });
  const first = batcher.add([1]);
  await turn();
  const later = [batcher.add([2]), batcher.add([3])];
  await turn();
  t.same(batches, [[1]], 'nothing runs beside the running batch');
  t.equal(batcher.waiting, 2);
  finish.shift()!();
  await first;
  // The next batch is scheduled when the run's promise settles, a turn after `first` resolves.
  await turn();
  await turn();
  t.same(batches, [[1], [2, 3]], 'the waiting rows form the next batch');
  finish.shift()!();
  t.same(await Promise.all(later), [[20], [30]]);
  t.equal(batcher.delayed, 0, 'rows that waited out a run are already late');
});

t.test('rows arriving during a run wait out delayMs from their arrival, unless the batch fills', async (t) => {
  const { batcher, batches, finish } = controlled({ maxRows: 3 });
  const first = batcher.add([1]);
  await turn();
  const waiting = batcher.add([2]);
  finish.shift()!();
  await first;
  await turn();
  t.same(batches, [[1]], 'a row that came during the run waits for others to join');
  const filling = batcher.add([3, 4]);
  await turn();
  t.same(batches, [[1], [2, 3, 4]], 'a full batch runs without waiting');
  finish.shift()!();
  t.same(await Promise.all([waiting, filling]), [[20], [30, 40]]);
});

t.test('a request larger than maxRows spans batches in order', async (t) => {
  const { batcher, batches, finish } = controlled({ maxRows: 2 });
  const out = batcher.add([1, 2, 3, 4, 5]);
  let settled = false;
  void out.finally(() => (settled = true));
  for (let i = 0; i < 20 && !settled; i++) {
    finish.shift()?.();
    await turn();
  }
  t.same(await out, [10, 20, 30, 40, 50]);
  t.same(batches, [[1, 2], [3, 4], [5]]);
  t.equal(batcher.runs, 3);
  t.equal(batcher.rows, 5);
});

t.test('an aborted request leaves the waiting rows; close rejects the rest', async (t) => {
  const { batcher, batches, finish } = controlled();
  const first = batcher.add([1]);
  await turn();
  const ac = new AbortController();
  const aborted = batcher.add([2], ac.signal);
  const kept = batcher.add([3]);
  ac.abort(new Error('client went away'));
  await t.rejects(aborted, { message: 'client went away' });
  t.equal(batcher.waiting, 1);
  const closing = batcher.close(new Error('stopped'));
  await t.rejects(kept, { message: 'stopped' });
  await t.rejects(batcher.add([4]), { message: 'stopped' });
  finish.shift()!();
  t.same(await first, [10], 'the running batch completes');
  await closing;
  t.same(batches, [[1]]);
});
