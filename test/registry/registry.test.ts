import { mkdir, utimes, rm } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ModelRegistry, staticState } from '../../src/registry/registry.ts';
import { parseModelId } from '../../src/registry/ids.ts';
import { SHARED_MODELS, modelsFolder, putFile } from '../helpers/app.ts';
import { writeTinyLlamaGguf, writeCorruptGguf } from '../helpers/gguf-writer.ts';
import { writeImageClassifierOnnx } from '../helpers/onnx-writer.ts';
import { existsSync } from 'node:fs';


t.test('an empty {} next to a generated GGUF is a complete, autofilled model object', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'tiny'));
  writeTinyLlamaGguf(path.join(dir, 'tiny/tiny.gguf'), { chatTemplate: '{{ messages }}' });
  await putFile(dir, 'tiny/model.json', '{}');
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('tiny/model');
  t.equal(e.engine, 'llamacpp');
  t.equal(staticState(e), 'stopped');
  t.equal(e.header.architecture, 'llama');
  t.equal(e.header.has_chat_template, true);
  t.equal(e.header.tokenizer_model, 'llama');
  for (const k of ['parameter_count', 'context_length', 'embedding_length', 'block_count', 'quantization', 'size']) {
    t.ok(e.header[k] !== undefined, `header has ${k}`);
  }
  t.equal(reg.resolve('tiny').id, 'tiny/model', 'single-object folder alias');
});

t.test('an ONNX binary is read for inputs, outputs, opset and producer', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'img'));
  await writeImageClassifierOnnx(path.join(dir, 'img/img.onnx'), { classes: 3 });
  await putFile(dir, 'img/model.json', {});
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('img');
  t.equal(e.engine, 'onnx');
  t.equal(staticState(e), 'stopped');
  const inputs = e.header.inputs as Array<{ name: string; type: string; shape: unknown[] }>;
  t.equal(inputs.length, 1);
  t.equal(inputs[0]!.type, 'float32');
  t.equal((e.header.outputs as unknown[]).length, 1);
  t.ok(e.header.opset);
  t.ok(e.header.producer);
});

t.test('broken model objects are listed as error naming file and field; others still load', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'good'));
  writeTinyLlamaGguf(path.join(dir, 'good/good.gguf'));
  await putFile(dir, 'good/model.json', {});
  await putFile(dir, 'badjson/model.json', '{"name": ');
  await putFile(dir, 'badfield/model.json', { metadata: { engine: 'pytorch' } });
  await putFile(dir, 'badtype/model.json', { parameters: 'hot' });
  await mkdir(path.join(dir, 'corrupt'));
  writeCorruptGguf(path.join(dir, 'corrupt/corrupt.gguf'), 'bad-magic');
  await putFile(dir, 'corrupt/model.json', {});
  await putFile(dir, 'array/model.json', '[1,2]');
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.equal(reg.list().length, 6);
  t.equal(staticState(reg.resolve('good')), 'stopped');
  const badjson = reg.resolve('badjson');
  t.equal(staticState(badjson), 'error');
  t.match(badjson.problem!.message, /model\.json is not valid JSON/);
  const badfield = reg.resolve('badfield');
  t.equal(badfield.problem!.field, 'metadata.engine');
  t.match(badfield.problem!.message, /metadata\.engine/);
  t.equal(reg.resolve('badtype').problem!.field, 'parameters');
  const corrupt = reg.resolve('corrupt');
  t.equal(staticState(corrupt), 'error');
  t.match(corrupt.problem!.message, /corrupt\.gguf/);
  t.equal(corrupt.problem!.file, path.join(dir, 'corrupt/corrupt.gguf'));
  t.match(reg.resolve('array').problem!.message, /JSON object/);
});

t.test('remote source_url: not-downloaded, owned_by the organisation; blob URLs become resolve URLs', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'remote/q8.json', { source_url: 'https://huggingface.co/TheOrg/Some-GGUF/blob/main/some.Q8_0.gguf' });
  await putFile(dir, 'remote/other.json', { source_url: 'https://example.com/files/x.gguf' });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('remote/q8');
  t.equal(staticState(e), 'not-downloaded');
  t.equal(e.ownedBy, 'TheOrg');
  t.equal(e.binaries[0]!.url, 'https://huggingface.co/TheOrg/Some-GGUF/resolve/main/some.Q8_0.gguf');
  t.equal(e.binaries[0]!.path, path.join(dir, 'remote/some.Q8_0.gguf'));
  t.equal(e.binaries[0]!.managed, true);
  t.equal(reg.resolve('remote/other').ownedBy, 'example.com');
  t.throws(() => reg.resolve('remote'), { code: 'model_not_found' }, 'no alias for a folder of two objects');
});

