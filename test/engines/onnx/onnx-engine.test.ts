import { existsSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { resolveParams } from '../../../src/engines/descriptors.ts';
import type { ClassificationInput, LoadedModel } from '../../../src/engines/engine.ts';
import { OnnxEngine } from '../../../src/engines/onnx/onnx-engine.ts';
import { physicalCores } from '../../../src/engines/onnx/ort.ts';
import { SHARED_MODELS, tempDir } from '../../helpers/app.ts';
import { drawDigit, RELIABLE_DIGITS } from '../../helpers/draw-digit.ts';
import {
  buildTokenizerJson, imageClassifierReference, OnnxGraphBuilder, writeImageClassifierOnnx, writeStringClassifierOnnx,
  writeTextClassifierOnnx, writeTokenizerJson,
} from '../../helpers/onnx-writer.ts';

type T = Test;

const engine = new OnnxEngine({ threads: 1 });
const never = new AbortController().signal;
// Many requests share this signal in the tests; each real request has its own.
setMaxListeners(1000, never);

async function load(t: T, file: string, metadata: Record<string, unknown> = {}, params: Record<string, unknown> = {}): Promise<LoadedModel> {
  const resolved = resolveParams(engine.descriptors, [{ source: 'test', values: params }]);
  const m = await engine.load({ id: path.basename(file), files: [file], folder: path.dirname(file), params: resolved, metadata }, never);
  t.teardown(() => m.dispose());
  return m;
}

function softmax(logits: ArrayLike<number>): number[] {
  const v = Array.from(logits);
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function closeTo(t: T, actual: number[], expected: number[], tol: number, msg: string) {
  t.equal(actual.length, expected.length, `${msg}: length`);
  const worst = Math.max(...actual.map((a, i) => Math.abs(a - expected[i]!)));
  t.ok(worst <= tol, `${msg}: max difference ${worst} <= ${tol}`);
}

const png = (pixels: number[], width: number, height: number, channels: 1 | 3 = 1) =>
  sharp(Buffer.from(pixels), { raw: { width, height, channels } }).png().toBuffer();
const img = (buf: Buffer): ClassificationInput => ({ type: 'image', image: buf.toString('base64') });
const txt = (text: string): ClassificationInput => ({ type: 'text', text });
const scoresOf = (item: { scores?: Array<{ score: number }> }) => item.scores!.map((s) => s.score);

t.test('descriptors and status', async (t) => {
  const e = new OnnxEngine();
  const names = e.descriptors.map((d) => d.name);
  t.same(names, ['intra_op_threads', 'inter_op_threads', 'graph_optimization', 'max_batch_size', 'max_batch_delay_ms', 'batch_invariant', 'execution_provider']);
  t.equal(e.descriptors.find((d) => d.name === 'intra_op_threads')!.default, physicalCores(), 'intra-op threads default to the physical cores');
  t.equal(new OnnxEngine({ threads: 3 }).descriptors[0]!.default, 3, '--threads overrides');
  const g = e.descriptors.find((d) => d.name === 'graph_optimization')!;
  t.equal(g.special_type, 'dropdown');
  t.same(g.options, ['disabled', 'basic', 'extended', 'all']);
  const st = await e.status();
  t.equal(st.available, true);
  t.same((st.info as { execution_providers: string[] }).execution_providers, ['cpu'], 'CPU where the CUDA binaries are not installed');
  t.throws(() => resolveParams(e.descriptors, [{ source: 'request', values: { max_batch_size: 0 } }]), { code: 'parameter_out_of_range', param: 'max_batch_size' });
  t.throws(() => resolveParams(e.descriptors, [{ source: 'request', values: { graph_optimization: 'max' } }]), { code: 'invalid_value' });
});

t.test('image classifier: exact scores from known weights, PNG/WebP/JPEG, labels from metadata_props', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'img.onnx'), { size: 8, classes: 4 });
  const m = await load(t, fx.path, { preprocess: { scale: 1 / 255 } });
  t.same([...m.capabilities], ['classification', 'rerank']);
  const pixels = Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256);
  const expected = softmax(fx.reference(Float32Array.from(pixels, (v) => v * (1 / 255))));
  const best = expected.indexOf(Math.max(...expected));
  const res = await m.classify!([img(await png(pixels, 8, 8))], { scores: true }, never);
  t.equal(res.data.length, 1);
  t.equal(res.data[0]!.label, fx.labels[best]);
  t.same(res.data[0]!.scores!.map((s) => s.label), fx.labels, 'every score in index order');
  closeTo(t, scoresOf(res.data[0]!), expected, 1e-6, 'softmax of the reference logits');
  t.same(res.usage, { items: 1 });

  const webp = await sharp(Buffer.from(pixels), { raw: { width: 8, height: 8, channels: 1 } }).webp({ lossless: true }).toBuffer();
  const viaWebp = await m.classify!([{ type: 'image', image: `data:image/webp;base64,${webp.toString('base64')}` }], { scores: true }, never);
  closeTo(t, scoresOf(viaWebp.data[0]!), expected, 1e-6, 'lossless WebP data URL decodes to the same pixels');

  const grey = new Array(64).fill(128);
  const jpeg = await sharp(Buffer.from(grey), { raw: { width: 8, height: 8, channels: 1 } }).jpeg({ quality: 100 }).toBuffer();
  const viaJpeg = await m.classify!([img(jpeg)], { scores: true }, never);
  closeTo(t, scoresOf(viaJpeg.data[0]!), softmax(fx.reference(Float32Array.from(grey, (v) => v * (1 / 255)))), 1e-3, 'JPEG of a flat grey');

  const top = await m.classify!([img(await png(pixels, 8, 8))], { topK: 2 }, never);
  const order = expected.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]);
  t.same(top.data[0]!.scores!.map((s) => s.label), [fx.labels[order[0]![1]], fx.labels[order[1]![1]]], 'top_k: the k best, best first');
  const plain = await m.classify!([img(await png(pixels, 8, 8))], {}, never);
  t.notOk('scores' in plain.data[0]!, 'no scores unless asked');
});

