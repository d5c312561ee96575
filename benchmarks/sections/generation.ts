/**
 * Generation: single-stream decode speed and time to first token, and
 * aggregate throughput with per-stream TTFT at 1/2/4/8 concurrent streams,
 * for modeld (HTTP streaming, `n_parallel` = streams) against llama-server
 * (`-np` = streams) built from the same llama.cpp commit, node-llama-cpp
 * in-process (single stream), and llama-bench as the ceiling.
 *
 * modeld and llama-server run side by side (both loaded, alternating
 * repetitions) so drifting machine load hits both alike. Every run generates
 * exactly N tokens: both servers get `ignore_eos` (end-of-generation tokens are
 * never sampled) and the token counts are checked.
 */
import { SHAPE_LABEL, ensureBenchModel, type BenchShape } from '../lib/models.ts';
import { findLlamaBinaries, runLlamaBench, startLlamaServer, type RunningServer } from '../lib/llama-server.ts';
import { llamaModelObject, startModeld, writeModelsDir, type RunningModeld } from '../lib/modeld-server.ts';
import { startInprocessDecoder, type InprocessDecoder } from '../lib/inprocess-runner.ts';
import { benchPrompt } from '../lib/prompts.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';
import { concurrentStreams, type ConcurrentResult } from '../lib/sse-client.ts';
import { percentile } from '../lib/stats.ts';

const args = sectionArgs('generation');
const rec = new SectionRecorder('generation', 'Generation', args.quick);
const reps = args.quick ? 2 : 3;
const promptWords = args.quick ? 24 : 128;
const genTokens = args.quick ? 16 : 128;
// Quick mode (a smoke test, two minutes for every section) keeps one shared-batch level.
const levels = args.quick ? [1, 4] : [1, 2, 4, 8];
/** Context per sequence: prompt + generation with headroom, the same for every engine. */
const ctxPerSeq = 512;

rec.setup(`${args.threads} threads everywhere; prompt ≈${promptWords} words (distinct per request, so no prompt cache hits), exactly ${genTokens} generated tokens, greedy; ${reps} runs per figure after one warm-up`);
rec.setup(`context ${ctxPerSeq} tokens per sequence; concurrency levels ${levels.join('/')} with llama-server \`-np\` and modeld \`n_parallel\` equal to the streams`);
rec.setup('modeld runs as users start it (`node bin/modeld.cjs`, which sets UV_THREADPOOL_SIZE=1 so every decode stays on one OpenMP team); node-llama-cpp in-process runs with libuv\'s default pool, as a library user gets it (`benchmarks/decode-threads.ts` shows both)');
rec.setup('decode tok/s = (tokens − 1) / (last token − first token) as the client sees them; aggregate tok/s = all tokens / (first send → last end), prefill included');

const bins = findLlamaBinaries();
if ('missing' in bins) rec.note(`llama-server / llama-bench: ${bins.missing}`);
else rec.fact('llama-server', `llama.cpp ${bins.commit.slice(0, 12)} (bundled commit), Release, OpenMP, native CPU flags${bins.builtAt ? `, built ${bins.builtAt}` : ''}`);

type Server = { key: 'modeld' | 'llama-server'; label: string; baseUrl: string; model: string; extra: Record<string, unknown> };
let requestId = 0;

function checkTokens(server: string, shape: string, n: number, res: ConcurrentResult): void {
  const short = res.streams.filter((s) => s.tokens !== genTokens);
  if (short.length > 0) rec.note(`${server} ${shape} c${n}: ${short.length} stream(s) generated ${short.map((s) => s.tokens).join(',')} tokens instead of ${genTokens} (finish ${short.map((s) => s.finishReason).join(',')})`);
}

async function measure(server: Server, shape: BenchShape, n: number): Promise<void> {
  const res = await concurrentStreams(n, () => ({
    baseUrl: server.baseUrl,
    model: server.model,
    prompt: benchPrompt(`${++requestId}-${process.pid}`, promptWords),
    maxTokens: genTokens,
    extra: server.extra,
  }));
  checkTokens(server.label, shape, n, res);
  const base = `generation.${shape}.${server.key}.c${n}`;
  const chart = { chart: 'aggregate', series: `${server.label}, ${SHAPE_LABEL[shape]}`, x: n };
  rec.add({ id: `${base}.aggregate_tps`, group: `${SHAPE_LABEL[shape]}: ${n} concurrent stream${n > 1 ? 's' : ''}`, label: `${server.label} aggregate`, unit: 'tok/s', better: 'higher', runs: [res.aggregateTps], plot: chart });
  const ttfts = res.streams.map((s) => s.ttftMs);
  rec.add({ id: `${base}.ttft_p50_ms`, group: `${SHAPE_LABEL[shape]}: ${n} concurrent stream${n > 1 ? 's' : ''}`, label: `${server.label} TTFT p50`, unit: 'ms', better: 'lower', runs: [percentile(ttfts, 50)], plot: { ...chart, chart: 'ttft-p50' } });
  rec.add({ id: `${base}.ttft_p99_ms`, group: `${SHAPE_LABEL[shape]}: ${n} concurrent stream${n > 1 ? 's' : ''}`, label: `${server.label} TTFT p99`, unit: 'ms', better: 'lower', runs: [percentile(ttfts, 99)] });
  if (n === 1) {
    const s = res.streams[0]!;
    rec.add({ id: `generation.${shape}.${server.key}.decode_tps`, group: `${SHAPE_LABEL[shape]}: single stream`, label: `${server.label} decode`, unit: 'tok/s', better: 'higher', runs: [s.decodeTps] });
    rec.add({ id: `generation.${shape}.${server.key}.ttft_ms`, group: `${SHAPE_LABEL[shape]}: single stream`, label: `${server.label} TTFT`, unit: 'ms', better: 'lower', runs: [s.ttftMs] });
    if (s.promptTokens !== undefined) rec.fact(`${shape} prompt tokens (${server.key})`, String(s.promptTokens));
  }
}

