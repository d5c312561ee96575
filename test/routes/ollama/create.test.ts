import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { placeFile } from '../../../src/registry/copy-model.ts';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// Ollama's /api/copy and /api/create over the model folder, on real node-llama-cpp: the copy is
// a model object of its own whose binary is a hard link of the source's, so it answers as the
// source does and outlives it; create adds a system message, parameters and a license.
const dir = await tempDir();
const baseGguf = await writeFixtureModel(dir, 'base', { gguf: { chatTemplate: CHATML_TEMPLATE }, parameters: { ctx_len: 128, n_parallel: 1 } });
// A model the server downloaded: its object names the URL, the file lies in its folder.
await mkdir(path.join(dir, 'pulled'));
await copyFile(baseGguf, path.join(dir, 'pulled', 'tiny-q8.gguf'));
await writeFile(path.join(dir, 'pulled', 'model.json'), JSON.stringify({ source_url: 'http://127.0.0.1:9/org/repo/resolve/main/tiny-q8.gguf', parameters: { ctx_len: 128, n_parallel: 1 }, metadata: { repository: 'org/repo' } }));
// A JSON body limit far below the GGUF's size: uploads must not be held to it.
const { app } = await buildTestApp(t, { modelsDir: dir, config: { ...LLAMA_TEST_CONFIG, bodyLimit: 64 * 1024 } });
const url = await app.listen({ host: '127.0.0.1', port: 0 });

const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });
const chat = async (model: string, messages: Array<{ role: string; content: string }>) => {
  const res = await post('/v1/chat/completions', { model, messages, max_tokens: 6, temperature: 0 });
  if (res.statusCode !== 200) throw new Error(res.body);
  const body = res.json();
  return { text: body.choices[0].message.content as string, prompt: body.usage.prompt_tokens as number };
};
const hi = [{ role: 'user', content: 'hello world' }];

t.test('/api/copy: a new model whose binary is a hard link; it answers as the source and outlives it', async (t) => {
  const res = await post('/api/copy', { source: 'base', destination: 'mine:latest' });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.body, '');
  const model = (await app.inject('/v1/models/mine')).json();
  t.match(model, { id: 'mine/model', name: 'mine:latest', state: 'stopped', source_url: './base.gguf' });
  const [a, b] = await Promise.all([stat(baseGguf), stat(path.join(dir, 'mine', 'base.gguf'))]);
  t.equal(b.ino, a.ino, 'the same file, not a second copy');
  t.equal(a.nlink, 2);
  t.same(await chat('mine', hi), await chat('base', hi), 'the same answer');
  const tags = (await app.inject('/api/tags')).json().models as Array<{ name: string; digest: string }>;
  const digest = (name: string) => tags.find((m) => m.name === name)!.digest;
  t.not(digest('mine/model'), digest('base/model'), 'a copy has a digest of its own');

  t.equal((await app.inject({ method: 'DELETE', url: '/api/delete', payload: { model: 'base' } })).statusCode, 200);
  t.equal((await app.inject('/v1/models/base')).statusCode, 404);
  t.equal((await stat(path.join(dir, 'mine', 'base.gguf'))).nlink, 1, 'the copy keeps its own name for the file');
  await app.inject({ method: 'POST', url: '/v1/models/mine/stop' });
  t.equal((await chat('mine', hi)).text.length > 0, true, 'and answers after a fresh load');
});

t.test('/api/copy of a downloaded model keeps its URL, links its file, and is not the hub name\'s model', async (t) => {
  t.equal((await post('/api/copy', { source: 'pulled', destination: 'team/pulled-copy' })).statusCode, 200);
  const model = (await app.inject('/v1/models/team/pulled-copy')).json();
  t.match(model, { id: 'team/pulled-copy', state: 'stopped', source_url: 'http://127.0.0.1:9/org/repo/resolve/main/tiny-q8.gguf' });
  t.equal(model.metadata.repository, undefined, 'hf.co/org/repo keeps naming the pulled model');
  t.same(await readdir(path.join(dir, 'team')), ['pulled-copy.json', 'tiny-q8.gguf']);
  t.equal((await chat('team/pulled-copy', hi)).text.length > 0, true);
});