t.test('image preprocessing: RGB with mean/std in 0-1 units, BGR, NHWC, invert, resize modes', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'rgb.onnx'), { size: 4, channels: 3, classes: 3, seed: 3 });
  const mean = [0.5, 0.4, 0.3];
  const std = [0.2, 0.25, 0.3];
  const m = await load(t, fx.path, { preprocess: { mean, std, channel_order: 'BGR' } });
  const rgb = Array.from({ length: 16 * 3 }, (_, i) => (i * 53 + 7) % 256);
  // NCHW, channel c of the tensor = source channel 2 - c (BGR); scale 1/255 implied by 0-1 mean/std.
  const x = new Float32Array(48);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 16; p++) x[c * 16 + p] = (rgb[p * 3 + (2 - c)]! * (1 / 255) - mean[c]!) / std[c]!;
  const res = await m.classify!([img(await png(rgb, 4, 4, 3))], { scores: true }, never);
  closeTo(t, scoresOf(res.data[0]!), softmax(fx.reference(x)), 1e-6, 'BGR, mean/std');
  t.match((m.info as { preprocess: { scale: number } }).preprocess.scale, 1 / 255);

  // An NHWC model: [batch, 4, 4, 3] (channels last), detected from the shape.
  const g = new OnnxGraphBuilder('nhwc');
  g.input('pixels', 'float32', ['batch', 4, 4, 3]);
  g.output('out', 'float32', ['batch', 3]);
  g.initializer('W', 'float32', [48, 3], fx.matrix);
  g.initializer('B', 'float32', [3], fx.bias);
  g.node('Flatten', ['pixels'], ['flat'], { axis: { int: 1 } });
  g.node('MatMul', ['flat', 'W'], ['mm']);
  g.node('Add', ['mm', 'B'], ['out']);
  g.write(path.join(dir, 'nhwc.onnx'));
  const nhwc = await load(t, path.join(dir, 'nhwc.onnx'), { preprocess: { invert: true, scale: 0.01 } });
  t.equal((nhwc.info as { preprocess: { layout: string } }).preprocess.layout, 'NHWC');
  const y = Float32Array.from(rgb, (v) => (255 - v) * 0.01);
  const r2 = await nhwc.classify!([img(await png(rgb, 4, 4, 3))], { scores: true }, never);
  closeTo(t, scoresOf(r2.data[0]!), softmax(imageClassifierReference(y, fx.matrix, fx.bias, 3)), 1e-6, 'NHWC, inverted');

  // A grey 8x8 model fed a wider white image with contain: 2 black rows above and below.
  const grey = writeImageClassifierOnnx(path.join(dir, 'grey.onnx'), { size: 8, classes: 3 });
  const contain = await load(t, grey.path, { preprocess: { resize: 'contain', scale: 1 / 255 } });
  const wide = await sharp({ create: { width: 16, height: 8, channels: 3, background: '#ffffff' } }).png().toBuffer();
  const z = new Float32Array(64);
  for (let p = 16; p < 48; p++) z[p] = 255 * (1 / 255);
  const r3 = await contain.classify!([img(wide)], { scores: true }, new AbortController().signal);
  closeTo(t, scoresOf(r3.data[0]!), softmax(grey.reference(z)), 1e-6, 'contain letterboxes');
  const stretch = await load(t, grey.path, { preprocess: { scale: 1 / 255 } });
  const r4 = await stretch.classify!([img(wide)], { scores: true }, never);
  closeTo(t, scoresOf(r4.data[0]!), softmax(grey.reference(new Float32Array(64).fill(1))), 1e-6, 'stretch (default) fills; RGB converted to grey');
  const crop = await load(t, grey.path, { preprocess: { resize: 'center_crop', scale: 1 / 255 } });
  const r5 = await crop.classify!([img(wide)], { scores: true }, never);
  closeTo(t, scoresOf(r5.data[0]!), softmax(grey.reference(new Float32Array(64).fill(1))), 1e-6, 'center_crop of a flat image');
});

