/**
 * Download speed while the server generates: a model download (a local HTTP file server
 * sending the qwen2.5-0.5b bench GGUF, ~530 MB) timed on an idle modeld, then again while
 * N streams generate on the 135M shape, with the streams' token rate before and during it.
 * File writes go through libuv's pool, which modeld keeps at one thread that also runs every
 * decode (docs/cpu-batching.md §4), so every write waits for the decode in progress.
 *
 *   npx tsx benchmarks/download-beside-generation.ts [--streams 4] [--threads n]
 */
import { createReadStream, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel } from './lib/models.ts';

const { values: args } = parseArgs({ options: { streams: { type: 'string', default: '4' }, threads: { type: 'string' } } });
const threads = Number(args.threads ?? physicalCoreCount());
const source = (await ensureBenchModel('qwen2.5-0.5b')).path;
const generator = (await ensureBenchModel('smollm-135m')).path;
const size = statSync(source).size;

const files = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-length': size });
  createReadStream(source).pipe(res);
});
await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
const sourceUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}/model.gguf`;

const dir = await writeModelsDir([{ id: 'gen', object: llamaModelObject(generator, { ctx_len: 4096, n_parallel: Number(args.streams), threads }) }]);
// The folder watcher on: the download targets are model folders written while it runs.
const modeld = await startModeld({ modelsDir: dir, threads, env: { MODELD_WATCH: 'true' } });
const api = (p: string, init?: RequestInit) => fetch(`${modeld.baseUrl}${p}`, init);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seconds to download the source as a new model. */
async function download(id: string): Promise<number> {
  await mkdir(path.join(dir, id));
  await writeFile(path.join(dir, id, 'model.json'), JSON.stringify({ source_url: sourceUrl }));
  while ((await api(`/v1/models/${id}`)).status === 404) await sleep(100);
  const t0 = performance.now();
  const r = await api(`/v1/models/${id}/download`, { method: 'POST' });
  if (!r.ok) throw new Error(`download ${id}: HTTP ${r.status} ${await r.text()}`);
  while (((await (await api(`/v1/models/${id}/state`)).json()) as { state: string }).state === 'downloading') await sleep(100);
  return (performance.now() - t0) / 1000;
}

let tokens = 0;
const rate = async (ms: number) => {
  const [t0, k0] = [performance.now(), tokens];
  await sleep(ms);
  return (tokens - k0) / ((performance.now() - t0) / 1000);
};
const stop = new AbortController();
try {
  await modeld.startModel('gen');
  const idle = await download('idle');
  const streams = Array.from({ length: Number(args.streams) }, (_, i) =>
    api('/v1/completions', {
      method: 'POST', signal: stop.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gen', prompt: `A story, part ${i}:`, max_tokens: 3500, ignore_eos: true, stream: true }),
    }).then(async (res) => {
      const text = new TextDecoder();
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) tokens += text.decode(chunk, { stream: true }).split('data: {').length - 1;
    }).catch(() => undefined));
  await sleep(3000);
  const alone = await rate(8000);
  const [busy, during] = await Promise.all([download('busy'), (async () => {
    const [t0, k0] = [performance.now(), tokens];
    while (((await (await api('/v1/models/busy/state')).json()) as { state: string }).state !== 'stopped') await sleep(100);
    return (tokens - k0) / ((performance.now() - t0) / 1000);
  })()]);
  stop.abort();
  await Promise.allSettled(streams);
  console.log(`${(size / 1e6).toFixed(0)} MB, ${args.streams} streams on the 135M shape, ${threads} threads`);
  console.log(`download idle:             ${(size / 1e6 / idle).toFixed(1)} MB/s`);
  console.log(`download beside streams:   ${(size / 1e6 / busy).toFixed(1)} MB/s`);
  console.log(`generation alone:          ${alone.toFixed(1)} tok/s`);
  console.log(`generation during it:      ${during.toFixed(1)} tok/s`);
} finally {
  stop.abort();
  files.close();
  await modeld.stopAndClean();
}
