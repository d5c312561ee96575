import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildTestApp, modelState as state, temporaryHome, until } from '../helpers/app.ts';
import { startFakeHub } from '../helpers/fake-hub.ts';
import { startFileServer } from '../helpers/file-server.ts';
import { ggufBytes, sha256 } from '../helpers/gguf-bytes.ts';

const QUANTS = { Q2_K: 10, Q4_K_M: 15, Q5_K_M: 17, Q8_0: 7 } as const;

/** A repository with four quantizations, a model split in three parts, a projector and a README. */
function repoFiles() {
  const files: Record<string, Buffer> = {};
  for (const [q, ft] of Object.entries(QUANTS)) files[`tiny-chat.${q}.gguf`] = ggufBytes({ fileType: ft, contextLength: 2048, payloadBytes: 30_000 });
  files['big/tiny-chat-F16-00001-of-00003.gguf'] = ggufBytes({ fileType: 1, contextLength: 2048, payloadBytes: 20_000, extra: { 'split.count': 3 } });
  files['big/tiny-chat-F16-00002-of-00003.gguf'] = ggufBytes({ payloadBytes: 20_000 });
  files['big/tiny-chat-F16-00003-of-00003.gguf'] = ggufBytes({ payloadBytes: 10_000 });
  files['mmproj-tiny-chat-f16.gguf'] = ggufBytes({ architecture: 'clip', payloadBytes: 5_000 });
  files['README.md'] = Buffer.from('# tiny chat\n');
  return files;
}

async function setup(t: { teardown(fn: () => unknown): void }, config: Record<string, unknown> = {}) {
  const files = repoFiles();
  const hub = await startFakeHub({
    'acme/tiny-chat-GGUF': { files },
    'gated-org/secret-GGUF': { files: { 'secret.Q4_0.gguf': ggufBytes({ fileType: 2 }) }, token: 'hf_goodtoken' },
  });
  t.teardown(() => hub.close());
  const { app, modelsDir } = await buildTestApp(t, { engines: [], config: { hfEndpoint: hub.origin, ...config } });
  return { app, modelsDir, hub, files };
}

const create = (app: FastifyInstance, body: unknown) => app.inject({ method: 'POST', url: '/v1/models', payload: body as object });
t.test('a repository with four quantizations and a split model becomes five model objects in one folder', async (t) => {
  const { app, modelsDir, hub, files } = await setup(t);
  const res = await create(app, { source_url: 'acme/tiny-chat-GGUF' });
  t.equal(res.statusCode, 201, res.body);
  const data = res.json().data as Array<Record<string, any>>;
  t.same(data.map((m) => m.id), [
    'tiny-chat-GGUF/tiny-chat-F16', 'tiny-chat-GGUF/tiny-chat.Q2_K', 'tiny-chat-GGUF/tiny-chat.Q4_K_M', 'tiny-chat-GGUF/tiny-chat.Q5_K_M', 'tiny-chat-GGUF/tiny-chat.Q8_0',
  ]);
  for (const m of data) {
    t.equal(m.owned_by, 'acme', `${m.id} owned by the organisation`);
    t.equal(m.state, 'not-downloaded');
    t.match(m.metadata, { architecture: 'llama', context_length: 2048, author: 'acme', repository: 'acme/tiny-chat-GGUF' }, `${m.id}: header read before download`);
  }
  const q4 = data.find((m) => m.id.endsWith('Q4_K_M'))!;
  const q4file = files['tiny-chat.Q4_K_M.gguf']!;
  t.match(q4.metadata, { quantization: 'Q4_K_M', size: q4file.length });
  t.match(q4.metadata.binaries[0], { path: 'tiny-chat.Q4_K_M.gguf', url: `${hub.origin}/acme/tiny-chat-GGUF/resolve/main/tiny-chat.Q4_K_M.gguf`, sha256: sha256(q4file), size: q4file.length });
  t.match(q4.metadata.binaries[1], { path: 'mmproj-tiny-chat-f16.gguf', role: 'projector' }, 'the projector goes with each model');
  const f16 = data.find((m) => m.id.endsWith('F16'))!;
  t.same(f16.metadata.binaries.slice(0, 3).map((b: { path: string }) => b.path), [1, 2, 3].map((i) => `tiny-chat-F16-0000${i}-of-00003.gguf`), 'split parts grouped in order');
  t.equal(f16.metadata.quantization, 'F16');
  t.equal(f16.metadata.size, [1, 2, 3].reduce((a, i) => a + files[`big/tiny-chat-F16-0000${i}-of-00003.gguf`]!.length, 0));
  t.same((await readdir(path.join(modelsDir, 'tiny-chat-GGUF'))).sort(), data.map((m) => `${m.id.split('/')[1]}.json`).sort(), 'only model objects: no byte of weights yet');
  t.ok(hub.requests.some((r) => r.range?.startsWith('bytes=0-')), 'headers read with range requests');

  const again = await create(app, { source_url: `${hub.origin}/acme/tiny-chat-GGUF` });
  t.equal(again.statusCode, 409);
  t.match(again.json().error, { code: 'model_exists', param: 'id', message: /tiny-chat-GGUF\/tiny-chat-F16/ });

  // download the split model: every part plus the projector, verified against the hub's LFS hashes
  await app.inject({ method: 'POST', url: `/v1/models/${encodeURIComponent(f16.id)}/download` });
  await until(() => state(app, f16.id), (v) => v.state !== 'downloading');
  t.match(await state(app, f16.id), { state: 'stopped' });
  for (const i of [1, 2, 3]) {
    t.same(await readFile(path.join(modelsDir, 'tiny-chat-GGUF', `tiny-chat-F16-0000${i}-of-00003.gguf`)), files[`big/tiny-chat-F16-0000${i}-of-00003.gguf`]);
  }
  t.equal((await state(app, q4.id)).state, 'not-downloaded', 'the other quantizations are still not downloaded');
});

