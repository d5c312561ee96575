import t from 'tap';
import { activate, toItem } from '../../../src/engines/onnx/scores.ts';

t.test('softmax, sigmoid and none; a huge row of classes; non-finite outputs are the model\'s failure', async (t) => {
  const soft = activate([1, 2, 3], 'softmax');
  t.ok(Math.abs(soft.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  t.ok(soft[2]! > soft[1]! && soft[1]! > soft[0]!);
  t.same(activate([0], 'sigmoid'), [0.5]);
  t.same(activate([3, -1], 'none'), [3, -1]);
  const wide = new Float32Array(500_000);
  wide[123_456] = 5;
  const scores = activate(wide, 'softmax');
  t.equal(toItem(0, scores, undefined, { topK: 2 }).label, '123456', '500k classes: no call-stack overflow');
  for (const bad of [NaN, Infinity, -Infinity]) {
    t.throws(() => activate([1, bad, 2], 'softmax'), { code: 'inference_failed', message: /non-finite/ }, String(bad));
  }
});
