import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import type { LoadSpec } from '../../src/engines/engine.ts';
import { LlamaCppEngine } from '../../src/engines/llamacpp/engine.ts';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { writeCorruptGguf } from '../helpers/gguf-writer.ts';
import { LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';

/** The real engine, counting its loads. */
class CountingEngine extends LlamaCppEngine {
  loads = 0;
  override load(spec: LoadSpec, signal: AbortSignal) {
    this.loads++;
    return super.load(spec, signal);
  }
}

const dir = await tempDir();
await writeFixtureModel(dir, 'tiny', { parameters: { ctx_len: 128, n_parallel: 2 } });
await writeFixtureModel(dir, 'idle', { parameters: { ctx_len: 128, n_parallel: 1, keep_alive: 0 } });
await writeFixtureModel(dir, 'free', { gguf: { contextLength: 256 }, parameters: { n_parallel: 1 } });
await writeFixtureModel(dir, 'badparam', { parameters: { n_parallel: 0 } });
// ~60 MB of F32 weights, so that its load and unload show in the process RSS.
// 114 MB of weights: well above the RSS noise of the rest of the suite's memory coming and going.
await writeFixtureModel(dir, 'big', { gguf: { embeddingLength: 512, layers: 8, headCount: 8, feedForwardLength: 1536 }, parameters: { ctx_len: 128, n_parallel: 1 } });
await mkdir(path.join(dir, 'corrupt'));
writeCorruptGguf(path.join(dir, 'corrupt/corrupt.gguf'), 'truncated');
await writeFile(path.join(dir, 'corrupt/model.json'), '{}');
await mkdir(path.join(dir, 'remote'));
await writeFile(path.join(dir, 'remote/model.json'), JSON.stringify({ source_url: 'https://huggingface.co/a/b/resolve/main/m.gguf' }));

const engine = new CountingEngine({ gpu: 'false' });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG, engines: [engine] });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
const state = async (id: string) => (await app.inject({ url: `/v1/models/${id}/state` })).json();
const post = (url: string, payload?: unknown) => app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) });

t.test('/v1/engines publishes the llamacpp descriptors', async (t) => {
  const list = (await app.inject({ url: '/v1/engines' })).json();
  const llama = list.data.find((e: { name: string }) => e.name === 'llamacpp');
  t.equal(llama.available, true);
  const names = llama.parameters.map((p: { name: string }) => p.name);
  for (const n of ['ctx_len', 'ngl', 'n_parallel', 'threads', 'n_batch', 'embedding', 'temperature', 'keep_alive', 'max_waiting']) t.ok(names.includes(n), n);
  const ngl = llama.parameters.find((p: { name: string }) => p.name === 'ngl');
  t.same(ngl.options, ['auto', 'max']);
});

t.test('start with overrides, state, stop; the Jan 0.4 forms; concurrent starts share one load', async (t) => {
  const loads = engine.loads;
  const [a, b] = await Promise.all([post('/v1/models/tiny/start', { ctx_len: 256, n_parallel: 3, threads: 1, n_batch: 64 }), post('/v1/models/tiny/start', {})]);
  t.equal(a.statusCode, 200);
  t.equal(b.statusCode, 200);
  t.equal(engine.loads - loads, 1, 'one load for two starts');
  const s = await state('tiny');
  t.equal(s.state, 'running');
  t.equal(s.parameters.ctx_len, 256);
  t.same(s.queue, { running: 0, waiting: 0, concurrency: 3, max_waiting: 64 });
  t.match(s.info, { engine: 'llamacpp', ctx_len: 256, n_parallel: 3, threads: 1, n_batch: 64, gpu_layers: 0 });
  const stop = await app.inject({ method: 'PUT', url: '/v1/models/tiny/model/stop' });
  t.same(stop.json(), { id: 'tiny/model', object: 'model', state: 'stopped' });
  const jan = await post('/v1/models/start', { model: 'tiny', ctx_len: 128 });
  t.equal(jan.json().state, 'running');
  t.equal((await post('/v1/models/stop', { model: 'tiny' })).json().state, 'stopped');
});