t.test('text classifier: tokenizer.json, padding, truncation, token_type_ids, usage', async (t) => {
  const dir = await tempDir();
  const fx = writeTextClassifierOnnx(path.join(dir, 'text.onnx'), { maxLen: 16, tokenTypeIds: true });
  const tok = writeTokenizerJson(path.join(dir, 'tokenizer.json'));
  const vocab = tok.model.vocab as Record<string, number>;
  const m = await load(t, fx.path);
  const expectFor = (tokens: string[]) => {
    const ids = tokens.map((w) => vocab[w]!);
    const pad = new Array(16 - ids.length).fill(0);
    return softmax(fx.reference([...ids, ...pad], [...ids.map(() => 1), ...pad], new Array(16).fill(0)));
  };
  const res = await m.classify!([txt('This movie is GOOD!'), txt('I hate it.')], { scores: true }, never);
  closeTo(t, scoresOf(res.data[0]!), expectFor(['[CLS]', 'this', 'movie', 'is', 'good', '!', '[SEP]']), 1e-6, 'first text');
  closeTo(t, scoresOf(res.data[1]!), expectFor(['[CLS]', 'i', 'hate', 'it', '.', '[SEP]']), 1e-6, 'second text');
  t.same(res.data.map((d) => d.index), [0, 1]);
  t.same(res.usage, { items: 2, prompt_tokens: 13, total_tokens: 13 });
  t.same(res.data[0]!.scores!.map((s) => s.label), ['negative', 'positive']);

  const long = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'good' : 'movie')).join(' ');
  const cut = await m.classify!([txt(long)], { scores: true }, never);
  const words = Array.from({ length: 14 }, (_, i) => (i % 2 ? 'good' : 'movie'));
  closeTo(t, scoresOf(cut.data[0]!), expectFor(['[CLS]', ...words, '[SEP]']), 1e-6, 'truncated to max_length with [SEP] kept');
  t.equal(cut.usage.prompt_tokens, 16);

  const strict = await load(t, fx.path, { preprocess: { truncation: false } });
  await t.rejects(strict.classify!([txt('ok'), txt(long)], {}, never), { code: 'input_too_long', status: 400, param: 'input[1]', message: /22 tokens.*up to 16.*truncation/ });
  await t.rejects(m.classify!([img(await png([0], 1, 1))], {}, never), { code: 'wrong_input_kind', param: 'input' });
});