t.test('/api/copy refusals name the field and change nothing', async (t) => {
  const before = (await readdir(dir)).sort();
  const taken = await post('/api/copy', { source: 'pulled', destination: 'mine' });
  t.equal(taken.statusCode, 409);
  t.match(taken.json().error, { code: 'model_exists', param: 'destination', message: /'mine\/model' already exists/ });
  const missing = await post('/api/copy', { source: 'nothing-here', destination: 'x' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { code: 'model_not_found' });
  const hub = await post('/api/copy', { source: 'pulled', destination: 'hf.co/org/repo:Q8_0' });
  t.equal(hub.statusCode, 400);
  t.match(hub.json().error, { code: 'invalid_model_id', param: 'destination', message: /names a Hugging Face repository/ });
  const bad = await post('/api/copy', { source: 'pulled', destination: '../escape' });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().error, { code: 'invalid_model_id', param: 'destination' });
  const untyped = await post('/api/copy', { source: 'pulled' });
  t.equal(untyped.statusCode, 400);
  t.match(untyped.json().error, { param: 'destination' });
  t.same((await readdir(dir)).sort(), before);
});

t.test('/api/create: system, parameters under Ollama\'s names and a license; streamed statuses', async (t) => {
  const res = await post('/api/create', {
    model: 'mario', from: 'mine', system: 'You are Mario.', license: ['MIT', 'or Apache-2.0'],
    parameters: { num_ctx: 256, temperature: 0, stop: ['<|im_end|>', 'zz'], num_predict: 5, top_k: 1 },
  });
  t.equal(res.statusCode, 200, res.body);
  t.match(res.headers['content-type'], /^application\/x-ndjson/);
  t.same(res.body.split('\n').filter(Boolean).map((l) => JSON.parse(l)), [{ status: 'reading model metadata' }, { status: 'creating model object' }, { status: 'success' }]);
  const model = (await app.inject('/v1/models/mario')).json();
  t.match(model, { id: 'mario/model', name: 'mario', parameters: { ctx_len: 256, n_parallel: 1, temperature: 0, stop: ['<|im_end|>', 'zz'], max_tokens: 5, top_k: 1, pre_prompt: 'You are Mario.' } });
  t.equal(model.metadata.license, 'MIT\n\nor Apache-2.0');
  const show = (await post('/api/show', { model: 'mario' })).json();
  t.match(show, { system: 'You are Mario.', license: 'MIT\n\nor Apache-2.0', parameters: /max_tokens 5/ });
  t.equal(show.modelfile, [
    '# Modelfile generated by modeld for mario/model', 'FROM mario/model', 'SYSTEM You are Mario.',
    'PARAMETER num_ctx 256', 'PARAMETER temperature 0', 'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "zz"', 'PARAMETER num_predict 5', 'PARAMETER top_k 1',
    'LICENSE """MIT\n\nor Apache-2.0"""', '',
  ].join('\n'), 'ollama show --modelfile says the same');

  // The system message is the model's when a chat sends none, through the GGUF's own template.
  const plain = await chat('mario', hi);
  const told = await chat('mine', [{ role: 'system', content: 'You are Mario.' }, ...hi]);
  t.same(plain, told, 'as if the chat had sent it');
  const own = await chat('mario', [{ role: 'system', content: 'Be brief.' }, ...hi]);
  const ownOnMine = await chat('mine', [{ role: 'system', content: 'Be brief.' }, ...hi]);
  t.equal(own.prompt, ownOnMine.prompt, 'a chat\'s own system message replaces it');
  const limited = (await post('/v1/chat/completions', { model: 'mario', messages: hi })).json();
  t.equal(limited.usage.completion_tokens <= 5, true, 'num_predict is the model\'s max_tokens');

  const whole = await post('/api/create', { model: 'luigi', from: 'mario', system: 'You are Luigi.', stream: false });
  t.same(whole.json(), { status: 'success' });
  t.match((await app.inject('/v1/models/luigi')).json().parameters, { pre_prompt: 'You are Luigi.', max_tokens: 5 });
  const unlimited = await post('/api/create', { model: 'free', from: 'mario', parameters: { num_predict: -1 }, stream: false });
  t.equal(unlimited.statusCode, 200);
  t.match((await app.inject('/v1/models/free')).json().parameters, { max_tokens: 5 }, '-1 adds no limit of its own');
});

