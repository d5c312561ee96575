import { LlamaChat, resolveChatWrapper, type ChatHistoryItem } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { JanChatWrapper } from '../../../src/engines/llamacpp/jan-chat-wrapper.ts';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import {
  CHATML_TEMPLATE, hasStories, LLAMA_TEST_CONFIG, STORIES_GGUF, testLlama, THINKING_TEMPLATE, writeFixtureModel, writeSharedModel,
} from '../../helpers/llama-fixtures.ts';

const dir = await tempDir();
const chatml = await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 4 } });
await writeFixtureModel(dir, 'quad', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 4 } });
await writeFixtureModel(dir, 'solo', { gguf: { contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 1, max_waiting: 1 } });
const thinker = await writeFixtureModel(dir, 'thinker', { gguf: { chatTemplate: THINKING_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 1 } });
if (hasStories) await writeSharedModel(dir, 'stories', STORIES_GGUF, { ctx_len: 256, n_parallel: 2 });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

const messages = [{ role: 'system' as const, content: 'You are a test.' }, { role: 'user' as const, content: 'hello world' }];
const history: ChatHistoryItem[] = [{ type: 'system', text: 'You are a test.' }, { type: 'user', text: 'hello world' }, { type: 'model', response: [] }];

/** node-llama-cpp's own greedy answer for the same history and template, in-process. */
async function ownGreedy(file: string, wrapperFor: (model: Awaited<ReturnType<Awaited<ReturnType<typeof testLlama>>['loadModel']>>) => Parameters<typeof resolveChatWrapper>[0] extends never ? never : import('node-llama-cpp').ChatWrapper, maxTokens: number) {
  const llama = await testLlama();
  const model = await llama.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    const wrapper = wrapperFor(model);
    const res = await new LlamaChat({ contextSequence: ctx.getSequence(), chatWrapper: wrapper }).generateResponse(history, { temperature: 0, maxTokens });
    const promptTokens = wrapper.generateContextState({ chatHistory: history }).contextText.tokenize(model.tokenizer).length;
    const thought = res.fullResponse.filter((r) => typeof r !== 'string' && r.type === 'segment' && r.segmentType === 'thought');
    return { text: res.response, thought: thought.map((r) => (r as { text: string }).text).join(''), promptTokens };
  } finally {
    await model.dispose();
  }
}

interface Case { id: string; file: string; wrapper: Parameters<typeof ownGreedy>[1] }
const cases: Case[] = [{ id: 'chatml', file: chatml, wrapper: (m) => resolveChatWrapper(m) }];
if (hasStories) {
  cases.push({
    id: 'stories', file: STORIES_GGUF,
    wrapper: (m) => new JanChatWrapper({ systemPrompt: 'SYSTEM: ', userPrompt: 'USER: ', aiPrompt: 'ASSISTANT: ', bos: m.tokens.bos != null, specialPrefixes: false }),
  });
}