async function measureInprocess(inproc: InprocessDecoder, shape: BenchShape): Promise<void> {
  const run = await inproc.decode(benchPrompt(`${++requestId}-${process.pid}`, promptWords), genTokens);
  const group = `${SHAPE_LABEL[shape]}: single stream`;
  rec.add({ id: `generation.${shape}.inprocess.decode_tps`, group, label: 'node-llama-cpp in-process decode', unit: 'tok/s', better: 'higher', runs: [run.decodeTps] });
  rec.add({ id: `generation.${shape}.inprocess.ttft_ms`, group, label: 'node-llama-cpp in-process TTFT', unit: 'ms', better: 'lower', runs: [run.ttftMs] });
  rec.fact(`${shape} prompt tokens (in-process)`, String(run.promptTokens));
}

let modeldUsable = true;

async function shapeRun(shape: BenchShape): Promise<void> {
  const model = await ensureBenchModel(shape);
  rec.setup(`${SHAPE_LABEL[shape]}: ${(model.parameters / 1e6).toFixed(0)}M parameters, Q8_0, ${model.vocab} vocabulary, ${(model.bytes / 2 ** 20).toFixed(0)} MiB, random weights`);
  const modelId = `bench-${shape}`;
  let modeld: RunningModeld | undefined;
  if (modeldUsable) {
    const dir = await writeModelsDir([{ id: modelId, object: llamaModelObject(model.path, { ctx_len: ctxPerSeq, threads: args.threads }) }]);
    modeld = await startModeld({ modelsDir: dir, threads: args.threads, repoRoot: args.modeldRoot });
  }
  try {
    for (const n of levels) {
      const servers: Server[] = [];
      let llamaServer: RunningServer | undefined;
      if (!('missing' in bins)) {
        llamaServer = await startLlamaServer(bins.server, { model: model.path, threads: args.threads, parallel: n, ctxPerSlot: ctxPerSeq });
        servers.push({ key: 'llama-server', label: 'llama-server', baseUrl: llamaServer.baseUrl, model: modelId, extra: { ignore_eos: true, cache_prompt: false } });
      }
      if (modeld && modeldUsable) {
        try {
          await modeld.startModel(modelId, { n_parallel: n, ctx_len: ctxPerSeq, threads: args.threads });
          servers.push({ key: 'modeld', label: 'modeld', baseUrl: modeld.baseUrl, model: modelId, extra: { ignore_eos: true } });
        } catch (err) {
          modeldUsable = false;
          rec.note(`modeld could not start a GGUF model, so it is left out: ${(err as Error).message.slice(0, 300)}`);
        }
      }
      // node-llama-cpp in-process joins the single-stream rotation: same runtime selection and threads as modeld.
      let inproc: InprocessDecoder | undefined;
      if (n === 1) {
        inproc = await startInprocessDecoder({ model: model.path, threads: args.threads, ctx: ctxPerSeq });
        rec.fact('node-llama-cpp in-process runtime', inproc.runtime);
        await inproc.decode(benchPrompt(`warm-${++requestId}`, promptWords), 8);
      }
      try {
        for (const s of servers) await concurrentStreams(n, () => ({ baseUrl: s.baseUrl, model: s.model, prompt: benchPrompt(`warm-${++requestId}`, promptWords), maxTokens: 8, extra: s.extra }));
        for (let r = 0; r < reps; r++) {
          // Rotate who goes first so nobody always runs right after the same neighbour.
          const order = r % 2 === 0 ? servers : [...servers].reverse();
          if (inproc && r % 2 === 1) await measureInprocess(inproc, shape);
          for (const s of order) await measure(s, shape, n);
          if (inproc && r % 2 === 0) await measureInprocess(inproc, shape);
        }
      } finally {
        await inproc?.stop();
        await llamaServer?.stop();
        if (modeld && servers.some((s) => s.key === 'modeld')) await modeld.stopModel(modelId).catch(() => undefined);
      }
    }
  } finally {
    await modeld?.stopAndClean();
  }

  if (!('missing' in bins)) {
    const p = args.quick ? 32 : 128;
    const g = args.quick ? 32 : 128;
    const rows = await runLlamaBench(bins.bench, { model: model.path, threads: args.threads, prompt: p, gen: g, reps });
    for (const row of rows) {
      const kind = row.n_gen > 0 ? 'tg' : 'pp';
      rec.add({
        id: `generation.${shape}.llama-bench.${kind}_tps`,
        group: `${SHAPE_LABEL[shape]}: single stream`,
        label: `llama-bench ${kind}${kind === 'tg' ? g : p} (ceiling)`,
        unit: 'tok/s',
        better: 'higher',
        runs: row.samples_ts,
      });
    }
    rec.setup(`llama-bench: \`-t ${args.threads} -p ${p} -n ${g} -r ${reps}\``);
  }
}

for (const shape of args.shapes) await shapeRun(shape);
await rec.write(args.out);
