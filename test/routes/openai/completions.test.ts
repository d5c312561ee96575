import { LlamaCompletion, type Token } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { hasStories, LLAMA_TEST_CONFIG, STORIES_GGUF, testLlama, writeFixtureModel, writeSharedModel } from '../../helpers/llama-fixtures.ts';

const dir = await tempDir();
const tiny = await writeFixtureModel(dir, 'tiny', { gguf: { contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 2 } });
await writeFixtureModel(dir, 'greedy', { parameters: { ctx_len: 128, n_parallel: 1, temperature: 0, max_tokens: 6 } });
await writeFixtureModel(dir, 'narrow', { parameters: { ctx_len: 64, n_parallel: 1, max_waiting: 1, temperature: 0 } });
await writeFixtureModel(dir, 'nobos', { gguf: { addBos: false }, parameters: { ctx_len: 128, n_parallel: 1 } });
if (hasStories) await writeSharedModel(dir, 'stories', STORIES_GGUF, { ctx_len: 256, n_parallel: 2 });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

/**
 * node-llama-cpp's greedy tokens for the prompt, detokenised after the prompt: LlamaCompletion's
 * own text drops a SentencePiece leading space that modeld (like llama-server) keeps.
 */
async function ownGreedy(file: string, prompt: string, maxTokens: number): Promise<string> {
  const model = await (await testLlama()).loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    const tokens: Token[] = [];
    await new LlamaCompletion({ contextSequence: ctx.getSequence() }).generateCompletion(prompt, { temperature: 0, maxTokens, onToken: (t) => tokens.push(...t) });
    return model.detokenize(tokens, false, model.tokenize(prompt));
  } finally {
    await model.dispose();
  }
}

const cases = [{ id: 'tiny', file: tiny, prompt: 'once upon a time' }];
if (hasStories) cases.push({ id: 'stories', file: STORIES_GGUF, prompt: 'Once upon a time' });