for (const c of cases) {
  t.test(`${c.id}: greedy chat over HTTP equals node-llama-cpp in-process; stream equals non-stream; usage from the tokenizer`, async (t) => {
    const own = await ownGreedy(c.file, c.wrapper, 24);
    const r = await client.chat.completions.create({ model: c.id, messages, temperature: 0, max_tokens: 24 });
    t.equal(r.object, 'chat.completion');
    t.match(r.id, /^chatcmpl-/);
    t.equal(r.model, `${c.id}/model`);
    t.equal(r.choices.length, 1);
    t.equal(r.choices[0]!.message.role, 'assistant');
    t.equal(r.choices[0]!.message.content, own.text, 'nothing mangled');
    t.equal(r.choices[0]!.finish_reason, 'length');
    t.same(r.usage, { prompt_tokens: own.promptTokens, completion_tokens: 24, total_tokens: own.promptTokens + 24, prompt_tokens_details: { cached_tokens: 0 } }, 'the first request: nothing cached');

    const stream = await client.chat.completions.create({ model: c.id, messages, temperature: 0, max_completion_tokens: 24, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const ch of stream) chunks.push(ch);
    for (const ch of chunks) text += ch.choices[0]?.delta.content ?? '';
    t.equal(text, own.text, 'streamed deltas concatenate to the same text');
    t.equal(chunks[0]!.choices[0]!.delta.role, 'assistant', 'the role comes first');
    t.equal(chunks.at(-2)!.choices[0]!.finish_reason, 'length');
    t.same(chunks.at(-1)!.choices, [], 'the usage chunk has no choices');
    // The same conversation again: its sequence holds the whole prompt, only the last prompt token is evaluated.
    t.same(chunks.at(-1)!.usage, { ...r.usage, prompt_tokens_details: { cached_tokens: own.promptTokens - 1 } });
    t.ok(chunks.slice(0, -1).every((ch) => ch.usage === null && ch.object === 'chat.completion.chunk' && ch.id === chunks[0]!.id));
  });
}

t.test('a thinking template: the thought goes to reasoning_content, as node-llama-cpp\'s LlamaChat segments it', async (t) => {
  const own = await ownGreedy(thinker, (m) => resolveChatWrapper(m)!, 24);
  t.ok(own.thought.trim().length > 0, 'LlamaChat opened a thought on the fresh answer');
  const r = await client.chat.completions.create({ model: 'thinker', messages, temperature: 0, max_tokens: 24 });
  const message = r.choices[0]!.message as typeof r.choices[0]['message'] & { reasoning_content?: string };
  t.equal(message.reasoning_content, own.thought.trim(), 'the same thought, surrounding whitespace dropped');
  t.equal(message.content, own.text.trim(), 'the content is what follows the thought');
  t.equal(r.usage!.completion_tokens, 24);

  const stream = await client.chat.completions.create({ model: 'thinker', messages, temperature: 0, max_tokens: 24, stream: true });
  let reasoning = '';
  let content = '';
  for await (const ch of stream) {
    const delta = ch.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
    reasoning += delta?.reasoning_content ?? '';
    content += delta?.content ?? '';
  }
  t.equal(reasoning, message.reasoning_content, 'streamed reasoning_content deltas == non-streamed');
  t.equal(content, message.content);

  const json = await client.chat.completions.create({ model: 'thinker', messages, temperature: 0, max_tokens: 40, response_format: { type: 'json_object' } });
  t.match(json.choices[0]!.message.content, /^\s*\{/, 'with a response_format grammar no thought is opened: the JSON is the content');
  t.notOk('reasoning_content' in json.choices[0]!.message);

  const plain = await client.chat.completions.create({ model: 'chatml', messages, temperature: 0, max_tokens: 4 });
  t.notOk('reasoning_content' in plain.choices[0]!.message, 'a template without thought segments has no reasoning_content');
});

t.test('raw SSE: data frames in the OpenAI chunk shape, ending data: [DONE]', async (t) => {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chatml', messages, temperature: 0, max_tokens: 5, stream: true }),
  });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/event-stream/);
  const frames = (await res.text()).split('\n\n').filter(Boolean);
  t.equal(frames.at(-1), 'data: [DONE]');
  for (const f of frames.slice(0, -1)) {
    t.match(f, /^data: \{/);
    const chunk = JSON.parse(f.slice(6));
    t.same(Object.keys(chunk).sort(), ['choices', 'created', 'id', 'model', 'object', 'system_fingerprint']);
    t.same(Object.keys(chunk.choices[0]).sort(), ['delta', 'finish_reason', 'index', 'logprobs']);
  }
  t.same(JSON.parse(frames.at(-2)!.slice(6)).choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'length' });
});

t.test('an event stream carries the headers hooks set (CORS), and the request is counted', async (t) => {
  const { app: cors } = await buildTestApp(t, { modelsDir: dir, config: { ...LLAMA_TEST_CONFIG, corsOrigins: ['http://x.test'] } });
  const res = await cors.inject({
    method: 'POST', url: '/v1/chat/completions', headers: { origin: 'http://x.test' },
    payload: { model: 'chatml', messages, temperature: 0, max_tokens: 3, stream: true },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['access-control-allow-origin'], 'http://x.test');
  t.match(res.headers['content-type'], /^text\/event-stream/);
  t.match(res.body, /data: \[DONE\]\n\n$/);
  const metrics = (await cors.inject('/metrics')).body;
  t.match(metrics, /modeld_http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="200"\} 1/);
});

t.test('response_format json_schema: the answer parses and validates', async (t) => {
  const schema = { type: 'object', properties: { happy: { type: 'boolean' }, color: { type: 'string', enum: ['red', 'blue'] } }, required: ['happy', 'color'], additionalProperties: false };
  const r = await client.chat.completions.create({
    model: 'chatml', messages, temperature: 0, max_tokens: 60,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } },
  });
  const parsed = JSON.parse(r.choices[0]!.message.content!);
  t.same(Object.keys(parsed).sort(), ['color', 'happy']);
  t.type(parsed.happy, 'boolean');
  t.ok(['red', 'blue'].includes(parsed.color));
  const obj = await client.chat.completions.create({ model: 'chatml', messages, temperature: 0, max_tokens: 30, response_format: { type: 'json_object' } });
  t.match(obj.choices[0]!.message.content, /^\s*\{/);
});

