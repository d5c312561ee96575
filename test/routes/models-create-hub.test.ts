// POST /v1/models from a Hugging Face repository whose quantizations lie in subfolders under
// one file name (Q4_K_M/model.gguf, Q8_0/model.gguf): one object per quantization, with
// distinct ids and distinct local files, and nothing written when the answer is a 409.
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { startFakeHub } from '../helpers/fake-hub.ts';
import { ggufBytes } from '../helpers/gguf-bytes.ts';

const create = (app: FastifyInstance, body: unknown) => app.inject({ method: 'POST', url: '/v1/models', payload: body as object });

async function setup(t: { teardown(fn: () => unknown): void }) {
  const hub = await startFakeHub({
    'acme/sub': {
      files: {
        'Q4_K_M/model.gguf': ggufBytes({ fileType: 15, payloadBytes: 4_000 }),
        'Q8_0/model.gguf': ggufBytes({ fileType: 7, payloadBytes: 4_000 }),
        'README.md': Buffer.from('# sub\n'),
      },
    },
  });
  t.teardown(() => hub.close());
  const { app, modelsDir } = await buildTestApp(t, { engines: [], config: { hfEndpoint: hub.origin } });
  return { app, modelsDir };
}

t.test('quantizations in subfolders with one file name become distinct model objects', async (t) => {
  const { app, modelsDir } = await setup(t);
  const res = await create(app, { source_url: 'acme/sub' });
  t.equal(res.statusCode, 201, res.body);
  const data = res.json().data as Array<{ id: string; metadata: { quantization?: string; binaries: Array<{ path: string; url: string }> } }>;
  t.equal(data.length, 2, 'one object per quantization');
  t.equal(new Set(data.map((m) => m.id)).size, 2, 'distinct ids');
  t.same(data.map((m) => m.metadata.quantization).sort(), ['Q4_K_M', 'Q8_0']);
  const paths = data.map((m) => m.metadata.binaries[0]!.path);
  t.equal(new Set(paths).size, 2, `distinct local files (${paths.join(', ')})`);
  for (const m of data) t.match(m.metadata.binaries[0]!.url, new RegExp(`/resolve/main/${m.metadata.quantization}/model\\.gguf$`));
  t.equal((await readdir(path.join(modelsDir, 'sub'))).filter((f) => f.endsWith('.json')).length, 2);
});

t.test('a 409 on a repository writes nothing', async (t) => {
  const { app, modelsDir } = await setup(t);
  t.equal((await create(app, { source_url: 'acme/sub' })).statusCode, 201);
  const before = (await readdir(path.join(modelsDir, 'sub'))).sort();
  const again = await create(app, { source_url: 'acme/sub' });
  t.equal(again.statusCode, 409);
  t.match(again.json().error, { code: 'model_exists', param: 'id' });
  t.same((await readdir(path.join(modelsDir, 'sub'))).sort(), before, 'nothing written on the 409');
});

t.test('one file of such a repository at a time: the second is no 409', async (t) => {
  const { app } = await setup(t);
  const hub = app.config.hfEndpoint.replace(/\/+$/, '');
  const q4 = await create(app, { source_url: `${hub}/acme/sub/blob/main/Q4_K_M/model.gguf` });
  t.equal(q4.statusCode, 201, q4.body);
  const q8 = await create(app, { source_url: `${hub}/acme/sub/blob/main/Q8_0/model.gguf` });
  t.equal(q8.statusCode, 201, q8.body);
  t.not(q4.json().data[0].id, q8.json().data[0].id);
  t.not(q4.json().data[0].metadata.binaries[0].path, q8.json().data[0].metadata.binaries[0].path);
});

t.test('a hub that answers what its client cannot read, or a file name too long to keep, is a clear error, not a 500', async (t) => {
  const { createServer } = await import('node:http');
  const entry = (p: unknown) => ({ type: 'file', path: p, size: 10, oid: 'b'.repeat(40), lfs: { oid: 'a'.repeat(64), size: 10, pointerSize: 134 } });
  const trees: Record<string, string> = {
    html: '<html>',
    nulls: '[null]',
    oddpath: JSON.stringify([entry(5)]),
    long: JSON.stringify([entry(`${'x'.repeat(300)}-Q4_K_M.gguf`)]),
    climb: JSON.stringify([entry('../../other/repo/resolve/main/evil-Q4_K_M.gguf'), entry('/abs-Q4_K_M.gguf'), entry('fine-Q8_0.gguf')]),
  };
  const hub = createServer((req, res) => {
    const m = req.url!.match(/^\/api\/models\/odd\/([^/]+)\/tree/);
    res.writeHead(m ? 200 : 404, { 'content-type': 'application/json' }).end(m ? trees[m[1]!] : '{}');
  });
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  t.teardown(() => hub.close());
  const origin = `http://127.0.0.1:${(hub.address() as { port: number }).port}`;
  const { app } = await buildTestApp(t, { engines: [], config: { hfEndpoint: origin } });
  for (const repo of ['html', 'nulls', 'oddpath']) {
    const res = await create(app, { source_url: `odd/${repo}` });
    t.equal(res.statusCode, 502, repo);
    t.match(res.json().error, { code: 'source_unreachable', param: 'source_url', message: new RegExp(`^the Hugging Face hub at ${origin} answered what this server cannot read for 'odd/${repo}': `) }, repo);
  }
  // Paths that climb out of the repository are not taken: their resolve URLs would be another repository's.
  const climb = await create(app, { source_url: 'odd/climb' });
  t.equal(climb.statusCode, 201, climb.body);
  t.same(climb.json().data.map((m: { metadata: { binaries: Array<{ url: string }> } }) => m.metadata.binaries[0]!.url), [`${origin}/odd/climb/resolve/main/fine-Q8_0.gguf`]);
  const long = await create(app, { source_url: 'odd/long' });
  t.equal(long.statusCode, 400, 'a 307-byte file name cannot name a model object (it was ENAMETOOLONG, a 500)');
  t.match(long.json().error, { code: 'invalid_model_id', param: 'id', message: /is 307 bytes; a new id's folder and file names may have at most 192/ });
  const local = path.join(await tempDir(), 'm.gguf');
  await writeFile(local, ggufBytes({ fileType: 15, payloadBytes: 100 }));
  const ok = await create(app, { id: `${'a'.repeat(192)}/${'é'.repeat(96)}`, source_url: local });
  t.equal(ok.statusCode, 201, `an id of 192 bytes per name is taken (é is two bytes): ${ok.body.slice(0, 200)}`);
  const over = await create(app, { id: `a/${'é'.repeat(97)}`, source_url: local });
  t.match(over.json().error, { code: 'invalid_model_id', message: /is 194 bytes/ });

  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const gone = `http://127.0.0.1:${(closed.address() as { port: number }).port}`;
  await new Promise((r) => closed.close(r));
  const down = await buildTestApp(t, { engines: [], config: { hfEndpoint: gone } });
  const unreachable = await create(down.app, { source_url: 'odd/html' });
  t.match(unreachable.json().error, { code: 'source_unreachable', message: new RegExp(`^cannot reach the Hugging Face hub at ${gone}: connect ECONNREFUSED`) });
});
