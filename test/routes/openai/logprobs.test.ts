import Fastify from 'fastify';
import type { Token } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { CompletionSchema } from '../../../src/schemas/openai/completions.ts';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import {
  CHATML_TEMPLATE, hasStories, LLAMA_TEST_CONFIG, STORIES_GGUF, testLlama, writeFixtureModel, writeSharedModel,
} from '../../helpers/llama-fixtures.ts';

const dir = await tempDir();
const tiny = await writeFixtureModel(dir, 'tiny', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 256 }, parameters: { ctx_len: 256, n_parallel: 2 } });
/** ChatML opening a <think> section on a fresh answer: node-llama-cpp reads a thought segment from it. */
const THINKING_TEMPLATE =
  "{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\\n' -}}" +
  "{%- if message['role'] == 'assistant' and message['reasoning_content'] -%}{{- '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' -}}{%- endif -%}" +
  "{{- message['content'] + '<|im_end|>\\n' -}}{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}";
await writeFixtureModel(dir, 'thinker', { gguf: { chatTemplate: THINKING_TEMPLATE, contextLength: 256 }, parameters: { ctx_len: 256, n_parallel: 1 } });
if (hasStories) await writeSharedModel(dir, 'stories', STORIES_GGUF, { ctx_len: 256, n_parallel: 2 });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

/**
 * The model's own distribution at each greedy step, from node-llama-cpp's public
 * `evaluateWithMetadata` in-process (its probabilities path, not modeld's arithmetic).
 */
async function ownDistributions(file: string, prompt: string, steps: number): Promise<Array<{ token: Token; probs: Map<Token, number> }>> {
  const model = await (await testLlama()).loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    const bos = model.tokens.bos;
    const tokens = [...(bos != null ? [bos] : []), ...model.tokenize(prompt, false, bos != null ? 'trimLeadingSpace' : undefined)];
    const out: Array<{ token: Token; probs: Map<Token, number> }> = [];
    for await (const step of ctx.getSequence().evaluateWithMetadata(tokens, { probabilities: true }, { temperature: 0 })) {
      out.push({ token: step.token, probs: step.probabilities });
      if (out.length === steps) break;
    }
    return out;
  } finally {
    await model.dispose();
  }
}

const cases = [{ id: 'tiny', file: tiny, prompt: 'once upon a time' }];
if (hasStories) cases.push({ id: 'stories', file: STORIES_GGUF, prompt: 'Once upon a time' });

for (const c of cases) {
  t.test(`${c.id}: completions logprobs are the model's own distribution (node-llama-cpp in-process as the oracle)`, async (t) => {
    const own = await ownDistributions(c.file, c.prompt, 8);
    const model = await (await testLlama()).loadModel({ modelPath: c.file });
    t.teardown(() => model.dispose());
    // A token's own piece, its SentencePiece leading space kept (read after a neutral token).
    const piece = (tok: Token) => model.detokenize([tok], true, model.tokenize('a', false).slice(-1));
    const r = await client.completions.create({ model: c.id, prompt: c.prompt, temperature: 0, max_tokens: 8, logprobs: 3 });
    const lp = r.choices[0]!.logprobs!;
    t.equal(lp.tokens!.length, 8);
    t.equal(lp.tokens!.join(''), r.choices[0]!.text, 'the tokens spell the text');
    for (const [i, step] of own.entries()) {
      t.equal(lp.tokens![i], piece(step.token), `token ${i} is the greedy one`);
      t.ok(Math.abs(lp.token_logprobs![i]! - Math.log(step.probs.get(step.token)!)) < 1e-3, `token ${i}: logprob ${lp.token_logprobs![i]} vs ln ${step.probs.get(step.token)}`);
      const ownTop = [...step.probs].slice(0, 3);
      const top = lp.top_logprobs![i]!;
      const seen = new Set<string>();
      for (const [tok, p] of ownTop) {
        // Tokens with the same text (byte tokens: '\uFFFD') share a key: the likeliest holds it.
        const text = piece(tok);
        if (seen.has(text)) continue;
        seen.add(text);
        t.ok(Math.abs(top[text]! - Math.log(p)) < 1e-3, `token ${i}: top '${text}'`);
      }
      t.ok(Object.keys(top).length <= 3 && Object.keys(top).length >= 1);
    }
    t.equal(lp.text_offset![0], c.prompt.length, 'offsets count from the start of the prompt');
    t.equal(lp.text_offset![1], c.prompt.length + lp.tokens![0]!.length);

    const plain = await client.completions.create({ model: c.id, prompt: c.prompt, temperature: 0, max_tokens: 8 });
    t.equal(plain.choices[0]!.logprobs, null, 'no logprobs unless asked');
    t.equal(plain.choices[0]!.text, r.choices[0]!.text, 'asking for them changes nothing in the text');
  });
}

