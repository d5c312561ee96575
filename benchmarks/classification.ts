/**
 * Classification throughput and latency: requests/s and p50/p99 through HTTP at
 * concurrency 1, 8 and 32, with dynamic batching (max_batch_size 32) and without
 * (max_batch_size 1), against raw onnxruntime-node in-process at batch sizes 1, 8 and 32,
 * all in one run on one generated model.
 *
 * The model is an MLP image classifier (3x64x64 RGB → 256 → 10, 12.6 MB of float32
 * weights), big enough that one row per run is bound by streaming the weights, which is
 * what batching amortises. Every request carries one 64x64 PNG, decoded and normalised by
 * the server. The server runs in a child process so the load generator (autocannon) does
 * not share its event loop.
 *
 *   npx tsx benchmarks/classification.ts [--duration 5] [--out file.json]
 *
 * Writes benchmarks/results/classification.json (or --out); `npm run bench` runs it
 * through benchmarks/sections/classification.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Table from 'cli-table3';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { physicalCores } from '../src/engines/onnx/ort.ts';
import { OnnxGraphBuilder } from '../test/helpers/onnx-writer.ts';

const { values: args } = parseArgs({ options: { duration: { type: 'string', default: '5' }, out: { type: 'string' } } });
const DURATION = Number(args.duration);
const CONCURRENCY = [1, 8, 32];
const SIZE = 64;
const HIDDEN = 256;
const CLASSES = 10;
const ROOT = path.resolve(import.meta.dirname, '..');

function seeded(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    out[i] = ((((x ^ (x >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

function writeMlp(file: string): void {
  const inDim = 3 * SIZE * SIZE;
  const g = new OnnxGraphBuilder('mlp');
  g.input('image', 'float32', ['batch', 3, SIZE, SIZE]);
  g.output('logits', 'float32', ['batch', CLASSES]);
  g.initializer('W1', 'float32', [inDim, HIDDEN], seeded(inDim * HIDDEN, 1, 0.02));
  g.initializer('B1', 'float32', [HIDDEN], seeded(HIDDEN, 2, 0.1));
  g.initializer('W2', 'float32', [HIDDEN, CLASSES], seeded(HIDDEN * CLASSES, 3, 0.1));
  g.initializer('B2', 'float32', [CLASSES], seeded(CLASSES, 4, 0.1));
  g.node('Flatten', ['image'], ['flat'], { axis: { int: 1 } });
  g.node('MatMul', ['flat', 'W1'], ['h0']);
  g.node('Add', ['h0', 'B1'], ['h1']);
  g.node('Relu', ['h1'], ['h']);
  g.node('MatMul', ['h', 'W2'], ['o']);
  g.node('Add', ['o', 'B2'], ['logits']);
  g.write(file);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One result row; `sections/classification.ts` reads these from the JSON this script writes. */
export interface Row {
  mode: string;
  concurrency: number;
  batch_size?: number;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  runs_per_request?: number;
  errors?: number;
}

/** Raw session.run on prebuilt tensors: rows/s and per-run latency. */
async function raw(file: string, batch: number, threads: number): Promise<Row> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const data = seeded(batch * 3 * SIZE * SIZE, 9, 1);
  const feeds = { image: new ort.Tensor('float32', data, [batch, 3, SIZE, SIZE]) };
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const latencies: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < DURATION * 1000) {
    const s = performance.now();
    await session.run(feeds);
    latencies.push(performance.now() - s);
  }
  const elapsed = (performance.now() - t0) / 1000;
  await session.release();
  latencies.sort((a, b) => a - b);
  return {
    mode: 'raw onnxruntime-node',
    concurrency: 1,
    batch_size: batch,
    requests_per_s: (latencies.length * batch) / elapsed,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
  };
}