t.test('text classifier with a dynamic sequence and padding "longest"; missing tokenizer', async (t) => {
  const dir = await tempDir();
  const fx = writeTextClassifierOnnx(path.join(dir, 'dyn.onnx'), { maxLen: 12, dynamicSequence: true });
  const vocab = writeTokenizerJson(path.join(dir, 'tokenizer.json')).model.vocab as Record<string, number>;
  const m = await load(t, fx.path, { preprocess: { padding: 'longest', max_length: 12 } });
  const res = await m.classify!([txt('good film'), txt('a very bad film')], { scores: true }, never);
  const rows = [['[CLS]', 'good', 'film', '[SEP]'], ['[CLS]', 'a', 'very', 'bad', 'film', '[SEP]']].map((r) => r.map((w) => vocab[w]!));
  const ids = rows.flatMap((r) => [...r, ...new Array(6 - r.length).fill(0)]);
  const mask = rows.flatMap((r) => [...r.map(() => 1), ...new Array(6 - r.length).fill(0)]);
  const expected = fx.reference(ids, mask, undefined, 6);
  closeTo(t, scoresOf(res.data[0]!), softmax(expected.subarray(0, 2)), 1e-6, 'row 0 padded to the longest');
  closeTo(t, scoresOf(res.data[1]!), softmax(expected.subarray(2, 4)), 1e-6, 'row 1');

  const fromProps = await load(t, fx.path);
  t.equal((fromProps.info as { preprocess: { max_length: number } }).preprocess.max_length, 12, 'max_length from metadata_props');

  const bare = await tempDir();
  const fx2 = writeTextClassifierOnnx(path.join(bare, 'text.onnx'));
  await t.rejects(load(t, fx2.path), { field: 'metadata.preprocess.tokenizer', message: /tokenizer\.json cannot be read/ });
});

t.test('string-tensor classifier: probabilities passed through, labels from the model', async (t) => {
  const dir = await tempDir();
  const fx = writeStringClassifierOnnx(path.join(dir, 'str.onnx'));
  const m = await load(t, fx.path);
  const inputs = ['good', 'terrible', 'something else'];
  const res = await m.classify!(inputs.map(txt), { scores: true }, never);
  const ref = fx.reference(inputs);
  res.data.forEach((d, i) => {
    t.same(scoresOf(d), Array.from(ref.probabilities.subarray(i * 3, i * 3 + 3)), `row ${i} probabilities exactly`);
  });
  t.same(res.data.map((d) => d.label), ref.label);
  t.equal((m.info as { output: { activation: string } }).output.activation, 'none');
  t.same(res.usage, { items: 3 });
});

t.test('dynamic batching: 32 concurrent requests take fewer runs, with the sequential results', async (t) => {
  const dir = await tempDir();
  const fx = writeTextClassifierOnnx(path.join(dir, 'text.onnx'));
  writeTokenizerJson(path.join(dir, 'tokenizer.json'));
  const texts = Array.from({ length: 32 }, (_, i) => ['good', 'bad film', 'i love this movie', 'terrible', 'not great'][i % 5]! + ` ${'!'.repeat(i % 4)}`);
  const batches: number[] = [];
  const resolved = resolveParams(engine.descriptors, [{ source: 'test', values: { max_batch_delay_ms: 20 } }]);
  const m = await engine.load({ id: 'b', files: [fx.path], folder: dir, params: resolved, metadata: {}, onBatch: (n) => batches.push(n) }, never);
  t.teardown(() => m.dispose());
  t.equal(m.concurrency, 32, 'batch slots = max_batch_size');
  t.equal((m.info as { batch_invariant: boolean }).batch_invariant, true, 'lone rows run as a batch of two');
  const concurrent = await Promise.all(texts.map((s) => m.classify!([txt(s)], { scores: true }, never)));
  const runs = (m.info as { runs: number }).runs;
  t.ok(runs < 32, `32 requests ran in ${runs} session runs`);
  t.equal(batches.reduce((a, b) => a + b, 0), 32, 'every row reported to onBatch');
  t.ok(Math.max(...batches) > 1, `a batch held several rows (${batches.join(', ')})`);
  const sequential = [];
  for (const s of texts) sequential.push(await m.classify!([txt(s)], { scores: true }, never));
  t.same(concurrent, sequential, 'identical to one-at-a-time');
  t.equal((m.info as { runs: number }).runs, runs + 32);

  // One request larger than max_batch_size is split over runs, in order.
  const small = await load(t, fx.path, {}, { max_batch_size: 2 });
  const five = await small.classify!(texts.slice(0, 5).map(txt), { scores: true }, never);
  const off = await load(t, fx.path, {}, { max_batch_size: 1 });
  t.equal((off.info as { batch_invariant: boolean }).batch_invariant, false, 'no batching: nothing to pad');
  t.equal((small.info as { runs: number }).runs, 3);
  t.same(five.data.map((d) => d.scores), sequential.slice(0, 5).map((r) => r.data[0]!.scores));
});