for (const c of cases) {
  t.test(`${c.id}: greedy completion over HTTP equals node-llama-cpp in-process; streaming; prompt arrays`, async (t) => {
    const own = await ownGreedy(c.file, c.prompt, 20);
    const r = await client.completions.create({ model: c.id, prompt: c.prompt, temperature: 0, max_tokens: 20 });
    t.equal(r.object, 'text_completion');
    t.match(r.id, /^cmpl-/);
    t.equal(r.choices[0]!.text, own);
    t.equal(r.choices[0]!.finish_reason, 'length');
    const model = await (await testLlama()).loadModel({ modelPath: c.file });
    const promptTokens = 1 + model.tokenize(c.prompt, false, 'trimLeadingSpace').length;
    await model.dispose();
    t.same(r.usage, { prompt_tokens: promptTokens, completion_tokens: 20, total_tokens: promptTokens + 20, prompt_tokens_details: { cached_tokens: 0 } });

    const stream = await client.completions.create({ model: c.id, prompt: c.prompt, temperature: 0, max_tokens: 20, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    let finish;
    for await (const ch of stream) {
      text += ch.choices[0]?.text ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
      if (ch.usage) usage = ch.usage;
    }
    t.equal(text, own, 'streamed pieces concatenate to the same text');
    t.equal(finish, 'length');
    t.same(usage, { ...r.usage, prompt_tokens_details: { cached_tokens: promptTokens - 1 } }, 'the same prompt again: all but its last token cached');

    const two = await client.completions.create({ model: c.id, prompt: [c.prompt, 'the cat'], temperature: 0, max_tokens: 8 });
    t.same(two.choices.map((x) => x.index), [0, 1]);
    t.equal(two.choices[0]!.text, (await client.completions.create({ model: c.id, prompt: c.prompt, temperature: 0, max_tokens: 8 })).choices[0]!.text);
    t.equal(two.usage!.completion_tokens, 16);
  });
}

t.test('stop (string or array) ends the text before the stop sequence; seed repeats', async (t) => {
  const full = (await client.completions.create({ model: 'tiny', prompt: 'hello world', temperature: 0, max_tokens: 30 })).choices[0]!.text;
  const word = full.trim().split(/\s+/)[3]!;
  const cut = full.indexOf(word);
  const r = await client.completions.create({ model: 'tiny', prompt: 'hello world', temperature: 0, max_tokens: 30, stop: word });
  t.equal(r.choices[0]!.text, full.slice(0, cut));
  t.equal(r.choices[0]!.finish_reason, 'stop');
  const s = await client.completions.create({ model: 'tiny', prompt: 'hello world', temperature: 0, max_tokens: 30, stop: ['zzz', word], stream: true });
  let text = '';
  for await (const ch of s) text += ch.choices[0]?.text ?? '';
  t.equal(text, full.slice(0, cut), 'streamed output never shows the stop sequence');
  const sampled = { model: 'tiny', prompt: 'hello world', temperature: 1.2, top_k: 0, top_p: 1, min_p: 0, max_tokens: 20 };
  const a = await client.completions.create({ ...sampled, seed: 7 } as never) as OpenAI.Completion;
  const b = await client.completions.create({ ...sampled, seed: 7 } as never) as OpenAI.Completion;
  t.equal(a.choices[0]!.text, b.choices[0]!.text);
  // Unseeded (or -1): a new seed each time, even within the same second.
  const texts = new Set<string>();
  for (const seed of [undefined, undefined, -1, -1]) {
    const r = await client.completions.create({ ...sampled, ...(seed !== undefined ? { seed } : {}) } as never) as OpenAI.Completion;
    texts.add(r.choices[0]!.text);
  }
  t.ok(texts.size >= 3, `unseeded requests differ (${texts.size} distinct of 4)`);
});

t.test('unsupported options are clear 400s', async (t) => {
  for (const [body, param] of [[{ echo: true, logprobs: 1 }, 'echo'], [{ suffix: 'x' }, 'suffix'], [{ n: 0 }, 'n'], [{ best_of: 2 }, 'best_of'], [{ max_tokens: 0 }, 'max_tokens']] as const) {
    const err = await client.completions.create({ model: 'tiny', prompt: 'x', ...body } as never).then(() => undefined, (e: unknown) => e);
    t.type(err, OpenAI.BadRequestError, param);
    t.equal((err as InstanceType<typeof OpenAI.BadRequestError>).param, param);
  }
});

t.test('precedence: the model object\'s request parameters apply unless the request sets them', async (t) => {
  const a = await client.completions.create({ model: 'greedy', prompt: 'hello world' });
  const b = await client.completions.create({ model: 'greedy', prompt: 'hello world' });
  t.equal(a.usage!.completion_tokens, 6, 'max_tokens from model.json');
  t.equal(a.choices[0]!.text, b.choices[0]!.text, 'temperature 0 from model.json: greedy');
  const c = await client.completions.create({ model: 'greedy', prompt: 'hello world', max_tokens: 3 });
  t.equal(c.usage!.completion_tokens, 3, 'the request wins');
});

t.test('an empty prompt on a model without a BOS token is a 400 naming prompt, streamed or not; the model serves on', async (t) => {
  for (const stream of [false, true]) {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'nobos', prompt: '', max_tokens: 4, stream }),
    });
    t.equal(res.status, 400, `stream: ${stream}`);
    t.match(((await res.json()) as { error: unknown }).error, { code: 'invalid_value', param: 'prompt', message: /empty/ });
  }
  const ok = await client.completions.create({ model: 'nobos', prompt: 'once upon', max_tokens: 3, temperature: 0 });
  t.equal(ok.usage?.completion_tokens, 3);
  const withBos = await client.completions.create({ model: 'greedy', prompt: '', max_tokens: 2 });
  t.equal(withBos.usage?.prompt_tokens, 1, 'a model with a BOS token generates from the BOS alone');
});

