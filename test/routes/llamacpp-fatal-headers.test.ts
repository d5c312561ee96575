import t from 'tap';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { gv, type GgufMetadata } from '../helpers/gguf-writer.ts';
import { LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';

// GGUF values llama.cpp does not refuse but aborts the whole process on (a GGML_ASSERT, SIGABRT),
// at load or at the first decode: each was seen killing a server in a child process on this
// machine (exit 134) before the registry learned to read them. Now such a file is a model in the
// error state naming the key, before anything loads, and the rest of the server goes on.
const fatal: Record<string, [GgufMetadata, RegExp]> = {
  heads0: [[['llama.attention.head_count', gv.u32(0)]], /'llama\.attention\.head_count' is 0/],
  kvheads0: [[['llama.attention.head_count_kv', gv.u32(0)]], /'llama\.attention\.head_count_kv' is 0/],
  blocks0: [[['llama.block_count', gv.u32(0)]], /'llama\.block_count' is 0/],
  ffn0: [[['llama.feed_forward_length', gv.u32(0)]], /'llama\.feed_forward_length' is 0/],
  embd0: [[['llama.embedding_length', gv.u32(0)]], /'llama\.embedding_length' is 0/],
  epsnan: [[['llama.attention.layer_norm_rms_epsilon', gv.f32(NaN)]], /'llama\.attention\.layer_norm_rms_epsilon' is NaN/],
  epsneg: [[['llama.attention.layer_norm_rms_epsilon', gv.f32(-1)]], /'llama\.attention\.layer_norm_rms_epsilon' is -1/],
  novocab: [[['tokenizer.ggml.tokens', gv.arr('string', [])]], /'tokenizer\.ggml\.tokens' is empty/],
};
const dir = await modelsFolder(t);
for (const [name, [extraMetadata]] of Object.entries(fatal)) {
  await writeFixtureModel(dir, name, { gguf: { extraMetadata }, parameters: { ctx_len: 128, n_parallel: 1 } });
}
// Per-layer arrays may hold zeros (hybrid models' layers without attention): not refused.
await writeFixtureModel(dir, 'perlayer', { gguf: { extraMetadata: [['llama.attention.head_count', gv.arr('uint32', [4, 0])]] }, parameters: { ctx_len: 128, n_parallel: 1 } });
await writeFixtureModel(dir, 'healthy', { parameters: { ctx_len: 128, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
// ignore_eos: a sampled end-of-generation after one token is an answer too (it failed CI once), not the point here.
const chat = (model: string) => app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ignore_eos: true } });

t.test('each fatal value is an error state naming the file and key; start and requests are 422s', async (t) => {
  for (const [name, [, said]] of Object.entries(fatal)) {
    const model = (await app.inject(`/v1/models/${name}`)).json();
    t.equal(model.state, 'error', name);
    t.match(model.error, new RegExp(`${name}\\.gguf is not a readable GGUF file: ${said.source}, a value llama\\.cpp would abort the server on rather than refuse`), name);
    const start = await app.inject({ method: 'POST', url: `/v1/models/${name}/start` });
    t.equal(start.statusCode, 422, name);
    t.match(start.json().error, { code: 'model_invalid', message: said });
    t.equal((await chat(name)).statusCode, 422, name);
  }
});

t.test('the server goes on: a healthy model and one with a zero in a per-layer array answer on the real engine', async (t) => {
  for (const model of ['healthy', 'perlayer']) {
    const res = await chat(model);
    t.equal(res.statusCode, 200, `${model}: ${res.body.slice(0, 200)}`);
    t.equal(res.json().usage.completion_tokens, 2);
  }
});
