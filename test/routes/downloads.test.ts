import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildTestApp, modelState as state, tempDir, until } from '../helpers/app.ts';
import { startFileServer, type FileServer, type ServedFile } from '../helpers/file-server.ts';
import { ggufBytes, sha256 } from '../helpers/gguf-bytes.ts';

interface Setup {
  app: FastifyInstance;
  modelsDir: string;
  server: FileServer;
}

async function setup(t: { teardown(fn: () => unknown): void }, files: Record<string, ServedFile>, config: Record<string, unknown> = {}, modelsDir?: string): Promise<Setup> {
  const server = await startFileServer({ files });
  t.teardown(() => server.close());
  const { app, modelsDir: dir } = await buildTestApp(t, { engines: [], config, ...(modelsDir ? { modelsDir } : {}) });
  return { app, modelsDir: dir, server };
}

async function writeModel(s: Pick<Setup, 'app' | 'modelsDir'>, id: string, object: unknown): Promise<void> {
  const [folder, file] = id.split('/') as [string, string];
  await mkdir(path.join(s.modelsDir, folder), { recursive: true });
  await writeFile(path.join(s.modelsDir, folder, `${file}.json`), JSON.stringify(object));
  await s.app.registry.scan();
}


const modelFor = (server: FileServer, p: string, body: Buffer) => ({
  metadata: { binaries: [{ path: path.basename(p), url: server.url(p), sha256: sha256(body), size: body.length }] },
});

t.test('POST download: 202 downloading with progress, then stopped with a byte-identical file; 200 once there', async (t) => {
  const body = ggufBytes({ payloadBytes: 400_000 });
  const s = await setup(t, { '/m.gguf': { body, holdAt: 150_000 } });
  await writeModel(s, 'tiny/model', modelFor(s.server, '/m.gguf', body));
  t.equal((await state(s.app, 'tiny/model')).state, 'not-downloaded');

  const res = await s.app.inject({ method: 'POST', url: '/v1/models/tiny/model/download' });
  t.equal(res.statusCode, 202);
  t.equal(res.json().state, 'downloading');
  await s.server.held('/m.gguf');
  const mid = await until(() => state(s.app, 'tiny%2Fmodel'), (v) => v.progress?.downloaded_bytes === 150_000);
  t.match(mid, { state: 'downloading', progress: { downloaded_bytes: 150_000, total_bytes: body.length } });
  t.equal(mid.progress.percent, Math.round((150_000 / body.length) * 10000) / 100);
  t.type(mid.progress.bytes_per_second, 'number');
  const listed = (await s.app.inject({ url: '/v1/models' })).json().data[0];
  t.match(listed, { id: 'tiny/model', state: 'downloading', progress: { downloaded_bytes: 150_000 } }, 'the table shows it too');

  s.server.release('/m.gguf');
  const end = await until(() => state(s.app, 'tiny/model'), (v) => v.state !== 'downloading');
  t.equal(end.state, 'stopped');
  t.notOk(end.progress);
  t.same(await readFile(path.join(s.modelsDir, 'tiny', 'm.gguf')), body);
  t.same((await readdir(path.join(s.modelsDir, 'tiny'))).sort(), ['m.gguf', 'model.json'], 'no part or sidecar left');
  const meta = (await s.app.inject({ url: '/v1/models/tiny/model' })).json().metadata;
  t.match(meta, { architecture: 'llama', quantization: 'Q4_K_M', context_length: 4096 }, 'the header is read after the download');

  const again = await s.app.inject({ method: 'POST', url: '/v1/models/tiny%2Fmodel/download' });
  t.equal(again.statusCode, 200);
  t.equal(again.json().state, 'stopped');
});

t.test('concurrent POSTs join one download (one transfer)', async (t) => {
  const body = ggufBytes({ payloadBytes: 200_000 });
  const s = await setup(t, { '/m.gguf': { body, holdAt: 10_000 } });
  await writeModel(s, 'j/model', modelFor(s.server, '/m.gguf', body));
  const answers = await Promise.all([1, 2, 3].map(() => s.app.inject({ method: 'POST', url: '/v1/models/j/model/download' })));
  t.same(answers.map((a) => a.statusCode), [202, 202, 202]);
  await s.server.held('/m.gguf');
  t.same((await s.app.inject({ method: 'POST', url: '/v1/models/j/download' })).statusCode, 202, 'a later join too (folder alias)');
  s.server.release('/m.gguf');
  await until(() => state(s.app, 'j/model'), (v) => v.state === 'stopped');
  t.equal(s.server.requests.filter((r) => r.path === '/m.gguf').length, 1, 'one GET');
});