t.test('a request with more prompts than the queue holds runs them all, a sequence at a time; an error names its prompt', async (t) => {
  const prompts = ['once', 'upon', 'a', 'time', 'there'];
  const plain = await client.completions.create({ model: 'narrow', prompt: prompts, max_tokens: 2 });
  t.same(plain.choices.map((c) => c.index), [0, 1, 2, 3, 4], 'n_parallel 1 + max_waiting 1, yet 5 prompts answered');
  const stream = await client.completions.create({ model: 'narrow', prompt: prompts, max_tokens: 2, stream: true });
  const texts = ['', '', '', '', ''];
  for await (const ch of stream) for (const c of ch.choices) texts[c.index] += c.text;
  t.same(texts, plain.choices.map((c) => c.text), 'streamed == non-streamed, per index');
  const long = 'once upon a time '.repeat(40);
  for (const streamed of [false, true]) {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'narrow', prompt: ['once', long], max_tokens: 2, stream: streamed }),
    });
    // Every prompt is checked before any starts: streamed too, a 400 naming prompt[1].
    t.equal(res.status, 400, `streamed: ${streamed}`);
    t.match(((await res.json()) as { error: unknown }).error, { code: 'context_length_exceeded', param: 'prompt[1]', message: /^prompt\[1\]: / });
  }
  for (const prompt of [[[5], ['']], ['x', '']]) {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'nobos', prompt, max_tokens: 2, stream: true }),
    });
    t.equal(res.status, 400, `${JSON.stringify(prompt)}: an empty prompt[1] (no BOS on this model) is refused before the stream starts`);
    t.match(((await res.json()) as { error: unknown }).error, { param: 'prompt[1]', message: /empty/ });
  }
});

t.test('a stream the engine refuses before it starts is an ordinary error with its status', async (t) => {
  const long = 'once upon a time '.repeat(40);
  for (const body of [
    { model: 'narrow', prompt: long, stream: true },
    { model: 'narrow', prompt: 'once', stream: true, logit_bias: { '999999': 1 } },
  ]) {
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    t.equal(res.status, 400);
    t.match(res.headers.get('content-type'), /application\/json/);
  }
  const chat = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'narrow', messages: [{ role: 'user', content: long }], stream: true }),
  });
  t.equal(chat.status, 400, 'chat too');
  t.match(((await chat.json()) as { error: unknown }).error, { code: 'context_length_exceeded', param: 'messages' });
});

t.test('response_format (llama-server\'s completions take it too) constrains the continuation', async (t) => {
  const schema = { type: 'object', properties: { happy: { type: 'boolean' } }, required: ['happy'], additionalProperties: false };
  const body = { model: 'tiny', prompt: 'the answer:', temperature: 0, max_tokens: 200, response_format: { type: 'json_schema', json_schema: { name: 'a', schema } } };
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: body });
  t.equal(res.statusCode, 200, res.body);
  const choice = res.json().choices[0];
  t.equal(choice.finish_reason, 'stop');
  t.same(Object.keys(JSON.parse(choice.text)), ['happy']);
  const bad = await app.inject({ method: 'POST', url: '/v1/completions', payload: { ...body, response_format: { type: 'json_schema', json_schema: { name: 'a', schema: { type: 'nope' } } } } });
  t.equal(bad.statusCode, 400);
  t.equal(bad.json().error.param, 'response_format.json_schema.schema');
});