t.test('a fixed batch of 1 runs one at a time', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'fixed.onnx'), { dynamicBatch: false });
  const m = await load(t, fx.path, { preprocess: { scale: 1 / 255 } });
  t.equal(m.concurrency, 1);
  t.equal((m.info as { batch: unknown }).batch, 1);
  const images = await Promise.all([0, 50, 100, 150].map((v) => png(new Array(64).fill(v), 8, 8)));
  const res = await Promise.all(images.map((b) => m.classify!([img(b)], { scores: true }, never)));
  t.equal((m.info as { runs: number }).runs, 4);
  const multi = await m.classify!(images.map(img), { scores: true }, never);
  t.equal((m.info as { runs: number }).runs, 8, 'one request of 4 images: 4 runs');
  t.same(multi.data.map((d) => d.scores), res.map((r) => r.data[0]!.scores));
});

t.test('aborts, dispose and the session release', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'img.onnx'));
  const m = await load(t, fx.path, {}, { max_batch_delay_ms: 1000, max_batch_size: 4 });
  const image = img(await png(new Array(64).fill(9), 8, 8));
  const ac = new AbortController();
  // Aborted while its image decodes: it never reaches the batcher (waiting rows leaving on
  // abort are covered by dynamic-batcher.test.ts, where a run can be held open).
  const aborted = m.classify!([image], {}, ac.signal);
  ac.abort(new Error('client went away'));
  await t.rejects(aborted, { message: 'client went away' });
  t.equal((m.info as { runs: number }).runs, 0, 'the aborted request never ran');
  const lone = await m.classify!([image], {}, never);
  t.equal(lone.data.length, 1, 'a lone request on an idle model does not wait for the 1 s delay');
  t.equal((m.info as { delayed_runs: number }).delayed_runs, 0);
  const pending = m.classify!([image], {}, never);
  await m.dispose();
  await t.rejects(pending, { code: 'model_stopped' }, 'a request still decoding is rejected on dispose');
  await t.rejects(m.classify!([image], {}, never), { code: 'model_stopped' });
  await m.dispose();
  t.pass('dispose is idempotent');
});