t.test('cancel keeps the part (progress stays, resume from the offset); discard deletes it', async (t) => {
  const body = ggufBytes({ payloadBytes: 300_000 });
  const s = await setup(t, { '/m.gguf': { body, holdAt: 100_000 } });
  await writeModel(s, 'c/model', modelFor(s.server, '/m.gguf', body));
  await s.app.inject({ method: 'POST', url: '/v1/models/c/model/download' });
  await s.server.held('/m.gguf');
  await until(() => state(s.app, 'c/model'), (v) => v.progress?.downloaded_bytes === 100_000);
  const cancelled = await s.app.inject({ method: 'DELETE', url: '/v1/models/c/model/download' });
  t.equal(cancelled.statusCode, 200);
  t.match(cancelled.json(), { state: 'not-downloaded', progress: { downloaded_bytes: 100_000, total_bytes: body.length, bytes_per_second: 0 } });
  t.ok(existsSync(path.join(s.modelsDir, 'c', 'm.gguf.part')));
  s.server.release('/m.gguf');

  await s.app.inject({ method: 'POST', url: '/v1/models/c/model/download' });
  await until(() => state(s.app, 'c/model'), (v) => v.state === 'stopped');
  t.same(await readFile(path.join(s.modelsDir, 'c', 'm.gguf')), body);
  t.equal(s.server.requests.at(-1)!.range, 'bytes=100000-', 'resumed from the offset');

  // discard
  const body2 = ggufBytes({ payloadBytes: 300_000 });
  s.server.files.set('/d.gguf', { body: body2, holdAt: 50_000 });
  await writeModel(s, 'd/model', modelFor(s.server, '/d.gguf', body2));
  await s.app.inject({ method: 'POST', url: '/v1/models/d/model/download' });
  await s.server.held('/d.gguf');
  await until(() => state(s.app, 'd/model'), (v) => v.progress?.downloaded_bytes === 50_000);
  const discarded = await s.app.inject({ method: 'DELETE', url: '/v1/models/d/model/download?discard=true' });
  t.same(discarded.json(), { id: 'd/model', state: 'not-downloaded' }, 'no progress left');
  t.same(await readdir(path.join(s.modelsDir, 'd')), ['model.json']);
  s.server.release('/d.gguf');
});

t.test('wrong bytes: not-downloaded with an error naming expected and actual hash; nothing renamed', async (t) => {
  const body = ggufBytes({ payloadBytes: 100_000 });
  const s = await setup(t, { '/m.gguf': { body, wrong: true } });
  await writeModel(s, 'w/model', modelFor(s.server, '/m.gguf', body));
  await s.app.inject({ method: 'POST', url: '/v1/models/w/model/download' });
  const end = await until(() => state(s.app, 'w/model'), (v) => v.state !== 'downloading');
  t.equal(end.state, 'not-downloaded');
  t.match(end.error, new RegExp(`sha256 mismatch for m\\.gguf: expected ${sha256(body)}, got [0-9a-f]{64}`));
  t.same(await readdir(path.join(s.modelsDir, 'w')), ['model.json']);
  t.match((await s.app.inject({ url: '/v1/models/w/model' })).json(), { state: 'not-downloaded', error: /sha256 mismatch/ });
});

