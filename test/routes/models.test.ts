import { mkdir, writeFile, stat } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { buildTestApp, modelState, tempDir, until } from '../helpers/app.ts';
import { FakeEngine, type FakeLoaded } from '../helpers/fake-engine.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

async function setup(t: Test, engine = new FakeEngine()) {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'tiny'));
  writeTinyLlamaGguf(path.join(dir, 'tiny/tiny.gguf'));
  await writeFile(path.join(dir, 'tiny/model.json'), '{}');
  await mkdir(path.join(dir, 'remote'));
  await writeFile(path.join(dir, 'remote/model.json'), JSON.stringify({ source_url: 'https://huggingface.co/Org/Repo-GGUF/resolve/main/m.Q4_K_M.gguf', name: 'Remote' }));
  await mkdir(path.join(dir, 'broken'));
  await writeFile(path.join(dir, 'broken/model.json'), '{"parameters": 5}');
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [engine] });
  return { app, dir, engine };
}

t.test('GET /v1/models lists every model object sorted, with derived state', async (t) => {
  const { app } = await setup(t);
  const res = await app.inject('/v1/models');
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.object, 'list');
  t.same(body.data.map((m: { id: string }) => m.id), ['broken/model', 'remote/model', 'tiny/model']);
  const [broken, remote, tiny] = body.data;
  t.equal(broken.state, 'error');
  t.match(broken.error, /field 'parameters'/);
  t.equal(remote.state, 'not-downloaded');
  t.equal(remote.owned_by, 'Org');
  t.equal(remote.name, 'Remote');
  t.equal(tiny.state, 'stopped');
  t.equal(tiny.object, 'model');
  t.type(tiny.created, 'number');
  t.equal(tiny.name, 'tiny');
  t.equal(tiny.metadata.engine, 'llamacpp');
  t.equal(tiny.metadata.architecture, 'llama');
  t.ok(tiny.metadata.header.parameter_count > 0);
});

t.test('GET /v1/models/{id}: raw slash, encoded slash and folder alias; 404 and 400', async (t) => {
  const { app } = await setup(t);
  for (const url of ['/v1/models/tiny/model', '/v1/models/tiny%2Fmodel', '/v1/models/tiny']) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 200, url);
    t.equal(res.json().id, 'tiny/model', url);
  }
  const nf = await app.inject('/v1/models/nope%2Fnothing');
  t.equal(nf.statusCode, 404);
  t.same(nf.json().error, { message: "The model 'nope/nothing' does not exist", type: 'not_found_error', param: 'model', code: 'model_not_found' });
  for (const url of ['/v1/models/..%2F..%2Fetc', '/v1/models/a%5Cb', '/v1/models/a%00b']) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 400, url);
    t.equal(res.json().error.code, 'invalid_model_id', url);
  }
  const long = 'x'.repeat(990);
  const res = await app.inject(`/v1/models/${long}`);
  t.equal(res.statusCode, 404, 'a 990-character id is accepted as an id');
});

t.test('state and metadata routes', async (t) => {
  const { app } = await setup(t);
  const st = await app.inject('/v1/models/tiny%2Fmodel/state');
  t.same(st.json(), { id: 'tiny/model', state: 'stopped' });
  const raw = await app.inject('/v1/models/remote/model/state');
  t.same(raw.json(), { id: 'remote/model', state: 'not-downloaded' });
  const md = await app.inject('/v1/models/tiny/model/metadata');
  t.equal(md.statusCode, 200);
  t.equal(md.json().architecture, 'llama');
  t.equal(md.json().header.tokenizer_model, 'llama');
});

t.test('start and stop: Jan routes, cortex body form and PUT; overrides validated', async (t) => {
  const engine = new FakeEngine({ loadMs: 20 });
  const { app } = await setup(t, engine);
  const bad = await app.inject({ method: 'POST', url: '/v1/models/tiny/start', payload: { ctx_len: 999999 } });
  t.equal(bad.statusCode, 400);
  t.equal(bad.json().error.code, 'parameter_out_of_range');
  t.equal(bad.json().error.param, 'ctx_len');
  t.match(bad.json().error.message, /\[16, 4096\]/);
  const unknown = await app.inject({ method: 'POST', url: '/v1/models/tiny/start', payload: { bogus: 1 } });
  t.equal(unknown.json().error.code, 'unknown_parameter');

  const [a, b] = await Promise.all([
    app.inject({ method: 'POST', url: '/v1/models/tiny%2Fmodel/start', payload: { n_parallel: 2 } }),
    app.inject({ method: 'POST', url: '/v1/models/start', payload: { model: 'tiny/model' } }),
  ]);
  t.equal(a.statusCode, 200);
  t.equal(b.statusCode, 200);
  t.equal(engine.loads, 1, 'concurrent starts share one load');
  t.equal(a.json().state, 'running');
  t.same(a.json().queue, { running: 0, waiting: 0, concurrency: 2, max_waiting: 64 });
  const status = await app.inject('/v1/status');
  t.same(status.json().models_running, ['tiny/model']);
  const list = await app.inject('/v1/models');
  t.equal(list.json().data.find((m: { id: string }) => m.id === 'tiny/model').state, 'running');

  const stop = await app.inject({ method: 'PUT', url: '/v1/models/stop', payload: { model: 'tiny' } });
  t.equal(stop.json().state, 'stopped');
  t.equal(engine.disposedModels, 1);
});

