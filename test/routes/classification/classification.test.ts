import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { OnnxEngine } from '../../../src/engines/onnx/onnx-engine.ts';
import { buildTestApp, SHARED_MODELS, tempDir } from '../../helpers/app.ts';
import { drawDigit, RELIABLE_DIGITS } from '../../helpers/draw-digit.ts';
import {
  OnnxGraphBuilder, writeImageClassifierOnnx, writeTextClassifierOnnx, writeTokenizerJson,
  type ImageClassifierFixture, type TextClassifierFixture,
} from '../../helpers/onnx-writer.ts';

type T = Test;
const MNIST = path.join(SHARED_MODELS, 'mnist/mnist.onnx');
const DIGITS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

async function put(dir: string, rel: string, obj: unknown) {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), JSON.stringify(obj));
}

interface Setup {
  app: Awaited<ReturnType<typeof buildTestApp>>['app'];
  img: ImageClassifierFixture;
  text: TextClassifierFixture;
  vocab: Record<string, number>;
}

async function setup(t: T, config: Record<string, unknown> = {}): Promise<Setup> {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'img'));
  const img = writeImageClassifierOnnx(path.join(dir, 'img/img.onnx'), { size: 8, classes: 3, labels: ['cat', 'dog', 'bird'] });
  await put(dir, 'img/model.json', { metadata: { preprocess: { scale: 1 / 255 } } });
  await mkdir(path.join(dir, 'text'));
  const text = writeTextClassifierOnnx(path.join(dir, 'text/text.onnx'));
  const vocab = writeTokenizerJson(path.join(dir, 'text/tokenizer.json')).model.vocab as Record<string, number>;
  await writeFile(path.join(dir, 'text/model.json'), '{}');
  await mkdir(path.join(dir, 'fixed'));
  writeImageClassifierOnnx(path.join(dir, 'fixed/fixed.onnx'), { dynamicBatch: false });
  await put(dir, 'fixed/model.json', { metadata: { preprocess: { scale: 1 / 255 } } });
  await mkdir(path.join(dir, 'odd'));
  const g = new OnnxGraphBuilder('odd');
  g.input('a', 'float32', ['batch', 4]);
  g.input('b', 'float32', ['batch', 4]);
  g.output('sum', 'float32', ['batch', 4]);
  g.node('Add', ['a', 'b'], ['sum']);
  g.write(path.join(dir, 'odd/odd.onnx'));
  await put(dir, 'odd/model.json', {});
  await mkdir(path.join(dir, 'badpre'));
  writeImageClassifierOnnx(path.join(dir, 'badpre/badpre.onnx'));
  await put(dir, 'badpre/model.json', { metadata: { preprocess: { layout: 'CHW' } } });
  await mkdir(path.join(dir, 'badlabels'));
  writeImageClassifierOnnx(path.join(dir, 'badlabels/badlabels.onnx'), { size: 8, classes: 3 });
  await put(dir, 'badlabels/model.json', { metadata: { classes: ['one'] } });
  if (existsSync(MNIST)) {
    // A link, not a copy: the shared model stays outside the project.
    await mkdir(path.join(dir, 'mnist'));
    await symlink(MNIST, path.join(dir, 'mnist/mnist.onnx'));
    await put(dir, 'mnist/model.json', { metadata: { classes: DIGITS } });
  }
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [new OnnxEngine({ threads: 1 })], config });
  return { app, img, text, vocab };
}

