import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { startFakeHub } from '../../helpers/fake-hub.ts';
import type { ServedFile } from '../../helpers/file-server.ts';
import { writeTinyLlamaGguf, CHATML_TEMPLATE } from '../../helpers/gguf-writer.ts';
import { LLAMA_TEST_CONFIG } from '../../helpers/llama-fixtures.ts';

// Ollama's /api/pull and /api/delete against the local stand-in for the Hugging Face hub:
// `hf.co/<org>/<repo>:<quant>` creates the repository's model objects, downloads the named
// quantization with NDJSON progress, and the same name then chats on real node-llama-cpp.
const work = await tempDir();
const gguf = (name: string, seed: number) => {
  const file = path.join(work, name);
  writeTinyLlamaGguf(file, { chatTemplate: CHATML_TEMPLATE, contextLength: 512, seed });
  return readFileSync(file);
};
const q4 = gguf('q4.gguf', 1);
const q8: ServedFile = { body: gguf('q8.gguf', 2) };
const hub = await startFakeHub({
  'acme/Tiny-GGUF': { files: { 'tiny.Q4_K_M.gguf': q4, 'tiny.Q8_0.gguf': q8, 'README.md': Buffer.from('# tiny\n') } },
  'acme/Race-GGUF': { files: { 'race.Q4_K_M.gguf': q4 } },
});
t.teardown(() => hub.close());
const { app } = await buildTestApp(t, { config: { ...LLAMA_TEST_CONFIG, hfEndpoint: hub.origin } });
const url = await app.listen({ host: '127.0.0.1', port: 0 });

