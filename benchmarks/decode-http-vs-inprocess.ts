/**
 * Single-stream decode speed and time to first token through modeld's HTTP streaming
 * (/v1/completions, SSE) against node-llama-cpp in-process, on the same GGUF, threads,
 * prompt and greedy sampling, in one run. The ratio is the figure: what the server costs.
 * A second table shows 4 parallel streams over HTTP (modeld's decode loop, n_parallel 4) as
 * aggregate tokens/s and sequences per decode step.
 *
 * The server runs in a child process so the HTTP client does not share its event loop;
 * the in-process runs use the same llama.cpp build the server picks (llama-runtime).
 *
 *   npx tsx benchmarks/decode-http-vs-inprocess.ts [--model file.gguf|generated] [--tokens 128] [--runs 5]
 *
 * Without --model it uses ../shared/models/stories260K when present, else (and with
 * `--model generated`) a generated 8-layer 512-wide llama (Q8_0), big enough for the
 * matmuls rather than per-token overheads to dominate a token.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { LlamaCompletion } from 'node-llama-cpp';
import { describeRuntime, getLlamaRuntime, physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { writeTinyLlamaGguf } from '../test/helpers/gguf-writer.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', description: 'a GGUF file, or "generated"' },
    tokens: { type: 'string', default: '128' },
    runs: { type: 'string', default: '5' },
    threads: { type: 'string' },
  },
});
const TOKENS = Number(args.tokens);
const RUNS = Number(args.runs);
const THREADS = Number(args.threads ?? physicalCoreCount());
const PROMPT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.';
const CTX = 1024;

interface Sample {
  ttftMs: number;
  tokens: number;
  decodeTps: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function modelFile(tmp: string): Promise<string> {
  if (args.model && args.model !== 'generated') return path.resolve(args.model);
  const stories = path.resolve(ROOT, '../shared/models/stories260K/stories260K.gguf');
  if (!args.model && existsSync(stories)) return stories;
  const file = path.join(tmp, 'bench.gguf');
  writeTinyLlamaGguf(file, { embeddingLength: 512, layers: 8, headCount: 8, feedForwardLength: 1536, contextLength: CTX, quant: 'Q8_0' });
  return file;
}

/** One streamed completion over HTTP: TTFT to the first text, decode rate after it. */
async function httpRun(base: string, model: string): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: PROMPT, temperature: 0, max_tokens: TOKENS, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = 0;
  let last = 0;
  let tokens = 0;
  let buf = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buf += decoder.decode(bytes as Uint8Array, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!frame.startsWith('data: {')) continue;
      const chunk = JSON.parse(frame.slice(6));
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      if (chunk.choices?.[0]?.text) {
        const now = performance.now();
        if (!first) first = now;
        last = now;
      }
    }
  }
  return { ttftMs: first - t0, tokens, decodeTps: (tokens - 1) / ((last - first) / 1000) };
}

async function main() {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'modeld-bench-'));
  const file = await modelFile(tmp);
  const models = path.join(tmp, 'models');
  for (const folder of ['single', 'parallel']) {
    await mkdir(path.join(models, folder), { recursive: true });
    const parallel = folder === 'single' ? 1 : 4;
    await writeFile(path.join(models, folder, 'model.json'), JSON.stringify({
      source_url: file, parameters: { ctx_len: CTX, n_parallel: parallel, threads: THREADS, keep_alive: -1 },
    }));
  }

  const port = await freePort();
  const server = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), 'serve'], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, MODELD_PORT: String(port), MODELD_MODELS_DIR: models, MODELD_GPU: 'false', MODELD_THREADS: String(THREADS), MODELD_LOG_LEVEL: 'warn', MODELD_WATCH: 'false' },
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) break;
      if (i > 600) throw new Error('server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const m of ['single', 'parallel']) {
      const r = await fetch(`${base}/v1/models/${m}/start`, { method: 'POST' });
      if (!r.ok) throw new Error(`start ${m}: ${await r.text()}`);
    }

    const { llama, info } = await getLlamaRuntime({ gpu: false, threads: THREADS });
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const ctx = await model.createContext({ contextSize: CTX, threads: THREADS, sequences: 1 });
    const sequence = ctx.getSequence();
    const inProcessRun = async (): Promise<Sample> => {
      const completion = new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false });
      const t0 = performance.now();
      let first = 0;
      let last = 0;
      let tokens = 0;
      await completion.generateCompletion(PROMPT, {
        temperature: 0, maxTokens: TOKENS,
        onToken: (t) => (tokens += t.length),
        onTextChunk: () => {
          const now = performance.now();
          if (!first) first = now;
          last = now;
        },
      });
      completion.dispose({ disposeSequence: false });
      return { ttftMs: first - t0, tokens, decodeTps: (tokens - 1) / ((last - first) / 1000) };
    };

    // Both sides keep the evaluated prompt on their sequence and reuse it on the next run
    // (node-llama-cpp's prefix reuse), so after one warm-up run TTFT is the same work on
    // both: the last prompt token and the first sample.
    await httpRun(base, 'single');
    await inProcessRun();
    const http: Sample[] = [];
    const own: Sample[] = [];
    for (let i = 0; i < RUNS; i++) {
      http.push(await httpRun(base, 'single'));
      own.push(await inProcessRun());
    }
    await ctx.dispose();
    await model.dispose();

    const row = (name: string, s: Sample[]) => [name, String(median(s.map((x) => x.tokens))), median(s.map((x) => x.decodeTps)).toFixed(1), median(s.map((x) => x.ttftMs)).toFixed(1)];
    const single = new Table({ head: ['single stream', 'tokens', 'decode tok/s', 'TTFT ms'] });
    single.push(row('HTTP (SSE, /v1/completions)', http), row('node-llama-cpp in-process', own));
    const ratio = median(http.map((x) => x.decodeTps)) / median(own.map((x) => x.decodeTps));

    const parallel = new Table({ head: ['4 streams over HTTP', 'aggregate tok/s', 'sequences per step'] });
    for (const m of ['parallel']) {
      await Promise.all([0, 1, 2, 3].map(() => httpRun(base, m)));
      const batching = async () => ((await (await fetch(`${base}/v1/models/${m}/state`)).json()) as { info: { batching: { sequences_per_batch: Record<string, number> } } }).info.batching;
      const before = await batching();
      const t0 = performance.now();
      const runs = await Promise.all([0, 1, 2, 3].map(() => httpRun(base, m)));
      const secs = (performance.now() - t0) / 1000;
      const after = await batching();
      const tokens = runs.reduce((n, r) => n + r.tokens, 0);
      let steps = 0;
      let seqs = 0;
      for (const [k, n] of Object.entries(after.sequences_per_batch)) {
        const d = n - (before.sequences_per_batch[k] ?? 0);
        steps += d;
        seqs += d * Number(k);
      }
      parallel.push(['modeld decode loop, n_parallel 4', (tokens / secs).toFixed(1), (seqs / steps).toFixed(2)]);
    }

    console.log(`model ${path.relative(ROOT, file) || file}, ${THREADS} threads, greedy, ${TOKENS} max tokens, median of ${RUNS}; ${describeRuntime(info)}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(single.toString());
    console.log(`HTTP / in-process decode ratio: ${ratio.toFixed(3)}`);
    console.log(parallel.toString());
  } finally {
    server.kill('SIGTERM');
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