const softmax = (v: ArrayLike<number>) => {
  const a = Array.from(v);
  const m = Math.max(...a);
  const e = a.map((x) => Math.exp(x - m));
  const s = e.reduce((x, y) => x + y, 0);
  return e.map((x) => x / s);
};
const png = (pixels: number[], w = 8, h = 8) => sharp(Buffer.from(pixels), { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
const classify = (app: Setup['app'], body: unknown) => app.inject({ method: 'POST', url: '/v1/classifications', payload: body as Record<string, unknown> });

t.test('image classification over HTTP: exact scores, top_k, scores, data URL strings; task autofilled', async (t) => {
  const { app, img } = await setup(t);
  const pixels = Array.from({ length: 64 }, (_, i) => (i * 29 + 5) % 256);
  const b64 = (await png(pixels)).toString('base64');
  const expected = softmax(img.reference(Float32Array.from(pixels, (v) => v * (1 / 255))));
  const res = await classify(app, { model: 'img', input: { image: b64 }, scores: true });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.equal(body.object, 'list');
  t.equal(body.model, 'img/model');
  t.same(body.usage, { items: 1 });
  t.same(body.data[0].scores.map((s: { label: string }) => s.label), ['cat', 'dog', 'bird']);
  const worst = Math.max(...body.data[0].scores.map((s: { score: number }, i: number) => Math.abs(s.score - expected[i]!)));
  t.ok(worst < 1e-6, `scores match the reference (max diff ${worst})`);
  t.equal(body.data[0].label, ['cat', 'dog', 'bird'][expected.indexOf(Math.max(...expected))]);

  const two = await classify(app, { model: 'img/model', input: [{ image: b64 }, { image: `data:image/png;base64,${b64}` }], top_k: 2 });
  t.equal(two.statusCode, 200, two.body);
  t.same(two.json().data.map((d: { index: number }) => d.index), [0, 1]);
  t.equal(two.json().data[1].scores.length, 2);
  const asString = await classify(app, { model: 'img', input: `data:image/png;base64,${b64}` });
  t.equal(asString.statusCode, 200, 'a data URL string is an image');
  t.notOk('scores' in asString.json().data[0]);

  t.equal((await app.inject('/v1/models/img')).json().metadata.task, 'image-classification');
  t.equal((await app.inject('/v1/models/text')).json().metadata.task, 'text-classification');
  const engines = (await app.inject('/v1/engines')).json().data;
  const onnx = engines.find((e: { name: string }) => e.name === 'onnx');
  t.equal(onnx.available, true);
  t.ok(onnx.parameters.some((p: { name: string }) => p.name === 'max_batch_delay_ms'));
});

t.test('text classification over HTTP: usage tokens and metrics', async (t) => {
  const { app, text, vocab } = await setup(t);
  const res = await classify(app, { model: 'text', input: ['good movie', 'i hate it'], scores: true });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.same(body.usage, { items: 2, prompt_tokens: 9, total_tokens: 9 });
  const ids = ['[CLS]', 'good', 'movie', '[SEP]'].map((w) => vocab[w]!);
  const pad = new Array(12).fill(0);
  const expected = softmax(text.reference([...ids, ...pad], [1, 1, 1, 1, ...pad]));
  t.ok(Math.abs(body.data[0].scores[1].score - expected[1]!) < 1e-6, 'first text scored as the reference');
  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /modeld_tokens_total\{model="text\/model",kind="prompt"\} 9/);
  t.match(metrics, /modeld_batch_size_count\{model="text\/model"\} 1/);
  t.match(metrics, /modeld_batch_size_sum\{model="text\/model"\} 2/);
});

t.test('32 concurrent requests: fewer runs than requests, results identical to sequential', async (t) => {
  const { app } = await setup(t);
  const texts = Array.from({ length: 32 }, (_, i) => `${['good', 'bad', 'a great film', 'not very good', 'terrible movie'][i % 5]} ${'!'.repeat(i % 3)}`);
  await app.inject({ method: 'POST', url: '/v1/models/text/start', payload: { max_batch_delay_ms: 20 } });
  const concurrent = await Promise.all(texts.map((s) => classify(app, { model: 'text', input: s, scores: true })));
  t.same(concurrent.map((r) => r.statusCode), new Array(32).fill(200));
  const state = (await app.inject('/v1/models/text/state')).json();
  t.equal(state.state, 'running');
  t.equal(state.queue.concurrency, 32, 'batch slots admit enough requests to batch');
  t.ok(state.info.runs < 32, `32 requests in ${state.info.runs} runs`);
  t.equal(state.info.rows, 32);
  const sequential = [];
  for (const s of texts) sequential.push(await classify(app, { model: 'text', input: s, scores: true }));
  t.same(concurrent.map((r) => r.json().data), sequential.map((r) => r.json().data), 'identical to one-at-a-time');
  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, new RegExp(`modeld_batch_size_count\\{model="text/model"\\} ${state.info.runs + 32}`));
  t.match(metrics, /modeld_batch_size_sum\{model="text\/model"\} 64/);
});

t.test('bad input: 400s that say which and why', async (t) => {
  const { app } = await setup(t);
  const ok = (await png(new Array(64).fill(0))).toString('base64');
  const cases: Array<[string, unknown, number, string, string | null, RegExp?]> = [
    ['text to an image model', { model: 'img', input: 'hello' }, 400, 'wrong_input_kind', 'input', /classifies images/],
    ['image to a text model', { model: 'text', input: [{ image: ok }] }, 400, 'wrong_input_kind', 'input', /classifies text/],
    ['undecodable image', { model: 'img', input: [{ image: ok }, { image: Buffer.from('nope').toString('base64') }] }, 400, 'invalid_image', 'input[1].image'],
    ['unmappable model', { model: 'odd', input: 'x' }, 400, 'unsupported_model_inputs', 'model', /'a' float32\[batch, 4\]/],
    ['unknown model', { model: 'nope', input: 'x' }, 404, 'model_not_found', 'model'],
    ['broken metadata.preprocess', { model: 'badpre', input: 'x' }, 422, 'model_invalid', 'metadata.preprocess.layout', /model\.json: field 'metadata\.preprocess\.layout'/],
    ['labels that do not match the outputs', { model: 'badlabels', input: [{ image: ok }] }, 422, 'model_invalid', 'metadata.classes', /metadata\.classes has 1 labels but output .* has 3 classes/],
    ['missing input', { model: 'text' }, 400, 'missing_required_parameter', 'input'],
    ['empty array', { model: 'text', input: [] }, 400, 'invalid_value', null],
    ['top_k 0', { model: 'text', input: 'x', top_k: 0 }, 400, 'parameter_out_of_range', 'top_k'],
    ['unknown field', { model: 'text', input: 'x', temperature: 1 }, 400, 'unknown_parameter', 'temperature'],
  ];
  for (const [name, body, status, code, param, message] of cases) {
    const res = await classify(app, body);
    t.equal(res.statusCode, status, `${name}: ${res.body}`);
    const err = res.json().error;
    t.equal(err.code, code, name);
    if (param !== null) t.equal(err.param, param, `${name}: param`);
    if (message) t.match(err.message, message, `${name}: message`);
  }
});

