// The model routes on model folders that are not what they seem: linked folders, invalid
// fields, cut-off binaries; and POST /v1/models with ids and objects it must refuse.
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { buildTestApp, tempDir, putFile } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';


async function setup(t: Test) {
  const dir = await tempDir();
  const outside = await tempDir();
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [new FakeEngine()] });
  return { app, dir, outside };
}

const create = (app: FastifyInstance, body: unknown) => app.inject({ method: 'POST', url: '/v1/models', payload: body as object });

t.test('DELETE of a model whose folder is a link to elsewhere deletes no file there', async (t) => {
  const { app, dir, outside } = await setup(t);
  await mkdir(path.join(outside, 'foo'));
  writeTinyLlamaGguf(path.join(outside, 'foo/user.gguf'), { layers: 1 });
  await putFile(outside, 'foo/model.json', {});
  await symlink(path.join(outside, 'foo'), path.join(dir, 'extlink'));
  await mkdir(path.join(outside, 'two'));
  await putFile(outside, 'two/a.json', { source_url: 'https://example.com/a.gguf' });
  await putFile(outside, 'two/b.json', { source_url: 'https://example.com/b.gguf' });
  await symlink(path.join(outside, 'two'), path.join(dir, 'twolink'));
  await app.registry.scan();

  const del = await app.inject({ method: 'DELETE', url: '/v1/models/extlink/model' });
  t.equal(del.statusCode, 200, del.body);
  t.same(del.json(), { id: 'extlink/model', object: 'model', deleted: true });
  t.ok(existsSync(path.join(outside, 'foo/user.gguf')), 'user.gguf outside stays');
  t.ok(existsSync(path.join(outside, 'foo/model.json')), 'model.json outside stays');
  t.equal((await app.inject('/v1/models/extlink/model')).statusCode, 404, 'the model is gone (its link was removed)');

  const refused = await app.inject({ method: 'DELETE', url: '/v1/models/twolink/a' });
  t.equal(refused.statusCode, 409);
  t.equal(refused.headers['x-should-retry'], 'false');
  t.match(refused.json().error, { code: 'model_not_deletable', param: 'model', message: /outside the models folder.*remove the link/ });
  t.same((await readdir(path.join(outside, 'two'))).sort(), ['a.json', 'b.json'], 'nothing deleted');
  t.equal((await app.inject('/v1/models/twolink/a')).statusCode, 200, 'still listed');
});

t.test('a model object with invalid fields: the list and the model route agree and are schema-valid', async (t) => {
  const { app, dir } = await setup(t);
  await putFile(dir, 'bad/model.json', { name: 5, parameters: 'x', description: 'still shown', metadata: { engine: 'foo' } });
  await app.registry.scan();
  const one = (await app.inject('/v1/models/bad/model')).json();
  const listed = (await app.inject('/v1/models')).json().data.find((m: { id: string }) => m.id === 'bad/model');
  t.same(listed, one, 'GET /v1/models and GET /v1/models/{id} answer the same Model');
  t.match(one, { state: 'error', name: 'model', description: 'still shown', parameters: {} });
  t.type(one.name, 'string');
  t.same(one.parameters, {}, 'an invalid parameters value is not passed through');
  t.notOk('engine' in one.metadata && one.metadata.engine === 'foo', 'an invalid engine is not shown as the engine');
  t.match(one.error, /field 'name' must be string, got 5; field 'parameters' must be object, got "x"; field 'metadata\.engine' must be one of "llamacpp", "onnx", "api", "tensorrt", got "foo"/);
});

t.test('start on a cut-off GGUF or on a binary entry without path or url: a clear 422, not a 500', async (t) => {
  const { app, dir } = await setup(t);
  await mkdir(path.join(dir, 'cut'));
  writeTinyLlamaGguf(path.join(dir, 'cut/t.gguf'));
  await truncate(path.join(dir, 'cut/t.gguf'), 100);
  await putFile(dir, 'cut/model.json', {});
  await putFile(dir, 'nobin/model.json', { metadata: { binaries: [{ sha256: 'a'.repeat(64) }] } });
  await app.registry.scan();
  const cut = await app.inject('/v1/models/cut/model');
  t.match(cut.json(), { state: 'error', error: /t\.gguf is not a readable GGUF file: the file is cut off inside its header/ });
  const start = await app.inject({ method: 'POST', url: '/v1/models/cut/start' });
  t.equal(start.statusCode, 422);
  t.match(start.json().error, { code: 'model_invalid', message: /t\.gguf/ });
  const nobin = await app.inject('/v1/models/nobin/model');
  t.match(nobin.json(), { state: 'error', error: /metadata\.binaries\[0\]/ });
  t.notOk(nobin.json().metadata.size, 'no folder size taken for a binary');
  const start2 = await app.inject({ method: 'POST', url: '/v1/models/nobin/start' });
  t.equal(start2.statusCode, 422);
  t.match(start2.json().error, { code: 'model_invalid', param: 'metadata.binaries[0]' });
});