t.test('response_format: the answer ends where the JSON does (stop, not length), trailing whitespace dropped, a held stop prefix kept', async (t) => {
  const schema = { type: 'object', properties: { happy: { type: 'boolean' } }, required: ['happy'], additionalProperties: false };
  const response_format = { type: 'json_schema' as const, json_schema: { name: 'answer', schema } };
  const r = await client.chat.completions.create({ model: 'chatml', messages, temperature: 0, max_tokens: 200, response_format });
  const content = r.choices[0]!.message.content!;
  t.equal(r.choices[0]!.finish_reason, 'stop');
  t.ok(r.usage!.completion_tokens < 200, `ended after ${r.usage!.completion_tokens} tokens`);
  t.type(JSON.parse(content).happy, 'boolean');
  t.equal(content, content.trimEnd(), 'no trailing whitespace');
  const stream = await client.chat.completions.create({ model: 'chatml', messages, temperature: 0, max_tokens: 200, response_format, stream: true });
  let streamed = '';
  let finish: string | null | undefined;
  for await (const ch of stream) {
    streamed += ch.choices[0]?.delta.content ?? '';
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  t.equal(streamed, content, 'streamed == non-streamed, no trailing whitespace streamed');
  t.equal(finish, 'stop');
  // '}' may start the stop string, so it is held back; it must come out when the answer ends.
  const held = await client.chat.completions.create({ model: 'chatml', messages, temperature: 0, max_tokens: 200, response_format, stop: ['}zzz'] });
  t.equal(held.choices[0]!.message.content, content, 'the closing brace survives a stop string it could have started');
});

t.test('typed errors from the official client', async (t) => {
  t.type(await client.chat.completions.create({ model: 'nope', messages }).catch((e: unknown) => e), OpenAI.NotFoundError);
  const bad = async (body: Record<string, unknown>, param: string, message: RegExp) => {
    const err = await client.chat.completions.create({ model: 'chatml', messages, ...body } as never).then(() => undefined, (e: unknown) => e);
    t.type(err, OpenAI.BadRequestError, param);
    t.equal((err as InstanceType<typeof OpenAI.BadRequestError>).param, param);
    t.match((err as Error).message, message);
  };
  await bad({ temperature: 5 }, 'temperature', /\[0, 2\]/);
  await bad({ top_p: -1 }, 'top_p', /\[0, 1\]/);
  await bad({ n: 0 }, 'n', />= 1/);
  await bad({ n: 129 }, 'n', /<= 128/);
  await bad({ logit_bias: { 5: 101 } }, 'logit_bias[5]', /100/);
  await bad({ logit_bias: { abc: 1 } }, 'logit_bias', /token ids.*'abc'/);
  await bad({ logit_bias: { 99999999: 1 } }, 'logit_bias[99999999]', /vocabulary/);
  await bad({ messages: [{ role: 'tool', content: 'x', tool_call_id: 'a' }] }, 'messages[0].tool_call_id', /answers no call/);
  await bad({ messages: [{ role: 'function', content: 'x', name: 'f' }] }, 'messages[0].role', /not supported/);
  await bad({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] }] }, 'messages[0].content[0].type', /text parts only/);
  await bad({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema', /required/);
  await bad({ messages: [{ role: 'user', content: 'word '.repeat(600) }] }, 'messages', /context/);
  await bad({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }, 'messages[0].content[0].text', /without its 'text'/);
  await bad({ max_completion_tokens: 0 }, 'max_completion_tokens', /max_completion_tokens/);
  await bad({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'foo' } } } }, 'response_format.json_schema.schema', /not a valid JSON Schema.*schema\/type/);
  const dialect = await client.chat.completions.create({
    model: 'chatml', messages, max_tokens: 30, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } },
  });
  t.type(JSON.parse(dialect.choices[0]!.message.content!).ok, 'boolean', 'a schema naming its 2020-12 dialect is accepted');
  await t.rejects(client.embeddings.create({ model: 'chatml', input: 'x' }), { status: 400, code: 'model_not_capable' });
});

