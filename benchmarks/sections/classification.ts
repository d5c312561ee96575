/**
 * Classification: adapter over `benchmarks/classification.ts` (the ONNX
 * engine's own benchmark: HTTP requests/s and p50/p99 at concurrency 1/8/32
 * with dynamic batching on and off, and raw onnxruntime-node at batch sizes
 * 1/8/32, one generated MLP image classifier). It runs that script three
 * times, each in its own process, and turns its rows into figures.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BENCH_DIR } from '../lib/paths.ts';
import { spawnLogged } from '../lib/process.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';
import type { Row } from '../classification.ts';

interface Output {
  model: Record<string, unknown>;
  settings: Record<string, unknown>;
  results: Row[];
}

const args = sectionArgs('classification');
const rec = new SectionRecorder('classification', 'Classification', args.quick);
// Quick mode is a smoke test with a two-minute budget for every section: one short run.
const reps = args.quick ? 1 : 3;
const duration = args.quick ? 1 : 5;
const tmp = await mkdtemp(path.join(os.tmpdir(), 'modeld-bench-cls-'));

try {
  for (let r = 0; r < reps; r++) {
    const out = path.join(tmp, `run-${r}.json`);
    const proc = spawnLogged(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'classification.ts'), '--duration', String(duration), '--out', out], { cwd: path.dirname(BENCH_DIR) });
    const code = await proc.exited;
    if (code !== 0) throw new Error(`benchmarks/classification.ts exited with ${code}:\n${proc.tail()}`);
    const data = JSON.parse(await readFile(out, 'utf8')) as Output;
    if (r === 0) {
      rec.setup(`model: ${JSON.stringify(data.model)}`);
      rec.setup(`settings: ${JSON.stringify(data.settings)}`);
      rec.setup(`${reps} runs of benchmarks/classification.ts, each a fresh process; HTTP load from autocannon with connections = concurrency`);
    }
    for (const row of data.results) {
      const raw = row.mode.startsWith('raw');
      const mode = raw ? 'raw' : row.mode.includes('no batching') ? 'nobatching' : 'batching';
      const key = raw ? `classification.c${row.batch_size}.raw` : `classification.c${row.concurrency}.${mode}`;
      const group = raw ? 'raw onnxruntime-node in-process (rows/s at batch size = concurrency)' : `HTTP, ${mode === 'batching' ? 'dynamic batching' : 'no batching'}`;
      const at = raw ? `batch ${row.batch_size}` : `concurrency ${row.concurrency}`;
      rec.add({ id: `${key}.rps`, group, label: `${at}: requests/s`, unit: 'req/s', better: 'higher', runs: [row.requests_per_s], plot: { chart: 'classification', series: group, x: raw ? row.batch_size! : row.concurrency } });
      rec.add({ id: `${key}.p50_ms`, group, label: `${at}: p50`, unit: 'ms', better: 'lower', runs: [row.p50_ms] });
      rec.add({ id: `${key}.p99_ms`, group, label: `${at}: p99`, unit: 'ms', better: 'lower', runs: [row.p99_ms] });
      if (row.runs_per_request !== undefined) rec.add({ id: `${key}.runs_per_request`, group, label: `${at}: session runs per request`, unit: 'runs', better: 'lower', runs: [row.runs_per_request] });
      if (row.errors) rec.note(`${row.mode} c${row.concurrency}: ${row.errors} errors in run ${r + 1}`);
    }
  }
} catch (err) {
  rec.skip((err as Error).message.slice(0, 500));
} finally {
  await rm(tmp, { recursive: true, force: true });
}
await rec.write(args.out);
