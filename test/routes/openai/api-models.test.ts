import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, QWEN_TOOLS_TEMPLATE, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// The api engine end to end: the upstream is a second modeld on the real llama engine, with
// an API key; the models of the first are model objects whose metadata.api points at it.
const upstreamDir = await tempDir();
await writeFixtureModel(upstreamDir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 512, n_parallel: 2 } });
await writeFixtureModel(upstreamDir, 'qwen', { gguf: { chatTemplate: QWEN_TOOLS_TEMPLATE, contextLength: 2048 }, parameters: { ctx_len: 2048, n_parallel: 1 } });
await writeFixtureModel(upstreamDir, 'embedder', { parameters: { ctx_len: 128, embedding: true, n_parallel: 1 } });
const upstreamApp = (await buildTestApp(t, { modelsDir: upstreamDir, config: { ...LLAMA_TEST_CONFIG, apiKeys: ['upstream-secret'] } })).app;
const upstreamUrl = await upstreamApp.listen({ host: '127.0.0.1', port: 0 });
const upstream = new OpenAI({ baseURL: `${upstreamUrl}/v1`, apiKey: 'upstream-secret', maxRetries: 0 });

process.env.MODELD_TEST_UPSTREAM_KEY = 'upstream-secret';
process.env.MODELD_TEST_WRONG_KEY = 'wrong';
t.teardown(() => {
  delete process.env.MODELD_TEST_UPSTREAM_KEY;
  delete process.env.MODELD_TEST_WRONG_KEY;
});
const dir = await tempDir();
async function apiModel(folder: string, api: Record<string, unknown>, parameters: Record<string, unknown> = {}) {
  await mkdir(path.join(dir, folder), { recursive: true });
  await writeFile(path.join(dir, folder, 'model.json'), JSON.stringify({ name: folder, parameters, metadata: { engine: 'api', api } }));
}
const base = `${upstreamUrl}/v1`;
await apiModel('remote', { base_url: base, model: 'chatml/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' });
await apiModel('tools', { base_url: base, model: 'qwen/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' });
await apiModel('vectors', { base_url: base, model: 'embedder/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' });
await apiModel('warm', { base_url: base, model: 'chatml/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' }, { temperature: 0, max_tokens: 5 });
await apiModel('wrongkey', { base_url: base, model: 'chatml/model', api_key_env: 'MODELD_TEST_WRONG_KEY' });
await apiModel('nokey', { base_url: base, model: 'chatml/model', api_key_env: 'MODELD_TEST_UNSET_KEY' });
await apiModel('nourl', { model: 'chatml/model' });
// Jan's remote-model form: the server in source_url.
await mkdir(path.join(dir, 'jan'), { recursive: true });
await writeFile(path.join(dir, 'jan', 'model.json'), JSON.stringify({ source_url: base, parameters: { temperature: 0, max_tokens: 2 }, metadata: { engine: 'api', api: { model: 'chatml/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' } } }));
await apiModel('down', { base_url: 'http://127.0.0.1:9/v1', model: 'x' });
// An upstream that fails as the upstream model's name says: rate-limited, unavailable, broken, or silent.
const failing = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const model = (JSON.parse(body) as { model: string }).model;
    if (model === 'silent') return;
    const [status, message] = model === 'rate' ? [429, 'Rate limit reached'] : model === 'unavailable' ? [503, 'Overloaded'] : [500, 'Something broke'];
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '7' } : {}) });
    res.end(JSON.stringify({ error: { message, type: 'server_error' } }));
  });
});
await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  failing.closeAllConnections();
  failing.close();
});
const failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}/v1`;
await apiModel('unavailable', { base_url: failingUrl, model: 'unavailable' });
await apiModel('broken', { base_url: failingUrl, model: 'broken' });
await apiModel('silent', { base_url: failingUrl, model: 'silent' }, { timeout_s: 1 });
await apiModel('busy', { base_url: failingUrl, model: 'rate' });
// An upstream that records what it is sent and answers the same every time.
const recorded: Array<Record<string, unknown>> = [];
const recorder = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    recorded.push(JSON.parse(body) as Record<string, unknown>);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      id: 'x', object: 'chat.completion', created: 0, model: 'upstream-name',
      choices: [{ index: 0, message: { role: 'assistant', content: 'recorded' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    }));
  });
});
await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
t.teardown(() => recorder.close());
await apiModel('recorded', { base_url: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/v1`, model: 'upstream-name' }, { temperature: 0.3 });
await apiModel('missing', { base_url: base, model: 'nope/nope', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }];
/**
 * Unloads an upstream model, so the next request reads its prompt afresh: a prompt read whole
 * and one partly taken from the cache differ in the logits' last digits, enough to tip a
 * greedy near-tie of a random model, and the comparisons below send the same prompt twice.
 */
