import { LlamaChat, resolveChatWrapper, type ChatHistoryItem, type Token } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { CPU_ATTENTION_TILE, THIN_READ_WORK, cachedToKeep } from '../../../src/engines/llamacpp/prompt-chunks.ts';
import { commonPrefixLength } from '../../../src/engines/llamacpp/sequence-pool.ts';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, testLlama, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// Prompt prefix reuse over HTTP on real node-llama-cpp (issue 7): a chat whose history extends the
// previous request goes back to the sequence holding that history and evaluates only the new tokens.
const dir = await tempDir();
const file = await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 2 } });
await writeFixtureModel(dir, 'pair', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 2 } });
await writeFixtureModel(dir, 'long', { gguf: { contextLength: 1024 }, parameters: { ctx_len: 1024, n_parallel: 1 } });
await writeFixtureModel(dir, 'long-fresh', { gguf: { contextLength: 1024 }, parameters: { ctx_len: 1024, n_parallel: 1 } });
await writeFixtureModel(dir, 'solo', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

type Message = { role: 'system' | 'user' | 'assistant'; content: string };
const MAX_TOKENS = 8;

/**
 * node-llama-cpp in-process on the same GGUF and template, one sequence reused across turns:
 * the prompt tokens of a history, and what a sequence holds after answering it greedily.
 */
const llama = await testLlama();
const refModel = await llama.loadModel({ modelPath: file });
t.teardown(() => refModel.dispose());
const refWrapper = resolveChatWrapper(refModel);
const refContext = await refModel.createContext({ contextSize: 512, threads: 2 });
const refSequence = refContext.getSequence();
const chatHistory = (messages: Message[]): ChatHistoryItem[] => [
  ...messages.map((m): ChatHistoryItem => (m.role === 'assistant' ? { type: 'model', response: [m.content] } : { type: m.role, text: m.content })),
  { type: 'model', response: [] },
];
const promptTokens = (messages: Message[]): Token[] =>
  refWrapper.generateContextState({ chatHistory: chatHistory(messages) }).contextText.tokenize(refModel.tokenizer);
async function refTurn(messages: Message[]) {
  const chat = new LlamaChat({ contextSequence: refSequence, chatWrapper: refWrapper, autoDisposeSequence: false });
  const res = await chat.generateResponse(chatHistory(messages), { temperature: 0, maxTokens: MAX_TOKENS });
  chat.dispose({ disposeSequence: false });
  return { answer: res.response, held: refSequence.contextTokens };
}

/** `modeld_tokens_total{model="<id>/model",kind}` as /metrics reports it (0 before the first count). */
async function tokensTotal(kind: string, model = 'chatml'): Promise<number> {
  const body = (await app.inject({ url: '/metrics' })).body;
  const m = new RegExp(`^modeld_tokens_total\\{model="${model}/model",kind="${kind}"\\} (\\d+)$`, 'm').exec(body);
  return m ? Number(m[1]) : 0;
}

/** One greedy turn; returns the answer, its usage and the prompt tokens the engine evaluated (by the metric). */
async function turn(messages: Message[], model = 'chatml') {
  const evaluatedBefore = await tokensTotal('prompt_evaluated', model);
  const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: MAX_TOKENS });
  const evaluated = (await tokensTotal('prompt_evaluated', model)) - evaluatedBefore;
  return { answer: r.choices[0]!.message.content!, finish: r.choices[0]!.finish_reason, usage: r.usage!, evaluated };
}

/**
 * The fewest tokens a request reads after its cache (0: any number), as the engine sets it: with
 * flash attention a few new tokens after a cached prefix are read with the last of that prefix,
 * so ggml-cpu's attention runs tiled (cachedToKeep, unit-tested in prompt-chunks.test.ts).
 */
async function minRead(model: string): Promise<number> {
  const info = (await app.inject({ url: `/v1/models/${model}/state` })).json().info;
  return info.flash_attn ? CPU_ATTENTION_TILE + 1 : 0;
}