t.test('token prompts (OpenAI, llama-server): taken verbatim, one or several; the same answer as their text', async (t) => {
  const model = await (await testLlama()).loadModel({ modelPath: tiny });
  const tokens = [model.tokens.bos!, ...model.tokenize('once upon a time', false, 'trimLeadingSpace')].map(Number);
  const other = [model.tokens.bos!, ...model.tokenize('the end', false, 'trimLeadingSpace')].map(Number);
  const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  /** A text's tokens as a mixed prompt tokenizes it: the leading-space trim only where BOS precedes it. */
  const textTokens = async (text: string, first = true) => model.tokenize(text, false, first ? 'trimLeadingSpace' : undefined).map(Number);
  t.teardown(() => model.dispose());
  const body = { model: 'greedy', max_tokens: 6 };
  const asText = await client.completions.create({ ...body, prompt: 'once upon a time' });
  const asTokens = await client.completions.create({ ...body, prompt: tokens });
  t.equal(asTokens.choices[0]!.text, asText.choices[0]!.text, 'the text\'s tokens (BOS included) answer as the text does');
  t.equal(asTokens.usage!.prompt_tokens, tokens.length);
  const noBos = await client.completions.create({ ...body, prompt: tokens.slice(1) });
  t.equal(noBos.usage!.prompt_tokens, tokens.length - 1, 'no BOS added to a token prompt');
  const both = await client.completions.create({ ...body, prompt: [tokens, other] });
  t.same(both.choices.map((c) => c.index), [0, 1], 'an array of token arrays is several prompts');
  t.equal(both.choices[0]!.text, asText.choices[0]!.text);
  const stream = await client.completions.create({ ...body, prompt: tokens, stream: true });
  let streamed = '';
  for await (const ch of stream) streamed += ch.choices[0]?.text ?? '';
  t.equal(streamed, asText.choices[0]!.text, 'streamed too');

  const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/completions', payload: { ...body, ...payload } });
  const outside = await post({ prompt: [1, vocab] });
  t.equal(outside.statusCode, 400);
  t.match(outside.json().error, { code: 'invalid_value', param: 'prompt[1]', message: new RegExp(`token id ${vocab} at prompt\\[1\\] is not in this model's vocabulary \\(0–${vocab - 1}\\)`) });
  const secondBad = await post({ prompt: [tokens, [vocab + 5]] });
  t.match(secondBad.json().error, { code: 'invalid_value', param: 'prompt[1][0]', message: /^prompt\[1\]: token id/ });
  const streamedBad = await post({ prompt: [vocab], stream: true });
  t.equal(streamedBad.statusCode, 400, 'a stream refuses it before it starts');
  const lateBad = await post({ model: 'tiny', prompt: [tokens, other, [vocab]], stream: true });
  t.equal(lateBad.statusCode, 400, 'even when it is not the first prompt of a stream');
  t.match(lateBad.json().error, { param: 'prompt[2][0]' });
  // A shape error names the element that breaks the shape the earlier ones set.
  for (const [prompt, param, message] of [[[12, [13]], 'prompt[1]', /must be string or integer$/], [[['a'], 1], 'prompt[1]', /must be string or array$/], [[[1], [2], 3], 'prompt[2]', /must be string or array$/]] as const) {
    const r = await post({ prompt });
    t.match(r.json().error, { param, message }, JSON.stringify(prompt));
  }
  for (const prompt of [[-1], [1.5], [], [[]], [1, [2]], [[1, 'a', -1]], [true]]) {
    const r = await post({ prompt });
    t.equal(r.statusCode, 400, JSON.stringify(prompt));
    t.match(r.json().error, { param: /^prompt/ }, JSON.stringify(prompt));
  }
  t.equal((await client.completions.create({ ...body, prompt: 'still' })).choices.length, 1, 'the model serves on');

  // llama-server's mixed prompts: ids and texts in one array are one prompt, each text
  // tokenized in place (BOS only when a text comes first); an array without a top-level number
  // is several prompts, each a text, a token array or a mixed array.
  const last = tokens.at(-1)!;
  const mixed = (prompt: unknown[]) => client.completions.create({ ...body, prompt: prompt as number[] });
  const asMixed = await mixed(['once upon a', last]);
  const asItsTokens = await client.completions.create({ ...body, prompt: [...[model.tokens.bos!, ...(await textTokens('once upon a'))], last] });
  t.equal(asMixed.usage!.prompt_tokens, asItsTokens.usage!.prompt_tokens, 'a text first: BOS and its tokens, then the ids');
  t.equal(asMixed.choices[0]!.text, asItsTokens.choices[0]!.text);
  const echoed = await client.completions.create({ ...body, prompt: ['once upon a', last] as unknown as number[], echo: true });
  t.ok(echoed.choices[0]!.text.startsWith('once upon a'), `echo shows no BOS the server added: ${JSON.stringify(echoed.choices[0]!.text)}`);
  const idFirst = await mixed([tokens[0]!, 'once upon a time']);
  t.equal(idFirst.usage!.prompt_tokens, 1 + (await textTokens('once upon a time', false)).length, 'an id first: no BOS before the text');
  const severalMixed = await mixed([['once upon a', last], 'the end', other]);
  t.same(severalMixed.choices.map((c) => c.index), [0, 1, 2], 'several prompts, one of them mixed');
  t.equal(severalMixed.choices[0]!.text, asMixed.choices[0]!.text);
  const mixedBad = await post({ prompt: ['once', vocab] });
  t.match(mixedBad.json().error, { code: 'invalid_value', param: 'prompt[1]', message: /token id \d+ at prompt\[1\] / });
  const nestedBad = await post({ prompt: [['ok'], [1, 2, vocab]] });
  t.match(nestedBad.json().error, { code: 'invalid_value', param: 'prompt[1][2]', message: /^prompt\[1\]: token id \d+ at prompt\[2\] / });
});

