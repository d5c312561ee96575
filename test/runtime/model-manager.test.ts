import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Config } from '../../src/config/config.ts';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { FakeEngine, type FakeLoaded } from '../helpers/fake-engine.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

async function setup(t: Test, engine: FakeEngine, config: Partial<Config> = {}, parameters: Record<string, unknown> = {}) {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'm'));
  writeTinyLlamaGguf(path.join(dir, 'm/m.gguf'));
  await writeFile(path.join(dir, 'm/model.json'), JSON.stringify({ parameters }));
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [engine], config });
  return { app, entry: app.registry.resolve('m/model') };
}

const job = (ms: number) => (loaded: unknown, signal: AbortSignal) => (loaded as FakeLoaded).work(ms, signal);

t.test('just-in-time load on first request; precedence of parameters', async (t) => {
  const engine = new FakeEngine();
  const { app, entry } = await setup(t, engine, {}, { ctx_len: 1024, n_parallel: 3 });
  t.equal(await app.manager.run(entry, { capability: 'chat' }, job(1)), 'done');
  t.equal(engine.loads, 1);
  t.equal(engine.lastLoaded!.spec.params.ctx_len, 1024, 'model object beats engine default');
  t.equal(app.manager.state(entry).queue!.concurrency, 3);
  await app.manager.stop(entry.id);
  await app.manager.start(entry, { ctx_len: 2048 });
  t.equal(engine.lastLoaded!.spec.params.ctx_len, 2048, 'start override beats model object');
});

t.test('JIT off: 409 model_not_running', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine(), { jit: false });
  await t.rejects(app.manager.run(entry, { capability: 'chat' }, job(1)), { code: 'model_not_running', status: 409 });
});

t.test('a capability the model lacks is a 400', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine({ capabilities: ['chat'] }));
  await t.rejects(app.manager.run(entry, { capability: 'embedding' }, job(1)), { code: 'model_not_capable', status: 400 });
});

t.test('a capability the engine never has is refused before a JIT load', async (t) => {
  const engine = new FakeEngine();
  const { app, entry } = await setup(t, engine);
  const err = await app.manager.run(entry, { capability: 'classification' }, job(1)).catch((e) => e);
  t.match(err, { code: 'model_not_capable', status: 400, param: 'model' });
  t.match(err.message, /does not support classification/);
  t.equal(engine.loads, 0, 'nothing was loaded');
  t.equal(app.manager.state(entry).state, 'stopped');
});

t.test('bounded waiting list: 503 queue_full with retry-after', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine(), { maxWaiting: 2 });
  await app.manager.start(entry);
  const running = [0, 1, 2].map(() => app.manager.run(entry, { capability: 'chat' }, job(100)));
  await new Promise((r) => setImmediate(r));
  t.same(app.manager.state(entry).queue, { running: 1, waiting: 2, concurrency: 1, max_waiting: 2 });
  const err = await app.manager.run(entry, { capability: 'chat' }, job(1)).catch((e) => e);
  t.equal(err.code, 'queue_full');
  t.equal(err.status, 503);
  t.equal(err.retryAfter, 1);
  t.same(await Promise.all(running), ['done', 'done', 'done'], 'a rejected request poisons nothing');
});

t.test('an aborted request leaves the queue at once and frees its slot', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine());
  await app.manager.start(entry);
  const ac1 = new AbortController();
  const ac2 = new AbortController();
  const first = app.manager.run(entry, { capability: 'chat', signal: ac1.signal }, job(10_000));
  const second = app.manager.run(entry, { capability: 'chat', signal: ac2.signal }, job(10_000));
  const third = app.manager.run(entry, { capability: 'chat' }, job(1));
  await new Promise((r) => setImmediate(r));
  ac2.abort();
  await t.rejects(second, { code: 'request_aborted' }, 'waiting request removed');
  ac1.abort();
  await t.rejects(first, { code: 'request_aborted' }, 'running request aborted');
  t.equal(await third, 'done', 'the next one runs right after');
});