async function waitHealthy(base: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not start');
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modeld-bench-'));
  const modelDir = path.join(dir, 'mlp');
  await mkdir(modelDir);
  const file = path.join(modelDir, 'mlp.onnx');
  writeMlp(file);
  const preprocess = { scale: 1 / 255 };
  await writeFile(path.join(modelDir, 'batched.json'), JSON.stringify({ parameters: { max_batch_size: 32, max_batch_delay_ms: 2 }, metadata: { preprocess } }));
  await writeFile(path.join(modelDir, 'unbatched.json'), JSON.stringify({ parameters: { max_batch_size: 1 }, metadata: { preprocess } }));
  const threads = physicalCores();

  const rows: Row[] = [];
  for (const b of CONCURRENCY) {
    rows.push(await raw(file, b, threads));
    console.error(`raw batch ${b}: ${rows.at(-1)!.requests_per_s.toFixed(0)} rows/s`);
  }

  const pixels = Buffer.from(seeded(SIZE * SIZE * 3, 5, 1).map((v) => Math.floor((v + 1) * 127.5)));
  const png = await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/modeld.cjs'), 'serve', '-m', dir, '-p', String(port), '-l', 'warn', '--keep-alive', '-1'], {
    cwd: ROOT,
    env: { ...process.env, MODELD_WATCH: 'false', MODELD_MAX_WAITING: '256' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    await waitHealthy(base, child);
    for (const [mode, id] of [['HTTP, dynamic batching', 'mlp/batched'], ['HTTP, no batching', 'mlp/unbatched']] as const) {
      const body = JSON.stringify({ model: id, input: { image: png.toString('base64') } });
      const start = await fetch(`${base}/v1/models/${id}/start`, { method: 'POST' });
      if (!start.ok) throw new Error(`start ${id}: ${await start.text()}`);
      await autocannon({ url: `${base}/v1/classifications`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 4, duration: 1 });
      for (const c of CONCURRENCY) {
        const before = (await (await fetch(`${base}/v1/models/${id}/state`)).json()) as { info: { runs: number; rows: number } };
        const r = await autocannon({ url: `${base}/v1/classifications`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: c, duration: DURATION });
        const after = (await (await fetch(`${base}/v1/models/${id}/state`)).json()) as { info: { runs: number; rows: number } };
        rows.push({
          mode,
          concurrency: c,
          requests_per_s: r.requests.total / r.duration,
          p50_ms: r.latency.p50,
          p99_ms: r.latency.p99,
          runs_per_request: (after.info.runs - before.info.runs) / Math.max(1, after.info.rows - before.info.rows),
          errors: r.errors + r.non2xx + r.timeouts,
        });
        console.error(`${mode} c=${c}: ${rows.at(-1)!.requests_per_s.toFixed(0)} req/s`);
      }
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }

  const table = new Table({ head: ['mode', 'concurrency', 'batch', 'req/s (rows/s)', 'p50 ms', 'p99 ms', 'runs/request', 'errors'] });
  for (const r of rows) {
    table.push([
      r.mode, r.concurrency, r.batch_size ?? '', r.requests_per_s.toFixed(1), r.p50_ms.toFixed(2), r.p99_ms.toFixed(2),
      r.runs_per_request !== undefined ? r.runs_per_request.toFixed(3) : '', r.errors ?? '',
    ]);
  }
  console.log(table.toString());
  const result = {
    benchmark: 'classification',
    date: new Date().toISOString(),
    machine: {
      cpu: os.cpus()[0]?.model,
      logical_cpus: os.cpus().length,
      physical_cores: threads,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      // Other work on the machine skews the numbers; recorded so readers can tell.
      load_average_1m_at_end: +os.loadavg()[0]!.toFixed(2),
      platform: `${process.platform}/${process.arch}`,
      node: process.version,
      onnxruntime_node: (await import('onnxruntime-node/package.json', { with: { type: 'json' } })).default.version,
    },
    model: { kind: 'MLP image classifier', input: `float32 [batch, 3, ${SIZE}, ${SIZE}]`, hidden: HIDDEN, classes: CLASSES, weights_mb: +((3 * SIZE * SIZE * HIDDEN * 4) / 1e6).toFixed(1) },
    settings: { duration_s: DURATION, intra_op_threads: threads, batched: { max_batch_size: 32, max_batch_delay_ms: 2 }, unbatched: { max_batch_size: 1 }, payload: `one ${SIZE}x${SIZE} RGB PNG, ${png.length} bytes, base64 in JSON` },
    results: rows,
  };
  const out = args.out ? path.resolve(args.out) : path.join(ROOT, 'benchmarks/results/classification.json');
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

await main();
