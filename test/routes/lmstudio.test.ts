import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { writeTinyBertRerankerGguf } from '../helpers/gguf-writer.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';
import { writeTextClassifierOnnx, writeTokenizerJson } from '../helpers/onnx-writer.ts';

// LM Studio's REST API v0 over the same models, on real node-llama-cpp and onnxruntime: the
// model table with type, state and context, and OpenAI's answers with LM Studio's stats.
const dir = await modelsFolder(t);
await writeFixtureModel(dir, 'chat', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 384, n_parallel: 1 } });
await writeFixtureModel(dir, 'embedder', { parameters: { ctx_len: 128, embedding: true, n_parallel: 1 }, metadata: { task: 'embedding' } });
await mkdir(path.join(dir, 'bert'));
writeTinyBertRerankerGguf(path.join(dir, 'bert/bert.gguf'));
await writeFile(path.join(dir, 'bert/model.json'), '{}');
await mkdir(path.join(dir, 'text'));
writeTextClassifierOnnx(path.join(dir, 'text/text.onnx'));
writeTokenizerJson(path.join(dir, 'text/tokenizer.json'));
await writeFile(path.join(dir, 'text/model.json'), '{}');
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const get = (url: string) => app.inject({ method: 'GET', url });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });

t.test('/api/v0/models: each model\'s type, format, quantization, state and context', async (t) => {
  const list = (await get('/api/v0/models')).json();
  t.equal(list.object, 'list');
  const byId = Object.fromEntries(list.data.map((m: { id: string }) => [m.id, m]));
  t.same(byId['chat/model'], {
    id: 'chat/model', object: 'model', type: 'llm', publisher: byId['chat/model'].publisher, arch: 'llama', compatibility_type: 'gguf',
    quantization: 'F32', state: 'not-loaded', max_context_length: 512,
  });
  t.equal(byId['embedder/model'].type, 'embeddings');
  t.equal(byId['bert/model'].type, 'reranker');
  t.match(byId['text/model'], { type: 'classifier', compatibility_type: 'onnx' });
  t.same((await get('/api/v0/models/chat/model')).json(), byId['chat/model'], 'one model, by its id');
  t.equal((await get('/api/v0/models/chat%2Fmodel')).json().id, 'chat/model', 'the id percent-encoded');
  const missing = await get('/api/v0/models/nope');
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { code: 'model_not_found' });
});

t.test('/api/v0/chat/completions and /completions answer as OpenAI\'s with LM Studio\'s stats', async (t) => {
  const res = await post('/api/v0/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ignore_eos: true });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.match(body, {
    object: 'chat.completion', choices: [{ message: { role: 'assistant' }, finish_reason: 'length' }], usage: { completion_tokens: 4 },
    stats: { stop_reason: 'maxPredictedTokensReached' },
    model_info: { arch: 'llama', quant: 'F32', format: 'gguf', context_length: 384 },
    runtime: { name: 'modeld-llamacpp', supported_formats: ['gguf'] },
  });
  const { tokens_per_second, time_to_first_token, generation_time } = body.stats;
  t.ok(time_to_first_token > 0 && generation_time > 0, `${time_to_first_token} s to the first token, then ${generation_time} s`);
  t.ok(Math.abs(tokens_per_second - 4 / generation_time) < 1e-6, 'tokens over the generation time');
  t.equal((await get('/api/v0/models/chat/model')).json().state, 'loaded');

  const stopped = (await post('/api/v0/completions', { model: 'chat', prompt: 'hello', max_tokens: 8, logit_bias: { 2: 100 } })).json();
  t.match(stopped, { object: 'text_completion', stats: { stop_reason: 'eosFound' }, model_info: { format: 'gguf' } });
  const full = (await post('/api/v0/completions', { model: 'chat', prompt: 'hello', ignore_eos: true })).json();
  t.match(full, { choices: [{ finish_reason: 'length' }], stats: { stop_reason: 'contextLengthReached' } }, 'no max_tokens: the context ends it');
  t.equal(full.usage.total_tokens, 384, 'prompt and answer fill the sequence');
  const plain = (await post('/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).json();
  t.equal(plain.stats, undefined, 'OpenAI\'s own route stays OpenAI\'s');
  const streamed = await post('/api/v0/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true });
  t.match(streamed.body, /data: \[DONE\]/, 'a stream is OpenAI\'s');
  const embedded = await post('/api/v0/embeddings', { model: 'embedder', input: 'hello' });
  t.equal(embedded.statusCode, 200, embedded.body);
  t.equal(embedded.json().object, 'list');
});