const fresh = async (model: string) => {
  const res = await upstreamApp.inject({ method: 'POST', url: `/v1/models/${model}/stop`, headers: { authorization: 'Bearer upstream-secret' } });
  if (res.statusCode !== 200 && res.json().error?.code !== 'model_not_running') throw new Error(res.body);
};
/** Answers run to max_tokens (llama-server's ignore_eos, passed on), so their length shows which max_tokens applied. */
const toTheEnd = { ignore_eos: true } as Record<string, unknown>;

t.test('api models are listed and start without binaries', async (t) => {
  const list = await client.models.list();
  t.ok(list.data.some((m) => m.id === 'remote/model'), 'listed');
  const state = await app.inject({ method: 'POST', url: '/v1/models/remote/model/start' });
  t.equal(state.statusCode, 200, state.body);
  t.equal(state.json().state, 'running');
});

t.test("an api model may name its server in source_url (Jan's remote models): nothing to download", async (t) => {
  const model = (await client.models.list()).data.find((m) => m.id === 'jan/model') as unknown as { state: string; source_url: string };
  t.match(model, { state: 'stopped', source_url: base });
  const r = await client.chat.completions.create({ model: 'jan/model', messages, ...toTheEnd });
  t.equal(r.usage!.completion_tokens, 2);
});

t.test('chat goes upstream and back: the same answer, usage and stream as the upstream gives', async (t) => {
  const body = { messages, temperature: 0, max_tokens: 12 };
  await fresh('chatml/model');
  const direct = await upstream.chat.completions.create({ model: 'chatml/model', ...body });
  await fresh('chatml/model');
  const proxied = await client.chat.completions.create({ model: 'remote/model', ...body });
  t.equal(proxied.model, 'remote/model');
  t.equal(proxied.choices[0]!.message.content, direct.choices[0]!.message.content);
  t.equal(proxied.choices[0]!.finish_reason, direct.choices[0]!.finish_reason);
  t.equal(proxied.usage!.prompt_tokens, direct.usage!.prompt_tokens);
  t.equal(proxied.usage!.completion_tokens, direct.usage!.completion_tokens);

  await fresh('chatml/model');
  const stream = await client.chat.completions.create({ model: 'remote/model', ...body, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    usage = chunk.usage ?? usage;
  }
  t.equal(text, direct.choices[0]!.message.content, 'streamed through');
  t.equal(usage?.completion_tokens, direct.usage!.completion_tokens);

  // What goes upstream, read by a recording stand-in (a seeded answer of the real upstream
  // repeats only for the same cache state, so it cannot show which seed a choice got).
  const seeded = await client.chat.completions.create({ model: 'recorded/model', messages, seed: 5, n: 2, max_tokens: 8, top_k: 3 } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  t.same(seeded.choices.map((c) => c.message.content), ['recorded', 'recorded']);
  const bodies = recorded.splice(0).sort((a, b) => (a.seed as number) - (b.seed as number));
  t.same(bodies.map((b) => b.seed), [5, 6], 'choice j goes with seed + j, as for a local model');
  t.match(bodies[0], { model: 'upstream-name', max_tokens: 8, top_k: 3, temperature: 0.3, messages });
  t.notOk('n' in bodies[0]! || 'top_p' in bodies[0]!, 'nothing the request and the model object leave unset');
});

t.test('the Responses API serves an api model through its upstream chat', async (t) => {
  await fresh('chatml/model');
  const direct = await upstream.chat.completions.create({ model: 'chatml/model', messages, temperature: 0, max_tokens: 12 });
  await fresh('chatml/model');
  const r = await client.responses.create({ model: 'remote/model', instructions: 'You are a test.', input: 'hello world', temperature: 0, max_output_tokens: 12 });
  t.equal(r.output_text, direct.choices[0]!.message.content);
  t.equal(r.usage!.input_tokens, direct.usage!.prompt_tokens);
  await fresh('chatml/model');
  const stream = client.responses.stream({ model: 'remote/model', instructions: 'You are a test.', input: 'hello world', temperature: 0, max_output_tokens: 12 });
  let text = '';
  for await (const event of stream) if (event.type === 'response.output_text.delta') text += event.delta;
  t.equal(text, direct.choices[0]!.message.content, 'streamed through');
  t.equal((await stream.finalResponse()).usage!.output_tokens, direct.usage!.completion_tokens);
});

t.test("the model object's parameters are defaults beneath the request's", async (t) => {
  const r = await client.chat.completions.create({ model: 'warm/model', messages, ...toTheEnd });
  t.equal(r.usage!.completion_tokens, 5, 'max_tokens from the model object');
  const more = await client.chat.completions.create({ model: 'warm/model', messages, max_tokens: 7, ...toTheEnd });
  t.equal(more.usage!.completion_tokens, 7, "the request's own wins");
  const bad = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'warm/model', messages, temperature: 3 } });
  t.equal(bad.statusCode, 400, 'checked against the engine descriptors before going upstream');
  t.equal(bad.json().error.param, 'temperature');
});