t.test('starting a model that is not downloaded or broken gives a clear error', async (t) => {
  const { app } = await setup(t);
  const nd = await app.inject({ method: 'POST', url: '/v1/models/remote/model/start' });
  t.equal(nd.statusCode, 409);
  t.equal(nd.json().error.code, 'model_not_downloaded');
  t.match(nd.json().error.message, /download first/);
  const br = await app.inject({ method: 'POST', url: '/v1/models/broken/start' });
  t.equal(br.statusCode, 422);
  t.equal(br.json().error.code, 'model_invalid');
  t.equal(br.json().error.param, 'parameters');
  t.equal(br.headers['x-should-retry'], 'false');
});

t.test('a failing load puts the model in error with the reason; others go on', async (t) => {
  const { app } = await setup(t, new FakeEngine({ failLoad: 'tensor blk.0 is missing' }));
  const res = await app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  t.equal(res.statusCode, 500);
  t.equal(res.json().error.code, 'model_load_failed');
  t.match(res.json().error.message, /tiny\.gguf: tensor blk\.0 is missing/);
  t.equal(res.headers['x-should-retry'], 'false');
  const st = await app.inject('/v1/models/tiny/state');
  t.equal(st.json().state, 'error');
  t.match(st.json().error, /tensor blk\.0 is missing/);
  t.equal((await app.inject('/health')).statusCode, 200);
});

t.test('DELETE removes managed binaries and the object, never a file outside the models folder', async (t) => {
  const outside = await tempDir();
  const extFile = path.join(outside, 'keep.gguf');
  writeTinyLlamaGguf(extFile);
  const { app, dir } = await setup(t);
  await mkdir(path.join(dir, 'ext'));
  await writeFile(path.join(dir, 'ext/model.json'), JSON.stringify({ source_url: extFile }));
  await app.registry.scan();

  await app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  const del = await app.inject({ method: 'DELETE', url: '/v1/models/tiny%2Fmodel' });
  t.same(del.json(), { id: 'tiny/model', object: 'model', deleted: true });
  await t.rejects(stat(path.join(dir, 'tiny/tiny.gguf')), 'managed binary deleted');
  await t.rejects(stat(path.join(dir, 'tiny/model.json')));
  t.equal((await app.inject('/v1/models/tiny/model')).statusCode, 404);

  const del2 = await app.inject({ method: 'DELETE', url: '/v1/models/ext/model' });
  t.equal(del2.statusCode, 200);
  t.ok(await stat(extFile), 'the local source outside the models folder stays');
});

t.test('errors on every route have the OpenAI envelope', async (t) => {
  const { app } = await setup(t);
  const cases = [
    { req: { method: 'GET' as const, url: '/v1/nothing' }, status: 404, code: 'route_not_found' },
    { req: { method: 'POST' as const, url: '/v1/models/start', headers: { 'content-type': 'application/json' }, payload: '{"model": ' }, status: 400, code: 'invalid_json' },
    { req: { method: 'POST' as const, url: '/v1/models/start', payload: {} }, status: 400, code: 'missing_required_parameter', param: 'model' },
    { req: { method: 'POST' as const, url: '/v1/models/start', payload: { model: 5 } }, status: 400, code: 'invalid_type', param: 'model' },
    { req: { method: 'PUT' as const, url: '/v1/status', payload: { dev_mode: 'yes' } }, status: 400, code: 'invalid_type', param: 'dev_mode' },
    { req: { method: 'POST' as const, url: '/v1/models/start', headers: { 'content-type': 'text/xml' }, payload: '<x/>' }, status: 415, code: 'unsupported_media_type' },
  ];
  for (const c of cases) {
    const res = await app.inject(c.req);
    t.equal(res.statusCode, c.status, c.req.url);
    const e = res.json().error;
    t.equal(e.code, c.code, c.req.url);
    t.type(e.message, 'string');
    t.type(e.type, 'string');
    if (c.param) t.equal(e.param, c.param);
  }
});

t.test('oversize bodies get 413 in the envelope', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()], config: { bodyLimit: 2048 } });
  const res = await app.inject({ method: 'POST', url: '/v1/models/start', payload: { model: 'x'.repeat(5000) } });
  t.equal(res.statusCode, 413);
  t.equal(res.json().error.code, 'body_too_large');
});

t.test('a local file gone missing is named, not sent to a download it cannot have', async (t) => {
  const { app, dir } = await setup(t);
  await mkdir(path.join(dir, 'lost'));
  await writeFile(path.join(dir, 'lost/model.json'), JSON.stringify({ source_url: path.join(dir, 'elsewhere/gone.gguf') }));
  await app.registry.scan();
  const res = await app.inject({ method: 'POST', url: '/v1/models/lost/start' });
  t.equal(res.statusCode, 409);
  t.match(res.json().error, { code: 'model_not_downloaded', message: /gone\.gguf, which is missing and has no URL/ });
  t.notMatch(res.json().error.message, /download first/);
});

