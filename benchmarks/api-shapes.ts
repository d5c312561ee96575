/**
 * What each request shape costs over the same model: the same streamed conversation through
 * OpenAI chat (`/v1/chat/completions`), OpenAI's Responses API (`/v1/responses`, which sends
 * an event line and more fields per token) and Anthropic's Messages API (`/v1/messages`).
 * One modeld, 135M shape, 1 and 4 concurrent streams; the shapes take turns in each repetition,
 * each repetition starting with the next one (so no shape always runs first).
 *
 *   npx tsx benchmarks/api-shapes.ts [--tokens 128] [--repeats 3] [--threads n]
 */
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel } from './lib/models.ts';
import { median } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: { tokens: { type: 'string', default: '128' }, repeats: { type: 'string', default: '3' }, threads: { type: 'string' } },
});
const threads = Number(args.threads ?? physicalCoreCount());
const tokens = Number(args.tokens);

interface Shape {
  name: string;
  path: string;
  body: (content: string) => Record<string, unknown>;
  /** The text a server-sent event's data carries, if it is a text delta. */
  text: (data: Record<string, any>) => string | undefined;
}

const common = { model: 'gen', temperature: 0, ignore_eos: true, stream: true };
const SHAPES: Shape[] = [
  {
    name: 'chat', path: '/v1/chat/completions',
    body: (content) => ({ ...common, messages: [{ role: 'user', content }], max_tokens: tokens }),
    text: (d) => d.choices?.[0]?.delta?.content,
  },
  {
    name: 'responses', path: '/v1/responses',
    body: (content) => ({ ...common, input: content, max_output_tokens: tokens, store: false }),
    text: (d) => (d.type === 'response.output_text.delta' ? d.delta : undefined),
  },
  {
    name: 'messages', path: '/v1/messages',
    body: (content) => ({ ...common, messages: [{ role: 'user', content }], max_tokens: tokens }),
    text: (d) => (d.type === 'content_block_delta' && d.delta?.type === 'text_delta' ? d.delta.text : undefined),
  },
];

/** One streamed answer: when it was sent, its first and last text, and how many text events came. */
async function stream(baseUrl: string, shape: Shape, content: string) {
  const sentAt = performance.now();
  const res = await fetch(`${baseUrl}${shape.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(shape.body(content)) });
  if (!res.ok || !res.body) throw new Error(`${shape.path}: HTTP ${res.status} ${await res.text()}`);
  let firstAt = 0;
  let lastAt = 0;
  let events = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').find((line) => line.startsWith('data: '))?.slice(6);
      if (!data || data === '[DONE]') continue;
      if (shape.text(JSON.parse(data) as Record<string, unknown>)) {
        lastAt = performance.now();
        firstAt ||= lastAt;
        events++;
      }
    }
  }
  return { sentAt, firstAt, lastAt, events };
}

async function round(baseUrl: string, shape: Shape, streams: number) {
  const runs = await Promise.all(Array.from({ length: streams }, (_, i) => stream(baseUrl, shape, `Story ${i} ${Math.random()}: once upon a time`)));
  const start = Math.min(...runs.map((r) => r.sentAt));
  const end = Math.max(...runs.map((r) => r.lastAt));
  return {
    aggregate: runs.reduce((n, r) => n + r.events, 0) / ((end - start) / 1000),
    ttft: median(runs.map((r) => r.firstAt - r.sentAt)),
  };
}

const gen = (await ensureBenchModel('smollm-135m')).path;
const server = await startModeld({
  modelsDir: await writeModelsDir([{ id: 'gen', object: llamaModelObject(gen, { ctx_len: 1024, n_parallel: 4, threads }) }]),
  threads,
});
try {
  await server.startModel('gen');
  await round(server.baseUrl, SHAPES[0]!, 1);
  console.log('streams  shape      text events/s  ratio to chat  TTFT ms');
  for (const streams of [1, 4]) {
    const seen = new Map<string, Array<{ aggregate: number; ttft: number }>>(SHAPES.map((s) => [s.name, []]));
    for (let r = 0; r < Number(args.repeats); r++) {
      for (let k = 0; k < SHAPES.length; k++) {
        const shape = SHAPES[(r + k) % SHAPES.length]!;
        seen.get(shape.name)!.push(await round(server.baseUrl, shape, streams));
      }
    }
    const chat = median(seen.get('chat')!.map((x) => x.aggregate));
    for (const shape of SHAPES) {
      const rate = median(seen.get(shape.name)!.map((x) => x.aggregate));
      const ttft = median(seen.get(shape.name)!.map((x) => x.ttft));
      console.log(`${String(streams).padEnd(9)}${shape.name.padEnd(11)}${rate.toFixed(1).padStart(13)}  ${(rate / chat).toFixed(3).padStart(13)}  ${ttft.toFixed(0).padStart(7)}`);
    }
  }
} finally {
  await server.stopAndClean();
}