t.test('completions and embeddings go upstream too', async (t) => {
  await fresh('chatml/model');
  const direct = await upstream.completions.create({ model: 'chatml/model', prompt: 'hello world', temperature: 0, max_tokens: 8 });
  await fresh('chatml/model');
  const proxied = await client.completions.create({ model: 'remote/model', prompt: 'hello world', temperature: 0, max_tokens: 8 });
  t.equal(proxied.choices[0]!.text, direct.choices[0]!.text);
  await fresh('chatml/model');
  const stream = await client.completions.create({ model: 'remote/model', prompt: 'hello world', temperature: 0, max_tokens: 8, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  t.equal(text, direct.choices[0]!.text);

  const ids = [1, 500, 600, 700];
  await fresh('chatml/model');
  const byIds = await client.completions.create({ model: 'remote/model', prompt: ids, temperature: 0, max_tokens: 4 });
  await fresh('chatml/model');
  const directIds = await upstream.completions.create({ model: 'chatml/model', prompt: ids, temperature: 0, max_tokens: 4 });
  t.equal(byIds.choices[0]!.text, directIds.choices[0]!.text, 'a token prompt is passed on as it is');
  const echo = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'remote/model', prompt: ids, echo: true, max_tokens: 1 } });
  t.equal(echo.statusCode, 400, 'echo of a token prompt needs a tokenizer, which a remote model has not here');
  t.equal(echo.json().error.code, 'unsupported_feature');

  const v = await upstream.embeddings.create({ model: 'embedder/model', input: ['hello world', 'the cat'] });
  const w = await client.embeddings.create({ model: 'vectors/model', input: ['hello world', 'the cat'] });
  t.same(w.data.map((d) => d.embedding), v.data.map((d) => d.embedding));
  t.equal(w.usage.prompt_tokens, v.usage.prompt_tokens);
});

t.test('tools and their calls cross over both ways', async (t) => {
  const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['utc', 'cet'] } }, required: ['zone'] } } }];
  const r = await client.chat.completions.create({ model: 'tools/model', messages, tools, tool_choice: 'required', parallel_tool_calls: false, seed: 2, max_tokens: 100 });
  t.equal(r.choices[0]!.finish_reason, 'tool_calls');
  const call = r.choices[0]!.message.tool_calls![0]!;
  if (call.type !== 'function') throw new Error('a function call');
  t.equal(call.function.name, 'get_time');
  t.ok(['utc', 'cet'].includes(JSON.parse(call.function.arguments).zone));

  const history: OpenAI.ChatCompletionMessageParam[] = [...messages, r.choices[0]!.message as OpenAI.ChatCompletionMessageParam, { role: 'tool', tool_call_id: call.id, content: '"12:00"' }];
  await fresh('qwen/model');
  const direct = await upstream.chat.completions.create({ model: 'qwen/model', messages: history, tools, temperature: 0, max_tokens: 4 });
  await fresh('qwen/model');
  const proxied = await client.chat.completions.create({ model: 'tools/model', messages: history, tools, temperature: 0, max_tokens: 4 });
  t.equal(proxied.usage!.prompt_tokens, direct.usage!.prompt_tokens, 'the call and its answer reach the upstream whole');
  t.equal(proxied.choices[0]!.message.content, direct.choices[0]!.message.content);
});