t.test('bad parameters: a 400 naming the parameter and bounds (request) or the file (model object)', async (t) => {
  const r = await post('/v1/models/tiny/start', { n_parallel: 100 });
  t.equal(r.statusCode, 400);
  t.match(r.json().error, { code: 'parameter_out_of_range', param: 'n_parallel', message: /\[1, 64\]/ });
  const u = await post('/v1/models/tiny/start', { n_paralel: 2 });
  t.match(u.json().error, { code: 'unknown_parameter', param: 'n_paralel' });
  const f = await post('/v1/models/badparam/start');
  t.equal(f.statusCode, 400);
  t.match(f.json().error.message, /n_parallel.*badparam.*model\.json/);
});

t.test('a truncated GGUF is an error state naming the file before any load; the server and other models go on', async (t) => {
  const r = await post('/v1/models/corrupt/start');
  // The registry checks the header against the file size: the model is broken as listed.
  t.equal(r.statusCode, 422);
  t.equal(r.json().error.code, 'model_invalid');
  t.match(r.json().error.message, /corrupt\.gguf/);
  t.equal(r.headers['x-should-retry'], 'false');
  const s = await state('corrupt');
  t.equal(s.state, 'error');
  t.match(s.error, /corrupt\.gguf/);
  const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 });
  t.equal(chat.choices.length, 1, 'another model serves (loaded just in time)');
  t.equal((await state('tiny')).state, 'running');
  await post('/v1/models/tiny/stop');
});

t.test('not downloaded: 409; keep_alive 0 unloads after the request', async (t) => {
  const nd = await client.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'x' }] }).then(() => undefined, (e: unknown) => e);
  t.type(nd, OpenAI.ConflictError);
  t.match((nd as { code?: string }).code, 'model_not_downloaded');
  await client.completions.create({ model: 'idle', prompt: 'hello', max_tokens: 2 });
  while ((await state('idle')).state !== 'stopped') await new Promise((r) => setTimeout(r, 20));
  t.pass('unloaded once idle');
});

t.test('a stop during a load cancels it', async (t) => {
  const entry = app.registry.resolve('big');
  const start = app.manager.start(entry);
  t.equal(app.manager.state(entry).state, 'starting');
  await app.manager.stop(entry.id);
  await t.rejects(start, { code: 'model_stopped', status: 503 });
  t.equal((await state('big')).state, 'stopped');
});

t.test('stop frees the memory of the load', async (t) => {
  const rss = () => process.memoryUsage().rss;
  global.gc?.();
  const before = rss();
  await post('/v1/models/big/start', { use_mmap: false });
  await client.completions.create({ model: 'big', prompt: 'hello', max_tokens: 2 });
  const loaded = rss();
  t.ok(loaded - before > 60e6, `loading grew RSS by ${Math.round((loaded - before) / 1e6)} MB`);
  await post('/v1/models/big/stop');
  const after = rss();
  t.ok(after - before < (loaded - before) / 2, `after stop RSS is ${Math.round((after - before) / 1e6)} MB above the start (was ${Math.round((loaded - before) / 1e6)} MB loaded)`);
});

t.test('JIT off: 409 model_not_running until started', async (t) => {
  const { app: strict } = await buildTestApp(t, { modelsDir: dir, config: { ...LLAMA_TEST_CONFIG, jit: false } });
  const r = await strict.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'tiny', messages: [{ role: 'user', content: 'x' }] } });
  t.equal(r.statusCode, 409);
  t.equal(r.json().error.code, 'model_not_running');
});

t.test('start on a running model: the context the engine chose counts as its ctx_len', async (t) => {
  t.equal((await post('/v1/models/free/start')).statusCode, 200);
  const chosen = (await state('free')).info.ctx_len as number;
  t.equal((await post('/v1/models/free/start', { ctx_len: chosen })).statusCode, 200, 'the same value joins');
  const other = await post('/v1/models/free/start', { ctx_len: chosen * 2 });
  t.equal(other.statusCode, 409);
  t.match(other.json().error, { code: 'model_running', param: 'ctx_len', message: new RegExp(`runs with ctx_len ${chosen}; stop it first`) });
  t.notMatch(other.json().error.message, /undefined/);
  await post('/v1/models/free/stop');
});
