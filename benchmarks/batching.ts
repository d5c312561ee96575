/**
 * Aggregate decode throughput of N concurrent sequences in one node-llama-cpp
 * context, before (node-llama-cpp's default batching) and after (the batch
 * barrier of src/engines/llamacpp/batch-schedule.ts), with the number of
 * sequences per decode batch as the proof.
 *
 *   npx tsx benchmarks/batching.ts --model /path/model.gguf [--streams 1,2,4,8]
 *     [--tokens 64] [--repeats 3] [--threads 2] [--trace]
 *
 * `--trace` prints a timeline of one 4-stream run in each mode (enqueue of
 * each sequence's next token, the batch handed to llama_decode, each sample)
 * by wrapping node-llama-cpp internals; it is a diagnostic, never used by the
 * server. `--starvation` measures how long a request whose sequence holds a
 * stale conversation (so it must erase KV cells first) waits while 1–3 other
 * sequences generate.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { getLlama, LlamaCompletion, LlamaLogLevel, type LlamaContext, type LlamaModel } from 'node-llama-cpp';
import { createBatchScheduler } from './lib/batch-schedule.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: '/work/shared/models/llama-2-tiny-random/llama-2-tiny-random.gguf' },
    streams: { type: 'string', default: '1,2,4,8' },
    tokens: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    trace: { type: 'boolean', default: false },
    starvation: { type: 'boolean', default: false },
  },
});
const streamsList = args.streams.split(',').map(Number);
const maxTokens = Number(args.tokens);
const repeats = Number(args.repeats);
const threads = Number(args.threads);

const llama = await getLlama({ gpu: false, maxThreads: threads, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: args.model });

interface RunResult { tokPerS: number; tokens: number; histogram: Record<number, number>; batches: number; timeouts: number }

async function run(n: number, barrier: boolean, trace: boolean): Promise<RunResult> {
  const scheduler = createBatchScheduler({ barrier });
  const context = await model.createContext({ sequences: n, threads, contextSize: Math.min(512 * n, 4096), batching: scheduler.batching });
  const events = trace ? instrument(context) : undefined;
  try {
    const sequences = Array.from({ length: n }, () => context.getSequence());
    const firstTokenAt: number[] = [];
    let tokens = 0;
    let afterAllStarted = 0;
    let allStartedAt = 0;
    const prompts = sequences.map((_, i) => `Once upon a time, in a town numbered ${i}, there lived`);
    await Promise.all(sequences.map((sequence, i) => scheduler.track(() =>
      new LlamaCompletion({ contextSequence: sequence }).generateCompletion(prompts[i], {
        maxTokens,
        onToken(chunk) {
          tokens += chunk.length;
          if (firstTokenAt[i] === undefined) {
            firstTokenAt[i] = performance.now();
            if (firstTokenAt.filter((t) => t !== undefined).length === n) {
              allStartedAt = performance.now();
              scheduler.resetStats();
            }
          } else if (allStartedAt > 0) afterAllStarted += chunk.length;
        },
      }))));
    const elapsed = (performance.now() - allStartedAt) / 1000;
    if (events) console.log(`\n--- trace, ${n} streams, ${barrier ? 'barrier' : 'default batching'} (ms since context creation) ---\n${events.slice(40, 75).join('\n')}`);
    const s = scheduler.stats();
    return { tokPerS: afterAllStarted / elapsed, tokens, histogram: s.histogram, batches: s.batches, timeouts: s.timeouts };
  } finally {
    await context.dispose();
  }
}

/** Diagnostic timeline from node-llama-cpp internals (3.22.1): not part of the server. */
function instrument(context: LlamaContext): string[] {
  const events: string[] = [];
  const t0 = performance.now();
  const log = (line: string) => events.push(`${(performance.now() - t0).toFixed(2).padStart(9)}  ${line}`);
  const internal = context as unknown as { _ctx: Record<string, (...a: unknown[]) => unknown>; _decodeTokens: (o: { sequenceId: number; tokens: unknown[] }, m: unknown) => unknown };
  const native = internal._ctx;
  let batch: unknown[] = [];
  const wrap = (name: string, before: (a: unknown[]) => void, after?: (a: unknown[]) => void) => {
    const original = native[name].bind(native);
    Object.defineProperty(native, name, {
      configurable: true, writable: true,
      value: (...a: unknown[]) => {
        before(a);
        const result = original(...a);
        return after && result instanceof Promise ? result.then((r) => (after(a), r)) : result;
      },
    });
  };
  wrap('initBatch', () => { batch = []; });
  wrap('addToBatch', (a) => { batch.push(a[0]); });
  wrap('decodeBatch', () => log(`llama_decode  sequences [${batch.join(',')}]  (${batch.length} in batch)`), () => log('decode done'));
  wrap('sampleToken', () => undefined, (a) => log(`  sampled batch row ${a[0]}`));
  const decodeTokens = internal._decodeTokens.bind(context);
  internal._decodeTokens = (o, m) => { log(`  seq ${o.sequenceId} queued its next token`); return decodeTokens(o, m); };
  return events;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Step (of stream 0) at which a late request on a sequence with stale history gets its first token. */
async function starvation(others: number, barrier: boolean): Promise<{ startedAt: number; firstTokenAt: number; timeouts: number }> {
  const scheduler = createBatchScheduler({ barrier });
  const context = await model.createContext({ sequences: 4, threads, contextSize: 2048, batching: scheduler.batching });
  try {
    const sequences = [0, 1, 2, 3].map(() => context.getSequence());
    await new LlamaCompletion({ contextSequence: sequences[3] }).generateCompletion('an old conversation', { maxTokens: 4 });
    let steps = 0;
    const running = sequences.slice(0, others).map((sequence, i) => scheduler.track(() =>
      new LlamaCompletion({ contextSequence: sequence }).generateCompletion(`story ${i}`, { maxTokens, onToken: () => { if (i === 0) steps++; } })));
    while (steps < 10) await new Promise((resolve) => setTimeout(resolve, 1));
    const startedAt = steps;
    let firstTokenAt = -1;
    const late = scheduler.track(() => new LlamaCompletion({ contextSequence: sequences[3] })
      .generateCompletion('a brand new prompt', { maxTokens: 4, onToken: () => { if (firstTokenAt < 0) firstTokenAt = steps; } }));
    await Promise.all([...running, late]);
    return { startedAt, firstTokenAt, timeouts: scheduler.stats().timeouts };
  } finally {
    await context.dispose();
  }
}

const rows: string[] = [];
if (args.starvation) {
  console.log(`\n| other generations (${maxTokens} tokens) | late request started at step | default: first token at step | barrier: first token at step | barrier timeouts |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const others of [1, 2, 3]) {
    const before = await starvation(others, false);
    const after = await starvation(others, true);
    console.log(`| ${others} | ${before.startedAt} | ${before.firstTokenAt} | ${after.firstTokenAt} | ${after.timeouts} |`);
  }
}
if (args.trace) {
  await run(4, false, true);
  await run(4, true, true);
}
for (const n of streamsList) {
  const before: RunResult[] = [];
  const after: RunResult[] = [];
  for (let r = 0; r < repeats; r++) {
    before.push(await run(n, false, false));
    after.push(await run(n, true, false));
  }
  const fmt = (h: Record<number, number>) => Object.entries(h).map(([k, v]) => `${k}:${v}`).join(' ');
  const b = median(before.map((x) => x.tokPerS));
  const a = median(after.map((x) => x.tokPerS));
  rows.push(`| ${n} | ${b.toFixed(1)} | ${fmt(before[0].histogram)} | ${a.toFixed(1)} | ${fmt(after[0].histogram)} | ${after[0].timeouts} | ${(a / b).toFixed(2)}× |`);
  console.error(`streams ${n}: before ${before.map((x) => x.tokPerS.toFixed(1)).join('/')}  after ${after.map((x) => x.tokPerS.toFixed(1)).join('/')}`);
}
console.log(`\nmodel ${args.model}, ${threads} threads, ${maxTokens} tokens per stream, median of ${repeats}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('| streams | before tok/s | before batches (sequences:count) | after tok/s | after batches | barrier timeouts | after/before |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
await model.dispose();