t.test('several objects in one folder pick the binary named like them; a local source elsewhere is not managed', async (t) => {
  const dir = await modelsFolder(t);
  const outside = await modelsFolder(t);
  await mkdir(path.join(dir, 'multi'));
  writeTinyLlamaGguf(path.join(dir, 'multi/a.gguf'));
  writeTinyLlamaGguf(path.join(dir, 'multi/b.gguf'), { contextLength: 128 });
  await putFile(dir, 'multi/a.json', {});
  await putFile(dir, 'multi/b.json', {});
  writeTinyLlamaGguf(path.join(outside, 'ext.gguf'));
  await putFile(dir, 'ext/model.json', { source_url: path.join(outside, 'ext.gguf') });
  await putFile(dir, 'multi/tokenizer.json', { model: {} });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.same(reg.list().map((e) => e.id), ['ext/model', 'multi/a', 'multi/b'], 'sorted; tokenizer.json is not a model object');
  t.equal(reg.resolve('multi/b').header.context_length, 128);
  const ext = reg.resolve('ext');
  t.equal(ext.binaries[0]!.managed, false);
  t.equal(staticState(ext), 'stopped');
});

t.test('header cache re-reads an edited binary', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'm'));
  const file = path.join(dir, 'm/m.gguf');
  writeTinyLlamaGguf(file, { contextLength: 64 });
  await putFile(dir, 'm/model.json', {});
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.equal(reg.resolve('m').header.context_length, 64);
  writeTinyLlamaGguf(file, { contextLength: 96 });
  await utimes(file, new Date(), new Date(Date.now() + 5000));
  await reg.scan();
  t.equal(reg.resolve('m').header.context_length, 96);
});

t.test('the folder is watched: added, edited and removed model objects show up', async (t) => {
  const dir = await modelsFolder(t);
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  await reg.watch();
  t.teardown(() => reg.close());
  const changed = () => new Promise<void>((r) => reg.once('change', () => r()));
  let c = changed();
  await putFile(dir, 'w/model.json', { source_url: 'https://example.com/w.gguf', name: 'first' });
  await c;
  while (!reg.get('w/model')) await changed();
  t.equal(reg.resolve('w').object.name, 'first');
  c = changed();
  await putFile(dir, 'w/model.json', { source_url: 'https://example.com/w.gguf', name: 'second' });
  await c;
  while (reg.resolve('w').object.name !== 'second') await changed();
  t.pass('edit seen');
  c = changed();
  await rm(path.join(dir, 'w/model.json'));
  await c;
  while (reg.get('w/model')) await changed();
  t.pass('removal seen');
});

t.test('ids that could escape the models folder are rejected', async (t) => {
  for (const bad of ['', '../x', 'a/../../b', '/etc/passwd', 'a\\b', 'a/b/c', 'a\u0000b', '.hidden/x', 'a/', 'C:x', 'x'.repeat(1000)]) {
    t.throws(() => parseModelId(bad), { code: 'invalid_model_id' }, JSON.stringify(bad.slice(0, 20)));
  }
  t.same(parseModelId('org-model/model.Q4_K_M'), { folder: 'org-model', file: 'model.Q4_K_M' });
  t.same(parseModelId('x'.repeat(999)), { folder: 'x'.repeat(999) });
});

t.test('real shared models when present', { skip: !existsSync(SHARED_MODELS) && 'no ../shared/models' }, async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'stories/model.json', { source_url: path.join(SHARED_MODELS, 'stories260K/stories260K.gguf') });
  await putFile(dir, 'mnist/model.json', { source_url: path.join(SHARED_MODELS, 'mnist/mnist.onnx') });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const s = reg.resolve('stories');
  t.equal(s.header.architecture, 'llama');
  t.equal(s.header.vocab_size, 512);
  t.equal(s.header.has_chat_template, false);
  const m = reg.resolve('mnist');
  t.same((m.header.inputs as Array<{ shape: unknown }>)[0]!.shape, [1, 1, 28, 28]);
});