t.test('POST /v1/models refuses ids and objects the folder would not read back, writing nothing', async (t) => {
  const { app, dir, outside } = await setup(t);
  const gguf = path.join(outside, 'local.gguf');
  writeTinyLlamaGguf(gguf, { layers: 1 });
  await writeFile(path.join(dir, 'toplevel.json'), '{}');
  await symlink(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
  const cases: Array<[unknown, string, RegExp]> = [
    [{ id: 'cfg/config', source_url: gguf }, 'id', /config\.json is a tokenizer or config file name/],
    [{ id: 'cfg/tokenizer', source_url: gguf }, 'id', /tokenizer\.json/],
    [{ id: 'cfg2/x.json', source_url: gguf }, 'id', /without '\.json'/],
    [{ id: 'a/b/c', source_url: gguf }, 'id', /<folder>\/<file>/],
    [{ id: 'toplevel.json/model', source_url: gguf }, 'id', /is a file, not a folder/],
    [{ id: 'dangling/model', source_url: gguf }, 'id', /is a link to .*nowhere, which does not exist/],
    [{ source_url: gguf, metadata: { engine: 'foo' } }, 'metadata.engine', /must be one of "llamacpp", "onnx", "api", "tensorrt", got "foo"/],
    [{ source_url: gguf, metadata: { task: 'chat' } }, 'metadata.task', /must be one of "text-generation"/],
    [{ source_url: gguf, parameters: { ctx_len: 1 } }, 'parameters.ctx_len', /must be within/],
  ];
  for (const [body, param, message] of cases) {
    const res = await create(app, body);
    t.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
    t.match(res.json().error, { type: 'invalid_request_error', param, message }, JSON.stringify(body));
  }
  t.same((await readdir(dir)).sort(), ['dangling', 'toplevel.json'], 'nothing was written');
  t.same((await app.inject('/v1/models')).json().data, []);
  const ok = await create(app, { id: 'cfg/model', source_url: gguf });
  t.equal(ok.statusCode, 201, ok.body);
});

t.test('concurrent POST /v1/models of one id: one 201, the others 409 model_exists', async (t) => {
  const { app, dir, outside } = await setup(t);
  const gguf = path.join(outside, 'local.gguf');
  writeTinyLlamaGguf(gguf, { layers: 1 });
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => create(app, { id: 'same/model', source_url: gguf, name: `n${i}` })));
  t.same(answers.map((a) => a.statusCode).sort(), [201, 409, 409, 409, 409, 409], answers.map((a) => a.body).join('\n'));
  for (const a of answers.filter((x) => x.statusCode === 409)) t.match(a.json().error, { code: 'model_exists', param: 'id' });
  t.same(await readdir(path.join(dir, 'same')), ['model.json'], 'no temporary file left');
  const winner = answers.find((a) => a.statusCode === 201)!.json().data[0].name;
  t.equal((await app.inject('/v1/models/same/model')).json().name, winner, 'the one written is the one answered 201');
});

t.test('a recognised engine this server lacks is created, and starting it is 501 engine_unavailable', async (t) => {
  const { app, outside } = await setup(t);
  const gguf = path.join(outside, 'local.gguf');
  writeTinyLlamaGguf(gguf, { layers: 1 });
  const res = await create(app, { id: 'trt/model', source_url: gguf, metadata: { engine: 'tensorrt' } });
  t.equal(res.statusCode, 201, res.body);
  t.match(res.json().data[0], { state: 'stopped', metadata: { engine: 'tensorrt' } });
  const start = await app.inject({ method: 'POST', url: '/v1/models/trt/start' });
  t.equal(start.statusCode, 501);
  t.match(start.json().error, { code: 'engine_unavailable', param: 'metadata.engine', message: /engine 'tensorrt'/ });
});
