import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { LlamaEmbeddingContext, LlamaModel, Token } from 'node-llama-cpp';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { writeTinyBertRerankerGguf, writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';
import { LLAMA_TEST_CONFIG, testLlama, writeFixtureModel } from '../helpers/llama-fixtures.ts';

// /v1/rerank on real node-llama-cpp with GGUF rerankers, as llama-server runs them (rank pooling):
// - `bert`: a BERT cross-encoder with a cls + tanh + one-logit head (bge-reranker's graph); the pair
//   reads [BOS] query [EOS] [SEP] document [EOS] and the score is the logit's sigmoid;
// - `qwen`: a Qwen3 reranker whose head is its yes/no rows under llama.cpp's softmax, read through
//   the GGUF's `chat_template.rerank`; the score is P(yes) as the head gives it.
// Each score is checked against the same model run in-process by node-llama-cpp on the tokens
// this test lays out itself.
const dir = await modelsFolder(t);
const QWEN_RERANK_TEMPLATE = '<|im_start|>system\nJudge whether the Document meets the Query. Answer "yes" or "no".<|im_end|>\n<|im_start|>user\n<Query>: {query}\n<Document>: {document}<|im_end|>\n<|im_start|>assistant\n';

async function folder(name: string, modelJson: Record<string, unknown>): Promise<string> {
  await mkdir(path.join(dir, name), { recursive: true });
  await writeFile(path.join(dir, name, 'model.json'), JSON.stringify(modelJson));
  return path.join(dir, name, `${name}.gguf`);
}
const bertFile = await folder('bert', {});
const { sepToken } = writeTinyBertRerankerGguf(bertFile);
writeTinyBertRerankerGguf(await folder('bert-raw', { metadata: { output: { activation: 'none' } } }));
writeTinyBertRerankerGguf(await folder('bert-short', { parameters: { ctx_len: 24 } }));
writeTinyBertRerankerGguf(await folder('bert-softmax', { metadata: { output: { activation: 'softmax' } } }));
const qwenFile = await folder('qwen', {});
writeTinyLlamaGguf(qwenFile, { architecture: 'qwen3', addBos: false, reranker: { labels: ['yes', 'no'], template: QWEN_RERANK_TEMPLATE } });
writeTinyLlamaGguf(await folder('qwen-short', { parameters: { ctx_len: 128 } }), { architecture: 'qwen3', addBos: false, reranker: { labels: ['yes', 'no'], template: QWEN_RERANK_TEMPLATE } });
await writeFixtureModel(dir, 'chat', { parameters: { ctx_len: 256, n_parallel: 1 } });

const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });

