/**
 * Prompt prefix reuse over HTTP: a 5-turn chat where each request carries the
 * whole history, streamed from `/v1/chat/completions`. With KV-cache reuse
 * (llama-server's `cache_prompt`, modeld's sequence reuse) a later turn's time
 * to first token costs only its new tokens; without it, the whole history is
 * evaluated again. Target (#7): turn 2 TTFT ≤ 0.25× turn 1.
 *
 * Turn 1 carries a long system prompt so the history dominates the new
 * tokens, as in real chats. One sequence (`n_parallel` 1 / `-np 1`) so the
 * next turn always lands on the sequence that holds the history.
 */
import { SHAPE_LABEL, ensureBenchModel, type BenchShape } from '../lib/models.ts';
import { findLlamaBinaries, startLlamaServer } from '../lib/llama-server.ts';
import { llamaModelObject, startModeld, writeModelsDir } from '../lib/modeld-server.ts';
import { benchPrompt } from '../lib/prompts.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';
import { streamCompletion } from '../lib/sse-client.ts';

const args = sectionArgs('prefix-reuse');
const rec = new SectionRecorder('prefix-reuse', 'Prompt prefix reuse (multi-turn chat)', args.quick);
const reps = args.quick ? 2 : 3;
// Quick mode keeps the turns the turn 2 ÷ turn 1 ratio needs, plus one.
const turns = args.quick ? 3 : 5;
const systemWords = args.quick ? 100 : 400;
const userWords = 24;
const replyTokens = args.quick ? 8 : 32;
const ctx = 2048;
// Only the 135M shape: the question is how much of the history is re-evaluated, which the model size does not change.
const shape: BenchShape = 'smollm-135m';

rec.setup(`${SHAPE_LABEL[shape]}, ${args.threads} threads, one sequence of ${ctx} tokens; ${turns} turns, system prompt ≈${systemWords} words, user turns ≈${userWords} words, ${replyTokens}-token replies (greedy), ${reps} conversations each`);
rec.setup('one ChatML prompt for both: the bench GGUF carries ChatML as its chat template (modeld renders it) and llama-server runs `--chat-template chatml`, `cache_prompt: true` (its default)');

type Msg = { role: string; content: string };

async function conversation(baseUrl: string, model: string, conv: string, extra: Record<string, unknown>, n = turns): Promise<number[]> {
  const messages: Msg[] = [{ role: 'system', content: benchPrompt(`system ${conv}`, systemWords) }];
  const ttfts: number[] = [];
  for (let t = 0; t < n; t++) {
    messages.push({ role: 'user', content: benchPrompt(`user ${conv}.${t}`, userWords) });
    const r = await streamCompletion({ baseUrl, model, prompt: messages, maxTokens: replyTokens, extra });
    ttfts.push(r.ttftMs);
    messages.push({ role: 'assistant', content: r.text });
  }
  return ttfts;
}

function record(server: string, key: string, ttfts: number[]): void {
  ttfts.forEach((ms, t) =>
    rec.add({ id: `prefix.${key}.turn${t + 1}.ttft_ms`, group: `${server}: TTFT per turn`, label: `turn ${t + 1}`, unit: 'ms', better: 'lower', runs: [ms] }),
  );
  rec.add({ id: `prefix.${key}.turn2_over_turn1`, group: `${server}: TTFT per turn`, label: 'turn 2 ÷ turn 1', unit: '×', better: 'lower', runs: [ttfts[1]! / ttfts[0]!] });
}

const model = await ensureBenchModel(shape, { chatTemplate: 'chatml' });
const bins = findLlamaBinaries();
if ('missing' in bins) rec.note(`llama-server: ${bins.missing}`);
else {
  const server = await startLlamaServer(bins.server, { model: model.path, threads: args.threads, parallel: 1, ctxPerSlot: ctx, extraArgs: ['--chat-template', 'chatml'] });
  try {
    await conversation(server.baseUrl, 'bench', 'warm', { ignore_eos: true, cache_prompt: true }, 2);
    for (let r = 0; r < reps; r++) record('llama-server', 'llama-server', await conversation(server.baseUrl, 'bench', `ls-${r}`, { ignore_eos: true, cache_prompt: true }));
  } finally {
    await server.stop();
  }
}

const id = `bench-${shape}`;
const modeld = await startModeld({
  modelsDir: await writeModelsDir([{ id, object: llamaModelObject(model.path, { ctx_len: ctx, n_parallel: 1, threads: args.threads }) }]),
  threads: args.threads,
  repoRoot: args.modeldRoot,
});
try {
  await modeld.startModel(id, { n_parallel: 1, ctx_len: ctx });
  await conversation(modeld.baseUrl, id, 'warm', { ignore_eos: true }, 2);
  for (let r = 0; r < reps; r++) record('modeld', 'modeld', await conversation(modeld.baseUrl, id, `md-${r}`, { ignore_eos: true }));
} catch (err) {
  rec.note(`modeld: ${(err as Error).message.slice(0, 300)}`);
} finally {
  await modeld.stopAndClean();
}
await rec.write(args.out);