t.test('bad input: each a 400 that says which and why', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'img.onnx'));
  const m = await load(t, fx.path, { preprocess: { max_image_pixels: 100, max_image_bytes: 4000 } });
  const ok = await png(new Array(64).fill(1), 8, 8);
  const cases: Array<[string, ClassificationInput[], Record<string, unknown>]> = [
    ['not base64', [{ type: 'image', image: 'not an image!' }], { code: 'invalid_image', param: 'input.image', message: /not base64/ }],
    ['undecodable bytes', [img(ok), img(Buffer.from('these bytes are no image at all'))], { code: 'invalid_image', param: 'input[1].image', message: /cannot be decoded/ }],
    ['a GIF', [img(await sharp(ok).gif().toBuffer())], { code: 'invalid_image', message: /gif image; send PNG, JPEG or WebP/ }],
    ['data URL without base64', [{ type: 'image', image: 'data:image/png,abc' }], { code: 'invalid_image', message: /without ;base64/ }],
    ['too many pixels', [img(await png(new Array(121).fill(0), 11, 11))], { code: 'image_too_large', status: 400, message: /11x11 pixels.*up to 100/ }],
    ['too many bytes', [{ type: 'image', image: 'A'.repeat(8000) }], { code: 'image_too_large', message: /6000 bytes.*up to 4000/ }],
    ['text to an image model', [txt('hello')], { code: 'wrong_input_kind', message: /classifies images/ }],
  ];
  for (const [name, inputs, want] of cases) await t.rejects(m.classify!(inputs, {}, never), want as unknown as Error, name);
  t.equal((m.info as { runs: number }).runs, 0);
  const crop = await load(t, fx.path, { preprocess: { resize: 'center_crop', max_image_pixels: 100 } });
  await t.rejects(crop.classify!([img(await png(new Array(121).fill(0), 11, 11))], {}, never), { code: 'image_too_large', message: /11x11 pixels/ }, 'center_crop: the pixel limit too');
  await t.rejects(m.classify!([{ type: 'image', image: 'data:image/png;base64,' }], {}, never), { code: 'invalid_image', message: /is empty/ });
  await t.rejects(m.classify!([{ type: 'image', image: ' \n' }], {}, never), { code: 'invalid_image', message: /is empty/ });

  // Base64 as clients send it: wrapped at 76 columns (MIME), without padding, URL-safe.
  const b64 = (await png(Array.from({ length: 64 }, (_, i) => i * 4), 8, 8)).toString('base64');
  const plain = await m.classify!([{ type: 'image', image: b64 }], { scores: true }, never);
  const variants = [b64.replace(/.{1,76}/g, '$&\r\n'), b64.replace(/=+$/, ''), b64.replace(/\+/g, '-').replace(/\//g, '_')];
  for (const v of variants) t.same(await m.classify!([{ type: 'image', image: v }], { scores: true }, never), plain);
  await t.rejects(m.classify!([{ type: 'image', image: b64.slice(0, 20) + '*' + b64.slice(20) }], {}, never), { code: 'invalid_image', message: /not base64/ }, 'a stray character is not skipped silently');

  const g = new OnnxGraphBuilder('two');
  g.input('a', 'float32', ['batch', 4]);
  g.input('b', 'float32', ['batch', 4]);
  g.output('sum', 'float32', ['batch', 4]);
  g.node('Add', ['a', 'b'], ['sum']);
  g.write(path.join(dir, 'two.onnx'));
  const two = await load(t, path.join(dir, 'two.onnx'));
  await t.rejects(two.classify!([txt('x')], {}, never), { code: 'unsupported_model_inputs', status: 400, message: /'a' float32\[batch, 4\], 'b' float32\[batch, 4\]/ });
  t.match(two.info, { unsupported: /neither one image tensor/ });

  // A fixed shape too large to feed is refused, not allocated: a 60000x60000 image input took
  // the process down (a double free in the resize) before it was checked; a huge fixed batch
  // or sequence would be allocated for every request.
  const huge = (name: string, dims: (number | string)[]) => {
    const h = new OnnxGraphBuilder(name);
    h.input('pixel_values', 'float32', dims);
    h.output('logits', 'float32', ['batch', 3]);
    h.node('GlobalAveragePool', ['pixel_values'], ['pooled']);
    h.node('Flatten', ['pooled'], ['logits']);
    h.write(path.join(dir, `${name}.onnx`));
    return path.join(dir, `${name}.onnx`);
  };
  const wide = await load(t, huge('wide', ['batch', 3, 60000, 60000]));
  await t.rejects(wide.classify!([{ type: 'image', image: b64 }], {}, never), {
    code: 'unsupported_model_inputs', status: 400, message: /'pixel_values' float32\[batch, 3, 60000, 60000\] would take 1 row\(s\) of 10800000000 values per run; modeld feeds at most 268435456/,
  });
  const rows = await load(t, huge('rows', [100000, 3, 64, 64]));
  await t.rejects(rows.classify!([{ type: 'image', image: b64 }], {}, never), { code: 'unsupported_model_inputs', message: /would take 100000 row\(s\) of 12288 values/ });
  // A dimension fixed at 0 was taken as open and every run failed in onnxruntime (a 500).
  const zero = await load(t, huge('zero', ['batch', 3, 0, 64]));
  await t.rejects(zero.classify!([{ type: 'image', image: b64 }], {}, never), { code: 'unsupported_model_inputs', status: 400, message: /'pixel_values' float32\[batch, 3, 0, 64\] has a dimension fixed at 0/ });
  const fine = await load(t, huge('fine', ['batch', 3, 'h', 'w']));
  t.equal((await fine.classify!([{ type: 'image', image: b64 }], {}, never)).data.length, 1, 'an open size is fed at 224x224');

  await t.rejects(load(t, fx.path, { classes: ['a', 'b'] }), { message: /metadata.classes has 2 labels but output 'logits' has 3 classes/ });
  await t.rejects(load(t, fx.path, { preprocess: { sise: 8 } }), { field: 'metadata.preprocess', message: /sise|additional/i });
  await t.rejects(load(t, fx.path, { preprocess: { mean: [1, 2] } }), { field: 'metadata.preprocess.mean', message: /2 values but the model takes 1/ });
  await t.rejects(load(t, fx.path, {}, { execution_provider: 'cuda' }), { message: /CUDA binaries are not installed/ });
});