/** The model run by node-llama-cpp directly: the head's output for exactly `tokens`. */
async function reference(t: Test, file: string, contextSize = 256) {
  const llama = await testLlama();
  const model: LlamaModel = await llama.loadModel({ modelPath: file });
  const ctx: LlamaEmbeddingContext = await model.createEmbeddingContext({ contextSize, threads: 2 });
  t.teardown(async () => { await ctx.dispose(); await model.dispose(); });
  return { model, head: async (tokens: Token[]) => Array.from((await ctx.getEmbeddingFor(tokens)).vector) };
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const close = (a: number, b: number) => Math.abs(a - b) < 1e-5;

t.test('a BERT cross-encoder: documents most relevant first, each the sigmoid of its pair\'s logit', async (t) => {
  const ref = await reference(t, bertFile);
  const query = 'a good film';
  const docs = ['the cat sat on the mat', { text: 'hello world' }, 'this movie is good', 'a dog'];
  const texts = docs.map((d) => (typeof d === 'string' ? d : d.text));
  const pair = (d: string) => [1, ...ref.model.tokenize(query), 2, sepToken, ...ref.model.tokenize(d), 2] as Token[];
  const expected: Array<{ index: number; score: number; logit: number }> = [];
  for (const [index, d] of texts.entries()) {
    const logit = (await ref.head(pair(d)))[0]!;
    expected.push({ index, score: sigmoid(logit), logit });
  }
  expected.sort((a, b) => b.score - a.score);
  t.not(expected[0]!.score, expected.at(-1)!.score, 'the fixture tells the documents apart');

  const res = await post('/v1/rerank', { model: 'bert', query, documents: docs });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.same(body.results.map((r: { index: number }) => r.index), expected.map((e) => e.index), 'the reference order');
  body.results.forEach((r: { relevance_score: number }, i: number) => t.ok(close(r.relevance_score, expected[i]!.score), `score ${i}: ${r.relevance_score} vs ${expected[i]!.score}`));
  t.match(body, { object: 'list', model: 'bert/model', usage: { prompt_tokens: texts.reduce((n, d) => n + pair(d).length, 0) } });
  t.equal(body.results.find((r: { index: number }) => r.index === 1).document.text, 'hello world');

  const raw = (await post('/rerank', { model: 'bert-raw', query, documents: docs, top_n: 1, return_documents: false })).json();
  t.equal(raw.results.length, 1);
  t.equal(raw.results[0].index, expected[0]!.index);
  t.ok(close(raw.results[0].relevance_score, expected[0]!.logit), 'activation none: the raw logit, as llama-server gives it');
  t.equal(raw.results[0].document, undefined);
});

t.test('a Qwen3 reranker: its rerank template, and P(yes) from the head\'s softmax', async (t) => {
  const ref = await reference(t, qwenFile);
  const query = 'what is good';
  const docs = ['this movie is good', 'the cat sat on the mat'];
  const res = await post('/v1/rerank', { model: 'qwen', query, documents: docs });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  let promptTokens = 0;
  for (const [index, d] of docs.entries()) {
    const tokens = ref.model.tokenize(QWEN_RERANK_TEMPLATE.replace('{query}', query).replace('{document}', d), true);
    promptTokens += tokens.length;
    const [yes, no] = (await ref.head(tokens)) as [number, number];
    t.ok(close(yes + no, 1), 'llama.cpp softmaxes the yes/no head');
    const got = body.results.find((r: { index: number }) => r.index === index).relevance_score;
    t.ok(close(got, yes), `document ${index}: ${got} vs P(yes) ${yes}`);
  }
  t.equal(body.usage.prompt_tokens, promptTokens);
  t.equal(body.results[0].relevance_score >= body.results[1].relevance_score, true);
});

t.test('a pair longer than the context loses tokens from its longer text first', async (t) => {
  const ref = await reference(t, bertFile, 24);
  const query = 'good bad';
  const long = Array.from({ length: 40 }, () => 'film').join(' ');
  const res = await post('/v1/rerank', { model: 'bert-short', query, documents: [long] });
  t.equal(res.statusCode, 200, res.body);
  // The context holds 24, an input at most 23: 4 specials leave 19; the query keeps its 2.
  const q = ref.model.tokenize(query);
  t.equal(q.length, 2);
  const cut = [1, ...q, 2, sepToken, ...ref.model.tokenize(long).slice(0, 17), 2] as Token[];
  t.equal(res.json().usage.prompt_tokens, 23);
  t.ok(close(res.json().results[0].relevance_score, sigmoid((await ref.head(cut))[0]!)));
  // Both long: 19 split 9 / 10, the longer text the odd token (Hugging Face's longest_first).
  const longQuery = Array.from({ length: 30 }, () => 'bad').join(' ');
  const both = await post('/v1/rerank', { model: 'bert-short', query: longQuery, documents: [long] });
  const halves = [1, ...ref.model.tokenize(longQuery).slice(0, 9), 2, sepToken, ...ref.model.tokenize(long).slice(0, 10), 2] as Token[];
  t.ok(close(both.json().results[0].relevance_score, sigmoid((await ref.head(halves))[0]!)));
});

t.test('a template pair too long keeps the template and cuts the texts', async (t) => {
  const long = Array.from({ length: 200 }, () => 'movie').join(' ');
  const res = await post('/v1/rerank', { model: 'qwen-short', query: 'good', documents: [long, 'short'] });
  t.equal(res.statusCode, 200, res.body);
  const { results, usage } = res.json();
  const ref = await reference(t, qwenFile);
  const shortTokens = ref.model.tokenize(QWEN_RERANK_TEMPLATE.replace('{query}', 'good').replace('{document}', 'short'), true).length;
  t.equal(usage.prompt_tokens, 127 + shortTokens, 'the long pair fills the context less one token');
  // The template's text as its own tokens; the query whole; the document what is left of 127.
  const [before, after] = QWEN_RERANK_TEMPLATE.split('{query}') as [string, string];
  const [middle, end] = after.split('{document}') as [string, string];
  const fixed = [before, middle, end].map((p) => ref.model.tokenize(p, true));
  const query = ref.model.tokenize('good');
  const room = 127 - fixed.reduce((n, p) => n + p.length, 0) - query.length;
  const tokens = [...fixed[0]!, ...query, ...fixed[1]!, ...ref.model.tokenize(long).slice(0, room), ...fixed[2]!];
  t.equal(tokens.length, 127);
  t.ok(close(results.find((r: { index: number }) => r.index === 0).relevance_score, (await ref.head(tokens))[0]!), 'P(yes) of the cut pair');
});

t.test('what is not a reranker, and a reranker asked for what it does not do', async (t) => {
  const chat = await post('/v1/rerank', { model: 'chat', query: 'q', documents: ['d'] });
  t.equal(chat.statusCode, 400);
  t.match(chat.json().error, { code: 'model_not_capable', param: 'model', message: /'chat\/model' \(engine llamacpp\) does not rerank; .*a GGUF whose pooling type is rank/ });
  t.equal((await app.inject({ method: 'GET', url: '/v1/models/chat/model/state' })).json().state, 'stopped', 'refused from its header, not loaded');
  const embed = await post('/v1/embeddings', { model: 'bert', input: 'hello' });
  t.equal(embed.statusCode, 400, 'a reranker\'s head output is no embedding');
  t.match(embed.json().error, { code: 'model_not_capable', message: /supports: tokenize, rerank|supports: rerank/ });
  const state = (await app.inject({ method: 'GET', url: '/v1/models/bert/model/state' })).json();
  t.match(JSON.stringify(state), /"reranker":true/);
  const bad = await post('/v1/rerank', { model: 'bert-softmax', query: 'q', documents: ['d'] });
  t.equal(bad.statusCode, 422, bad.body);
  t.match(bad.json().error, { code: 'model_invalid', param: 'metadata.output.activation', message: /does not apply to a GGUF reranker/ });
  const show = (await post('/api/show', { model: 'bert' })).json();
  t.same(show.capabilities, [], 'Ollama has no reranking capability to show');
});