t.test('chat logprobs: entries spell the content, the greedy token is the likeliest, streaming carries the same entries', async (t) => {
  const messages = [{ role: 'user' as const, content: 'hello world' }];
  const r = await client.chat.completions.create({ model: 'tiny', messages, temperature: 0, max_tokens: 10, logprobs: true, top_logprobs: 4 });
  const content = r.choices[0]!.logprobs!.content!;
  t.equal(content.length, r.usage!.completion_tokens, 'an entry per token, a character cut by max_tokens included');
  // A chat answer drops its first token's SentencePiece space (as node-llama-cpp's LlamaChat); the entry keeps it.
  // …and a character cut by max_tokens is not sent, though its token has an entry.
  const spelled = Buffer.from(content.flatMap((e) => e.bytes!)).toString('utf8').replace(/^ /, '');
  t.equal(spelled.replace(/\uFFFD$/, ''), r.choices[0]!.message.content!.replace(/\uFFFD$/, ''), 'the bytes spell the content');
  for (const e of content) {
    t.equal(e.top_logprobs.length, 4);
    t.ok(e.logprob <= 0);
    if (e.token !== '\uFFFD') t.same(e.bytes, [...Buffer.from(e.token)]);
    t.equal(e.logprob, e.top_logprobs[0]!.logprob, 'greedy picks the likeliest');
    for (let i = 1; i < 4; i++) t.ok(e.top_logprobs[i]!.logprob <= e.top_logprobs[i - 1]!.logprob, 'likeliest first');
    t.ok(e.top_logprobs.reduce((sum, x) => sum + Math.exp(x.logprob), 0) <= 1 + 1e-6);
  }

  const stream = await client.chat.completions.create({ model: 'tiny', messages, temperature: 0, max_tokens: 10, logprobs: true, top_logprobs: 4, stream: true });
  const streamed: typeof content = [];
  for await (const ch of stream) streamed.push(...(ch.choices[0]?.logprobs?.content ?? []));
  // The same tokens, each once; the values to float noise (the second run reads a cached prompt).
  const shape = (xs: typeof content) => xs.map((e) => [e.token, ...e.top_logprobs.map((x) => x.token)]);
  t.same(shape(streamed), shape(content), 'the stream carries the same entries, each once');
  t.ok(streamed.every((e, i) => Math.abs(e.logprob - content[i]!.logprob) < 1e-4), 'with the same logprobs');

  const noTop = await client.chat.completions.create({ model: 'tiny', messages, temperature: 0, max_tokens: 3, logprobs: true });
  t.same(noTop.choices[0]!.logprobs!.content!.map((e) => e.top_logprobs), [[], [], []], 'top_logprobs defaults to 0');
  t.ok(noTop.choices[0]!.logprobs!.content!.every((e, i) => Math.abs(e.logprob - content[i]!.logprob) < 1e-4));
  const plain = await client.chat.completions.create({ model: 'tiny', messages, temperature: 0, max_tokens: 3 });
  t.equal(plain.choices[0]!.logprobs, null);
});

t.test('logprobs with a stop string leave out the stop sequence\'s tokens; sampled (not greedy) tokens get their own logprob', async (t) => {
  const full = await client.completions.create({ model: 'tiny', prompt: 'hello world', temperature: 0, max_tokens: 20, logprobs: 1 });
  const tokens = full.choices[0]!.logprobs!.tokens!;
  const stopAt = tokens.findIndex((tok, i) => i >= 3 && tok.trim().length > 1);
  t.ok(stopAt > 0, 'a token to stop at');
  const cut = await client.completions.create({ model: 'tiny', prompt: 'hello world', temperature: 0, max_tokens: 20, logprobs: 1, stop: tokens[stopAt]!.trim() });
  const kept = cut.choices[0]!.logprobs!.tokens!;
  t.equal(cut.choices[0]!.finish_reason, 'stop');
  const text = cut.choices[0]!.text;
  t.ok(text.startsWith(kept.join('')), 'the kept tokens lie wholly in the text');
  t.ok(kept.join('').length + tokens[kept.length]!.length > text.length, 'the next token reaches into the stop sequence');
  t.ok(kept.length <= stopAt, `no token after the stop: ${kept.length} ≤ ${stopAt}`);
  t.ok(cut.choices[0]!.logprobs!.token_logprobs!.every((x, i) => Math.abs(x - full.choices[0]!.logprobs!.token_logprobs![i]!) < 1e-4));

  const hotBody = { model: 'tiny', prompt: 'hello world', temperature: 1.5, top_k: 0, top_p: 1, min_p: 0, seed: 7, max_tokens: 16, logprobs: 1 };
  const hot = await client.completions.create(hotBody);
  const lp = hot.choices[0]!.logprobs!;
  t.equal(lp.tokens!.join(''), hot.choices[0]!.text);
  const belowTop = lp.token_logprobs!.filter((x, i) => x < Object.values(lp.top_logprobs![i]!)[0]! - 1e-9).length;
  t.ok(belowTop > 0, `a hot sampler picks tokens other than the likeliest (${belowTop} of 16), each with its own logprob`);
});

