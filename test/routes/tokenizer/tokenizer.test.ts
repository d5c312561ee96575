import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, testLlama, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// llama-server's tokenizer routes on real node-llama-cpp with a generated model.
const dir = await tempDir();
const gguf = await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

const post = async (path: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url: path, payload: { model: 'chatml', ...payload } });

t.test('tokenize loads a stopped model and gives the ids node-llama-cpp gives; detokenize gives the text back', async (t) => {
  const text = 'hello world <|im_start|>';
  const res = await post('/tokenize', { content: text });
  t.equal(res.statusCode, 200, res.body);
  t.equal((await app.inject({ method: 'GET', url: '/v1/models/chatml/model/state' })).json().state, 'running', 'loaded just in time');
  const model = await (await testLlama()).loadModel({ modelPath: gguf });
  t.teardown(() => model.dispose());
  const { tokens } = res.json() as { tokens: number[] };
  t.same(tokens, [...model.tokenize(text, true)], 'special-token text read as the token by default');
  const plain = (await post('/tokenize', { content: text, parse_special: false })).json().tokens as number[];
  t.ok(plain.length > tokens.length, 'parse_special: false spells it out');
  const bos = (await post('/tokenize', { content: text, add_special: true })).json().tokens as number[];
  t.equal(bos[0], model.tokens.bos, 'add_special puts BOS first');
  const back = await post('/detokenize', { tokens });
  t.same(back.json(), { content: text });
});

t.test('with_pieces: each token with its text, or its bytes when they are part of a character', async (t) => {
  const res = await post('/tokenize', { content: 'hello é', with_pieces: true });
  const tokens = res.json().tokens as Array<{ id: number; piece: string | number[] }>;
  const bytes = tokens.filter((tk) => Array.isArray(tk.piece)).map((tk) => tk.piece as number[]);
  t.same(bytes.flat(), [...Buffer.from('é')], 'é falls back to its two bytes, each shown as bytes');
  t.same(tokens.filter((tk) => typeof tk.piece === 'string').map((tk) => tk.piece).join('').trim(), 'hello', 'the rest as text');
  t.same(tokens.map((tk) => tk.id), (await post('/tokenize', { content: 'hello é' })).json().tokens);
});

t.test('apply-template: the prompt chat reads, and its length', async (t) => {
  const messages = [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }];
  const res = await post('/apply-template', { messages });
  t.equal(res.statusCode, 200, res.body);
  const { prompt, tokens } = res.json() as { prompt: string; tokens: number };
  t.match(prompt, /<\|im_start\|>system\nYou are a test\.<\|im_end\|>\n<\|im_start\|>user\nhello world<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  const chat = await client.chat.completions.create({ model: 'chatml', messages: messages as OpenAI.ChatCompletionMessageParam[], max_tokens: 1 });
  t.equal(tokens, chat.usage!.prompt_tokens, 'as many tokens as chat reads');
  t.equal((await post('/tokenize', { content: prompt })).json().tokens.length, tokens, 'the prompt tokenizes back to its length');
});

t.test('the tokenizer answers beside a running generation, without a turn in the queue', async (t) => {
  const generation = client.completions.create({ model: 'chatml', prompt: 'hello', max_tokens: 400, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  await new Promise((r) => setTimeout(r, 200));
  const res = await post('/tokenize', { content: 'hello' });
  t.equal(res.statusCode, 200);
  const state = (await app.inject({ method: 'GET', url: '/v1/models/chatml/model/state' })).json();
  t.match(state.queue, { running: 1, concurrency: 1 }, 'answered while the generation runs on the one sequence');
  t.equal((await generation).usage!.completion_tokens, 400);
});

t.test('400s name the field', async (t) => {
  const bad = await post('/detokenize', { tokens: [1, 99999] });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().error, { param: 'tokens[1]', code: 'invalid_value', message: /not in this model's vocabulary/ });
  const pieces = await post('/tokenize', { content: 'x', with_pieces: 'yes' });
  t.equal(pieces.statusCode, 400);
  t.match(pieces.json().error, { param: 'with_pieces' });
  const unanswered = await post('/apply-template', { messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'user', content: 'x' }] });
  t.equal(unanswered.statusCode, 400);
  t.match(unanswered.json().error, { param: 'messages[0].tool_calls[0].id' });
  const unknown = await app.inject({ method: 'POST', url: '/tokenize', payload: { model: 'nope', content: 'x' } });
  t.equal(unknown.statusCode, 404);
});
