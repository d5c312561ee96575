/**
 * The decode phase of N concurrent streams, modeld against llama-server, with the
 * prefill taken out: `npm run bench`'s aggregate figure includes the prompts, which on
 * 2 cores take as long as the answers, so a gap in the decode steps hides in it.
 * Per run it reports the aggregate tok/s, the decode-phase rate (tokens after each
 * stream's first / (last end − last first token)) and the mean per-stream decode tok/s.
 *
 *   npx tsx benchmarks/decode-phase.ts [--shape qwen2.5-0.5b] [--streams 4] [--runs 3] [--tokens 128] [--words 128]
 */
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { findLlamaBinaries, startLlamaServer } from './lib/llama-server.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel, type BenchShape } from './lib/models.ts';
import { benchPrompt } from './lib/prompts.ts';
import { concurrentStreams, phaseFigures } from './lib/sse-client.ts';

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'qwen2.5-0.5b' },
    streams: { type: 'string', default: '4' },
    runs: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '128' },
    words: { type: 'string', default: '128' },
    threads: { type: 'string' },
  },
});
const n = Number(args.streams);
const threads = Number(args.threads ?? physicalCoreCount());
const genTokens = Number(args.tokens);
const ctx = 512;
const bins = findLlamaBinaries();
if ('missing' in bins) throw new Error(bins.missing);
const model = await ensureBenchModel(args.shape as BenchShape);
const id = `bench-${args.shape}`;
const dir = await writeModelsDir([{ id, object: llamaModelObject(model.path, { ctx_len: ctx, threads }) }]);
const modeld = await startModeld({ modelsDir: dir, threads });
await modeld.startModel(id, { n_parallel: n, ctx_len: ctx, threads });
const server = await startLlamaServer(bins.server, { model: model.path, threads, parallel: n, ctxPerSlot: ctx });
const targets = [
  { name: 'llama-server', baseUrl: server.baseUrl, extra: { ignore_eos: true, cache_prompt: false } },
  { name: 'modeld', baseUrl: modeld.baseUrl, extra: { ignore_eos: true } },
];

let req = 0;
const run = (t: (typeof targets)[number], tokens: number) =>
  concurrentStreams(n, () => ({ baseUrl: t.baseUrl, model: id, prompt: benchPrompt(`phase-${++req}-${process.pid}`, Number(args.words)), maxTokens: tokens, extra: t.extra }));

const table = new Table({ head: ['run', 'server', 'aggregate tok/s', 'decode-phase tok/s', 'per-stream decode tok/s', 'last TTFT ms'] });
try {
  for (const t of targets) await run(t, 8);
  for (let r = 0; r < Number(args.runs); r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
      const f = phaseFigures(await run(t, genTokens));
      table.push([r + 1, t.name, f.aggregate.toFixed(2), f.phase.toFixed(2), f.perStream.toFixed(2), f.lastFirstTokenMs.toFixed(0)]);
      console.error(`run ${r + 1} ${t.name}: phase ${f.phase.toFixed(2)} tok/s`);
    }
  }
} finally {
  await server.stop();
  await modeld.stopAndClean();
}
console.log(`${args.shape}, ${n} streams, ${genTokens} tokens, ${threads} threads`);
console.log(table.toString());