t.test('two prompts decoding in one batch each get their own logprobs', async (t) => {
  const prompts = ['hello world', 'the cat sat'];
  const both = await client.completions.create({ model: 'tiny', prompt: prompts, temperature: 0, max_tokens: 6, logprobs: 2 });
  for (const [i, prompt] of prompts.entries()) {
    const alone = await client.completions.create({ model: 'tiny', prompt, temperature: 0, max_tokens: 6, logprobs: 2 });
    const [a, b] = [both.choices[i]!.logprobs!, alone.choices[0]!.logprobs!];
    t.same(a.tokens, b.tokens, `prompt ${i}: the same tokens`);
    t.same(a.text_offset, b.text_offset);
    t.ok(a.token_logprobs!.every((x, k) => Math.abs(x - b.token_logprobs![k]!) < 1e-3), `prompt ${i}: the same logprobs`);
  }
});

t.test('a reasoning model: the thought\'s tokens have entries too, streamed with the reasoning_content chunks', async (t) => {
  const messages = [{ role: 'user' as const, content: 'hello world' }];
  const r = await client.chat.completions.create({ model: 'thinker', messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 1 });
  const content = r.choices[0]!.logprobs!.content!;
  t.ok(content.length >= r.usage!.completion_tokens - 1 && content.length <= r.usage!.completion_tokens, 'an entry per token');
  const stream = await client.chat.completions.create({ model: 'thinker', messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 1, stream: true });
  const streamed: string[] = [];
  let reasoningEntries = 0;
  for await (const ch of stream) {
    const entries = ch.choices[0]?.logprobs?.content ?? [];
    streamed.push(...entries.map((e) => e.token));
    if ((ch.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content) reasoningEntries += entries.length;
  }
  t.same(streamed, content.map((e) => e.token));
  t.ok(reasoningEntries > 0, 'reasoning chunks carry the thought\'s entries');
});

t.test('byte tokens carry their own byte; text_offset counts characters', async (t) => {
  // The fixture vocabulary has <0x00>…<0xFF> at ids 3…258: bias the three bytes of 中 (E4 B8 AD).
  const bias = { [3 + 0xe4]: 100, [3 + 0xb8]: 100, [3 + 0xad]: 100 };
  const r = await client.completions.create({ model: 'tiny', prompt: '😀 hi', temperature: 1, seed: 3, max_tokens: 6, logprobs: 0, logit_bias: bias });
  const lp = r.choices[0]!.logprobs!;
  const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 1, seed: 3, max_tokens: 6, logprobs: true, logit_bias: bias });
  for (const e of chat.choices[0]!.logprobs!.content!) {
    t.equal(e.token, '\uFFFD');
    t.equal(e.bytes!.length, 1);
    t.ok([0xe4, 0xb8, 0xad].includes(e.bytes![0]!), `byte ${e.bytes![0]!.toString(16)}`);
  }
  t.equal(lp.tokens!.length, 6, 'every token has an entry, a character cut by max_tokens too');
  t.equal(lp.text_offset![0], 4, "'😀 hi' is 4 characters (5 UTF-16 units)");
});

t.test('top_logprobs keys that are newlines survive the response serializer', async (t) => {
  // fast-json-stringify writes only the keys a Record's `^(.*)$` pattern matches: "\n" is none.
  const f = Fastify();
  t.teardown(() => f.close());
  const body = {
    id: 'cmpl-x', object: 'text_completion', created: 0, model: 'm', system_fingerprint: null,
    choices: [{ text: '\n', index: 0, finish_reason: 'stop', logprobs: { tokens: ['\n'], token_logprobs: [-0.5], top_logprobs: [{ '\n': -0.5, '\r\n': -1, ' a': -2 }], text_offset: [0] } }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
  f.get('/x', { schema: { response: { 200: CompletionSchema } } }, async () => body);
  t.same((await f.inject('/x')).json().choices[0].logprobs.top_logprobs, [{ '\n': -0.5, '\r\n': -1, ' a': -2 }]);
});

t.test('logprobs requests are checked: top_logprobs needs logprobs, ranges are OpenAI\'s', async (t) => {
  const bad = [
    { url: '/v1/chat/completions', body: { model: 'tiny', messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, param: 'top_logprobs' },
    { url: '/v1/chat/completions', body: { model: 'tiny', messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 21 }, param: 'top_logprobs' },
    { url: '/v1/completions', body: { model: 'tiny', prompt: 'x', logprobs: 6 }, param: 'logprobs' },
    { url: '/v1/completions', body: { model: 'tiny', prompt: 'x', logprobs: -1 }, param: 'logprobs' },
  ];
  for (const b of bad) {
    const res = await app.inject({ method: 'POST', url: b.url, payload: b.body });
    t.equal(res.statusCode, 400, JSON.stringify(b.body));
    t.equal(res.json().error.param, b.param);
  }
});
