import t from 'tap';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';

// llama-server's native /completion and /infill on real node-llama-cpp, in llama-server's answer
// shape. /infill's prompt must be llama-server's format_infill: the extra files after the
// repository and file-separator tokens, BOS, the FIM prefix, the prefix, the typed prompt, the
// FIM suffix, the suffix, the FIM middle; checked against the same tokens sent as ids.
const FIM = ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|fim_pad|>'];
const REPO = ['<|repo_name|>', '<|file_sep|>'];
const dir = await tempDir();
await writeFixtureModel(dir, 'coder', { gguf: { contextLength: 512, extraTokens: [...FIM, ...REPO] }, parameters: { ctx_len: 512, n_parallel: 1, n_batch: 64, temperature: 0 } });
await writeFixtureModel(dir, 'fimonly', { gguf: { contextLength: 256, extraTokens: FIM }, parameters: { ctx_len: 256, n_parallel: 1, n_batch: 64, temperature: 0 } });
await writeFixtureModel(dir, 'plain', { parameters: { ctx_len: 128, n_parallel: 1, temperature: 0 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });
const ids = async (model: string, content: string, parseSpecial = false) =>
  (await post('/tokenize', { model, content, add_special: false, parse_special: parseSpecial })).json().tokens as number[];
const byIds = async (model: string, prompt: number[], maxTokens: number) => {
  const res = await post('/v1/completions', { model, prompt, max_tokens: maxTokens });
  t.equal(res.statusCode, 200, res.body);
  return res.json() as { choices: Array<{ text: string }>; usage: { prompt_tokens: number } };
};
const stop = (model: string) => app.inject({ method: 'POST', url: `/v1/models/${model}/stop` });

t.test('/completion: llama-server\'s answer shape, whole and streamed', async (t) => {
  const whole = await post('/completion', { model: 'plain', prompt: 'hello world', n_predict: 6 });
  t.equal(whole.statusCode, 200, whole.body);
  const body = whole.json();
  const openai = (await post('/v1/completions', { model: 'plain', prompt: 'hello world', max_tokens: 6 })).json();
  t.match(body, {
    index: 0, content: openai.choices[0].text, tokens: [], stop: true, model: 'plain/model', tokens_predicted: 6, tokens_evaluated: openai.usage.prompt_tokens,
    stop_type: 'limit', stopping_word: '', generation_settings: { n_ctx: 128, n_predict: 6, model: 'plain/model' },
    timings: { prompt_n: Number, prompt_ms: Number, predicted_n: 6, predicted_ms: Number, predicted_per_second: Number, cache_n: Number },
  });
  t.equal(body.tokens_cached, body.tokens_evaluated + 6);
  t.equal(body.truncated, false);
  const full = (await post('/completion', { model: 'plain', prompt: 'hello world', n_predict: -1, ignore_eos: true })).json();
  t.match(full, { truncated: true, stop_type: 'limit', generation_settings: { n_predict: -1 } }, 'the context filled up');
  t.equal(full.tokens_evaluated + full.tokens_predicted, 128);

  const streamed = await post('/completion', { model: 'plain', prompt: 'hello world', n_predict: 6, stream: true });
  t.match(streamed.headers['content-type'], /^text\/event-stream/);
  t.notMatch(streamed.body, /\[DONE\]/, 'no [DONE], as llama-server');
  const events = streamed.body.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, '')));
  const lastEvent = events.at(-1);
  t.match(lastEvent, { stop: true, content: '', tokens_predicted: 6, stop_type: 'limit', timings: { predicted_n: 6 } });
  t.ok(events.slice(0, -1).every((e) => e.stop === false));
  t.equal(events.slice(0, -1).map((e) => e.content).join(''), body.content, 'the events make the text');

  const mixed = (await post('/completion', { model: 'plain', prompt: [1, 'hello world'], n_predict: 3 })).json();
  t.equal(mixed.tokens_predicted, 3, 'token ids and text mixed');
  // The first two visible characters of the same greedy answer end a longer one there.
  const word = body.content.match(/\S\S/)?.[0];
  t.ok(word, `the answer has two characters to stop on: ${JSON.stringify(body.content)}`);
  const stops = (await post('/completion', { model: 'plain', prompt: 'hello world', n_predict: 20, stop: [word] })).json();
  t.match(stops, { stop_type: 'word', stopping_word: word });
  const warm = (await post('/completion', { model: 'plain', prompt: 'hello world', n_predict: 0 })).json();
  t.match(warm, { content: '', tokens_predicted: 0, stop: true }, 'n_predict 0 reads the prompt only');
});

