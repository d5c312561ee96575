import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { partPathOf } from '../../src/downloads/part-files.ts';
import { buildTestApp, modelState as state, until } from '../helpers/app.ts';
import { startFileServer, type FileServer, type ServedFile } from '../helpers/file-server.ts';
import { ggufBytes, sha256 } from '../helpers/gguf-bytes.ts';

interface Setup {
  app: FastifyInstance;
  modelsDir: string;
  server: FileServer;
}

async function setup(t: { teardown(fn: () => unknown): void }, files: Record<string, ServedFile>): Promise<Setup> {
  const server = await startFileServer({ files });
  t.teardown(() => server.close());
  const { app, modelsDir } = await buildTestApp(t, { engines: [] });
  return { app, modelsDir, server };
}

async function writeModel(s: Setup, id: string, object: unknown): Promise<void> {
  const [folder, file] = id.split('/') as [string, string];
  await mkdir(path.join(s.modelsDir, folder), { recursive: true });
  await writeFile(path.join(s.modelsDir, folder, `${file}.json`), JSON.stringify(object));
  await s.app.registry.scan();
}

const download = (app: FastifyInstance, id: string) => app.inject({ method: 'POST', url: `/v1/models/${id}/download` });
const gets = (s: Setup, p: string) => s.server.requests.filter((r) => r.path === p && r.method === 'GET');

async function partHolds(file: string, bytes: number): Promise<void> {
  await until(() => stat(partPathOf(file)).then((s) => s.size, () => 0), (n) => n >= bytes);
}

/** Two model objects in one folder, each with its own binary and one shared (same path, same URL). */
async function sharedPair(t: { teardown(fn: () => unknown): void; equal(found: unknown, wanted: unknown): unknown }) {
  const a = ggufBytes({ payloadBytes: 20_000 });
  const b = ggufBytes({ payloadBytes: 30_000 });
  const shared = ggufBytes({ payloadBytes: 300_000 });
  const s = await setup(t, { '/a.gguf': { body: a }, '/b.gguf': { body: b }, '/shared.gguf': { body: shared, holdAt: 100_000 } });
  const sharedRef = { path: 'shared.gguf', url: s.server.url('/shared.gguf'), sha256: sha256(shared) };
  await writeModel(s, 'dup/a', { metadata: { binaries: [{ path: 'a.gguf', url: s.server.url('/a.gguf'), sha256: sha256(a) }, sharedRef] } });
  // b lists the shared file first: its queue turn comes before its own binary's, so once b.gguf is
  // there b has reached the shared file (the bug: a second writer appending to a's part).
  await writeModel(s, 'dup/b', { metadata: { binaries: [sharedRef, { path: 'b.gguf', url: s.server.url('/b.gguf'), sha256: sha256(b) }] } });
  const dir = path.join(s.modelsDir, 'dup');
  const sharedFile = path.join(dir, 'shared.gguf');
  // a's download is under way and parked mid-way through the shared file.
  t.equal((await download(s.app, 'dup/a')).statusCode, 202);
  await s.server.held('/shared.gguf');
  await partHolds(sharedFile, 100_000);
  // b starts while a is still writing the shared file, and fetches its own binary.
  t.equal((await download(s.app, 'dup/b')).statusCode, 202);
  await until(async () => existsSync(path.join(dir, 'b.gguf')), Boolean);
  return { s, a, b, shared, dir, sharedFile };
}

t.test('two models sharing a binary, downloaded at once: one transfer of the shared file, both end downloaded and byte-identical', async (t) => {
  const { s, a, b, shared, dir, sharedFile } = await sharedPair(t);
  const mid = await until(() => state(s.app, 'dup/b'), (v) => v.progress?.downloaded_bytes >= b.length + 100_000);
  t.match(mid, { state: 'downloading' }, "b reports the shared file's bytes while it waits on a's transfer");
  s.server.release('/shared.gguf');
  const endA = await until(() => state(s.app, 'dup/a'), (v) => v.state !== 'downloading');
  const endB = await until(() => state(s.app, 'dup/b'), (v) => v.state !== 'downloading');
  t.equal(endA.state, 'stopped', JSON.stringify(endA));
  t.equal(endB.state, 'stopped', JSON.stringify(endB));
  t.same(await readFile(sharedFile), shared, 'the shared file is byte-identical');
  t.same(await readFile(path.join(dir, 'a.gguf')), a);
  t.same(await readFile(path.join(dir, 'b.gguf')), b);
  t.equal(gets(s, '/shared.gguf').length, 1, 'one GET of the shared file: no second writer');
  t.same((await readdir(dir)).sort(), ['a.gguf', 'a.json', 'b.gguf', 'b.json', 'shared.gguf'], 'no part, sidecar or temp file left');
});

