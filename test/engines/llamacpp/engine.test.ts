import path from 'node:path';
import { LlamaChat, LlamaCompletion, resolveChatWrapper, type Token } from 'node-llama-cpp';
import t from 'tap';
import { resolveParams } from '../../../src/engines/descriptors.ts';
import type { GenerationResult, LoadedModel } from '../../../src/engines/engine.ts';
import { LLAMACPP_DESCRIPTORS } from '../../../src/engines/llamacpp/descriptors.ts';
import { LlamaCppEngine } from '../../../src/engines/llamacpp/engine.ts';
import { JanChatWrapper, parsePromptTemplate } from '../../../src/engines/llamacpp/jan-chat-wrapper.ts';
import { tempDir } from '../../helpers/app.ts';
import { writeTinyLlamaGguf } from '../../helpers/gguf-writer.ts';
import { CHATML_TEMPLATE, hasStories, STORIES_GGUF, testLlama } from '../../helpers/llama-fixtures.ts';

const engine = new LlamaCppEngine({ gpu: 'false' });
const never = new AbortController().signal;

async function load(file: string, values: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Promise<LoadedModel> {
  const params = resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'test', values }]);
  return engine.load({ id: path.basename(file), files: [file], folder: path.dirname(file), params, metadata }, never);
}

const greedy = { temperature: 0 };

t.test('descriptors: every one in the seed form, with load and request scopes', async (t) => {
  for (const d of LLAMACPP_DESCRIPTORS) {
    t.ok(d.name && d.description && 'default' in d, d.name);
    t.ok(d.scope === 'load' || d.scope === 'request', d.name);
  }
  const names = LLAMACPP_DESCRIPTORS.map((d) => d.name);
  for (const n of ['ctx_len', 'ngl', 'n_parallel', 'threads', 'n_batch', 'embedding', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'max_tokens', 'presence_penalty', 'frequency_penalty', 'repeat_penalty', 'pre_prompt', 'user_prompt', 'ai_prompt']) {
    t.ok(names.includes(n), n);
  }
  t.throws(() => resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'request', values: { top_p: 1.5 } }]), { code: 'parameter_out_of_range', param: 'top_p', message: /\[0, 1\]/ });
  t.same(resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'x', values: { ngl: 'max' } }]).ngl, 'max');
  t.throws(() => resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'x', values: { ngl: 'most' } }]), { code: 'invalid_value', param: 'ngl' }, 'ngl takes a number, max or auto');
});

t.test('Jan prompt_template splits like nitro', async (t) => {
  t.same(parsePromptTemplate('{system_message}\n### Instruction: {prompt}\n### Response:'), {
    systemPrompt: '', userPrompt: '\n### Instruction: ', aiPrompt: '\n### Response:',
  });
  t.same(parsePromptTemplate('[INST] {prompt} [/INST]'), { systemPrompt: '', userPrompt: '[INST] ', aiPrompt: ' [/INST]' });
  t.equal(parsePromptTemplate('no placeholder'), undefined);
});