t.test('3-turn chat: turns 2 and 3 reuse the previous turn\'s KV cache and evaluate only the new tokens', async (t) => {
  const history: Message[] = [
    { role: 'system', content: 'You are a terse assistant that answers about the sea.' },
    { role: 'user', content: 'Tell me about boats.' },
  ];
  const turns = [];
  let held: Token[] = [];
  for (const next of ['And the fish?', 'And the birds above them?', undefined]) {
    const prompt = promptTokens(history);
    const r = await turn(history);
    const least = await minRead('chatml');
    const ref = await refTurn(history);
    // Known difference, not of the cache: node-llama-cpp's onTextChunk (what the server streams)
    // drops the SPM space of the answer's first token that LlamaChat's `response` keeps. That token
    // then re-tokenizes differently in the next turn's history, which ends the reused prefix there.
    t.equal(r.answer, ref.answer.replace(/^ /, ''), `turn ${turns.length + 1}: greedy answer over HTTP equals node-llama-cpp's own`);
    t.equal(r.usage.prompt_tokens, prompt.length);
    // What the sequence held before this turn that the prompt starts with (never the prompt's last
    // token), less what is read again so that no fewer than `least` tokens are read.
    const expectedCached = cachedToKeep(Math.min(commonPrefixLength(held, prompt), prompt.length - 1), prompt.length, least);
    turns.push({ ...r, expectedCached, heldBefore: held.length, least });
    held = ref.held;
    if (next) history.push({ role: 'assistant', content: r.answer }, { role: 'user', content: next });
  }
  for (const [i, r] of turns.entries()) t.comment(`turn ${i + 1}: ${JSON.stringify(r.usage)}, evaluated ${r.evaluated}, the sequence held ${r.heldBefore}`);

  const [t1, t2, t3] = turns as [typeof turns[number], typeof turns[number], typeof turns[number]];
  t.equal(t1.usage.prompt_tokens_details?.cached_tokens, 0, 'turn 1: a fresh sequence, nothing cached');
  t.equal(t1.evaluated, t1.usage.prompt_tokens, 'turn 1 evaluates its whole prompt');
  for (const [prev, cur, n] of [[t1, t2, 2], [t2, t3, 3]] as const) {
    const cached = cur.usage.prompt_tokens_details?.cached_tokens ?? -1;
    t.equal(cached, cur.expectedCached, `turn ${n}: cached_tokens = what the sequence held after turn ${n - 1} that this prompt starts with, less what is read again (${cached})`);
    const reused = Math.min(prev.usage.prompt_tokens, cur.usage.prompt_tokens - cur.least);
    t.ok(cached >= reused && cached > 0, `turn ${n}: the previous prompt is reused, but for the last ${cur.least} tokens read again (${cached} ≥ ${reused})`);
    t.equal(cur.evaluated, cur.usage.prompt_tokens - cached, `turn ${n} evaluates prompt_tokens − cached_tokens (token meter)`);
  }
  const state = (await app.inject({ url: '/v1/models/chatml/state' })).json().info.prompt_cache;
  t.same(state, {
    requests: 3,
    cached_tokens: turns.reduce((n, r) => n + (r.usage.prompt_tokens_details?.cached_tokens ?? 0), 0),
    shared_tokens: 0,
    evaluated_tokens: turns.reduce((n, r) => n + r.evaluated, 0),
  }, 'the model state counts the same');
  t.equal(await tokensTotal('prompt_cached'), state.cached_tokens, 'modeld_tokens_total{kind="prompt_cached"}');
});

t.test('an unrelated conversation takes the free sequence instead of evicting a cached one', async (t) => {
  const system: Message = { role: 'system', content: 'You are a terse assistant.' };
  const a1: Message[] = [system, { role: 'user', content: 'Tell me about boats on the sea and the fish below them.' }];
  const b1: Message[] = [system, { role: 'user', content: 'Mountains, snow and the goats that climb them.' }];
  const second = async (model: string) => {
    const ra = await turn(a1, model);
    const rb = await turn(b1, model);
    const a2: Message[] = [...a1, { role: 'assistant', content: ra.answer }, { role: 'user', content: 'More.' }];
    return { ra, rb, ra2: await turn(a2, model) };
  };

  const pair = await second('pair');
  t.equal(pair.rb.usage.prompt_tokens_details?.cached_tokens, 0, 'B shares only the system prompt with A: it takes the never-used sequence');
  const least = await minRead('pair');
  const reused = Math.min(pair.ra.usage.prompt_tokens, pair.ra2.usage.prompt_tokens - least);
  t.ok((pair.ra2.usage.prompt_tokens_details?.cached_tokens ?? 0) >= reused, `A's second turn still finds its first turn cached, but for the last ${least} tokens read again (${pair.ra2.usage.prompt_tokens_details?.cached_tokens} ≥ ${reused})`);
  t.equal(pair.ra2.evaluated, pair.ra2.usage.prompt_tokens - (pair.ra2.usage.prompt_tokens_details?.cached_tokens ?? -1), "A's second turn evaluates prompt_tokens − cached_tokens");

  // The contrast: with one sequence B must overwrite A, and A's second turn keeps only the shared system prompt.
  const solo = await second('solo');
  const shared = promptTokens([system, { role: 'user', content: '' }]).length;
  const soloCached = solo.ra2.usage.prompt_tokens_details?.cached_tokens ?? -1;
  t.ok(soloCached < solo.ra.usage.prompt_tokens && soloCached >= 0 && soloCached <= shared, `n_parallel 1: at most the shared system prompt survives (${soloCached} of ${solo.ra.usage.prompt_tokens})`);
  t.equal(solo.ra2.evaluated, solo.ra2.usage.prompt_tokens - soloCached);
});

t.test('a few new tokens after a long cache are read with the last of it (a tiled attention pass), and answer as a fresh read does', async (t) => {
  const words = 'the cat sat on the mat and the dog ran in the park while the sun was warm '.repeat(40);
  const complete = async (model: string, prompt: string) => {
    const before = await tokensTotal('prompt_evaluated', model);
    const r = await client.completions.create({ model, prompt, temperature: 0, max_tokens: 4 });
    return { text: r.choices[0]!.text, usage: r.usage!, evaluated: (await tokensTotal('prompt_evaluated', model)) - before };
  };
  const first = await complete('long', words);
  const next = words + 'and then the bird sang in the tall green tree by the old river';
  const second = await complete('long', next);
  const least = await minRead('long');
  t.comment(`first ${first.usage.prompt_tokens} tokens, then ${second.usage.prompt_tokens}: ${second.usage.prompt_tokens_details?.cached_tokens} cached, ${second.evaluated} read (at least ${least})`);
  const read = second.usage.prompt_tokens - first.usage.prompt_tokens;
  t.ok(read > 1 && read * first.usage.prompt_tokens >= THIN_READ_WORK, 'the fixture reads a thin chunk after a long cache');
  if (least > 0) {
    t.equal(second.evaluated, least, 'the last tokens of the cache are read again with the new ones');
    t.equal(second.usage.prompt_tokens_details?.cached_tokens, second.usage.prompt_tokens - least);
  } else {
    t.equal(second.evaluated, read, 'without flash attention the new tokens alone');
  }
  t.equal(second.text, (await complete('long-fresh', next)).text, 'the same answer as the prompt read whole on a fresh sequence');
});
