import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { LlamaCompletion, type Token } from 'node-llama-cpp';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { writeCorruptGguf, writeTinyLlamaGguf, writeTinyLoraGguf } from '../helpers/gguf-writer.ts';
import { LLAMA_TEST_CONFIG, testLlama } from '../helpers/llama-fixtures.ts';

// LoRA adapters (llama-server's --lora, Ollama's ADAPTER) through the `lora` run parameter, on
// real node-llama-cpp: a tiny llama and an adapter on its query projections, written here.
// Greedy answers are compared with node-llama-cpp run directly with the same adapter.
const dir = await modelsFolder(t);
const base = path.join(dir, 'tuned', 'base.gguf');
await mkdir(path.dirname(base), { recursive: true });
const model = writeTinyLlamaGguf(base);
const adapter = path.join(dir, 'tuned', 'adapter.gguf');
writeTinyLoraGguf(adapter, { base: model });

/** A model folder holding base.gguf's bytes under its own name, with this model.json. */
async function folder(name: string, modelJson: Record<string, unknown>, extra: Record<string, (file: string) => unknown> = {}): Promise<void> {
  await mkdir(path.join(dir, name), { recursive: true });
  await writeFile(path.join(dir, name, 'model.json'), JSON.stringify(modelJson));
  writeTinyLlamaGguf(path.join(dir, name, 'model.gguf'));
  for (const [file, write] of Object.entries(extra)) write(path.join(dir, name, file));
}
const params = { ctx_len: 128, n_parallel: 1 };
// The adapter beside the base is no second binary: `lora` names it, so base.gguf is the folder's only model file.
await writeFile(path.join(dir, 'tuned', 'model.json'), JSON.stringify({ parameters: { ...params, lora: ['adapter.gguf'] } }));
await folder('plain', { parameters: params });
await folder('half', { parameters: { ...params, lora: adapter, lora_scale: 0.5 } });
await folder('missing', { parameters: { ...params, lora: ['nope.gguf'] } });
await folder('not-adapter', { parameters: { ...params, lora: ['other.gguf'] } }, { 'other.gguf': (f) => writeTinyLlamaGguf(f) });
await folder('other-arch', { parameters: { ...params, lora: ['qwen.gguf'] } }, { 'qwen.gguf': (f) => writeTinyLoraGguf(f, { base: { ...model, architecture: 'qwen3' } }) });
await folder('cut', { parameters: { ...params, lora: ['cut.gguf'] } }, { 'cut.gguf': (f) => writeCorruptGguf(f, 'truncated') });
await folder('wrong-shape', { parameters: { ...params, lora: ['wide.gguf'] } }, { 'wide.gguf': (f) => writeTinyLoraGguf(f, { base: { ...model, embeddingLength: 128 } }) });

const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });
const PROMPT = 'the cat sat on the';
const complete = async (id: string) => {
  const res = await post('/v1/completions', { model: id, prompt: PROMPT, max_tokens: 12, temperature: 0 });
  t.equal(res.statusCode, 200, res.body);
  return res.json().choices[0].text as string;
};

/** node-llama-cpp directly, greedy, with these adapters on its context. */
async function reference(adapters: Array<{ filePath: string; scale: number }>): Promise<string> {
  const llama = await testLlama();
  const m = await llama.loadModel({ modelPath: base });
  const ctx = await m.createContext({ contextSize: 128, threads: 2, ...(adapters.length ? { lora: { adapters } } : {}) });
  try {
    const tokens: Token[] = [];
    await new LlamaCompletion({ contextSequence: ctx.getSequence() }).generateCompletion(PROMPT, { maxTokens: 12, temperature: 0, onToken: (t) => tokens.push(...t) });
    // Read after the prompt, as modeld (and llama-server) give a completion's text. LlamaCompletion
    // may take a token past maxTokens to finish a character; modeld leaves out the bytes of a
    // character the last token leaves unfinished, which detokenize shows as U+FFFD.
    return m.detokenize(tokens.slice(0, 12), false, m.tokenize(PROMPT)).replace(/\uFFFD+$/, '');
  } finally {
    await ctx.dispose();
    await m.dispose();
  }
}