t.test('/api/create refusals name the field', async (t) => {
  const cases: Array<[Record<string, unknown>, number, string, string]> = [
    [{ model: 'x', from: 'mine', parameters: { mirostat: 2 } }, 400, 'unknown_parameter', 'parameters.mirostat'],
    [{ model: 'x', from: 'mine', parameters: { num_ctx: -5 } }, 400, 'parameter_out_of_range', 'parameters.num_ctx'],
    [{ model: 'x', from: 'mine', parameters: { temperature: 'hot' } }, 400, 'invalid_type', 'parameters.temperature'],
    [{ model: 'x', from: 'mine', files: { 'model.gguf': `sha256:${'0'.repeat(64)}` } }, 400, 'invalid_value', 'from'],
    [{ model: 'x', files: { 'model.gguf': 'sha256:00' } }, 400, 'invalid_value', 'files.model.gguf'],
    [{ model: 'x', files: { 'model.gguf': `sha256:${'0'.repeat(64)}` } }, 400, 'invalid_value', 'files.model.gguf'],
    [{ model: 'x', files: { 'model.safetensors': `sha256:${'0'.repeat(64)}` } }, 400, 'unsupported_feature', 'files.model.safetensors'],
    [{ model: 'x', from: 'mine', template: '{{ .Prompt }}' }, 400, 'unsupported_feature', 'template'],
    [{ model: 'x', from: 'mine', messages: [{ role: 'user', content: 'hi' }] }, 400, 'unsupported_feature', 'messages'],
    [{ model: 'x', from: 'mine', adapters: { 'a.gguf': 'sha256:00' } }, 400, 'unsupported_feature', 'adapters'],
    [{ model: 'x', from: 'mine', quantize: 'q4_K_M' }, 400, 'unsupported_feature', 'quantize'],
    [{ model: 'x' }, 400, 'missing_required_parameter', 'from'],
    [{ from: 'mine' }, 400, 'missing_required_parameter', 'model'],
    [{ model: 'x', from: 'nothing-here' }, 404, 'model_not_found', 'model'],
    [{ model: 'mario', from: 'mine' }, 409, 'model_exists', 'model'],
  ];
  for (const [payload, status, code, param] of cases) {
    const res = await post('/api/create', payload);
    t.equal(res.statusCode, status, JSON.stringify(payload));
    t.match(res.json().error, { code, param }, JSON.stringify(payload));
  }
  t.equal((await app.inject('/v1/models/x')).statusCode, 404, 'nothing was made');
  // Empty values of the unsupported fields are what clients send by default.
  const empty = await post('/api/create', { model: 'y', from: 'mine', files: {}, adapters: {}, template: '', messages: [], stream: false });
  t.equal(empty.statusCode, 200, empty.body);
});

t.test('BlobStore.sweep: an upload cut short by a crash goes once idle; one being written stays', async (t) => {
  const { BlobStore } = await import('../../../src/registry/blob-store.ts');
  const d = await tempDir();
  const store = new BlobStore(d);
  await mkdir(store.dir, { recursive: true });
  const stale = path.join(store.dir, '.upload-stale');
  const live = path.join(store.dir, '.upload-live');
  await writeFile(stale, 'x');
  await writeFile(live, 'y');
  const { utimes } = await import('node:fs/promises');
  const hourAgo = new Date(Date.now() - 3600_000);
  await utimes(stale, hourAgo, hourAgo);
  t.equal(await store.sweep(), 1);
  t.same((await readdir(store.dir)).sort(), ['.upload-live']);
});

