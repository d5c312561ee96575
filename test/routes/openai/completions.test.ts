import { LlamaCompletion, type Token } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { hasStories, LLAMA_TEST_CONFIG, STORIES_GGUF, testLlama, writeFixtureModel, writeSharedModel } from '../../helpers/llama-fixtures.ts';

const dir = await tempDir();
const tiny = await writeFixtureModel(dir, 'tiny', { gguf: { contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 2 } });
await writeFixtureModel(dir, 'greedy', { parameters: { ctx_len: 128, n_parallel: 1, temperature: 0, max_tokens: 6 } });
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
});

t.test('unsupported options are clear 400s', async (t) => {
  for (const [body, param] of [[{ echo: true }, 'echo'], [{ suffix: 'x' }, 'suffix'], [{ n: 3 }, 'n'], [{ best_of: 2 }, 'best_of'], [{ max_tokens: 0 }, 'max_tokens']] as const) {
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