t.test('labels: metadata.classes array, labels file, JSON file; output activation', async (t) => {
  const dir = await tempDir();
  const fx = writeImageClassifierOnnx(path.join(dir, 'img.onnx'), { classes: 3 });
  const image = [img(await png(new Array(64).fill(3), 8, 8))];
  const fromArray = await load(t, fx.path, { classes: ['cat', 'dog', 'bird'] });
  t.same((await fromArray.classify!(image, { scores: true }, never)).data[0]!.scores!.map((s) => s.label), ['cat', 'dog', 'bird']);
  await writeFile(path.join(dir, 'labels.txt'), 'red\ngreen\nblue\n');
  const fromFile = await load(t, fx.path, { classes: 'labels.txt' });
  t.same((await fromFile.classify!(image, { scores: true }, never)).data[0]!.scores!.map((s) => s.label), ['red', 'green', 'blue']);
  await writeFile(path.join(dir, 'labels.json'), JSON.stringify({ 0: 'x', 1: 'y', 2: 'z' }));
  const fromJson = await load(t, fx.path, { classes: 'labels.json' });
  t.same((await fromJson.classify!(image, { scores: true }, never)).data[0]!.scores!.map((s) => s.label), ['x', 'y', 'z']);
  await t.rejects(load(t, fx.path, { classes: 'missing.txt' }), { field: 'metadata.classes', message: /missing\.txt, which cannot be read/ });

  const logits = Array.from(fx.reference(new Float32Array(64).fill(3)));
  const raw = await load(t, fx.path, { output: { activation: 'none' } });
  closeTo(t, scoresOf((await raw.classify!(image, { scores: true }, never)).data[0]!), logits, 1e-4, 'activation none passes logits through');
  const sig = await load(t, fx.path, { output: { activation: 'sigmoid', name: 'logits' } });
  closeTo(t, scoresOf((await sig.classify!(image, { scores: true }, never)).data[0]!), logits.map((x) => 1 / (1 + Math.exp(-x))), 1e-6, 'sigmoid');
  await t.rejects(load(t, fx.path, { output: { name: 'nope' } }).then((m) => m.classify!(image, {}, never)), { code: 'unsupported_model_inputs', message: /'nope' is not an output/ });
});

t.test('mnist.onnx classifies drawn digits', { skip: !existsSync(path.join(SHARED_MODELS, 'mnist/mnist.onnx')) && 'no ../shared/models/mnist' }, async (t) => {
  const m = await load(t, path.join(SHARED_MODELS, 'mnist/mnist.onnx'), { classes: ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] });
  t.match(m.info, { batch: 1, input: 'image', preprocess: { width: 28, height: 28, channels: 1, scale: 1 } });
  const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  const images = await Promise.all(RELIABLE_DIGITS.map(drawDigit));
  const res = await m.classify!(images.map(img), { topK: 3 }, never);
  t.same(res.data.map((d) => d.label), RELIABLE_DIGITS.map((d) => names[d]));
  t.equal((m.info as { runs: number }).runs, RELIABLE_DIGITS.length, 'fixed batch of 1: one run per image');
});

t.test('tokenizer.json ids match the fixture vocabulary', async (t) => {
  // Guards the expectations above: the fixture's vocab order is what the tokenizer uses.
  const tok = buildTokenizerJson();
  t.equal((tok.model.vocab as Record<string, number>)['[CLS]'], 2);
});