t.test('the adapter changes the answers as node-llama-cpp applies it, at its scale', async (t) => {
  const [tuned, plain, half] = [await complete('tuned'), await complete('plain'), await complete('half')];
  t.not(tuned, plain, 'the adapter changes the greedy answer');
  t.equal(plain, await reference([]), 'without it: the base model');
  t.equal(tuned, await reference([{ filePath: adapter, scale: 1 }]), 'with it: what node-llama-cpp answers with the adapter');
  t.equal(half, await reference([{ filePath: adapter, scale: 0.5 }]), 'lora_scale 0.5 and an absolute path');
  t.not(half, tuned);
  const state = (await app.inject({ method: 'GET', url: '/v1/models/tuned/model/state' })).json();
  t.same(state.info.lora, [{ file: adapter, scale: 1 }], 'the state names the adapter and its scale');
  t.equal((await app.inject({ method: 'GET', url: '/v1/models' })).json().data.filter((m: { id: string }) => m.id.startsWith('tuned')).length, 1, 'the adapter is not listed as a model');
  t.match((await post('/api/show', { model: 'tuned' })).json().modelfile, /^ADAPTER adapter\.gguf$/m, 'Ollama\'s show names it as its Modelfile would');
});

t.test('a start override lays an adapter over a model, and scale 0 is the model alone', async (t) => {
  await post('/v1/models/plain/model/stop', {});
  const started = await post('/v1/models/plain/model/start', { lora: [adapter], lora_scale: 0 });
  t.equal(started.statusCode, 200, started.body);
  t.equal(await complete('plain'), await reference([]), 'scale 0: unchanged');
  await post('/v1/models/plain/model/stop', {});
  t.equal((await post('/v1/models/plain/model/start', { lora: [adapter] })).statusCode, 200);
  t.equal(await complete('plain'), await complete('tuned'), 'the same adapter by override: the same answer');
  await post('/v1/models/plain/model/stop', {});
  const bad = await post('/v1/models/plain/model/start', { lora_scale: 11 });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().error, { code: 'parameter_out_of_range', param: 'lora_scale' });
});

t.test('an adapter that cannot apply is a 422 naming the file, and breaks only its model', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['missing', /nope\.gguf, which cannot be read as a GGUF: no such file or directory/],
    ['not-adapter', /other\.gguf, which is no LoRA adapter \(its general\.type null/],
    ['other-arch', /qwen\.gguf, an adapter for "qwen3" models; this model is "llama"/],
    ['cut', /cut\.gguf, which cannot be read as a GGUF: .*cut off/],
  ];
  for (const [id, message] of cases) {
    const res = await post('/v1/completions', { model: id, prompt: 'hi', max_tokens: 1 });
    t.equal(res.statusCode, 422, `${id}: ${res.body}`);
    t.match(res.json().error, { code: 'model_invalid', param: 'lora', message }, id);
    t.equal(res.headers['x-should-retry'], 'false');
  }
  // llama.cpp itself refuses an adapter whose tensors do not fit the model's.
  const shape = await post('/v1/completions', { model: 'wrong-shape', prompt: 'hi', max_tokens: 1 });
  t.equal(shape.statusCode, 500, shape.body);
  t.match(shape.json().error, { code: 'model_load_failed', message: /wide\.gguf/ });
  t.equal((await post('/v1/completions', { model: 'tuned', prompt: 'hi', max_tokens: 1 })).statusCode, 200, 'other models still answer');
});

t.test('a copy takes the model\'s binaries, not its adapters: it names what is missing', async (t) => {
  t.equal((await post('/api/copy', { source: 'tuned', destination: 'copied' })).statusCode, 200);
  const res = await post('/v1/completions', { model: 'copied', prompt: 'hi', max_tokens: 1 });
  t.equal(res.statusCode, 422, res.body);
  t.match(res.json().error, { code: 'model_invalid', param: 'lora', message: /copied\/adapter\.gguf, which cannot be read as a GGUF: no such file/ });
});

t.test('deleting a model removes its binary and object, and leaves its adapter files', async (t) => {
  const res = await app.inject({ method: 'DELETE', url: '/v1/models/tuned/model' });
  t.equal(res.statusCode, 200, res.body);
  t.notOk(existsSync(base), 'the model binary is gone');
  t.ok(existsSync(adapter), 'the adapter, which modeld did not make, stays');
});