t.test('fixture with a ChatML template: greedy chat and completion equal node-llama-cpp\'s own', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'chatml.gguf');
  writeTinyLlamaGguf(file, { chatTemplate: CHATML_TEMPLATE });
  const m = await load(file, { ctx_len: 256, n_parallel: 2 });
  t.teardown(() => m.dispose());
  t.same([...m.capabilities].sort(), ['chat', 'completion', 'tokenize']);
  t.equal(m.concurrency, 2);
  t.equal(m.info!.chat_template, 'ChatML');

  const llama = await testLlama();
  const ref = await llama.loadModel({ modelPath: file });
  t.teardown(() => ref.dispose());
  const ctx = await ref.createContext({ contextSize: 256, threads: 2 });
  const history = [{ type: 'system' as const, text: 'You are a test.' }, { type: 'user' as const, text: 'hello world' }, { type: 'model' as const, response: [] }];
  const wrapper = resolveChatWrapper(ref);
  const own = await new LlamaChat({ contextSequence: ctx.getSequence(), chatWrapper: wrapper }).generateResponse(history, { temperature: 0, maxTokens: 24 });

  const res = await m.chat!([{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }], { params: { ...greedy, max_tokens: 24 }, signal: never });
  t.equal(res.text, own.response, 'same text as LlamaChat with the GGUF template');
  t.equal(res.usage.promptTokens, wrapper.generateContextState({ chatHistory: history }).contextText.tokenize(ref.tokenizer).length);
  t.equal(res.usage.completionTokens, 24);
  t.equal(res.finishReason, 'length');

  await ctx.dispose();
  const ctx2 = await ref.createContext({ contextSize: 256, threads: 2 });
  const ownTokens: Token[] = [];
  const ownCompletion = await new LlamaCompletion({ contextSequence: ctx2.getSequence() })
    .generateCompletion('once upon a time', { temperature: 0, maxTokens: 20, onToken: (tokens) => ownTokens.push(...tokens) });
  const c = await m.complete!('once upon a time', { params: { ...greedy, max_tokens: 20 }, signal: never });
  // The same tokens; the text keeps the first token's SentencePiece space, which
  // LlamaCompletion's text drops, so prompt + completion reads as one text (as llama-server's).
  t.equal(c.text, ref.detokenize(ownTokens, false, ref.tokenize('once upon a time')), 'the answer detokenised after the prompt');
  t.equal(c.text.trimStart(), ownCompletion.trimStart(), 'LlamaCompletion\'s text but for that space');
  t.ok(c.text.startsWith(' '), 'the fixture\'s first answer token is a ▁word piece: its space is kept');
  t.equal(c.usage.promptTokens, 1 + ref.tokenize('once upon a time', false, 'trimLeadingSpace').length, 'BOS + the prompt');
});