const send = (method: string, route: string, payload: Record<string, unknown>, signal?: AbortSignal) =>
  fetch(`${url}${route}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload), ...(signal ? { signal } : {}) });
const lines = async (res: Response) => (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
const tags = async () => ((await (await fetch(`${url}/api/tags`)).json()) as { models: Array<{ name: string }> }).models.map((m) => m.name);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('hf.co/<org>/<repo>:<quant> creates the objects, downloads that quantization with NDJSON progress, and chats by that name', async (t) => {
  const res = await send('POST', '/api/pull', { model: 'hf.co/acme/Tiny-GGUF:q8_0' });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^application\/x-ndjson/);
  const stream = await lines(res);
  t.same(stream[0], { status: 'pulling manifest' });
  t.same(stream.at(-1), { status: 'success' });
  const progress = stream.filter((l) => l.total !== undefined);
  t.ok(progress.length >= 2, 'progress lines');
  t.same(new Set(progress.map((l) => l.digest)), new Set([`sha256:${sha(q8.body)}`]), "the file's sha256 from the hub");
  t.same(progress.map((l) => l.completed), progress.map((l) => l.completed).sort((a, b) => a - b), 'completed grows');
  t.match(progress.at(-1), { completed: q8.body.length, total: q8.body.length });
  t.ok(stream.some((l) => l.status === 'verifying sha256 digest'));

  const models = ((await app.inject({ method: 'GET', url: '/v1/models' })).json() as { data: unknown }).data as Array<{ id: string; state: string; metadata: { quantization: string } }>;
  t.same(models.map((m) => [m.metadata.quantization, m.state]), [['Q8_0', 'stopped']], "the tag's quantization only, downloaded");
  const q8id = models.find((m) => m.metadata.quantization === 'Q8_0')!.id;
  t.same(await tags(), [q8id], '/api/tags lists what is downloaded');

  const chat = async (model: string) => (await (await send('POST', '/api/chat', {
    model, stream: false, messages: [{ role: 'user', content: 'hello' }], options: { temperature: 0, num_predict: 6 },
  })).json()) as Record<string, any>;
  const byName = await chat('hf.co/acme/Tiny-GGUF:Q8_0');
  t.match(byName, { model: q8id, done: true, eval_count: 6 }, 'the pulled name chats on the real engine');
  t.equal(byName.message.content, (await chat(q8id)).message.content, 'as its id does');
  t.equal((await chat('hf.co/acme/Tiny-GGUF')).model, q8id, 'no tag: the downloaded quantization');
  const missing = await send('POST', '/api/chat', { model: 'hf.co/acme/Other-GGUF', messages: [{ role: 'user', content: 'x' }] });
  t.equal(missing.status, 404);
  t.match(((await missing.json()) as { error: unknown }).error, { code: 'model_not_found', param: 'model', message: /pull it first/ });
});

t.test('no tag pulls Q4_K_M; stream: false answers once; a model the server has is pulled by its id', async (t) => {
  const res = await send('POST', '/api/pull', { model: 'hf.co/acme/Tiny-GGUF:latest', stream: false });
  t.same(await res.json(), { status: 'success' });
  t.equal(app.registry.list().length, 2, 'no tag: the objects the repository lacked are created');
  const q4id = (await tags()).find((n) => /Q4_K_M/.test(n));
  t.ok(q4id, 'Q4_K_M downloaded');
  t.equal((app.registry.get(q4id!)!.binaries[0]!.sha256), sha(q4));

  const again = await lines(await send('POST', '/api/pull', { name: `${q4id}:latest` }));
  t.same(again.map((l) => l.status), ['pulling manifest', `pulling ${q4id}`, 'verifying sha256 digest', 'success'], 'already there: one full progress line');
  t.match(again[1], { total: q4.length, completed: q4.length });
});

t.test('names that are neither a model nor a repository quantization are 404s naming the model', async (t) => {
  for (const [model, message] of [['llama3.2', /hf\.co\/<org>\/<repo>/], ['hf.co/acme/Tiny-GGUF:Q2_K', /no Q2_K quantization; it has Q4_K_M, Q8_0/], ['hf.co/acme/Nope-GGUF:Q8_0', /./]] as const) {
    const res = await send('POST', '/api/pull', { model });
    t.ok(res.status === 404 || res.status === 401, `${model}: ${res.status}`);
    t.match(((await res.json()) as { error: unknown }).error, { param: 'model', message }, model);
  }
  const none = await send('POST', '/api/pull', {});
  t.equal(none.status, 400);
  t.match(((await none.json()) as { error: unknown }).error, { code: 'missing_required_parameter', param: 'model' });
});

t.test('a client that leaves stops the pull it started, keeping the part; /api/delete removes a model', async (t) => {
  const id = (await tags()).find((n) => /Q8_0/.test(n))!;
  t.equal((await send('DELETE', '/api/delete', { model: id })).status, 200);
  t.notOk(existsSync(app.registry.get(id)?.binaries[0]?.path ?? '/nonexistent'), 'deleted');
  t.notOk((await tags()).includes(id));
  const gone = await send('DELETE', '/api/delete', { model: id });
  t.equal(gone.status, 404);
  t.match(((await gone.json()) as { error: unknown }).error, { code: 'model_not_found', param: 'model' });

  // The object first: creating it reads the GGUF header from the hub, which a hold would park.
  const folder = id.split('/')[0];
  t.equal((await app.inject({ method: 'POST', url: '/v1/models', payload: { source_url: `${hub.origin}/acme/Tiny-GGUF`, id: folder, quantization: 'Q8_0' } })).statusCode, 201);
  q8.holdAt = 1000;
  const held = hub.held(`/acme/Tiny-GGUF/resolve/main/tiny.Q8_0.gguf`);
  const ac = new AbortController();
  const res = await send('POST', '/api/pull', { model: 'hf.co/acme/Tiny-GGUF:Q8_0' }, ac.signal);
  const reader = res.body!.getReader();
  await reader.read();
  await held;
  const recreated = app.registry.list().find((e) => /Q8_0/.test(e.id))!;
  t.ok(app.downloads.job(recreated.id), 'downloading');
  // The bytes before the hold reach the client in their own time.
  for (let i = 0; i < 200 && (app.downloads.job(recreated.id)?.progress().downloaded_bytes ?? 0) < 1000; i++) await new Promise((r) => setTimeout(r, 25));
  ac.abort();
  hub.release(`/acme/Tiny-GGUF/resolve/main/tiny.Q8_0.gguf`);
  for (let i = 0; i < 200 && app.downloads.job(recreated.id); i++) await new Promise((r) => setTimeout(r, 25));
  t.notOk(app.downloads.job(recreated.id), 'the download stopped');
  const state = (await app.inject({ method: 'GET', url: `/v1/models/${recreated.id}/state` })).json() as { state: string; progress?: { downloaded_bytes: number } };
  t.equal(state.state, 'not-downloaded');
  t.ok((state.progress?.downloaded_bytes ?? 0) >= 1000, 'the part is kept for a resume');

  const resumed = await lines(await send('POST', '/api/pull', { model: 'hf.co/acme/Tiny-GGUF:Q8_0' }));
  t.same(resumed.at(-1), { status: 'success' }, 'and the next pull finishes it');
  t.ok((await tags()).includes(recreated.id));
});

t.test('two pulls of one new repository at once both succeed on the one model object', async (t) => {
  const pull = () => send('POST', '/api/pull', { model: 'hf.co/acme/Race-GGUF', stream: false });
  const answers = await Promise.all([pull(), pull()]);
  t.same(await Promise.all(answers.map((r) => r.json())), [{ status: 'success' }, { status: 'success' }]);
  const race = app.registry.list().filter((e) => e.id.startsWith('Race-GGUF/'));
  t.equal(race.length, 1, 'one object');
  t.ok((await tags()).includes(race[0]!.id), 'downloaded');
});
