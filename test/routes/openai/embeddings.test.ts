import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { hasStories, LLAMA_TEST_CONFIG, STORIES_GGUF, writeFixtureModel, writeSharedModel } from '../../helpers/llama-fixtures.ts';

const dir = await tempDir();
await writeFixtureModel(dir, 'embedder', { parameters: { ctx_len: 128, embedding: true, n_parallel: 1 } });
await writeFixtureModel(dir, 'chatonly', { parameters: { ctx_len: 128, n_parallel: 1 } });
if (hasStories) await writeSharedModel(dir, 'stories', STORIES_GGUF, { ctx_len: 128, embedding: true, n_parallel: 1 });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

for (const [id, size] of [['embedder', 64], ...(hasStories ? [['stories', 64]] : [])] as Array<[string, number]>) {
  t.test(`${id}: float and base64 (the SDK's default) give the same unit vectors, in input order`, async (t) => {
    const floats = await client.embeddings.create({ model: id, input: ['hello world', 'the cat', 'hello world'], encoding_format: 'float' });
    t.equal(floats.object, 'list');
    t.equal(floats.model, `${id}/model`);
    t.same(floats.data.map((d) => [d.object, d.index]), [['embedding', 0], ['embedding', 1], ['embedding', 2]]);
    const v = floats.data.map((d) => d.embedding);
    t.equal(v[0]!.length, size);
    t.ok(Math.abs(Math.hypot(...v[0]!) - 1) < 1e-5);
    t.same(v[0], v[2], 'the same text, the same vector');
    t.notSame(v[0], v[1]);
    t.ok(floats.usage.prompt_tokens > 0);
    t.equal(floats.usage.total_tokens, floats.usage.prompt_tokens);

    const b64 = await client.embeddings.create({ model: id, input: ['hello world', 'the cat', 'hello world'] });
    for (const [i, d] of b64.data.entries()) {
      t.same(d.embedding, v[i]!.map((x) => Math.fround(x)), 'base64 decodes to the float32 values');
    }
    const one = await client.embeddings.create({ model: id, input: 'hello world', encoding_format: 'float' });
    t.same(one.data[0]!.embedding, v[0]);
  });
}

t.test('a model that cannot embed, and unsupported options: clear 400s', async (t) => {
  const err = await client.embeddings.create({ model: 'chatonly', input: 'x' }).then(() => undefined, (e: unknown) => e);
  t.type(err, OpenAI.BadRequestError);
  t.match((err as Error).message, /does not support embedding/);
  // dimensions: the first n values, unit length again (Matryoshka shortening), as OpenAI and Ollama cut them.
  const full = (await client.embeddings.create({ model: 'embedder', input: 'x', encoding_format: 'float' })).data[0]!.embedding;
  const short = (await client.embeddings.create({ model: 'embedder', input: 'x', dimensions: 8, encoding_format: 'float' })).data[0]!.embedding;
  const norm = Math.sqrt(full.slice(0, 8).reduce((a, x) => a + x * x, 0));
  t.equal(short.length, 8);
  short.forEach((x, i) => t.ok(Math.abs(x - full[i]! / norm) < 1e-6, `value ${i}`));
  const ollama = (await app.inject({ method: 'POST', url: '/api/embed', payload: { model: 'embedder', input: 'x', dimensions: 8 } })).json();
  t.same(ollama.embeddings[0], short, "Ollama's dimensions cuts alike");
  const dims = await client.embeddings.create({ model: 'embedder', input: 'x', dimensions: full.length + 1 }).then(() => undefined, (e: unknown) => e);
  t.type(dims, OpenAI.BadRequestError);
  t.equal((dims as InstanceType<typeof OpenAI.BadRequestError>).param, 'dimensions');
  t.match((dims as Error).message, new RegExp(`'dimensions' is ${full.length + 1}, but this model's vectors have ${full.length} values`));
  const long = await client.embeddings.create({ model: 'embedder', input: 'word '.repeat(300) }).then(() => undefined, (e: unknown) => e);
  t.type(long, OpenAI.BadRequestError);
  const metrics = (await app.inject({ url: '/metrics' })).body;
  t.match(metrics, /modeld_tokens_total\{model="embedder\/model",kind="embedding"\} \d+/);
});