t.test('lifecycle: JIT load, start overrides, stop releases, queue_full and timeouts as for GGUF models', async (t) => {
  const { app } = await setup(t, { requestTimeoutMs: 300 });
  t.equal((await app.inject('/v1/models/fixed/state')).json().state, 'stopped');
  const image = (await png(new Array(64).fill(7))).toString('base64');
  t.equal((await classify(app, { model: 'fixed', input: { image } })).statusCode, 200, 'JIT load on the first request');
  const running = (await app.inject('/v1/models/fixed/state')).json();
  t.equal(running.state, 'running');
  t.equal(running.queue.concurrency, 1, 'a fixed batch of 1 runs one at a time');
  t.equal(running.info.batch, 1);
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/fixed/stop' })).json().state, 'stopped');

  // One slot, no waiting room: a second request while the slot is held is a 503 with retry-after.
  const started = await app.inject({ method: 'POST', url: '/v1/models/fixed/start', payload: { max_waiting: 0 } });
  t.equal(started.json().parameters.max_waiting, 0);
  const entry = app.registry.resolve('fixed');
  let release!: () => void;
  const held = app.manager.run(entry, { capability: 'classification' }, () => new Promise<void>((r) => (release = r)));
  await new Promise((r) => setImmediate(r));
  const full = await classify(app, { model: 'fixed', input: { image } });
  t.equal(full.statusCode, 503);
  t.equal(full.json().error.code, 'queue_full');
  t.equal(full.headers['retry-after'], '1');
  release();
  await held;
  t.equal((await classify(app, { model: 'fixed', input: { image } })).statusCode, 200);

  // A request that waits longer than the request timeout leaves the queue: 504, never run.
  // (A request on an idle batcher runs at once, so the wait is a held slot; rows leaving a
  // batch on abort are covered in dynamic-batcher.test.ts.)
  await app.inject({ method: 'POST', url: '/v1/models/img/start', payload: { max_batch_delay_ms: 1000, max_batch_size: 1 } });
  let releaseImg!: () => void;
  const heldImg = app.manager.run(app.registry.resolve('img'), { capability: 'classification' }, () => new Promise<void>((r) => (releaseImg = r)));
  await new Promise((r) => setImmediate(r));
  const slow = await classify(app, { model: 'img', input: { image } });
  t.equal(slow.statusCode, 504, slow.body);
  t.equal(slow.json().error.code, 'request_timeout');
  releaseImg();
  await heldImg;
  t.equal((await app.inject('/v1/models/img/state')).json().info.runs, 0);
  const bad = await app.inject({ method: 'POST', url: '/v1/models/img/stop' });
  t.equal(bad.json().state, 'stopped');
  const badStart = await app.inject({ method: 'POST', url: '/v1/models/img/start', payload: { graph_optimization: 'max' } });
  t.equal(badStart.statusCode, 400);
  t.equal(badStart.json().error.param, 'graph_optimization');
});

t.test('mnist.onnx over HTTP with only metadata.classes in its model object', { skip: !existsSync(MNIST) && 'no ../shared/models/mnist' }, async (t) => {
  const { app } = await setup(t);
  const meta = (await app.inject('/v1/models/mnist/metadata')).json();
  t.equal(meta.engine, 'onnx');
  t.equal(meta.task, 'image-classification');
  const images = await Promise.all(RELIABLE_DIGITS.map(drawDigit));
  const res = await classify(app, { model: 'mnist', input: images.map((b) => ({ image: b.toString('base64') })) });
  t.equal(res.statusCode, 200, res.body);
  t.same(res.json().data.map((d: { label: string }) => d.label), RELIABLE_DIGITS.map((d) => DIGITS[d]));
  t.same(res.json().usage, { items: RELIABLE_DIGITS.length });
});