t.test('stories260K (no chat template): Jan prompts; greedy, stop, seed, penalties, grammar, usage', { skip: !hasStories && 'shared models absent' }, async (t) => {
  const m = await load(STORIES_GGUF, { ctx_len: 256, n_parallel: 4, user_prompt: 'USER: ', ai_prompt: 'ASSISTANT: ' });
  t.teardown(() => m.dispose());
  t.equal(m.info!.chat_template, 'Jan');
  const llama = await testLlama();
  const ref = await llama.loadModel({ modelPath: STORIES_GGUF });
  t.teardown(() => ref.dispose());
  const ctx = await ref.createContext({ contextSize: 256, threads: 2 });

  // The Jan rendering, continued as plain text by node-llama-cpp, gives the same answer.
  const own = await new LlamaCompletion({ contextSequence: ctx.getSequence() }).generateCompletionWithMeta('USER: Tell me a story\nASSISTANT: ', {
    temperature: 0, maxTokens: 40, customStopTriggers: ['\nUSER:'],
  });
  t.equal(own.metadata.stopReason, 'maxTokens', 'the reference ran to max_tokens (so the stop trigger did not shape it)');
  const res = await m.chat!([{ role: 'user', content: 'Tell me a story' }], { params: { ...greedy, max_tokens: 40 }, signal: never });
  t.equal(res.text, own.response);
  t.equal(res.usage.promptTokens, 1 + ref.tokenize('USER: Tell me a story\nASSISTANT: ', false, 'trimLeadingSpace').length);

  const plain = await m.complete!('Once upon a time', { params: { ...greedy, max_tokens: 30 }, signal: never });
  t.equal(plain.usage.completionTokens, 30);
  t.equal(plain.finishReason, 'length');
  const cut = plain.text.indexOf(' girl');
  t.ok(cut > 0, 'the greedy text has the stop word');
  const stopped = await m.complete!('Once upon a time', { params: { ...greedy, max_tokens: 30, stop: [' girl'] }, signal: never });
  t.equal(stopped.text, plain.text.slice(0, cut), 'stops before the stop sequence, which is not emitted');
  t.equal(stopped.finishReason, 'stop');

  const sampled = { temperature: 1, top_k: 0, top_p: 1, min_p: 0, max_tokens: 30 };
  const a = await m.complete!('Once upon a time', { params: { ...sampled, seed: 42 }, signal: never });
  const b = await m.complete!('Once upon a time', { params: { ...sampled, seed: 42 }, signal: never });
  t.equal(a.text, b.text, 'same seed, same text');

  const penalised = await m.complete!('Once upon a time', { params: { ...greedy, max_tokens: 30, repeat_penalty: 1.5, presence_penalty: 1, frequency_penalty: 1 }, signal: never });
  t.not(penalised.text, plain.text, 'penalties change the greedy text');

  const schema = { type: 'object', properties: { happy: { type: 'boolean' }, color: { enum: ['red', 'blue'] } }, required: ['happy', 'color'] };
  const json = await m.chat!([{ role: 'user', content: 'Answer in JSON' }], { params: { ...greedy, max_tokens: 60 }, responseFormat: { type: 'json_schema', schema }, signal: never });
  const parsed = JSON.parse(json.text);
  t.type(parsed.happy, 'boolean');
  t.ok(['red', 'blue'].includes(parsed.color));
  // A 260K-parameter story model rambles inside any JSON string: what it writes is JSON up to
  // where max_tokens cut it.
  const obj = await m.chat!([{ role: 'user', content: 'JSON please' }], { params: { ...greedy, max_tokens: 40 }, responseFormat: { type: 'json_object' }, signal: never });
  t.match(obj.text, /^\s*\{/, 'json_object output is a JSON object');
  if (obj.finishReason === 'stop') t.doesNotThrow(() => JSON.parse(obj.text));
  await t.rejects(m.complete!('word '.repeat(400), { params: greedy, signal: never }), { code: 'context_length_exceeded', status: 400, param: 'prompt' });
});

t.test('4 parallel generations decode in shared batches; abort frees the sequence within one token', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(file, { contextLength: 512 });
  const m = await load(file, { ctx_len: 512, n_parallel: 4 });
  t.teardown(() => m.dispose());
  const batching = () => m.info!.batching as { batches: number; tokens: number; max_sequences: number; sequences_per_batch: Record<string, number> };
  const prompts = ['hello world', 'the cat', 'once upon a time', 'a big red ball'];
  const run = (p: string) => m.complete!(p, { params: { ...greedy, max_tokens: 40 }, signal: never });
  const alone: GenerationResult[] = [];
  for (const p of prompts) alone.push(await run(p));
  const solo = batching();
  t.equal(solo.max_sequences, 1, 'one at a time: one sequence per batch');
  t.same(alone.map((r) => r.usage.cachedPromptTokens), [0, 0, 0, 0], 'each prompt took a fresh sequence: nothing cached');
  t.same(alone.map((r) => r.usage.evaluatedPromptTokens), alone.map((r) => r.usage.promptTokens), 'so each evaluated its whole prompt');
  const together = await Promise.all(prompts.map(run));
  const textAndCounts = (r: GenerationResult) => [r.text, r.finishReason, r.usage.promptTokens, r.usage.completionTokens];
  t.same(together.map(textAndCounts), alone.map(textAndCounts), 'in parallel: the same texts and usage as one at a time (batching does not mix sequences)');
  // Each prompt found the sequence that served it alone: all but its last token were cached.
  t.same(together.map((r) => r.usage.cachedPromptTokens), alone.map((r) => r.usage.promptTokens - 1), 'each prompt went back to its own sequence');
  t.same(together.map((r) => r.usage.evaluatedPromptTokens), [1, 1, 1, 1], 'and evaluated only its last prompt token');
  const trace = batching();
  t.equal(trace.max_sequences, 4, 'some batch carried all 4 sequences');
  const fours = (trace.sequences_per_batch['4'] ?? 0);
  t.ok(fours >= 35, `nearly every step decodes all 4 sequences: ${JSON.stringify(trace.sequences_per_batch)}`);

  const ac = new AbortController();
  let chunks = 0;
  let tokensAtAbort = 0;
  const aborted = m.complete!('hello world', {
    params: { ...greedy, max_tokens: 400 }, signal: ac.signal,
    onText: () => {
      if (++chunks === 3) {
        tokensAtAbort = batching().tokens;
        ac.abort(new Error('client left'));
      }
    },
  });
  await t.rejects(aborted, { message: 'client left' });
  t.ok(batching().tokens - tokensAtAbort <= 1, 'at most the token in flight is decoded after the abort');
  const after = await Promise.all(prompts.map((p) => m.complete!(p, { params: { ...greedy, max_tokens: 5 }, signal: never })));
  t.equal(after.length, 4, 'all 4 sequences are free again');
});