t.test('cancelling (with discard) one of two models sharing a transfer leaves the other to finish it', async (t) => {
  const { s, shared, dir, sharedFile } = await sharedPair(t);
  const cancelled = await s.app.inject({ method: 'DELETE', url: '/v1/models/dup/a/download?discard=true' });
  t.equal(cancelled.statusCode, 200);
  t.ok(existsSync(partPathOf(sharedFile)), "the part b still writes is not discarded");
  t.equal((await state(s.app, 'dup/b')).state, 'downloading', 'b goes on');
  s.server.release('/shared.gguf');
  const endB = await until(() => state(s.app, 'dup/b'), (v) => v.state !== 'downloading');
  t.equal(endB.state, 'stopped', JSON.stringify(endB));
  t.same(await readFile(sharedFile), shared);
  t.equal(gets(s, '/shared.gguf').length, 1, 'the transfer went on, not restarted');
  t.equal((await state(s.app, 'dup/a')).state, 'stopped', 'a has all its binaries now too');
  t.same((await readdir(dir)).sort(), ['a.gguf', 'a.json', 'b.gguf', 'b.json', 'shared.gguf']);
});

t.test('cancelling both models stops the shared transfer and keeps its part; a later download resumes it', async (t) => {
  const { s, shared, sharedFile } = await sharedPair(t);
  await s.app.inject({ method: 'DELETE', url: '/v1/models/dup/a/download' });
  await s.app.inject({ method: 'DELETE', url: '/v1/models/dup/b/download' });
  t.match(await state(s.app, 'dup/b'), { state: 'not-downloaded', progress: { downloaded_bytes: 100_000 + (await stat(path.join(s.modelsDir, 'dup', 'b.gguf'))).size } });
  t.ok(existsSync(partPathOf(sharedFile)), 'part kept');
  s.server.release('/shared.gguf');
  await download(s.app, 'dup/b');
  await until(() => state(s.app, 'dup/b'), (v) => v.state === 'stopped');
  t.same(await readFile(sharedFile), shared);
  t.equal(gets(s, '/shared.gguf').at(-1)!.range, 'bytes=100000-', 'resumed from the kept part');
});

t.test('a binary path in a subfolder: the subfolder is created and the file downloaded into it', async (t) => {
  const body = ggufBytes({ payloadBytes: 50_000 });
  const s = await setup(t, { '/x.gguf': { body, dropAt: [20_000] } });
  await writeModel(s, 'sub/model', { metadata: { binaries: [{ path: 'deep/er/x.gguf', url: s.server.url('/x.gguf'), sha256: sha256(body), size: body.length }] } });
  t.equal((await download(s.app, 'sub/model')).statusCode, 202);
  const end = await until(() => state(s.app, 'sub/model'), (v) => v.state !== 'downloading');
  t.equal(end.state, 'stopped', JSON.stringify(end));
  t.same(await readFile(path.join(s.modelsDir, 'sub', 'deep', 'er', 'x.gguf')), body);
  t.same(await readdir(path.join(s.modelsDir, 'sub', 'deep', 'er')), ['x.gguf'], 'no part, sidecar or temp file left');
});

t.test('a binary path that leaves the model folder is refused before any request or write', async (t) => {
  const body = ggufBytes({ payloadBytes: 1000 });
  const s = await setup(t, { '/x.gguf': { body } });
  for (const [i, p] of ['../x.gguf', 'sub/../../x.gguf', '../other/x.gguf', '/nonexistent-modeld-dir/x.gguf'].entries()) {
    await writeModel(s, `esc${i}/model`, { metadata: { binaries: [{ path: p, url: s.server.url('/x.gguf') }] } });
    const res = await download(s.app, `esc${i}/model`);
    t.equal(res.statusCode, 409, `${p}: ${res.body}`);
    t.match(res.json().error, { code: 'model_not_downloadable', message: /outside its folder/ });
  }
  t.equal(s.server.requests.length, 0, 'no request made');
  t.notOk(existsSync(path.join(s.modelsDir, 'x.gguf')));
  t.notOk(existsSync(path.join(s.modelsDir, 'other')));
});

t.test('cancel then download again at once: the new transfer waits for the cancelled one to stop writing', async (t) => {
  const body = ggufBytes({ payloadBytes: 400_000 });
  const s = await setup(t, { '/m.gguf': { body } });
  await writeModel(s, 'again/model', { metadata: { binaries: [{ path: 'm.gguf', url: s.server.url('/m.gguf'), sha256: sha256(body) }] } });
  const file = path.join(s.modelsDir, 'again', 'm.gguf');
  for (let round = 1; round <= 5; round++) {
    await rm(file, { force: true });
    await s.app.registry.scan();
    s.server.files.get('/m.gguf')!.holdAt = 100_000;
    t.equal((await download(s.app, 'again/model')).statusCode, 202);
    await s.server.held('/m.gguf');
    await partHolds(file, 100_000);
    t.equal((await s.app.inject({ method: 'DELETE', url: '/v1/models/again/model/download' })).statusCode, 200);
    t.equal((await download(s.app, 'again/model')).statusCode, 202, 'a new download right after the cancel answered');
    s.server.release('/m.gguf');
    const end = await until(() => state(s.app, 'again/model'), (v) => v.state !== 'downloading');
    t.same(end, { id: 'again/model', state: 'stopped' }, `round ${round}`);
    t.same(await readFile(file), body);
    t.equal(s.server.requests.at(-1)!.range, 'bytes=100000-', 'resumed from the part the cancelled transfer left');
  }
});