t.test('upstream and configuration failures are clear errors naming what is wrong', async (t) => {
  const post = (model: string, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model, messages, max_tokens: 2, ...extra } });
  const wrong = await post('wrongkey/model');
  t.equal(wrong.statusCode, 502);
  t.match(wrong.json().error, { code: 'upstream_error', message: /refused the key in \$MODELD_TEST_WRONG_KEY with 401/ });
  t.notMatch(wrong.body, /wrong"|upstream-secret/, 'no key in the answer');

  const unset = await post('nokey/model');
  t.equal(unset.statusCode, 500);
  t.match(unset.json().error.message, /\$MODELD_TEST_UNSET_KEY, which is not set/);

  const nourl = await post('nourl/model');
  t.equal(nourl.statusCode, 422);
  t.match(nourl.json().error, { code: 'model_invalid', param: 'metadata.api.base_url' });

  const down = await post('down/model');
  t.equal(down.statusCode, 502);
  t.match(down.json().error, { code: 'upstream_unreachable', message: /api model 'down\/model' \(http:\/\/127\.0\.0\.1:9\/v1\) cannot be reached/ });

  const missing = await post('missing/model');
  t.equal(missing.statusCode, 400);
  t.match(missing.json().error, { code: 'upstream_rejected', message: /rejected the request with 404: .*nope/ });

  const long = await post('remote/model', { messages: [{ role: 'user', content: 'word '.repeat(600) }] });
  t.equal(long.statusCode, 400);
  t.match(long.json().error, { code: 'upstream_rejected', message: /context/ });

  const limited = await post('busy/model');
  t.equal(limited.statusCode, 503);
  t.equal(limited.headers['retry-after'], '7', "the upstream's retry-after is passed on");
  t.match(limited.json().error, { code: 'upstream_busy', message: /busy \(429\): Rate limit reached/ });
  const unavailable = await post('unavailable/model');
  t.equal(unavailable.statusCode, 503);
  t.match(unavailable.json().error, { code: 'upstream_busy', message: /busy \(503\): Overloaded/ });
  const broken = await post('broken/model');
  t.equal(broken.statusCode, 502);
  t.match(broken.json().error, { code: 'upstream_error', message: /failed with 500: Something broke/ });
  const silent = await post('silent/model');
  t.equal(silent.statusCode, 504);
  t.match(silent.json().error, { code: 'request_timeout', message: /did not answer within 1 s \(timeout_s\)/ });

  const streamed = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'missing/model', messages, stream: true } });
  t.equal(streamed.statusCode, 400, 'a stream the upstream refuses is an ordinary error, not a 200');
});

t.test('a client that goes away frees the upstream request too', async (t) => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: 'remote/model', messages, max_tokens: 400, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming,
    { signal: controller.signal },
  );
  let chunks = 0;
  // The SDK ends the iteration quietly on its own abort.
  for await (const _ of stream) if (++chunks === 3) controller.abort();
  t.equal(chunks, 3, 'aborted mid-stream');
  const running = async () =>
    (await upstreamApp.inject({ url: '/v1/models/chatml/model/state', headers: { authorization: 'Bearer upstream-secret' } })).json().queue?.running as number;
  const aborted = Date.now();
  while ((await running()) > 0 && Date.now() - aborted < 5000) await new Promise((r) => setTimeout(r, 20));
  const stoppedIn = Date.now() - aborted;
  t.equal(await running(), 0, 'the upstream stopped generating');
  const t0 = Date.now();
  // A quarter of the answer the aborted request asked for: a lower bound on what it would have taken.
  await upstream.chat.completions.create({ model: 'chatml/model', messages, max_tokens: 100, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  const quarter = Date.now() - t0;
  t.ok(stoppedIn < quarter / 2, `stopped ${stoppedIn} ms after the abort; a quarter of the answer takes ${quarter} ms`);
});

t.test('POST /v1/models creates an api model (no source_url), which then answers', async (t) => {
  const created = await app.inject({
    method: 'POST', url: '/v1/models',
    payload: { id: 'made', name: 'Made by POST', parameters: { max_tokens: 3, temperature: 0 }, metadata: { engine: 'api', api: { base_url: base, model: 'chatml/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' } } },
  });
  t.equal(created.statusCode, 201, created.body);
  t.match(created.json().data[0], { id: 'made/model', name: 'Made by POST', state: 'stopped', source_url: base });
  const r = await client.chat.completions.create({ model: 'made/model', messages, ...toTheEnd });
  t.equal(r.usage!.completion_tokens, 3);

  const bad = async (payload: Record<string, unknown>, param: string, code: string) => {
    const res = await app.inject({ method: 'POST', url: '/v1/models', payload });
    t.equal(res.statusCode, 400, res.body);
    t.match(res.json().error, { param, code });
  };
  const jan = await app.inject({ method: 'POST', url: '/v1/models', payload: { id: 'made-jan', source_url: base, parameters: { max_tokens: 2 }, metadata: { engine: 'api', api: { model: 'chatml/model', api_key_env: 'MODELD_TEST_UPSTREAM_KEY' } } } });
  t.equal(jan.statusCode, 201, `the server as source_url, as the model object may have it: ${jan.body}`);
  const byJan = await client.chat.completions.create({ model: 'made-jan/model', messages, ...toTheEnd });
  t.equal(byJan.usage!.completion_tokens, 2);
  await bad({ id: 'x', metadata: { engine: 'api', api: { base_url: 'ftp://x' } } }, 'metadata.api.base_url', 'invalid_value');
  await bad({ metadata: { engine: 'api', api: { base_url: base } } }, 'id', 'missing_required_parameter');
  await bad({ id: 'x', source_url: '/tmp/x.gguf', metadata: { engine: 'api', api: { base_url: base } } }, 'source_url', 'invalid_value');
  await bad({ id: 'x' }, 'source_url', 'missing_required_parameter');
});