t.test('per-request timeout', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine(), { requestTimeoutMs: 30 });
  await t.rejects(app.manager.run(entry, { capability: 'chat' }, job(5000)), { code: 'request_timeout' });
});

t.test('stop during a load cancels it; stop rejects waiting requests with model_stopped', async (t) => {
  const engine = new FakeEngine({ loadMs: 5000 });
  const { app, entry } = await setup(t, engine);
  const starting = app.manager.start(entry);
  t.equal(app.manager.state(entry).state, 'starting');
  await app.manager.stop(entry.id);
  await t.rejects(starting, { code: 'model_stopped' });
  t.equal(app.manager.state(entry).state, 'stopped');

  engine.opts.loadMs = 0;
  await app.manager.start(entry);
  const running = app.manager.run(entry, { capability: 'chat' }, job(10_000)).catch((e) => e);
  const waiting = app.manager.run(entry, { capability: 'chat' }, job(1)).catch((e) => e);
  await new Promise((r) => setImmediate(r));
  await app.manager.stop(entry.id, 20);
  t.match(await waiting, { code: 'model_stopped', status: 503 });
  t.match(await running, { code: 'model_stopped' }, 'running aborted after the grace period');
  t.equal(engine.disposedModels, 1);
});

t.test('keep_alive unloads an idle model; negative keeps it', async (t) => {
  const engine = new FakeEngine();
  const { app, entry } = await setup(t, engine, {}, { keep_alive: '50ms' });
  await app.manager.run(entry, { capability: 'chat' }, job(1));
  t.equal(app.manager.state(entry).state, 'running');
  // Polled rather than a fixed sleep: on a loaded machine the unload may land late.
  for (let i = 0; i < 500 && app.manager.state(entry).state !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(app.manager.state(entry).state, 'stopped');
  t.equal(engine.disposedModels, 1);
  await app.manager.start(entry, { keep_alive: -1 });
  await app.manager.run(entry, { capability: 'chat' }, job(1));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(app.manager.state(entry).state, 'running');
});

t.test('maintenance mode answers 503 maintenance; control still works', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine());
  app.manager.maintenance = true;
  await t.rejects(app.manager.run(entry, { capability: 'chat' }, job(1)), { code: 'maintenance', status: 503 });
  await app.manager.start(entry);
  t.equal(app.manager.state(entry).state, 'running');
});

t.test('a stop followed at once by several starts loads the model once', async (t) => {
  const engine = new FakeEngine({ loadMs: 20 });
  const { app, entry } = await setup(t, engine);
  await app.manager.start(entry);
  for (let i = 0; i < 3; i++) {
    const stopped = app.manager.stop(entry.id);
    await new Promise((r) => setImmediate(r));
    await Promise.all([app.manager.start(entry), app.manager.start(entry), app.manager.start(entry), stopped]);
    t.equal(app.manager.state(entry).state, 'running', 'every start resolved once the model runs');
  }
  t.equal(engine.loads, 4, 'one load per stop');
  await app.manager.stop(entry.id);
  t.equal(engine.disposedModels, 4, 'every load was freed');
});

t.test('start on a running model checks its overrides: same values join, others are a 409, bad ones a 400', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine());
  await app.manager.start(entry, { ctx_len: 512 });
  await app.manager.start(entry, { ctx_len: 512 });
  await app.manager.start(entry);
  await t.rejects(app.manager.start(entry, { ctx_len: 1024 }), { code: 'model_running', status: 409, param: 'ctx_len', message: /512.*stop it first.*1024/ });
  await t.rejects(app.manager.start(entry, { ctx_len: 'abc' }), { name: 'ApiError', status: 400 });
  await t.rejects(app.manager.start(entry, { bogus: 1 }), { name: 'ApiError', status: 400 });
  t.equal(app.manager.state(entry).params!.ctx_len, 512);
  await app.manager.start(entry, { keep_alive: '1h' });
  t.equal(app.manager.state(entry).params!.keep_alive, '1h', 'keep_alive alone changes on a running model');
  await t.rejects(app.manager.start(entry, { ctx_len: 1024, keep_alive: 0 }), { code: 'model_running' });
  await new Promise((r) => setTimeout(r, 30));
  t.equal(app.manager.state(entry).state, 'running', 'a refused start changes no keep_alive');
  t.equal(app.manager.state(entry).params!.keep_alive, '1h');
  await app.manager.start(entry, { keep_alive: 0 });
  while (app.manager.state(entry).state === 'running') await new Promise((r) => setTimeout(r, 10));
  t.equal(app.manager.state(entry).state, 'stopped', 'keep_alive 0 unloads the idle model');
});