t.test('echo: each choice\'s text begins with its prompt, streamed or not; a token prompt as the model\'s text', async (t) => {
  const body = { model: 'greedy', max_tokens: 4 };
  const plain = await client.completions.create({ ...body, prompt: 'once upon a time' });
  const echoed = await client.completions.create({ ...body, prompt: 'once upon a time', echo: true });
  t.equal(echoed.choices[0]!.text, 'once upon a time' + plain.choices[0]!.text);
  t.match(echoed.usage, { prompt_tokens: plain.usage!.prompt_tokens, completion_tokens: plain.usage!.completion_tokens }, 'the prompt is not counted twice');
  const stream = await client.completions.create({ ...body, prompt: ['once upon a time', 'the end'], echo: true, stream: true });
  const texts = ['', ''];
  const firsts: string[] = [];
  for await (const ch of stream) {
    for (const c of ch.choices) {
      if (texts[c.index] === '' && firsts.length < 2 && c.text !== '') firsts[c.index] = c.text;
      texts[c.index] += c.text;
    }
  }
  t.equal(texts[0], echoed.choices[0]!.text, 'streamed: the same text');
  t.same(firsts, ['once upon a time', 'the end'], 'each prompt arrives whole in its first frame');
  const model = await (await testLlama()).loadModel({ modelPath: tiny });
  const tokens = model.tokenize('once upon a time', false, 'trimLeadingSpace').map(Number);
  const text = model.detokenize(model.tokenize('once upon a time', false, 'trimLeadingSpace'), true);
  await model.dispose();
  const fromTokens = await client.completions.create({ ...body, prompt: tokens, echo: true });
  t.ok(fromTokens.choices[0]!.text.startsWith(text), `a token prompt is echoed as its text (${JSON.stringify(text)})`);
});

t.test('logprobs\' text_offset counts from the start of a token prompt\'s text', async (t) => {
  const model = await (await testLlama()).loadModel({ modelPath: tiny });
  const ids = model.tokenize('once upon a time', false, 'trimLeadingSpace');
  const text = model.detokenize(ids, true);
  await model.dispose();
  const r = await client.completions.create({ model: 'greedy', max_tokens: 3, prompt: ids.map(Number), logprobs: 1 });
  t.equal(r.choices[0]!.logprobs!.text_offset![0], [...text].length);
});

t.test('n: choices per prompt, indexed prompt × n + j; usage counts each prompt once', async (t) => {
  const body = { model: 'tiny', max_tokens: 5, temperature: 1.5, seed: 3 };
  const a = await client.completions.create({ ...body, prompt: 'once upon' });
  const b = await client.completions.create({ ...body, prompt: 'the end' });
  const both = await client.completions.create({ ...body, prompt: ['once upon', 'the end'], n: 2 });
  t.same(both.choices.map((c) => c.index), [0, 1, 2, 3]);
  t.equal(both.choices[0]!.text, a.choices[0]!.text, 'index 0: prompt 0, choice 0');
  t.equal(both.choices[2]!.text, b.choices[0]!.text, 'index 2: prompt 1, choice 0');
  t.not(both.choices[1]!.text, both.choices[0]!.text, 'choice 1 samples with the next seed');
  t.equal(both.usage!.prompt_tokens, a.usage!.prompt_tokens + b.usage!.prompt_tokens);
  t.equal(both.usage!.completion_tokens, 20);
  const stream = await client.completions.create({ ...body, prompt: ['once upon', 'the end'], n: 2, stream: true });
  const texts = ['', '', '', ''];
  for await (const ch of stream) for (const c of ch.choices) texts[c.index] += c.text;
  t.same(texts, both.choices.map((c) => c.text), 'streamed == non-streamed, per index');
});
