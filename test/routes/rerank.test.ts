import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { writeImageClassifierOnnx, writeTextClassifierOnnx, writeTokenizerJson } from '../helpers/onnx-writer.ts';

// /v1/rerank on real onnxruntime: a generated cross-encoder (a text classifier with token type
// ids, one logit) scores each query–document pair read as [CLS] query [SEP] document [SEP]; the
// relevance is the sigmoid of the fixture's reference logit for exactly those ids.
const dir = await tempDir();
await mkdir(path.join(dir, 'ranker'));
const fx = writeTextClassifierOnnx(path.join(dir, 'ranker', 'ranker.onnx'), { maxLen: 16, tokenTypeIds: true, classes: 1, labels: ['relevance'] });
const vocab = writeTokenizerJson(path.join(dir, 'ranker', 'tokenizer.json')).model.vocab as Record<string, number>;
await writeFile(path.join(dir, 'ranker', 'model.json'), '{}');
await mkdir(path.join(dir, 'duo'));
const duo = writeTextClassifierOnnx(path.join(dir, 'duo', 'duo.onnx'), { maxLen: 16, tokenTypeIds: true, classes: 2 });
writeTokenizerJson(path.join(dir, 'duo', 'tokenizer.json'));
await writeFile(path.join(dir, 'duo', 'model.json'), '{}');
await mkdir(path.join(dir, 'raw'));
writeTextClassifierOnnx(path.join(dir, 'raw', 'raw.onnx'), { maxLen: 16, tokenTypeIds: true, classes: 1, labels: ['relevance'] });
writeTokenizerJson(path.join(dir, 'raw', 'tokenizer.json'));
await writeFile(path.join(dir, 'raw', 'model.json'), JSON.stringify({ metadata: { output: { activation: 'none' } } }));
await mkdir(path.join(dir, 'img'));
writeImageClassifierOnnx(path.join(dir, 'img', 'img.onnx'), { size: 8, classes: 3 });
await writeFile(path.join(dir, 'img', 'model.json'), '{}');
const { app } = await buildTestApp(t, { modelsDir: dir });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });

/** The fixture's logits for a query and document read as a pair, padded to 16. */
function logits(model: typeof fx, query: string[], doc: string[]): number[] {
  const tokens = ['[CLS]', ...query, '[SEP]', ...doc, '[SEP]'];
  const types = [...query.map(() => 0), 0, 0, ...doc.map(() => 1), 1];
  const ids = tokens.map((w) => vocab[w]!);
  const pad = new Array(16 - ids.length).fill(0);
  return Array.from(model.reference([...ids, ...pad], [...ids.map(() => 1), ...pad], [...types, ...pad]));
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

t.test('documents come most relevant first, each scored as its pair with the query', async (t) => {
  const docs = ['this movie is good', { text: 'i hate it' }, 'hello world', 'the film was terrible'];
  const res = await post('/v1/rerank', { model: 'ranker', query: 'a great film', documents: docs });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  const expected = [['this', 'movie', 'is', 'good'], ['i', 'hate', 'it'], ['hello', 'world'], ['the', 'film', 'was', 'terrible']]
    .map((d, index) => ({ index, score: sigmoid(logits(fx, ['a', 'great', 'film'], d)[0]!) }))
    .sort((a, b) => b.score - a.score);
  t.same(body.results.map((r: { index: number }) => r.index), expected.map((e) => e.index), 'the reference order');
  body.results.forEach((r: { relevance_score: number }, i: number) => t.ok(Math.abs(r.relevance_score - expected[i]!.score) < 1e-6, `score ${i}`));
  t.match(body, { object: 'list', model: 'ranker/model', usage: { prompt_tokens: 4 * (3 + 3) + (4 + 3 + 2 + 4), total_tokens: 37 } });
  t.equal(body.results.find((r: { index: number }) => r.index === 1).document.text, 'i hate it', 'Cohere\'s {text} documents');

  const top = (await post('/rerank', { model: 'ranker', query: 'a great film', documents: docs, top_n: 2, return_documents: false })).json();
  t.same(top.results.map((r: { index: number }) => r.index), expected.slice(0, 2).map((e) => e.index), 'top_n on llama-server\'s path');
  t.equal(top.results[0].document, undefined);
  for (const alias of ['/reranking', '/v1/reranking']) t.equal((await post(alias, { model: 'ranker', query: 'q', documents: ['d'] })).statusCode, 200, alias);
});

t.test('two classes: the relevant one\'s probability; activation none: the raw logit, as llama-server', async (t) => {
  const two = (await post('/v1/rerank', { model: 'duo', query: 'good', documents: ['bad film'] })).json();
  const [a, b] = logits(duo, ['good'], ['bad', 'film']) as [number, number];
  t.ok(Math.abs(two.results[0].relevance_score - Math.exp(b) / (Math.exp(a) + Math.exp(b))) < 1e-6);
  const raw = (await post('/v1/rerank', { model: 'raw', query: 'good', documents: ['bad film'] })).json();
  t.ok(Math.abs(raw.results[0].relevance_score - logits(fx, ['good'], ['bad', 'film'])[0]!) < 1e-5, 'same weights as ranker (same seed)');
});

t.test('a long pair loses tokens from its longer text first', async (t) => {
  const long = Array.from({ length: 20 }, () => 'good').join(' ');
  const res = (await post('/v1/rerank', { model: 'ranker', query: 'bad movie', documents: [long] })).json();
  // 16 − 3 specials = 13: the query keeps its 2, the document 11.
  t.ok(Math.abs(res.results[0].relevance_score - sigmoid(logits(fx, ['bad', 'movie'], new Array(11).fill('good'))[0]!)) < 1e-6);
  t.equal(res.usage.prompt_tokens, 16);
  // Both long: each keeps half of the 13, the longer one the odd token (Hugging Face's longest_first).
  const query = Array.from({ length: 10 }, () => 'bad').join(' ');
  const both = (await post('/v1/rerank', { model: 'ranker', query, documents: [long] })).json();
  t.ok(Math.abs(both.results[0].relevance_score - sigmoid(logits(fx, new Array(6).fill('bad'), new Array(7).fill('good'))[0]!)) < 1e-6);
});

t.test('what is not a reranker, and bad requests, are 400s naming the field', async (t) => {
  const img = await post('/v1/rerank', { model: 'img', query: 'q', documents: ['d'] });
  t.equal(img.statusCode, 400);
  t.match(img.json().error, { code: 'model_not_capable', param: 'model', message: /'img\/model' is not a reranker: it does not read token ids/ });
  const none = await post('/v1/rerank', { model: 'ranker', query: 'q', documents: [] });
  t.equal(none.statusCode, 400);
  t.match(none.json().error, { param: 'documents' });
  const top = await post('/v1/rerank', { model: 'ranker', query: 'q', documents: ['d'], top_n: 0 });
  t.match(top.json().error, { param: 'top_n' });
  const missing = await post('/v1/rerank', { model: 'ranker', documents: ['d'] });
  t.match(missing.json().error, { code: 'missing_required_parameter', param: 'query' });
});