/** A request that keeps the model busy for `ms`, so a stop waits for it. */
function busy(app: Awaited<ReturnType<typeof setup>>['app'], ms: number) {
  return app.manager.run(app.registry.resolve('tiny'), { capability: 'chat' }, (loaded, signal) => (loaded as FakeLoaded).work(ms, signal));
}

t.test('a stop answers the state it left the model in, whatever start comes after it', async (t) => {
  const engine = new FakeEngine({ loadMs: 20 });
  const { app } = await setup(t, engine);
  await app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  const work = busy(app, 50);
  const stopping = app.inject({ method: 'POST', url: '/v1/models/tiny/stop' });
  await new Promise((r) => setTimeout(r, 10));
  // The start waits for the stop, then loads again: the stop still answers what it did.
  const [stop, start] = await Promise.all([stopping, app.inject({ method: 'POST', url: '/v1/models/tiny/start' })]);
  t.equal(await work, 'done', 'the running request finished within the grace period');
  t.equal(stop.statusCode, 200);
  t.equal(stop.json().state, 'stopped', 'the stop answers stopped, not the later start\'s starting');
  t.equal(start.json().state, 'running', 'the later start wins');
  t.equal(engine.loads, 2);
  t.equal((await app.inject('/v1/models/tiny/state')).json().state, 'running');
});

t.test('a stop cancels a start that waits for an earlier stop: the last request counts', async (t) => {
  const engine = new FakeEngine({ loadMs: 20 });
  const { app } = await setup(t, engine);
  await app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  const work = busy(app, 50);
  const first = app.inject({ method: 'POST', url: '/v1/models/tiny/stop' });
  await new Promise((r) => setTimeout(r, 10));
  const start = app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  await new Promise((r) => setTimeout(r, 10));
  const second = app.inject({ method: 'POST', url: '/v1/models/tiny/stop' });
  const [a, s, b] = await Promise.all([first, start, second]);
  t.equal(await work, 'done');
  t.equal(a.json().state, 'stopped');
  t.equal(b.json().state, 'stopped');
  t.equal(s.statusCode, 503, 'the start in between is stopped, as one whose load a stop aborts');
  t.equal(s.json().error.code, 'model_stopped');
  t.equal(engine.loads, 1, 'nothing was loaded for it');
  t.equal((await app.inject('/v1/models/tiny/state')).json().state, 'stopped');
});

t.test('DELETE decides what to delete after the stop: a file another model came to use meanwhile stays', async (t) => {
  const { app, dir } = await setup(t);
  await app.inject({ method: 'POST', url: '/v1/models/tiny/start' });
  // The request runs until the new model object is written, so the order holds on a slow machine.
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const work = app.manager.run(app.registry.resolve('tiny'), { capability: 'chat' }, async (_loaded, signal) => {
    signal.addEventListener('abort', release);
    await held;
    return 'done';
  });
  const del = app.inject({ method: 'DELETE', url: '/v1/models/tiny' });
  await until(async () => (await modelState(app, 'tiny')).state, (s) => s === 'stopping');
  // While the stop waits for the running request, another model object starts using the binary.
  await app.registry.write('other/model', { source_url: path.join(dir, 'tiny/tiny.gguf') });
  release();
  t.equal((await del).statusCode, 200);
  t.equal(await work, 'done');
  t.ok(await stat(path.join(dir, 'tiny/tiny.gguf')), 'the binary the new model uses stays');
  t.equal((await app.inject('/v1/models/tiny/model')).statusCode, 404, 'the deleted model is gone');
  t.equal((await app.inject('/v1/models/other/model')).json().state, 'stopped');
});

t.test('start overrides hold for that load: after a keep-alive unload the model loads with its model object again', async (t) => {
  const engine = new FakeEngine();
  const { app } = await setup(t, engine);
  const start = await app.inject({ method: 'POST', url: '/v1/models/tiny/start', payload: { ctx_len: 1024, keep_alive: '50ms' } });
  t.match(start.json().parameters, { ctx_len: 1024, keep_alive: '50ms' }, 'the start answer shows the parameters in effect');
  t.match((await app.inject('/v1/models/tiny/state')).json().parameters, { ctx_len: 1024 }, 'and so does the state');
  for (let i = 0; i < 500 && app.manager.runningIds().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  const idle = (await app.inject('/v1/models/tiny/state')).json();
  t.same(idle, { id: 'tiny/model', state: 'stopped' }, 'unloaded: no parameters in effect');
  t.equal(await busy(app, 1), 'done');
  t.equal(engine.lastLoaded!.spec.params.ctx_len, 512, 'the just-in-time load uses the model object (here the engine default)');
  t.match((await app.inject('/v1/models/tiny/state')).json().parameters, { ctx_len: 512 });
});