t.test('SSE: progress events then done; error events carry the reason', async (t) => {
  const body = ggufBytes({ payloadBytes: 200_000 });
  const s = await setup(t, { '/m.gguf': { body, throttle: 2_000_000 }, '/bad.gguf': { body, wrong: true } });
  await writeModel(s, 'e/model', modelFor(s.server, '/m.gguf', body));
  const res = await s.app.inject({ method: 'POST', url: '/v1/models/e/model/download', headers: { accept: 'text/event-stream' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/event-stream/);
  const events = res.body.trim().split('\n\n').map((b) => ({ event: b.match(/^event: (.*)$/m)?.[1], data: JSON.parse(b.match(/^data: (.*)$/m)![1]!) }));
  t.equal(events[0]!.event, 'progress');
  t.match(events.at(-1), { event: 'done', data: { id: 'e/model', state: 'stopped' } });
  t.ok(events.filter((e) => e.event === 'progress').every((e) => e.data.state === 'downloading' && typeof e.data.progress.downloaded_bytes === 'number'));

  await writeModel(s, 'f/model', modelFor(s.server, '/bad.gguf', body));
  const bad = await s.app.inject({ method: 'POST', url: '/v1/models/f/model/download', headers: { accept: 'text/event-stream' } });
  t.match(bad.body, /event: error\ndata: .*"code":"checksum_mismatch"/);

  const done = await s.app.inject({ method: 'POST', url: '/v1/models/e/model/download', headers: { accept: 'text/event-stream' } });
  t.match(done.body, /^event: done\n/, 'already downloaded: one done event');
});

t.test('SSE progress keeps the headers hooks set (CORS)', async (t) => {
  const body = ggufBytes({ payloadBytes: 10_000 });
  const s = await setup(t, { '/m.gguf': { body } }, { corsOrigins: ['http://x.test'] });
  await writeModel(s, 'c/model', modelFor(s.server, '/m.gguf', body));
  const res = await s.app.inject({ method: 'POST', url: '/v1/models/c/model/download', headers: { accept: 'text/event-stream', origin: 'http://x.test' } });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['access-control-allow-origin'], 'http://x.test');
  t.match(res.body, /event: done\n/);
});

t.test('507 when the declared size does not fit; 409 when nothing can be downloaded', async (t) => {
  const s = await setup(t, {});
  await writeModel(s, 'big/model', { metadata: { binaries: [{ path: 'big.gguf', url: s.server.url('/big.gguf'), size: 1e15 }] } });
  const res = await s.app.inject({ method: 'POST', url: '/v1/models/big/model/download' });
  t.equal(res.statusCode, 507);
  t.match(res.json().error, { code: 'insufficient_storage', type: 'server_error', message: /needs 1\.0 PB/ });
  t.equal(res.headers['x-should-retry'], 'false');
  t.same(await readdir(path.join(s.modelsDir, 'big')), ['model.json'], 'nothing written');
  t.equal(s.server.requests.length, 0, 'no request made');

  await writeModel(s, 'local/model', { source_url: '/nonexistent/file.gguf' });
  const local = await s.app.inject({ method: 'POST', url: '/v1/models/local/model/download' });
  t.equal(local.statusCode, 409);
  t.match(local.json().error, { code: 'model_not_downloadable', message: /\/nonexistent\/file\.gguf.*no URL/ });
});

t.test('a concurrency limit: with maxConcurrentDownloads 1 the second model waits its turn', async (t) => {
  const a = ggufBytes({ payloadBytes: 100_000 });
  const b = ggufBytes({ payloadBytes: 100_000 });
  const s = await setup(t, { '/a.gguf': { body: a, holdAt: 1000 }, '/b.gguf': { body: b } }, { maxConcurrentDownloads: 1 });
  await writeModel(s, 'a/model', modelFor(s.server, '/a.gguf', a));
  await writeModel(s, 'b/model', modelFor(s.server, '/b.gguf', b));
  await s.app.inject({ method: 'POST', url: '/v1/models/a/model/download' });
  await s.server.held('/a.gguf');
  t.equal((await s.app.inject({ method: 'POST', url: '/v1/models/b/model/download' })).statusCode, 202);
  await new Promise((r) => setTimeout(r, 100));
  t.match(await state(s.app, 'b/model'), { state: 'downloading', progress: { downloaded_bytes: 0 } }, 'b is queued');
  t.equal(s.server.requests.filter((r) => r.path === '/b.gguf').length, 0, 'b has not started');
  s.server.release('/a.gguf');
  await until(() => state(s.app, 'b/model'), (v) => v.state === 'stopped');
  t.same(await readFile(path.join(s.modelsDir, 'b', 'b.gguf')), b);
});

t.test('a split model downloads every part; DELETE removes them and the object', async (t) => {
  const parts = [ggufBytes({ payloadBytes: 50_000 }), ggufBytes({ payloadBytes: 50_000 }), ggufBytes({ payloadBytes: 20_000 })];
  const files = Object.fromEntries(parts.map((p, i) => [`/s-0000${i + 1}-of-00003.gguf`, { body: p, dropAt: [10_000] }]));
  const s = await setup(t, files);
  await writeModel(s, 'split/model', {
    metadata: { binaries: parts.map((p, i) => ({ path: `s-0000${i + 1}-of-00003.gguf`, url: s.server.url(`/s-0000${i + 1}-of-00003.gguf`), sha256: sha256(p), size: p.length })) },
  });
  await s.app.inject({ method: 'POST', url: '/v1/models/split/model/download' });
  await until(() => state(s.app, 'split/model'), (v) => v.state !== 'downloading');
  for (const [i, p] of parts.entries()) t.same(await readFile(path.join(s.modelsDir, 'split', `s-0000${i + 1}-of-00003.gguf`)), p);
  t.equal((await state(s.app, 'split/model')).state, 'stopped');
  const del = await s.app.inject({ method: 'DELETE', url: '/v1/models/split/model' });
  t.equal(del.statusCode, 200);
  t.notOk(existsSync(path.join(s.modelsDir, 'split')), 'folder gone with its downloaded parts');
});

t.test('a modeld restart mid-download: the new server shows partial progress and resumes from the offset', async (t) => {
  const body = ggufBytes({ payloadBytes: 300_000 });
  const modelsDir = await tempDir();
  const s1 = await setup(t, { '/m.gguf': { body, holdAt: 120_000 } }, {}, modelsDir);
  await writeModel(s1, 'r/model', modelFor(s1.server, '/m.gguf', body));
  await s1.app.inject({ method: 'POST', url: '/v1/models/r/model/download' });
  await s1.server.held('/m.gguf');
  await until(() => state(s1.app, 'r/model'), (v) => v.progress?.downloaded_bytes === 120_000);
  await s1.app.close();
  s1.server.release('/m.gguf');

  const { app } = await buildTestApp(t, { engines: [], modelsDir });
  t.match(await state(app, 'r/model'), { state: 'not-downloaded', progress: { downloaded_bytes: 120_000, total_bytes: body.length, percent: Math.round((120_000 / body.length) * 10000) / 100 } });
  await app.inject({ method: 'POST', url: '/v1/models/r/model/download' });
  await until(() => state(app, 'r/model'), (v) => v.state === 'stopped');
  t.same(await readFile(path.join(modelsDir, 'r', 'm.gguf')), body, 'byte-identical');
  t.equal(s1.server.requests.at(-1)!.range, 'bytes=120000-');
});