t.test('placeFile: a link, the same file again, another file in the way', async (t) => {
  const d = await tempDir();
  await writeFile(path.join(d, 'a'), 'one');
  await writeFile(path.join(d, 'other'), 'two');
  t.equal(await placeFile(path.join(d, 'a'), path.join(d, 'b'), 'destination'), true);
  t.equal(await placeFile(path.join(d, 'a'), path.join(d, 'b'), 'destination'), false, 'already that file');
  await t.rejects(placeFile(path.join(d, 'a'), path.join(d, 'other'), 'destination'), { code: 'model_exists', param: 'destination', message: /other already exists and is another file/ });
});

t.test('/api/blobs and /api/create files: the upload `ollama create` makes of FROM ./model.gguf', async (t) => {
  const bytes = await readFile(path.join(dir, 'mine', 'base.gguf'));
  t.ok(bytes.length > 64 * 1024, 'larger than the JSON body limit');
  const hex = createHash('sha256').update(bytes).digest('hex');
  const blob = `/api/blobs/sha256:${hex}`;
  t.equal((await app.inject({ method: 'HEAD', url: blob })).statusCode, 404, 'not uploaded yet');
  t.equal((await app.inject({ method: 'HEAD', url: '/api/blobs/sha256:zz' })).statusCode, 400);

  // Ollama's client labels the upload application/json; it is a file all the same.
  const wrong = await app.inject({ method: 'POST', url: `/api/blobs/sha256:${'a'.repeat(64)}`, payload: bytes, headers: { 'content-type': 'application/json' } });
  t.equal(wrong.statusCode, 400);
  t.match(wrong.json().error, { code: 'invalid_value', param: 'digest', message: new RegExp(`the body's sha256 is ${hex}, not the digest`) });
  await new Promise<void>((resolve) => {
    const req = http.request(`${url}${blob}`, { method: 'POST', headers: { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' } });
    req.on('error', () => resolve());
    req.write(bytes.subarray(0, 100_000), () => setTimeout(() => { req.destroy(); resolve(); }, 200));
  });
  await new Promise((r) => setTimeout(r, 300));
  t.same((await readdir(path.join(dir, '.blobs'))).filter((f) => !f.startsWith('sha256-')), [], 'a wrong or cut upload leaves no file behind');
  t.equal((await app.inject({ method: 'HEAD', url: blob })).statusCode, 404);

  // A declared length no disk has is refused before a byte is read.
  const huge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${url}${blob}`, { method: 'POST', headers: { 'content-length': String(1e15) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.write(bytes.subarray(0, 1000));
  });
  t.equal(huge.status, 507);
  t.match(JSON.parse(huge.body).error, { code: 'insufficient_storage', param: 'digest', message: /not enough disk space to store sha256:/ });
  const up = await app.inject({ method: 'POST', url: blob, payload: bytes, headers: { 'content-type': 'application/json' } });
  t.equal(up.statusCode, 201, up.body);
  t.equal((await app.inject({ method: 'POST', url: blob, payload: bytes, headers: { 'content-type': 'application/octet-stream' } })).statusCode, 200, 'already stored');
  t.equal((await app.inject({ method: 'HEAD', url: blob })).statusCode, 200);
  t.equal((await app.inject('/v1/models')).json().data.some((m: { id: string }) => m.id.startsWith('.')), false, 'blobs are not models');

  const res = await post('/api/create', { model: 'imported', files: { 'tiny.gguf': `sha256:${hex}` }, parameters: { num_ctx: 128 }, stream: false });
  t.equal(res.statusCode, 200, res.body);
  const model = (await app.inject('/v1/models/imported')).json();
  t.match(model, { id: 'imported/model', state: 'stopped', parameters: { ctx_len: 128 }, metadata: { binaries: [{ path: './tiny.gguf', sha256: hex }], architecture: 'llama' } });
  t.same((await readdir(path.join(dir, 'imported'))).sort(), ['model.json', 'tiny.gguf']);
  t.equal((await app.inject({ method: 'HEAD', url: blob })).statusCode, 404, 'the upload area lets go of it');
  t.same(await chat('imported', hi), await chat('mine', hi), 'the uploaded file answers as the model it came from');
});
