import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/config.ts';
import { createEngines } from '../../src/engines/index.ts';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { startFakeHub } from '../helpers/fake-hub.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

/**
 * End to end: a loadable fixture GGUF served by the hub stand-in is imported, downloaded
 * (through a dropped connection), verified, then started with the llama.cpp engine and asked
 * for a chat completion.
 */
t.test('a downloaded fixture GGUF is byte-identical, its header reads, and it starts and answers', async (t) => {
  const src = path.join(await tempDir('modeld-fixture-'), 'tiny-llama.Q8_0.gguf');
  writeTinyLlamaGguf(src, { quant: 'Q8_0' });
  const body = await readFile(src);
  const hub = await startFakeHub({ 'fixtures/tiny-llama-GGUF': { files: { 'tiny-llama.Q8_0.gguf': body } } });
  t.teardown(() => hub.close());

  const engines = await createEngines(loadConfig({ threads: 2, gpu: 'false' }, {}));
  const { app, modelsDir } = await buildTestApp(t, { engines, config: { hfEndpoint: hub.origin, threads: 2, gpu: 'false' } });
  const created = await app.inject({ method: 'POST', url: '/v1/models', payload: { source_url: `${hub.origin}/fixtures/tiny-llama-GGUF` } });
  t.equal(created.statusCode, 201, created.body);
  const id = created.json().data[0].id as string;
  t.equal(id, 'tiny-llama-GGUF/tiny-llama.Q8_0');
  t.match(created.json().data[0].metadata, { architecture: 'llama', quantization: 'Q8_0' }, 'header read over HTTP before the download');

  hub.files.set('/fixtures/tiny-llama-GGUF/resolve/main/tiny-llama.Q8_0.gguf', { body, dropAt: [Math.floor(body.length / 3)] });
  const dl = await app.inject({ method: 'POST', url: `/v1/models/${id}/download`, headers: { accept: 'text/event-stream' } });
  t.match(dl.body, /event: done\n/);
  t.same(await readFile(path.join(modelsDir, 'tiny-llama-GGUF', 'tiny-llama.Q8_0.gguf')), body, 'byte-identical after a dropped connection');
  const model = (await app.inject({ url: `/v1/models/${id}` })).json();
  t.match(model, { state: 'stopped', metadata: { header: { format: 'gguf', architecture: 'llama' } } }, 'the downloaded file header reads');

  t.ok(engines.some((e) => e.name === 'llamacpp'), 'the llama.cpp engine is built in');
  const started = await app.inject({ method: 'POST', url: `/v1/models/${id}/start`, payload: { ctx_len: 256 } });
  t.equal(started.statusCode, 200, started.body);
  const chat = await app.inject({
    method: 'POST', url: '/v1/chat/completions',
    payload: { model: id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 },
  });
  t.equal(chat.statusCode, 200, chat.body);
  t.equal(chat.json().choices[0].message.role, 'assistant');
  t.ok(chat.json().usage.completion_tokens > 0);
});
