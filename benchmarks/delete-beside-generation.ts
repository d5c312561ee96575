/**
 * DELETE /v1/models/{id} latency while the server generates: N streams on the 135M shape,
 * 12 other model objects in the folder, five small models created (watcher on) and deleted
 * one after another. The registry's file-system calls used to go through libuv's pool, whose
 * one thread also runs every decode (docs/cpu-batching.md §4); see src/registry/fs-now.ts.
 *
 *   npx tsx benchmarks/delete-beside-generation.ts [--streams 4] [--threads n] [--modeld-root dir]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel } from './lib/models.ts';

const { values: args } = parseArgs({
  options: { streams: { type: 'string', default: '4' }, threads: { type: 'string' }, 'modeld-root': { type: 'string' } },
});
const threads = Number(args.threads ?? physicalCoreCount());
const gen = (await ensureBenchModel('smollm-135m')).path;
const others = Array.from({ length: 12 }, (_, i) => ({ id: `other${i}`, object: llamaModelObject(gen, { ctx_len: 512 }) }));
const dir = await writeModelsDir([{ id: 'gen', object: llamaModelObject(gen, { ctx_len: 4096, n_parallel: Number(args.streams), threads }) }, ...others]);
const modeld = await startModeld({ modelsDir: dir, threads, repoRoot: args['modeld-root'], env: { MODELD_WATCH: 'true' } });
const api = (p: string, init?: RequestInit) => fetch(`${modeld.baseUrl}${p}`, init);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stop = new AbortController();
try {
  await modeld.startModel('gen');
  const streams = Array.from({ length: Number(args.streams) }, (_, i) =>
    api('/v1/completions', {
      method: 'POST', signal: stop.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gen', prompt: `A story, part ${i}:`, max_tokens: 3500, ignore_eos: true, stream: true }),
    }).then(async (res) => {
      for await (const _ of res.body as AsyncIterable<Uint8Array>);
    }).catch(() => undefined));
  await sleep(3000);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const id = `victim${i}`;
    await mkdir(path.join(dir, id));
    await writeFile(path.join(dir, id, 'model.json'), '{}');
    await writeFile(path.join(dir, id, 'w.gguf'), Buffer.alloc(1000));
    while ((await api(`/v1/models/${id}`)).status === 404) await sleep(100);
    const t0 = performance.now();
    const res = await api(`/v1/models/${id}`, { method: 'DELETE' });
    times.push(performance.now() - t0);
    if (!res.ok) throw new Error(`DELETE ${id}: HTTP ${res.status} ${await res.text()}`);
  }
  stop.abort();
  await Promise.allSettled(streams);
  console.log(`${args.streams} streams on the 135M shape, ${threads} threads; DELETE ms: ${times.map((t) => t.toFixed(0)).join(' ')}`);
} finally {
  stop.abort();
  await modeld.stopAndClean();
}
