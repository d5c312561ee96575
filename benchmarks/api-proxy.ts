/**
 * The api engine's cost: the same streamed chats sent to a modeld serving a GGUF model
 * directly, and through a second modeld whose api model forwards to the first. Both sides
 * run on this machine, so the proxy's CPU competes with the decode: the figure is an upper
 * bound on what forwarding to a remote server costs. 135M shape, 1 and 4 concurrent streams.
 *
 *   npx tsx benchmarks/api-proxy.ts [--tokens 128] [--repeats 3] [--threads n]
 *
 * PROXY_PROF=1 writes the forwarding server's CPU profiles to /tmp/prof.
 */
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel } from './lib/models.ts';
import { streamCompletion, type StreamResult } from './lib/sse-client.ts';
import { median } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: { tokens: { type: 'string', default: '128' }, repeats: { type: 'string', default: '3' }, threads: { type: 'string' } },
});
const threads = Number(args.threads ?? physicalCoreCount());
const tokens = Number(args.tokens);
const gen = (await ensureBenchModel('smollm-135m')).path;
const upstream = await startModeld({
  modelsDir: await writeModelsDir([{ id: 'gen', object: llamaModelObject(gen, { ctx_len: 1024, n_parallel: 4, threads }) }]),
  threads,
});
const proxy = await startModeld({
  nodeArgs: process.env.PROXY_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [],
  modelsDir: await writeModelsDir([{ id: 'remote', object: { metadata: { engine: 'api', api: { base_url: `${upstream.baseUrl}/v1`, model: 'gen' } }, parameters: { n_parallel: 4 } } }]),
  threads,
});

async function round(baseUrl: string, model: string, streams: number): Promise<{ aggregate: number; ttft: number }> {
  const runs: StreamResult[] = await Promise.all(Array.from({ length: streams }, (_, i) => streamCompletion({
    baseUrl, model, maxTokens: tokens, extra: { ignore_eos: true },
    prompt: [{ role: 'user', content: `Story ${i} ${Math.random()}: once upon a time` }],
  })));
  const start = Math.min(...runs.map((r) => r.sentAt));
  const end = Math.max(...runs.map((r) => r.endAt));
  return { aggregate: runs.reduce((n, r) => n + r.tokens, 0) / ((end - start) / 1000), ttft: median(runs.map((r) => r.ttftMs)) };
}

try {
  await upstream.startModel('gen');
  await proxy.startModel('remote');
  await round(upstream.baseUrl, 'gen', 1);
  console.log('streams  direct tok/s  proxied tok/s  ratio  direct TTFT ms  proxied TTFT ms');
  for (const streams of [1, 4]) {
    const direct: Array<{ aggregate: number; ttft: number }> = [];
    const proxied: Array<{ aggregate: number; ttft: number }> = [];
    for (let r = 0; r < Number(args.repeats); r++) {
      direct.push(await round(upstream.baseUrl, 'gen', streams));
      proxied.push(await round(proxy.baseUrl, 'remote', streams));
    }
    const d = median(direct.map((x) => x.aggregate));
    const p = median(proxied.map((x) => x.aggregate));
    console.log(`${streams}        ${d.toFixed(1).padStart(12)}  ${p.toFixed(1).padStart(13)}  ${(p / d).toFixed(3)}  ${median(direct.map((x) => x.ttft)).toFixed(0).padStart(14)}  ${median(proxied.map((x) => x.ttft)).toFixed(0).padStart(15)}`);
  }
} finally {
  await proxy.stopAndClean();
  await upstream.stopAndClean();
}
