/**
 * Time to first token of each turn of a 5-turn chat, with the sequence pool
 * (src/engines/llamacpp/sequence-pool.ts: each turn gets back the sequence that
 * caches its history) and without (the sequence's cache is cleared before each
 * turn, as when a request lands on another conversation's sequence). A second
 * conversation runs between turns so the pool has to pick.
 *
 *   npx tsx benchmarks/prefix-reuse.ts --model /path/chat-model.gguf [--turns 5]
 *     [--reply-tokens 32] [--system-words 250] [--repeats 3] [--threads 2]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import {
  getLlama, LlamaChat, LlamaLogLevel, resolveChatWrapper,
  type ChatHistoryItem, type LlamaContextSequence, type Token,
} from 'node-llama-cpp';
import { SequencePool } from '../src/engines/llamacpp/sequence-pool.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: '/work/shared/models/llama-2-tiny-random/llama-2-tiny-random.gguf' },
    turns: { type: 'string', default: '5' },
    'reply-tokens': { type: 'string', default: '32' },
    'system-words': { type: 'string', default: '250' },
    repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
});
const turns = Number(args.turns);
const replyTokens = Number(args['reply-tokens']);
const repeats = Number(args.repeats);
const threads = Number(args.threads);

const llama = await getLlama({ gpu: false, maxThreads: threads, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: args.model });
const chatWrapper = resolveChatWrapper(model);
const words = 'the river carries boats of grain past old mills while children watch from the stone bridge and count'.split(' ');
const systemText = Array.from({ length: Number(args['system-words']) }, (_, i) => words[i % words.length]).join(' ');

const promptTokens = (history: ChatHistoryItem[]): Token[] =>
  chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer);

interface Turn { ttftMs: number; promptTokens: number; cachedPrefix: number }

async function conversation(reuse: boolean): Promise<Turn[]> {
  const context = await model.createContext({ sequences: 2, threads, contextSize: 4096 });
  const pool = new SequencePool<LlamaContextSequence>([context.getSequence(), context.getSequence()]);
  const histories: ChatHistoryItem[][] = [0, 1].map((c) => [{ type: 'system', text: `Conversation ${c}. ${systemText}` }]);
  const results: Turn[] = [];
  try {
    for (let turn = 0; turn < turns; turn++) {
      for (const c of [0, 1]) {
        const history = [...histories[c], { type: 'user', text: `Question ${turn} of conversation ${c}: what happens next at the bridge?` } as ChatHistoryItem];
        const tokens = promptTokens(history);
        const lease = await pool.acquire(tokens);
        try {
          if (!reuse) await lease.sequence.clearHistory();
          const chat = new LlamaChat({ contextSequence: lease.sequence, chatWrapper, autoDisposeSequence: false });
          const start = performance.now();
          let firstToken = 0;
          const { lastEvaluation } = await chat.generateResponse(history, {
            maxTokens: replyTokens,
            onToken: () => { if (firstToken === 0) firstToken = performance.now(); },
          });
          histories[c] = lastEvaluation.cleanHistory;
          if (c === 0) results.push({ ttftMs: firstToken - start, promptTokens: tokens.length, cachedPrefix: reuse ? lease.cachedPrefix : 0 });
        } finally {
          lease.release();
        }
      }
    }
    return results;
  } finally {
    await context.dispose();
  }
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const runs = { reuse: [] as Turn[][], none: [] as Turn[][] };
for (let r = 0; r < repeats; r++) {
  runs.none.push(await conversation(false));
  runs.reuse.push(await conversation(true));
}
console.log(`\nmodel ${args.model}, ${threads} threads, ${turns} turns, ${replyTokens}-token replies, median of ${repeats}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('| turn | prompt tokens | cached prefix (pool) | TTFT no reuse (ms) | TTFT pool (ms) | pool TTFT ÷ turn 1 TTFT |');
console.log('| --- | --- | --- | --- | --- | --- |');
const first = median(runs.reuse.map((r) => r[0].ttftMs));
for (let turn = 0; turn < turns; turn++) {
  const none = median(runs.none.map((r) => r[turn].ttftMs));
  const pool = median(runs.reuse.map((r) => r[turn].ttftMs));
  const t0 = runs.reuse[0][turn];
  console.log(`| ${turn + 1} | ${t0.promptTokens} | ${t0.cachedPrefix} | ${none.toFixed(0)} | ${pool.toFixed(0)} | ${(pool / first).toFixed(2)} |`);
}
await model.dispose();