t.test('the model may be left out while exactly one runs', async (t) => {
  for (const m of ['coder', 'fimonly', 'plain']) await stop(m);
  const none = await post('/completion', { prompt: 'x', n_predict: 1 });
  t.equal(none.statusCode, 400);
  t.match(none.json().error, { code: 'missing_required_parameter', param: 'model', message: /no model runs/ });
  await post('/v1/models/plain/start', {});
  const one = await post('/completion', { prompt: 'hello', n_predict: 2 });
  t.equal(one.statusCode, 200, one.body);
  t.equal(one.json().model, 'plain/model');
  await post('/v1/models/fimonly/start', {});
  const two = await post('/infill', { input_prefix: 'a', input_suffix: 'b', n_predict: 1 });
  t.equal(two.statusCode, 400);
  t.match(two.json().error, { code: 'missing_required_parameter', param: 'model', message: /several models run \('fimonly\/model', 'plain\/model'\)/ });
});

t.test('/infill: format_infill with the repository tokens, as the same ids give it', async (t) => {
  const [rep, sep, pre, suf, mid] = await Promise.all([REPO[0]!, REPO[1]!, FIM[0]!, FIM[1]!, FIM[2]!].map(async (x) => (await ids('coder', x, true))[0]!));
  const prefix = 'def add(a, b):\n    ';
  const suffix = '\n\nprint(add(1, 2))';
  const typed = 'ret';
  const typedIds = await ids('coder', typed, true);
  const extra = [{ filename: 'util.py', text: 'def sub(a, b):\n    return a - b\n' }, { text: 'x = 1\n' }];
  const expected = [
    rep, ...(await ids('coder', 'myproject\n')),
    sep, ...(await ids('coder', 'util.py\n')), ...(await ids('coder', extra[0]!.text)),
    sep, ...(await ids('coder', 'tmp\n')), ...(await ids('coder', extra[1]!.text)),
    sep, ...(await ids('coder', 'filename\n')),
    // n_batch 64: the suffix keeps its first 16 − 2 − (typed tokens), as llama-server cuts it.
    1, pre, ...(await ids('coder', prefix)), ...typedIds, suf, ...(await ids('coder', suffix)).slice(0, 16 - 2 - typedIds.length), mid,
  ];
  const res = await post('/infill', { model: 'coder', input_prefix: prefix, input_suffix: suffix, input_extra: extra, prompt: typed, n_predict: 8, cache_prompt: true, samplers: ['top_k'], t_max_predict_ms: 500 });
  t.equal(res.statusCode, 200, res.body);
  const infill = res.json();
  const same = await byIds('coder', expected, 8);
  t.equal(infill.tokens_evaluated, expected.length, 'the extra files, BOS, markers, prefix, typed text and suffix');
  t.equal(infill.content, same.choices[0]!.text, 'the same middle');

  // Without repository tokens each file comes after llama-server's snippet line.
  const plainExtra = [{ filename: 'a.py', text: 'x = 1\n' }];
  const [fpre, fsuf, fmid] = await Promise.all(FIM.slice(0, 3).map(async (x) => (await ids('fimonly', x, true))[0]!));
  const snippet = [...(await ids('fimonly', '\n\n--- snippet ---\n\n')), ...(await ids('fimonly', 'x = 1\n')), 1, fpre, ...(await ids('fimonly', 'a')), fsuf, ...(await ids('fimonly', 'b')), fmid];
  const noRepo = (await post('/infill', { model: 'fimonly', input_prefix: 'a', input_suffix: 'b', input_extra: plainExtra, n_predict: 4 })).json();
  t.equal(noRepo.tokens_evaluated, snippet.length);
  t.equal(noRepo.content, (await byIds('fimonly', snippet, 4)).choices[0]!.text);
});

