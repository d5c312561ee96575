/**
 * A/B runs of modeld variants against llama-server in paired repetitions: every variant is
 * its own modeld process (environment and Node options of its own), all of them and
 * llama-server stay loaded, and each repetition runs every server once in a rotating order,
 * so a drift of this noisy 2-core machine hits a repetition's servers alike. Each variant's
 * ratio to llama-server is taken within a repetition, then averaged: a 1–2% effect needs
 * 8 or more repetitions here (single runs spread ±3%).
 *
 *   npx tsx benchmarks/paired-variants.ts --variants '{"base":{},"passive":{"env":{"OMP_WAIT_POLICY":"passive"}},"stgc":{"nodeArgs":["--single-threaded-gc"]},"b2048":{"params":{"n_batch":2048}}}' [--shape smollm-135m] [--streams 4] [--reps 8] [--tokens 128]
 */
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { findLlamaBinaries, startLlamaServer } from './lib/llama-server.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel, type BenchShape } from './lib/models.ts';
import { benchPrompt } from './lib/prompts.ts';
import { concurrentStreams, phaseFigures, type PhaseFigures } from './lib/sse-client.ts';

const { values: args } = parseArgs({
  options: {
    variants: { type: 'string', default: '{"base":{}}' },
    shape: { type: 'string', default: 'smollm-135m' },
    streams: { type: 'string', default: '4' },
    reps: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '128' },
  },
});
/** `params`: run parameters of the variant's model object and start (e.g. `{"n_batch": 2048}`). */
type Variant = { env?: Record<string, string>; nodeArgs?: string[]; params?: Record<string, unknown> };
const variants = JSON.parse(args.variants) as Record<string, Variant>;
const n = Number(args.streams);
const threads = physicalCoreCount();
const ctx = 512;
const bins = findLlamaBinaries();
if ('missing' in bins) throw new Error(bins.missing);
const model = await ensureBenchModel(args.shape as BenchShape);
const id = `bench-${args.shape}`;

type Target = { name: string; baseUrl: string; extra: Record<string, unknown>; stop(): Promise<void> };
const server = await startLlamaServer(bins.server, { model: model.path, threads, parallel: n, ctxPerSlot: ctx });
const targets: Target[] = [{ name: 'llama-server', baseUrl: server.baseUrl, extra: { ignore_eos: true, cache_prompt: false }, stop: () => server.stop() }];
try {
  for (const [name, v] of Object.entries(variants)) {
    const dir = await writeModelsDir([{ id, object: llamaModelObject(model.path, { ctx_len: ctx, threads, ...v.params }) }]);
    const m = await startModeld({ modelsDir: dir, threads, env: v.env, nodeArgs: v.nodeArgs });
    targets.push({ name, baseUrl: m.baseUrl, extra: { ignore_eos: true }, stop: () => m.stopAndClean() });
    await m.startModel(id, { n_parallel: n, ctx_len: ctx, threads, ...v.params });
  }
  let req = 0;
  const run = (t: Target, tokens: number) =>
    concurrentStreams(n, () => ({ baseUrl: t.baseUrl, model: id, prompt: benchPrompt(`ab-${++req}-${process.pid}`, 128), maxTokens: tokens, extra: t.extra }));
  for (const t of targets) await run(t, 8);
  const results = new Map<string, PhaseFigures[]>(targets.map((t) => [t.name, []]));
  for (let r = 0; r < Number(args.reps); r++) {
    const k = r % targets.length;
    const order = [...targets.slice(k), ...targets.slice(0, k)];
    for (const t of r % 2 === 1 ? order.reverse() : order) results.get(t.name)!.push(phaseFigures(await run(t, Number(args.tokens))));
    console.error(`rep ${r + 1}: ${targets.map((t) => `${t.name} ${results.get(t.name)!.at(-1)!.aggregate.toFixed(2)} tok/s`).join(', ')}`);
  }
  const base = results.get('llama-server')!;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`${args.shape}, ${n} streams, ${args.tokens} tokens, ${threads} threads, ${args.reps} paired repetitions; ratios to llama-server within each repetition`);
  for (const t of targets.slice(1)) {
    const xs = results.get(t.name)!;
    const ratio = (k: 'aggregate' | 'phase' | 'lastFirstTokenMs') => xs.map((x, i) => x[k] / base[i]![k]);
    const agg = ratio('aggregate');
    console.log(`${t.name}: aggregate ${mean(agg).toFixed(3)} (${Math.min(...agg).toFixed(3)}–${Math.max(...agg).toFixed(3)}), decode phase ${mean(ratio('phase')).toFixed(3)}, last first token ${mean(ratio('lastFirstTokenMs')).toFixed(3)}`);
  }
} finally {
  for (const t of targets) await t.stop().catch(() => undefined);
}
