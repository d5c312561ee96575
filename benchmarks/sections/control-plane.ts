/**
 * Control plane: `GET /v1/models` (a table of 200 model objects) and
 * `GET /health`, requests/s and p99 latency under autocannon, modeld against
 * a bare Fastify route serving the same bytes, alternating within each run.
 */
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { startModeld, writeModelsDir, type ModelFolder } from '../lib/modeld-server.ts';
import { freePort, spawnLogged, stopProcess, waitForHealthy } from '../lib/process.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';

const args = sectionArgs('control-plane');
const rec = new SectionRecorder('control-plane', 'Control plane', args.quick);
const MODEL_COUNT = 200;
const CONNECTIONS = 10;
const durationS = args.quick ? 1 : 10;
// Quick mode is a smoke test with a two-minute budget for every section together.
const runs = args.quick ? 2 : 3;

/** 200 not-downloaded model objects shaped like the repository's default ones (remote GGUFs, parameters, metadata). */
function modelFolders(): ModelFolder[] {
  return Array.from({ length: MODEL_COUNT }, (_, i) => ({
    id: `bench-model-${String(i).padStart(3, '0')}`,
    object: {
      name: `Bench Model ${i}`,
      description: 'A model object of the control-plane benchmark (not downloaded).',
      source_url: `https://huggingface.co/bench-org/bench-model-${i}-GGUF/resolve/main/bench-model-${i}.Q4_K_M.gguf`,
      parameters: { ctx_len: 4096, n_parallel: 4, temperature: 0.7, top_p: 0.95, stop: ['<|im_end|>'] },
      metadata: { engine: 'llamacpp', task: 'text-generation', quantization: 'Q4_K_M', size: 4_368_438_944 + i, tags: ['bench', 'chat'] },
    },
  }));
}

async function cannon(url: string): Promise<{ rps: number; p99: number; p50: number; errors: number }> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: durationS, pipelining: 1 });
  return { rps: result.requests.average, p99: result.latency.p99, p50: result.latency.p50, errors: result.errors + result.non2xx };
}

const modelsDir = await writeModelsDir(modelFolders());
const modeld = await startModeld({ modelsDir, threads: args.threads, repoRoot: args.modeldRoot });
const bareFile = path.join(os.tmpdir(), `modeld-bench-models-${process.pid}.json`);
let bare: ReturnType<typeof spawnLogged> | undefined;
try {
  const table = await (await fetch(`${modeld.baseUrl}/v1/models`)).text();
  const count = (JSON.parse(table) as { data: unknown[] }).data.length;
  if (count !== MODEL_COUNT) rec.note(`modeld listed ${count} models, expected ${MODEL_COUNT}`);
  await writeFile(bareFile, table);
  const barePort = await freePort();
  bare = spawnLogged(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', 'lib', 'bare-fastify.ts'), String(barePort), bareFile]);
  const bareUrl = `http://127.0.0.1:${barePort}`;
  await waitForHealthy(`${bareUrl}/health`, bare);
  rec.setup(`autocannon, ${CONNECTIONS} connections, ${durationS} s per measurement, ${runs} runs alternating modeld and the bare route; load generator in a third process`);
  rec.setup(`/v1/models body: ${MODEL_COUNT} model objects, ${(table.length / 1024).toFixed(0)} KiB of JSON`);
  rec.setup('bare route: Fastify 5, no plugins, logger off, returning the parsed modeld body (serialised with JSON.stringify per request)');
  rec.setup('modeld: `node bin/modeld.cjs serve`, log level warn, watcher off');

  const targets = [
    { path: '/v1/models', key: 'models' },
    { path: '/health', key: 'health' },
  ] as const;
  const servers = [
    { key: 'modeld', url: modeld.baseUrl, label: 'modeld' },
    { key: 'bare', url: bareUrl, label: 'bare Fastify' },
  ] as const;
  // One short warm-up each so JIT and connection setup are out of the numbers.
  for (const t of args.quick ? targets.slice(0, 1) : targets) for (const s of servers) await autocannon({ url: s.url + t.path, connections: CONNECTIONS, duration: 1 });
  for (let r = 0; r < runs; r++) {
    for (const t of targets) {
      for (const s of servers) {
        const m = await cannon(s.url + t.path);
        if (m.errors > 0) rec.note(`${s.label} ${t.path}: ${m.errors} errors/non-2xx in run ${r + 1}`);
        rec.add({ id: `control.${t.key}.${s.key}.rps`, group: `GET ${t.path}`, label: `${s.label} requests/s`, unit: 'req/s', better: 'higher', runs: [m.rps] });
        rec.add({ id: `control.${t.key}.${s.key}.p99_ms`, group: `GET ${t.path}`, label: `${s.label} p99 latency`, unit: 'ms', better: 'lower', runs: [m.p99] });
      }
    }
  }
} finally {
  await modeld.stopAndClean();
  if (bare) await stopProcess(bare);
  await rm(bareFile, { force: true });
}
await rec.write(args.out);
