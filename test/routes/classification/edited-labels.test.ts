import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { OnnxEngine } from '../../../src/engines/onnx/onnx-engine.ts';
import { buildTestApp, modelsFolder, putFile } from '../../helpers/app.ts';
import { writeImageClassifierOnnx } from '../../helpers/onnx-writer.ts';

// What a user sees after editing a running classifier's labels: a classifier reads its labels
// once, when it loads; the model object on the wire follows the file (the folder is watched).

const image = async () => (await sharp(Buffer.alloc(64, 7), { raw: { width: 8, height: 8, channels: 1 } }).png().toBuffer()).toString('base64');

async function setup(t: Test, watch: boolean) {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'img'));
  writeImageClassifierOnnx(path.join(dir, 'img/img.onnx'), { size: 8, classes: 3 });
  await putFile(dir, 'img/model.json', { metadata: { classes: ['cat', 'dog', 'bird'] } });
  await mkdir(path.join(dir, 'file'));
  writeImageClassifierOnnx(path.join(dir, 'file/file.onnx'), { size: 8, classes: 3 });
  await putFile(dir, 'file/model.json', { metadata: { classes: 'labels.txt' } });
  await putFile(dir, 'file/labels.txt', 'cat\ndog\nbird\n');
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [new OnnxEngine({ threads: 1 })], config: { watch } });
  const b64 = await image();
  const labels = async (model: string) => {
    const res = await app.inject({ method: 'POST', url: '/v1/classifications', payload: { model, input: { image: b64 }, scores: true } });
    t.equal(res.statusCode, 200, res.body);
    return (res.json().data[0].scores as Array<{ label: string }>).map((s) => s.label).sort();
  };
  const post = (url: string) => app.inject({ method: 'POST', url });
  return { app, dir, labels, post };
}

/** Waits for the folder watcher's rescan to show `classes` in the model object. */
async function seen(app: Awaited<ReturnType<typeof setup>>['app'], id: string, classes: unknown) {
  for (let i = 0; i < 100; i++) {
    const m = (await app.inject(`/v1/models/${id}`)).json();
    if (JSON.stringify(m.metadata.classes) === JSON.stringify(classes)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

t.test('watched folder: the running model keeps its labels; a stop/start (or a JIT load) picks up the edit', async (t) => {
  const { app, dir, labels, post } = await setup(t, true);
  t.same(await labels('img'), ['bird', 'cat', 'dog']);
  await putFile(dir, 'img/model.json', { metadata: { classes: ['kitten', 'puppy', 'chick'] } });
  t.ok(await seen(app, 'img', ['kitten', 'puppy', 'chick']), 'GET /v1/models/{id} shows the edited classes');
  t.same((await app.inject('/v1/models/img/metadata')).json().classes, ['kitten', 'puppy', 'chick'], 'and so does /metadata');
  t.same(await labels('img'), ['bird', 'cat', 'dog'], 'answers still use the labels read at load');
  t.equal((await app.inject('/v1/models/img/state')).json().state, 'running', 'the edit does not restart the model');

  t.equal((await post('/v1/models/img/stop')).statusCode, 200);
  t.equal((await post('/v1/models/img/start')).statusCode, 200);
  t.same(await labels('img'), ['chick', 'kitten', 'puppy'], 'stop/start loads the edited labels');

  // A count that no longer matches the outputs leaves the running model alone and fails its next load.
  await putFile(dir, 'img/model.json', { metadata: { classes: ['kitten', 'puppy'] } });
  t.ok(await seen(app, 'img', ['kitten', 'puppy']));
  t.same(await labels('img'), ['chick', 'kitten', 'puppy']);
  await post('/v1/models/img/stop');
  const bad = await post('/v1/models/img/start');
  t.equal(bad.statusCode, 422);
  t.equal(bad.json().error.code, 'model_invalid');
});

t.test('a labels file is read at each load: stop, then the next request loads the edited file', async (t) => {
  const { dir, labels, post } = await setup(t, true);
  t.same(await labels('file'), ['bird', 'cat', 'dog']);
  await writeFile(path.join(dir, 'file/labels.txt'), 'kitten\npuppy\nchick\n');
  t.same(await labels('file'), ['bird', 'cat', 'dog'], 'running: unchanged');
  await post('/v1/models/file/stop');
  t.same(await labels('file'), ['chick', 'kitten', 'puppy'], 'the JIT load reads the file again');
});

t.test('with the folder watch off (MODELD_WATCH=false) an edited model.json needs a server restart', async (t) => {
  const { app, dir, labels, post } = await setup(t, false);
  t.same(await labels('img'), ['bird', 'cat', 'dog']);
  await putFile(dir, 'img/model.json', { metadata: { classes: ['kitten', 'puppy', 'chick'] } });
  await post('/v1/models/img/stop');
  await post('/v1/models/img/start');
  t.same(await labels('img'), ['bird', 'cat', 'dog'], 'the object read at the last scan is the one loaded');
  t.same((await app.inject('/v1/models/img')).json().metadata.classes, ['cat', 'dog', 'bird']);
  // A labels file is read by the load itself, so it needs no rescan.
  await writeFile(path.join(dir, 'file/labels.txt'), 'kitten\npuppy\nchick\n');
  t.same(await labels('file'), ['chick', 'kitten', 'puppy']);
});
