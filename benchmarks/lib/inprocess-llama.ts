/**
 * node-llama-cpp used directly, in a process of its own (one llama backend
 * per process): the in-process baseline modeld is compared with. It goes
 * through `getLlamaRuntime`, so it picks the same binary (local OpenMP build
 * when present) and thread count modeld does.
 *
 *   node --import tsx inprocess-llama.ts '<json of InprocessJob>'
 *
 * prints one JSON line: InprocessLifecycle or InprocessDecode. The `serve`
 * job loads the model once, prints `{"ready":true}`, then answers each
 * stdin line `{"prompt","tokens"}` with one decode run, so a benchmark can
 * interleave in-process runs with HTTP runs against servers.
 */
import { createInterface } from 'node:readline';
import { getLlamaRuntime } from '../../src/engines/llamacpp/llama-runtime.ts';
import { rssMiB } from './process.ts';

export type InprocessJob =
  | { kind: 'lifecycle'; model: string; threads: number; ctx: number; reps: number }
  | { kind: 'decode'; model: string; threads: number; ctx: number; prompts: string[]; tokens: number }
  | { kind: 'serve'; model: string; threads: number; ctx: number };

export interface DecodeRun {
  ttftMs: number;
  decodeTps: number;
  tokens: number;
  promptTokens: number;
}

export interface InprocessLifecycle {
  runtime: string;
  /** RSS with the backend loaded and no model, MiB. */
  baseRssMiB: number;
  runs: Array<{ startMs: number; loadedRssMiB: number; afterStopRssMiB: number }>;
}

export interface InprocessDecode {
  runtime: string;
  runs: DecodeRun[];
}

const job = JSON.parse(process.argv[2]!) as InprocessJob;
const { llama, info } = await getLlamaRuntime({ gpu: false, threads: job.threads });
const runtime = `${info.build}${info.openmp ? ' OpenMP' : ''}, ${info.threads} threads, llama.cpp ${info.llamaCppRelease}`;
const rss = () => rssMiB(process.pid) ?? NaN;

if (job.kind === 'lifecycle') {
  const out: InprocessLifecycle = { runtime, baseRssMiB: rss(), runs: [] };
  for (let r = 0; r < job.reps; r++) {
    const t0 = performance.now();
    const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
    const context = await model.createContext({ sequences: 1, contextSize: job.ctx, threads: job.threads });
    const startMs = performance.now() - t0;
    const loadedRssMiB = rss();
    await context.dispose();
    await model.dispose();
    global.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    out.runs.push({ startMs, loadedRssMiB, afterStopRssMiB: rss() });
  }
  console.log(JSON.stringify(out));
} else {
  const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
  const context = await model.createContext({ sequences: 1, contextSize: job.ctx, threads: job.threads });
  const sequence = context.getSequence();
  const decode = async (prompt: string, maxTokens: number): Promise<DecodeRun> => {
    await sequence.clearHistory();
    const t0 = performance.now();
    const tokens = model.tokenize(prompt, true);
    let first = 0;
    let last = 0;
    let n = 0;
    // evaluate() keeps generating past end-of-generation tokens, which is the
    // exactly-N-tokens behaviour llama-server gets from ignore_eos; detokenising
    // each token matches what a streaming server must do before it can send.
    for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
      model.detokenize([token]);
      last = performance.now();
      if (n === 0) first = last;
      if (++n >= maxTokens) break;
    }
    return { ttftMs: first - t0, decodeTps: (n - 1) / ((last - first) / 1000), tokens: n, promptTokens: tokens.length };
  };
  if (job.kind === 'decode') {
    const out: InprocessDecode = { runtime, runs: [] };
    for (const prompt of job.prompts) out.runs.push(await decode(prompt, job.tokens));
    console.log(JSON.stringify(out));
  } else {
    console.log(JSON.stringify({ ready: true, runtime }));
    for await (const line of createInterface({ input: process.stdin })) {
      if (!line.trim()) continue;
      const req = JSON.parse(line) as { prompt: string; tokens: number };
      console.log(JSON.stringify(await decode(req.prompt, req.tokens)));
    }
  }
  await context.dispose();
  await model.dispose();
}
await llama.dispose();