t.test('4 concurrent streams on n_parallel 4 complete, decoded in shared batches', async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/quad/start' })).statusCode, 200);
  const before = (await app.inject({ url: '/v1/models/quad/state' })).json().info.batching;
  const texts = await Promise.all(['hello world', 'the cat', 'once upon a time', 'a big red ball'].map(async (content) => {
    const stream = await client.chat.completions.create({ model: 'quad', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 40, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const ch of stream) {
      text += ch.choices[0]?.delta.content ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  }));
  for (const r of texts) t.equal(r.finish, 'length');
  const after = (await app.inject({ url: '/v1/models/quad/state' })).json().info.batching;
  t.equal(after.max_sequences, 4, 'a batch carried all 4 sequences');
  const fours = (after.sequences_per_batch['4'] ?? 0) - (before.sequences_per_batch['4'] ?? 0);
  // Over HTTP the 4 requests arrive a few steps apart (more on a loaded machine), so not 35+ as in-process.
  t.ok(fours >= 20, `most steps decode the 4 streams together: ${JSON.stringify(after.sequences_per_batch)}`);
  const metrics = (await app.inject({ url: '/metrics' })).body;
  t.match(metrics, /modeld_tokens_total\{model="quad\/model",kind="completion"\} \d+/);
  t.match(metrics, /modeld_batch_size_bucket\{le="4",model="quad\/model"\} \d+/);
});

t.test('a client that leaves mid-stream frees the sequence: the queued request runs right after', async (t) => {
  await client.chat.completions.create({ model: 'solo', messages, max_tokens: 1 });
  const tokensBefore = (await app.inject({ url: '/v1/models/solo/state' })).json().info.batching.tokens;
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'solo', messages, temperature: 0, max_tokens: 400, stream: true }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  const queued = client.chat.completions.create({ model: 'solo', messages, temperature: 0, max_tokens: 5 });
  ac.abort();
  let finished = false;
  try {
    for (let n = await it.next(); !n.done; n = await it.next()) if (n.value.choices[0]?.finish_reason) finished = true;
  } catch {
    // the SDK may raise its abort error
  }
  t.notOk(finished, 'the aborted stream never finishes');
  const r = await queued;
  t.equal(r.choices[0]!.finish_reason, 'length');
  const state = (await app.inject({ url: '/v1/models/solo/state' })).json();
  t.same(state.queue, { running: 0, waiting: 0, concurrency: 1, max_waiting: 1 });
  t.ok(state.info.batching.tokens - tokensBefore < 200, `the aborted answer stopped early (${state.info.batching.tokens - tokensBefore} tokens in all)`);
});

t.test('full queue: 503 queue_full with retry-after; InternalServerError after the client retries; a waiting client that leaves frees its place', async (t) => {
  const entry = app.registry.resolve('solo');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  // Holds the model's only sequence slot, deterministically.
  const holder = app.manager.run(entry, { capability: 'chat' }, () => gate);
  const ac = new AbortController();
  const waiting = fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
    body: JSON.stringify({ model: 'solo', messages, max_tokens: 2 }),
  }).catch((e: unknown) => e);
  while ((await app.inject({ url: '/v1/models/solo/state' })).json().queue.waiting < 1) await new Promise((r) => setTimeout(r, 10));

  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'solo', messages } });
  t.equal(res.statusCode, 503);
  t.equal(res.json().error.code, 'queue_full');
  t.ok(res.headers['retry-after']);
  const retrying = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 1 });
  const retried = await retrying.chat.completions.create({ model: 'solo', messages }).catch((e: unknown) => e);
  t.type(retried, OpenAI.InternalServerError);
  t.equal((retried as InstanceType<typeof OpenAI.InternalServerError>).status, 503);

  ac.abort();
  await waiting;
  while ((await app.inject({ url: '/v1/models/solo/state' })).json().queue.waiting > 0) await new Promise((r) => setTimeout(r, 10));
  t.pass('the waiting place is freed');
  release();
  await holder;
  const ok = await client.chat.completions.create({ model: 'solo', messages, max_tokens: 2 });
  t.equal(ok.choices.length, 1, 'the model serves on');
});