t.test('quantization picks one of a repository\'s models; skip_existing adds the missing ones instead of a 409', async (t) => {
  const { app } = await setup(t);
  const one = await create(app, { source_url: 'acme/tiny-chat-GGUF', quantization: 'q8_0' });
  t.equal(one.statusCode, 201, one.body);
  t.same(one.json().data.map((m: { id: string }) => m.id), ['tiny-chat-GGUF/tiny-chat.Q8_0']);
  const again = await create(app, { source_url: 'acme/tiny-chat-GGUF' });
  t.equal(again.statusCode, 409, 'a repository import is all or nothing');
  const rest = await create(app, { source_url: 'acme/tiny-chat-GGUF', skip_existing: true });
  t.equal(rest.statusCode, 201, rest.body);
  t.same(rest.json().data.map((m: { id: string }) => m.id).sort(), [
    'tiny-chat-GGUF/tiny-chat-F16', 'tiny-chat-GGUF/tiny-chat.Q2_K', 'tiny-chat-GGUF/tiny-chat.Q4_K_M', 'tiny-chat-GGUF/tiny-chat.Q5_K_M',
  ]);
  const none = await create(app, { source_url: 'acme/tiny-chat-GGUF', skip_existing: true });
  t.equal(none.statusCode, 201);
  t.same(none.json().data, [], 'nothing left to create');
  const missing = await create(app, { source_url: 'acme/tiny-chat-GGUF', quantization: 'Q3_K_S' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { code: 'source_not_found', param: 'quantization', message: /no Q3_K_S quantization; it has .*Q4_K_M/ });
  const notRepo = await create(app, { source_url: '/nope.gguf', quantization: 'Q8_0' });
  t.equal(notRepo.statusCode, 404, 'the source is checked first');
});

t.test('a Hugging Face blob URL is rewritten to resolve and verified against the LFS sha256', async (t) => {
  const { app, modelsDir, hub, files } = await setup(t);
  const res = await create(app, { source_url: `${hub.origin}/acme/tiny-chat-GGUF/blob/main/tiny-chat.Q8_0.gguf`, name: 'Tiny Q8' });
  t.equal(res.statusCode, 201, res.body);
  const m = res.json().data[0];
  t.match(m, { id: 'tiny-chat-GGUF/tiny-chat.Q8_0', name: 'Tiny Q8', owned_by: 'acme', source_url: `${hub.origin}/acme/tiny-chat-GGUF/resolve/main/tiny-chat.Q8_0.gguf` });
  t.match(m.metadata, { quantization: 'Q8_0', architecture: 'llama', binaries: [{ sha256: sha256(files['tiny-chat.Q8_0.gguf']!) }] });
  t.equal(m.metadata.binaries.length, 1, 'a single file brings no projector');
  t.ok(hub.apiCalls.includes('paths-info acme/tiny-chat-GGUF'));
  hub.files.set('/acme/tiny-chat-GGUF/resolve/main/tiny-chat.Q8_0.gguf', { body: files['tiny-chat.Q8_0.gguf']!, dropAt: [20_000] });
  await app.inject({ method: 'POST', url: '/v1/models/tiny-chat-GGUF/tiny-chat.Q8_0/download' });
  await until(() => state(app, m.id), (v) => v.state !== 'downloading');
  t.same(await readFile(path.join(modelsDir, 'tiny-chat-GGUF', 'tiny-chat.Q8_0.gguf')), files['tiny-chat.Q8_0.gguf'], 'byte-identical after a dropped connection');
});

t.test('a gated repository: 403 source_access_denied naming HF_TOKEN; with the token it imports and downloads', async (t) => {
  const { app, hub } = await setup(t);
  const res = await create(app, { source_url: 'gated-org/secret-GGUF' });
  t.equal(res.statusCode, 403);
  t.match(res.json().error, { code: 'source_access_denied', param: 'source_url', message: /gated-org\/secret-GGUF.*401.*HF_TOKEN/ });

  const { app: app2, modelsDir } = await buildTestApp(t, { engines: [], config: { hfEndpoint: hub.origin, hfToken: 'hf_wrong' } });
  const wrong = await create(app2, { source_url: 'gated-org/secret-GGUF' });
  t.match(wrong.json().error, { code: 'source_access_denied', message: /403.*HF_TOKEN has no access/ });

  const { app: app3, modelsDir: dir3 } = await buildTestApp(t, { engines: [], config: { hfEndpoint: hub.origin, hfToken: 'hf_goodtoken' } });
  const ok = await create(app3, { source_url: `${hub.origin}/gated-org/secret-GGUF` });
  t.equal(ok.statusCode, 201, ok.body);
  t.match(ok.json().data[0].metadata, { quantization: 'Q4_0', architecture: 'llama' }, 'the header read carried the token');
  await app3.inject({ method: 'POST', url: '/v1/models/secret-GGUF/secret.Q4_0/download' });
  await until(() => state(app3, 'secret-GGUF/secret.Q4_0'), (v) => v.state !== 'downloading');
  t.equal((await state(app3, 'secret-GGUF/secret.Q4_0')).state, 'stopped');
  t.ok(existsSync(path.join(dir3, 'secret-GGUF', 'secret.Q4_0.gguf')));
  t.ok(modelsDir);
});

t.test('a direct URL: header and size before download; the token never goes to another host', async (t) => {
  const body = ggufBytes({ fileType: 7, contextLength: 1024, payloadBytes: 50_000 });
  const server = await startFileServer({ files: { '/models/phi-mini.gguf': { body } } });
  t.teardown(() => server.close());
  const { app, modelsDir } = await buildTestApp(t, { engines: [], config: { hfToken: 'hf_secret' } });
  const res = await create(app, { source_url: server.url('/models/phi-mini.gguf') });
  t.equal(res.statusCode, 201, res.body);
  const m = res.json().data[0];
  t.match(m, { id: 'phi-mini/model', state: 'not-downloaded', owned_by: '127.0.0.1', metadata: { size: body.length, quantization: 'Q8_0', context_length: 1024, architecture: 'llama' } });
  await app.inject({ method: 'POST', url: '/v1/models/phi-mini/download' });
  await until(() => state(app, 'phi-mini/model'), (v) => v.state !== 'downloading');
  t.same(await readFile(path.join(modelsDir, 'phi-mini', 'phi-mini.gguf')), body);
  t.ok(server.requests.every((r) => !r.authorization), 'no Authorization sent to a non-hub host');
});

t.test('a local path (~ expanded) is referenced in place, never copied, and survives DELETE', async (t) => {
  const home = await temporaryHome(t);
  await mkdir(path.join(home, 'llms'));
  const file = path.join(home, 'llms', 'my-model.Q4_K_M.gguf');
  const body = ggufBytes({ fileType: 15 });
  await writeFile(file, body);
  const { app, modelsDir } = await buildTestApp(t, { engines: [] });
  const res = await create(app, { source_url: '~/llms/my-model.Q4_K_M.gguf' });
  t.equal(res.statusCode, 201, res.body);
  const m = res.json().data[0];
  t.match(m, { id: 'my-model.Q4_K_M/model', state: 'stopped', source_url: file, metadata: { quantization: 'Q4_K_M' } });
  t.same(await readdir(path.join(modelsDir, 'my-model.Q4_K_M')), ['model.json'], 'not copied');
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/my-model.Q4_K_M/download' })).statusCode, 200, 'nothing to download');
  const del = await app.inject({ method: 'DELETE', url: '/v1/models/my-model.Q4_K_M/model' });
  t.equal(del.statusCode, 200);
  t.same(await readFile(file), body, 'the local file is untouched');

  const missing = await create(app, { source_url: '~/llms/nope.gguf' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { code: 'source_not_found', param: 'source_url', message: new RegExp(path.join(home, 'llms', 'nope.gguf')) });
});

t.test('a local folder: its one model, one object per model when it holds several (split parts and projectors grouped), a 400 when it holds none', async (t) => {
  const home = await temporaryHome(t);
  const quants = path.join(home, 'quants');
  await mkdir(quants);
  await writeFile(path.join(quants, 'tiny.Q4_K_M.gguf'), ggufBytes({ fileType: 15 }));
  await writeFile(path.join(quants, 'tiny.Q8_0.gguf'), ggufBytes({ fileType: 7 }));
  await writeFile(path.join(quants, 'big-00001-of-00002.gguf'), ggufBytes({ fileType: 1, extra: { 'split.count': 2 } }));
  await writeFile(path.join(quants, 'big-00002-of-00002.gguf'), ggufBytes({ fileType: 1 }));
  await writeFile(path.join(quants, 'mmproj-tiny-f16.gguf'), ggufBytes({ fileType: 1 }));
  await writeFile(path.join(quants, 'README.md'), 'not a model');
  const { app } = await buildTestApp(t, { engines: [] });
  const res = await create(app, { source_url: '~/quants' });
  t.equal(res.statusCode, 201, res.body);
  const data = res.json().data as Array<{ id: string; source_url: string; metadata: Record<string, unknown> }>;
  t.same(data.map((m) => m.id).sort(), ['quants/big-00001-of-00002', 'quants/tiny.Q4_K_M', 'quants/tiny.Q8_0']);
  t.same(data.find((m) => m.id === 'quants/tiny.Q8_0')!.source_url, path.join(quants, 'tiny.Q8_0.gguf'));
  t.equal(data.find((m) => m.id === 'quants/tiny.Q8_0')!.metadata.quantization, 'Q8_0');
  const slash = await create(app, { source_url: '~/quants', id: 'a/b' });
  t.equal(slash.statusCode, 400);
  t.equal(slash.json().error.param, 'id');

  const one = path.join(home, 'one');
  await mkdir(one);
  await writeFile(path.join(one, 'solo.gguf'), ggufBytes());
  const single = await create(app, { source_url: '~/one' });
  t.equal(single.statusCode, 201, single.body);
  t.match(single.json().data, [{ id: 'one/model', state: 'stopped' }], 'a folder of one model: one object, its binary found');

  await mkdir(path.join(home, 'empty'));
  const empty = await create(app, { source_url: '~/empty' });
  t.equal(empty.statusCode, 400);
  t.match(empty.json().error, { code: 'invalid_value', param: 'source_url', message: /no \.gguf or \.onnx file/ });
});

t.test('a source_url that is no URL is a 400 naming it, not a 500', async (t) => {
  const { app } = await buildTestApp(t, { engines: [] });
  for (const source_url of ['http://[::1', 'https://exa mple.com/a.gguf']) {
    const res = await create(app, { source_url });
    t.equal(res.statusCode, 400, source_url);
    t.match(res.json().error, { code: 'invalid_value', param: 'source_url', message: /is not a valid URL/ });
  }
});

t.test('an unknown repository is a 404 (the hub\'s anonymous 401 "Repository not found" too); a repository without GGUF files too', async (t) => {
  const { app, hub } = await setup(t);
  const res = await create(app, { source_url: 'acme/nope' });
  t.equal(res.statusCode, 404);
  t.match(res.json().error, { code: 'source_not_found', message: /acme\/nope.*does not exist.*or it is private: set HF_TOKEN/ });
  const { app: withToken } = await buildTestApp(t, { engines: [], config: { hfEndpoint: hub.origin, hfToken: 'hf_any' } });
  const seen = await create(withToken, { source_url: 'acme/nope' });
  t.equal(seen.statusCode, 404);
  t.match(seen.json().error, { code: 'source_not_found', message: /acme\/nope.*does not exist.*token in HF_TOKEN cannot see it/ });
  const bad = await create(app, { source_url: 'x', unknown: 1 });
  t.equal(bad.statusCode, 400);
});
