import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

t.test('the official openai client lists, retrieves (slashed id) and deletes over a real socket', async (t) => {
  const dir = await tempDir();
  for (const f of ['one', 'two']) {
    await mkdir(path.join(dir, f));
    writeTinyLlamaGguf(path.join(dir, f, `${f}.gguf`));
    await writeFile(path.join(dir, f, 'model.json'), '{}');
  }
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [new FakeEngine()], config: { apiKeys: ['sk-test'] } });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'sk-test', maxRetries: 0 });

  const ids: string[] = [];
  for await (const m of client.models.list()) ids.push(m.id);
  t.same(ids, ['one/model', 'two/model']);

  const m = await client.models.retrieve('one/model');
  t.equal(m.id, 'one/model');
  t.equal(m.object, 'model');
  t.equal((m as unknown as { state: string }).state, 'stopped');

  const del = await client.models.delete('two/model');
  t.same(del, { id: 'two/model', object: 'model', deleted: true });

  const nf = await client.models.retrieve('two/model').catch((e) => e);
  t.ok(nf instanceof OpenAI.NotFoundError, 'NotFoundError');
  t.equal(nf.status, 404);
  t.equal(nf.code, 'model_not_found');
  const bad = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'wrong', maxRetries: 0 });
  const au = await bad.models.list().catch((e) => e);
  t.ok(au instanceof OpenAI.AuthenticationError, 'AuthenticationError');
});