t.test('n: the prompt is read once; the other choices copy its KV state and answer as if they had read it', async (t) => {
  const long = [{ role: 'user' as const, content: Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ') }];
  const body = { model: 'quad', messages: long, max_tokens: 6, temperature: 1.5, seed: 11 };
  const state = async () => (await app.inject({ url: '/v1/models/quad/state' })).json().info.prompt_cache;
  await client.chat.completions.create({ model: 'quad', messages, max_tokens: 1 });
  const before = await state();
  const three = await client.chat.completions.create({ ...body, n: 3 });
  const after = await state();
  const prompt = three.usage!.prompt_tokens;
  t.ok(prompt > 40, `a long prompt (${prompt} tokens)`);
  t.ok(three.usage!.prompt_tokens_details!.cached_tokens! < 10, 'usage: the choices\' copies are no cache hit');
  t.equal(after.shared_tokens - before.shared_tokens, 2 * (prompt - 1), 'two choices copied all but the prompt\'s last token');
  const evaluated = after.evaluated_tokens - before.evaluated_tokens;
  // The reader may keep a few tokens a sequence cached from an earlier chat (the template's start).
  t.ok(evaluated <= prompt + 2, `the prompt was evaluated once, plus its last token per copy (${evaluated})`);
  t.equal(evaluated + after.cached_tokens - before.cached_tokens, 3 * prompt, 'every prompt token of every choice is evaluated or cached');
  for (const [j, choice] of three.choices.entries()) {
    // On `chatml` (the same bytes): a sequence of `quad` would reuse the copied cells.
    const alone = await client.chat.completions.create({ ...body, model: 'chatml', seed: 11 + j });
    t.equal(choice.message.content, alone.choices[0]!.message.content, `choice ${j} is the answer its seed gives alone`);
  }
  t.ok(new Set(three.choices.map((c) => c.message.content)).size > 1, 'the choices still differ');
});

t.test('concurrent chats with one long system prompt read it once; each answers as it does alone', async (t) => {
  const system = { role: 'system' as const, content: Array.from({ length: 40 }, (_, i) => `rule${i}`).join(' ') };
  const asks = ['tell me a story', 'what is the time', 'say something else entirely'];
  // Long answers keep the first chat running while the others arrive, even on a slow machine.
  const body = { model: 'quad', max_tokens: 32, temperature: 0 };
  const state = async () => (await app.inject({ url: '/v1/models/quad/state' })).json().info.prompt_cache;
  await client.chat.completions.create({ model: 'quad', messages, max_tokens: 1 });
  const before = await state();
  const together = await Promise.all(asks.map((ask) => client.chat.completions.create({ ...body, messages: [system, { role: 'user', content: ask }] })));
  const after = await state();
  t.ok(after.shared_tokens - before.shared_tokens > 40, `the others copied the system prompt (${after.shared_tokens - before.shared_tokens} tokens)`);
  for (const [i, ask] of asks.entries()) {
    const alone = await client.chat.completions.create({ ...body, model: 'chatml', messages: [system, { role: 'user', content: ask }] });
    t.equal(together[i]!.choices[0]!.message.content, alone.choices[0]!.message.content, `"${ask}" answers as it does alone`);
  }
});

t.test('n: several choices of one conversation, in parallel; with a seed each differs and the request repeats', async (t) => {
  const body = { model: 'quad', messages, max_tokens: 8, temperature: 1.5, seed: 7 };
  const one = await client.chat.completions.create(body);
  const three = await client.chat.completions.create({ ...body, n: 3 });
  t.same(three.choices.map((c) => c.index), [0, 1, 2]);
  t.equal(three.choices[0]!.message.content, one.choices[0]!.message.content, 'choice 0 is the n = 1 answer');
  const texts = three.choices.map((c) => c.message.content);
  t.ok(new Set(texts).size > 1, `the choices differ: ${JSON.stringify(texts)}`);
  const again = await client.chat.completions.create({ ...body, n: 3 });
  t.same(again.choices.map((c) => c.message.content), texts, 'the same seed: the same choices');
  t.equal(three.usage!.prompt_tokens, one.usage!.prompt_tokens, 'the prompt counted once, as OpenAI does');
  t.equal(three.usage!.completion_tokens, 24, 'the completion tokens of every choice');

  const stream = await client.chat.completions.create({ ...body, n: 3, stream: true, stream_options: { include_usage: true } });
  const streamed = ['', '', ''];
  const roles: number[] = [];
  const finished: number[] = [];
  let usage;
  for await (const ch of stream) {
    for (const c of ch.choices) {
      streamed[c.index] += c.delta.content ?? '';
      if (c.delta.role) roles.push(c.index);
      if (c.finish_reason) finished.push(c.index);
    }
    if (ch.usage) usage = ch.usage;
  }
  t.same(streamed, texts, 'streamed: the same choices, each frame naming its index');
  t.same(roles.sort(), [0, 1, 2], 'each choice opens with the role');
  t.same(finished.sort(), [0, 1, 2], 'and ends with its finish_reason');
  t.match(usage, { prompt_tokens: one.usage!.prompt_tokens, completion_tokens: 24 });

  const solo = await client.chat.completions.create({ model: 'solo', messages, max_tokens: 3, n: 4 });
  t.equal(solo.choices.length, 4, 'more choices than the model\'s sequences and queue hold: they take turns');
});
