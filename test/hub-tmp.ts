import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { buildTestApp, tempDir } from './helpers/app.ts';
const sha = 'a'.repeat(64);
const f = (path: unknown, size: unknown = 10, extra: object = {}) => ({ type: 'file', path, size, oid: 'b'.repeat(40), lfs: { oid: sha, size, pointerSize: 134 }, ...extra });
const trees: Record<string, string> = {
  html: '<html>',
  obj: '{"a":1}',
  nulls: '[null, 5, "x"]',
  escape: JSON.stringify([f('../../../../tmp/evil-x.gguf'), f('/tmp/evil-y.gguf'), f('a/../../evil-z.gguf')]),
  weird: JSON.stringify([f('m-Q4_K_M.gguf', -5), f('n-Q8_0.gguf', 'x'), f('o-Q5_K_M.gguf', 1e300), f(5), f('p.gguf', 10, { lfs: null }), f('q.gguf', 10, { lfs: { oid: 'zz' } })]),
  nul: JSON.stringify([f('a\u0000b-Q4_K_M.gguf'), f('c\nd-Q4_0.gguf'), f('CON.gguf'), f('x'.repeat(300) + '.gguf')]),
  many: JSON.stringify(Array.from({ length: 5000 }, (_, i) => f(`m-${i}-Q4_K_M.gguf`))),
  dupes: JSON.stringify([f('a/m-Q4_K_M.gguf'), f('b/m-Q4_K_M.gguf'), f('m-Q4_K_M.gguf')]),
  split: JSON.stringify([f('m-Q4_K_M-00001-of-00003.gguf'), f('m-Q4_K_M-00003-of-00003.gguf'), f('m-Q4_K_M-00002-of-00002.gguf')]),
};
const hub = createServer((req, res) => {
  const m = decodeURIComponent(req.url!).match(/^\/api\/models\/org\/([^/]+)\/(tree|paths-info)/);
  if (m) { res.writeHead(200, { 'content-type': 'application/json' }); res.end(trees[m[1]!] ?? '[]'); return; }
  res.writeHead(404); res.end();
});
await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
const dir = await tempDir();
const { app } = await buildTestApp({ teardown() {} }, { modelsDir: dir, config: { hfEndpoint: `http://127.0.0.1:${(hub.address() as AddressInfo).port}` } });
for (const name of Object.keys(trees)) {
  for (const source_url of [`org/${name}`, `https://huggingface.co/org/${name}/blob/main/m-Q4_K_M.gguf`]) {
    const r = await app.inject({ method: 'POST', url: '/v1/models', payload: { source_url } });
    console.log(name.padEnd(8), source_url.slice(0, 20), r.statusCode, r.body.slice(0, 300));
  }
}
console.log('tmp evil', existsSync('/tmp/evil-x.gguf'), existsSync('/tmp/evil-y.gguf'), readdirSync(dir));
const list = await app.inject('/v1/models');
console.log('list', list.statusCode, list.json().data?.length);
await app.close(); hub.close();