t.test('logit_bias forces and bans tokens; ignore_eos never samples end of generation; unknown ids are a 400', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(file);
  const m = await load(file, { ctx_len: 128, n_parallel: 1 });
  t.teardown(() => m.dispose());
  const llama = await testLlama();
  const ref = await llama.loadModel({ modelPath: file });
  t.teardown(() => ref.dispose());
  const [cat, ...rest1] = ref.tokenize('good');
  const [dog, ...rest2] = ref.tokenize('bad');
  t.same([...rest1, ...rest2], [], 'one token each');
  const eos = ref.tokens.eos!;
  const after = (tokens: Token[]) => ref.detokenize(tokens, false, ref.tokenize('hello world'));
  const run = (params: Record<string, unknown>) => m.complete!('hello world', { params: { ...greedy, max_tokens: 5, ...params }, signal: never });

  const forced = await run({ logit_bias: { [cat!]: 100 } });
  t.equal(forced.text, after(Array(5).fill(cat!)), '+100 on a token: every step picks it');
  const banned = await run({ logit_bias: { [cat!]: -100, [dog!]: 100 } });
  t.equal(banned.text, after(Array(5).fill(dog!)), '−100 bans the token');

  const ends = await run({ logit_bias: { [eos]: 100 } });
  t.match(ends, { text: '', finishReason: 'stop', usage: { completionTokens: 0 } }, 'end of generation forced: an empty answer');
  const runs = await run({ logit_bias: { [eos]: 100 }, ignore_eos: true });
  t.match(runs, { finishReason: 'length', usage: { completionTokens: 5 } }, 'ignore_eos: end of generation is never sampled');

  await t.rejects(run({ logit_bias: { 999999: 1 } }), { code: 'invalid_value', status: 400, param: 'logit_bias[999999]', message: /not in this model's vocabulary/ });
});

t.test('embeddings: a separate context when asked; unit vectors; usage counts special tokens', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(file);
  const plain = await load(file, { ctx_len: 128, n_parallel: 1 });
  t.notOk(plain.capabilities.has('embedding'), 'a generative model does not embed unless asked');
  await plain.dispose();
  const m = await load(file, { ctx_len: 128, n_parallel: 1, embedding: true });
  t.teardown(() => m.dispose());
  t.ok(m.capabilities.has('embedding') && m.capabilities.has('chat'));
  const r = await m.embed!(['hello world', 'the cat'], never);
  t.equal(r.vectors.length, 2);
  t.equal(r.vectors[0]!.length, 64);
  t.ok(Math.abs(Math.hypot(...r.vectors[0]!) - 1) < 1e-5, 'unit length');
  t.notSame(r.vectors[0], r.vectors[1]);
  t.equal(r.promptTokens, 3 + 3, 'BOS + 2 word tokens each');
  const only = await load(file, { ctx_len: 128 }, { task: 'embedding' });
  t.teardown(() => only.dispose());
  t.same([...only.capabilities].sort(), ['embedding', 'tokenize'], 'metadata.task embedding: an embedding-only model');
});

t.test('load honours its AbortSignal; a corrupt file rejects', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(file);
  const ac = new AbortController();
  ac.abort(new Error('stopped'));
  const params = resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'test', values: {} }]);
  await t.rejects(engine.load({ id: 'x', files: [file], folder: dir, params, metadata: {} }, ac.signal), { message: 'stopped' });
  const bad = path.join(dir, 'bad.gguf');
  const { writeCorruptGguf } = await import('../../helpers/gguf-writer.ts');
  writeCorruptGguf(bad, 'truncated');
  await t.rejects(engine.load({ id: 'bad', files: [bad], folder: dir, params, metadata: {} }, never));
  t.equal((await engine.status()).available, true);
});