t.test('a keep_alive longer than setTimeout can wait (600h) keeps the model', async (t) => {
  const { app, entry } = await setup(t, new FakeEngine());
  await app.manager.start(entry, { keep_alive: '600h' });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(app.manager.state(entry).state, 'running');
});

t.test('a failed load is forgotten once its files change; a running model whose object is gone is stopped', async (t) => {
  const engine = new FakeEngine({ failLoad: 'bad tensor' });
  const { app, entry } = await setup(t, engine);
  await t.rejects(app.manager.start(entry), { code: 'model_load_failed' });
  await app.registry.scan();
  t.equal(app.manager.state(app.registry.resolve('m/model')).state, 'error', 'unchanged files: still the error');
  engine.opts.failLoad = undefined;
  writeTinyLlamaGguf(path.join(path.dirname(entry.file), 'm.gguf'), { seed: 2 });
  await app.registry.scan();
  // The manager re-reads the files' stats after the scan: polled, as that I/O can lag on a loaded machine.
  const fixed = app.registry.resolve('m/model');
  for (let i = 0; i < 500 && app.manager.state(fixed).state === 'error'; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(app.manager.state(fixed).state, 'stopped', 'a new binary clears the error');
  await app.manager.start(fixed);
  await rm(fixed.file);
  await app.registry.scan();
  while (engine.disposedModels < 1) await new Promise((r) => setTimeout(r, 10));
  t.same(app.manager.runningIds(), [], 'stopped once its object file is gone');
});

t.test('a request\'s keep_alive (Ollama): checked before any load, counts for that request, and a request without one gets the load\'s back', async (t) => {
  const engine = new FakeEngine();
  const { app, entry } = await setup(t, engine);
  await t.rejects(app.manager.run(entry, { capability: 'chat', keepAlive: 'banana' }, job(1)), { code: 'invalid_value', param: 'keep_alive' });
  t.equal(engine.loads, 0, 'a bad value loads nothing');
  t.equal(await app.manager.run(entry, { capability: 'chat', keepAlive: '1h' }, job(1)), 'done');
  t.equal(app.manager.state(entry).params!.keep_alive, '1h');
  t.equal(await app.manager.run(entry, { capability: 'chat', keepAlive: -1 }, job(1)), 'done');
  t.equal(app.manager.state(entry).params!.keep_alive, -1);
  t.equal(await app.manager.run(entry, { capability: 'chat' }, job(1)), 'done');
  t.equal(app.manager.state(entry).params!.keep_alive, undefined, 'a request without keep_alive puts back the load\'s (here the server default)');
  await app.manager.start(entry, { keep_alive: '2h' });
  await app.manager.run(entry, { capability: 'chat', keepAlive: '1m' }, job(1));
  await app.manager.run(entry, { capability: 'chat' }, job(1));
  t.equal(app.manager.state(entry).params!.keep_alive, '2h', 'a start\'s keep_alive is what later requests without one get');
  t.equal(await app.manager.run(entry, { capability: 'chat', keepAlive: 0 }, job(1)), 'done');
  while (app.manager.state(entry).state === 'running') await new Promise((r) => setTimeout(r, 10));
  t.equal(app.manager.state(entry).state, 'stopped', 'keep_alive 0 unloads once the request ends');
  t.equal(engine.disposedModels, 1);
});