t.test('/infill cuts long inputs as llama-server does instead of refusing them', async (t) => {
  // n_batch 64: the prefix keeps its last 48 tokens, the suffix its first 16 − 2 − typed.
  const longPrefix = Array.from({ length: 400 }, (_, i) => `w${i % 50}`).join(' ');
  const longSuffix = Array.from({ length: 300 }, (_, i) => `s${i % 40}`).join(' ');
  const extraText = Array.from({ length: 2000 }, (_, i) => `e${i % 30}`).join(' ');
  const [pre, suf, mid] = await Promise.all(FIM.slice(0, 3).map(async (x) => (await ids('coder', x, true))[0]!));
  const [rep, sep] = await Promise.all(REPO.map(async (x) => (await ids('coder', x, true))[0]!));
  const p = await ids('coder', longPrefix);
  const s = await ids('coder', longSuffix);
  t.ok(p.length > 48 && s.length > 14 && p.length + s.length > 512, 'longer than the context together');
  const extraAll = [rep, ...(await ids('coder', 'myproject\n')), sep, ...(await ids('coder', 'big.txt\n')), ...(await ids('coder', extraText)), sep, ...(await ids('coder', 'filename\n'))];
  // The extra files keep their last ctx − batch − 2·n_predict tokens.
  const extraKept = extraAll.slice(extraAll.length - (512 - 64 - 2 * 4));
  const expected = [...extraKept, 1, pre, ...p.slice(p.length - 48), suf, ...s.slice(0, 14), mid];
  const res = await post('/infill', { model: 'coder', input_prefix: longPrefix, input_suffix: longSuffix, input_extra: [{ filename: 'big.txt', text: extraText }], n_predict: 4 });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().tokens_evaluated, expected.length);
  t.equal(res.json().content, (await byIds('coder', expected, 4)).choices[0]!.text, 'the same cut');
});

t.test('t_max_predict_ms ends the middle once the time is up and a line is complete, as a limit', async (t) => {
  // The tokenizer puts its space before the text: the new line is the last id.
  const newline = (await ids('coder', '\n')).at(-1);
  // Every token a new line: the line is complete at once, and the clock decides.
  const body = { model: 'coder', input_prefix: 'x = ', input_suffix: '', n_predict: 100, logit_bias: { [newline!]: 100 } };
  const free = (await post('/infill', body)).json();
  t.equal(free.tokens_predicted, 100, 'without it: all 100');
  const cut = (await post('/infill', { ...body, t_max_predict_ms: 1 })).json();
  t.ok(cut.tokens_predicted > 0 && cut.tokens_predicted < 30, `with 1 ms: ${cut.tokens_predicted} tokens`);
  t.match(cut, { stop_type: 'limit', has_new_line: true });
  const noLine = (await post('/infill', { ...body, logit_bias: { [newline!]: -100 }, n_predict: 20, t_max_predict_ms: 1 })).json();
  t.equal(noLine.tokens_predicted, 20, 'no new line, no cut');
});

t.test('refusals name llama-server\'s fields', async (t) => {
  const plain = await post('/infill', { model: 'plain', input_prefix: 'a', input_suffix: 'b' });
  t.equal(plain.statusCode, 400);
  t.match(plain.json().error, { code: 'model_not_capable', param: 'input_suffix', message: /'input_suffix': this model has no fill-in-the-middle tokens/ });
  const range = await post('/completion', { model: 'plain', prompt: 'x', temperature: -3 });
  t.equal(range.statusCode, 400);
  t.match(range.json().error, { code: 'parameter_out_of_range', param: 'temperature' });
  const big = await post('/completion', { model: 'plain', prompt: 'x', n_predict: 1e9 });
  t.match(big.json().error, { param: 'n_predict' });
  const typeErr = await post('/infill', { model: 'coder', input_prefix: 5 });
  t.equal(typeErr.statusCode, 400);
  t.match(typeErr.json().error, { param: 'input_prefix' });
  const none = await post('/completion', { model: 'plain' });
  t.match(none.json().error, { code: 'missing_required_parameter', param: 'prompt' });
});
