/**
 * Why modeld runs with one libuv pool thread (bin/modeld.cjs): llama.cpp's OpenMP build gives
 * every calling thread its own worker team, and node-llama-cpp decodes on whichever libuv pool
 * thread is free. This diagnostic times each `llama_decode` (node-llama-cpp's native
 * `decodeBatch`, wrapped) and the gap between decodes for N sequences generating in one context
 * behind modeld's batch barrier, in child processes with UV_THREADPOOL_SIZE 4 (libuv's default)
 * and 1, and prints one table. In-process, no HTTP.
 *
 *   npx tsx benchmarks/decode-threads.ts [--shape smollm-135m] [--streams 1,4] [--tokens 96] [--repeats 3]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { LlamaCompletion, type LlamaContext } from 'node-llama-cpp';
import { createBatchScheduler } from './lib/batch-schedule.ts';
import { getLlamaRuntime, physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { ensureBenchModel, type BenchShape } from './lib/models.ts';

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'smollm-135m' },
    streams: { type: 'string', default: '1,4' },
    tokens: { type: 'string', default: '96' },
    repeats: { type: 'string', default: '3' },
    child: { type: 'string' },
  },
});
const threads = physicalCoreCount();

interface ChildResult { tokPerS: number; decodeMs: number; gapMs: number; sequencesPerDecode: number }

const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)]!;

async function child(n: number): Promise<void> {
  const m = await ensureBenchModel(args.shape as BenchShape);
  const { llama } = await getLlamaRuntime({ gpu: false, threads });
  const model = await llama.loadModel({ modelPath: m.path, gpuLayers: 0 });
  const results: ChildResult[] = [];
  for (let rep = 0; rep < Number(args.repeats); rep++) {
    const scheduler = createBatchScheduler({});
    const context: LlamaContext = await model.createContext({ sequences: n, threads, contextSize: 512, flashAttention: true, batching: scheduler.batching });
    // Diagnostic only: wraps node-llama-cpp 3.22.1's native context object.
    const native = (context as unknown as { _ctx: Record<string, (...a: unknown[]) => Promise<unknown>> })._ctx;
    const decodes: number[] = [];
    const gaps: number[] = [];
    let lastEnd = 0;
    const decodeBatch = native.decodeBatch!.bind(native);
    Object.defineProperty(native, 'decodeBatch', {
      configurable: true, writable: true,
      value: async () => {
        const start = performance.now();
        if (lastEnd > 0) gaps.push(start - lastEnd);
        await decodeBatch();
        lastEnd = performance.now();
        decodes.push(lastEnd - start);
      },
    });
    const t0 = performance.now();
    let tokens = 0;
    await Promise.all(Array.from({ length: n }, (_, i) => scheduler.track(() =>
      new LlamaCompletion({ contextSequence: context.getSequence() }).generateCompletion(`Once upon a time ${i} ${rep}`, {
        maxTokens: Number(args.tokens), temperature: 0, onToken: (t) => (tokens += t.length),
      }))));
    const s = scheduler.stats();
    results.push({ tokPerS: tokens / ((performance.now() - t0) / 1000), decodeMs: median(decodes), gapMs: median(gaps), sequencesPerDecode: s.tokens / s.batches });
    await context.dispose();
  }
  const best = (f: (r: ChildResult) => number) => median(results.map(f));
  console.log(JSON.stringify({ tokPerS: best((r) => r.tokPerS), decodeMs: best((r) => r.decodeMs), gapMs: best((r) => r.gapMs), sequencesPerDecode: best((r) => r.sequencesPerDecode) }));
  process.exit(0);
}

if (args.child) await child(Number(args.child));

const table = new Table({ style: { head: [], border: [] }, head: ['streams', 'UV_THREADPOOL_SIZE', 'tok/s (incl. prefill)', 'llama_decode ms (median)', 'gap between decodes ms', 'tokens per decode'] });
for (const n of args.streams.split(',').map(Number)) {
  for (const uv of ['4', '1']) {
    const out = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', String(n), '--shape', args.shape, '--tokens', args.tokens, '--repeats', args.repeats], {
      env: { ...process.env, UV_THREADPOOL_SIZE: uv }, encoding: 'utf8',
    });
    const line = out.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`child failed: ${out.stderr.slice(-2000)}`);
    const r = JSON.parse(line) as ChildResult;
    table.push([n, uv, r.tokPerS.toFixed(1), r.decodeMs.toFixed(1), r.gapMs.toFixed(2), r.sequencesPerDecode.toFixed(2)]);
  }
}
console.log(`${args.shape}, ${threads} threads, ${args.tokens} tokens per stream, median of ${args.repeats}`);
console.log(table.toString());
