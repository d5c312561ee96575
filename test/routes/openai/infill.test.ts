import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { LLAMA_TEST_CONFIG, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// Fill in the middle on real node-llama-cpp: a generated model whose vocabulary has a code
// model's FIM tokens (llama.cpp finds them by their text), asked through /v1/completions'
// `suffix` and Ollama's /api/generate `suffix`. The prompt must be llama-server's /infill
// prompt: BOS, <|fim_prefix|>, the prefix, <|fim_suffix|>, the suffix, <|fim_middle|>.
const FIM = ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|fim_pad|>'];
const dir = await tempDir();
await writeFixtureModel(dir, 'coder', { gguf: { contextLength: 256, extraTokens: FIM }, parameters: { ctx_len: 256, n_parallel: 1, temperature: 0 } });
await writeFixtureModel(dir, 'plain', { parameters: { ctx_len: 128, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
const post = (path: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url: path, payload });
/** The model's ids for a text, special-token text read as plain text, no BOS. */
const ids = async (content: string) => (await post('/tokenize', { model: 'coder', content, add_special: false, parse_special: false })).json().tokens as number[];
const special = async (token: string) => (await post('/tokenize', { model: 'coder', content: token, add_special: false, parse_special: true })).json().tokens as number[];

const prefix = 'def add(a, b):\n    ';
const suffix = '\n\nprint(add(1, 2))';

t.test('suffix: the middle of llama-server\'s infill prompt, as the same tokens sent as ids give it', async (t) => {
  const [pre, suf, mid] = [await special(FIM[0]!), await special(FIM[1]!), await special(FIM[2]!)];
  t.same([pre, suf, mid].map((x) => x.length), [1, 1, 1], 'each FIM marker is one token');
  const tokens = [1, ...pre, ...(await ids(prefix)), ...suf, ...(await ids(suffix)), ...mid];
  const byIds = await client.completions.create({ model: 'coder', prompt: tokens, max_tokens: 12 });
  const infill = await client.completions.create({ model: 'coder', prompt: prefix, suffix, max_tokens: 12 });
  t.equal(infill.usage!.prompt_tokens, tokens.length, 'BOS, the markers, the prefix and the suffix');
  t.equal(infill.choices[0]!.text, byIds.choices[0]!.text, 'the same middle');
  t.ok(infill.choices[0]!.text.length > 0);

  let streamed = '';
  for await (const chunk of await client.completions.create({ model: 'coder', prompt: prefix, suffix, max_tokens: 12, stream: true })) streamed += chunk.choices[0]?.text ?? '';
  t.equal(streamed, infill.choices[0]!.text, 'streamed alike');

  const ollama = (await post('/api/generate', { model: 'coder', prompt: prefix, suffix, stream: false, options: { num_predict: 12 } })).json() as { response: string; prompt_eval_count: number };
  t.match(ollama, { response: infill.choices[0]!.text, prompt_eval_count: tokens.length }, "Ollama's suffix asks the same");
});

t.test('FIM marker text in the prefix or suffix stays text', async (t) => {
  const sneaky = `x = "${FIM[2]}"`;
  const r = await client.completions.create({ model: 'coder', prompt: sneaky, suffix: FIM[0]!, max_tokens: 1 });
  t.equal(r.usage!.prompt_tokens, 4 + (await ids(sneaky)).length + (await ids(FIM[0]!)).length);
});

t.test('a model without FIM tokens, or token ids with a suffix, is a 400 naming the field', async (t) => {
  const res = await post('/v1/completions', { model: 'plain', prompt: 'x', suffix: 'y' });
  t.equal(res.statusCode, 400);
  t.match(res.json().error, { code: 'model_not_capable', param: 'suffix', message: /fill-in-the-middle tokens/ });
  const idsRes = await post('/v1/completions', { model: 'coder', prompt: [1, 2, 3], suffix: 'y' });
  t.equal(idsRes.statusCode, 400);
  t.match(idsRes.json().error, { param: 'prompt' });
  const empty = await client.completions.create({ model: 'plain', prompt: 'x', suffix: '', max_tokens: 1 });
  t.equal(empty.choices.length, 1, 'an empty suffix is a plain completion');
});
