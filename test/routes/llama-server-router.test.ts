import t from 'tap';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';

// llama-server's router mode over modeld's table, on real node-llama-cpp: the list's `status`,
// /models/load and /models/unload, /props per model, and the /models/sse event stream.
const dir = await modelsFolder(t);
const chatFile = await writeFixtureModel(dir, 'chat', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 512 }, parameters: { ctx_len: 384, n_parallel: 2, temperature: 0.5, top_k: 7 } });
await writeFixtureModel(dir, 'plain', { parameters: { ctx_len: 256, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const get = (url: string) => app.inject({ method: 'GET', url });
const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, payload });
const statusOf = async (url: string, id: string) => (await get(url)).json().data.find((m: { id: string }) => m.id === id).status;

t.test('load and unload by name; the list shows each model\'s status', async (t) => {
  t.same(await statusOf('/v1/models', 'chat/model'), { value: 'unloaded' });
  t.same(await statusOf('/models', 'chat/model'), { value: 'unloaded' }, 'llama-server\'s list path');
  const load = await post('/models/load', { model: 'chat' });
  t.equal(load.statusCode, 200, load.body);
  t.same(load.json(), { success: true });
  t.same(await statusOf('/models', 'chat/model'), { value: 'loaded' });
  t.same((await get('/v1/models/chat/model')).json().status, { value: 'loaded' }, 'one model too');
  t.same((await post('/models/load', { model: 'chat' })).json(), { success: true }, 'loading a loaded model is no error');

  const unload = await post('/models/unload', { model: 'chat' });
  t.same(unload.json(), { success: true });
  t.same(await statusOf('/models', 'chat/model'), { value: 'unloaded' });
  const again = await post('/models/unload', { model: 'chat' });
  t.equal(again.statusCode, 409);
  t.match(again.json().error, { code: 'model_not_running', param: 'model' });
  const missing = await post('/models/load', { model: 'nope' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { param: 'model' });
  t.match((await post('/models/load', {})).json().error, { code: 'missing_required_parameter', param: 'model' });
});

t.test('/props: the router without a model, the model\'s properties with one', async (t) => {
  const router = (await get('/props')).json();
  t.match(router, { role: 'router', default_generation_settings: { n_ctx: 0 }, models_autoload: true });
  t.match(router.build_info, /^modeld /);

  const off = await get('/props?model=chat&autoload=false');
  t.equal(off.statusCode, 409, 'autoload=false does not load it');
  t.match(off.json().error, { code: 'model_not_running' });

  const res = await get('/props?model=chat');
  t.equal(res.statusCode, 200, res.body);
  const props = res.json();
  t.match(props, {
    default_generation_settings: { n_ctx: 384, params: { temperature: 0.5, top_k: 7, n_predict: -1 } },
    total_slots: 2, model_alias: 'chat/model', model_path: chatFile,
    chat_template: CHATML_TEMPLATE, bos_token: '<s>', eos_token: '</s>', endpoint_slots: true,
  });
  t.equal(props.role, undefined);
  t.equal((await get('/props?model=plain&autoload=true')).json().chat_template, '', 'a GGUF without a template');
  t.equal((await get('/props?model=chat&autoload=maybe')).statusCode, 400);
  await post('/models/unload', { model: 'plain' });
});

t.test('/models/sse streams each model\'s state changes as llama-server\'s events', async (t) => {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const res = await fetch(`${address}/models/sse`, { signal: abort.signal });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/event-stream/);
  const reader = res.body!.getReader();
  const events: Array<{ model: string; event: string; data?: { status?: string } }> = [];
  let buffer = '';
  const until = async (done: () => boolean) => {
    while (!done()) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += new TextDecoder().decode(value);
      const records = buffer.split('\n\n');
      buffer = records.pop()!;
      for (const r of records) if (r.startsWith('data: ')) events.push(JSON.parse(r.slice(6)));
    }
  };
  const statuses = () => events.filter((e) => e.model === 'plain/model' && e.event === 'model_status').map((e) => e.data!.status);
  await fetch(`${address}/models/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"plain"}' });
  await until(() => statuses().includes('loaded'));
  t.same(statuses(), ['loading', 'loaded']);
  await fetch(`${address}/models/unload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"plain"}' });
  await until(() => statuses().at(-1) === 'unloaded');
  t.same(statuses().slice(2).filter((s) => s !== 'unloaded'), [], 'stopping and stopped both read unloaded');
});

t.test('/v1/health answers as /health', async (t) => {
  t.same((await get('/v1/health')).json(), { status: 'ok' });
});

t.test('llama-server\'s paths without /v1: /chat/completions and /responses as OpenAI\'s, /completions as its native one', async (t) => {
  const chat = await post('/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ignore_eos: true });
  t.equal(chat.statusCode, 200, chat.body);
  t.match(chat.json(), { object: 'chat.completion', choices: [{ message: { role: 'assistant' } }], usage: { completion_tokens: 2 } });
  const responses = await post('/responses', { model: 'chat', input: 'hi', max_output_tokens: 16 });
  t.equal(responses.statusCode, 200, responses.body);
  t.match(responses.json(), { object: 'response' });
  const native = await post('/completions', { model: 'chat', prompt: 'hi', n_predict: 2, ignore_eos: true });
  t.equal(native.statusCode, 200, native.body);
  t.match(native.json(), { content: String, stop: true, tokens_predicted: 2 });
  const doc = (await get('/openapi.json')).json();
  t.notOk(doc.paths['/chat/completions'], 'aliases stay out of the document');
  await post('/models/unload', { model: 'chat' });
});

t.test('without on-demand loading (MODELD_JIT=false), /props loads only when asked to, as llama-server --no-models-autoload', async (t) => {
  const { app: strict } = await buildTestApp(t, { modelsDir: dir, config: { ...LLAMA_TEST_CONFIG, jit: false } });
  t.equal((await strict.inject({ method: 'GET', url: '/props' })).json().models_autoload, false);
  const res = await strict.inject({ method: 'GET', url: '/props?model=plain' });
  t.equal(res.statusCode, 409);
  t.match(res.json().error, { code: 'model_not_running' });
  const asked = await strict.inject({ method: 'GET', url: '/props?model=plain&autoload=1' });
  t.equal(asked.statusCode, 200, asked.body);
  t.equal(asked.json().default_generation_settings.n_ctx, 256);
});

t.test('/slots lists a running model\'s sequences as llama-server\'s slots, with what each keeps cached', async (t) => {
  await post('/models/unload', { model: 'plain' }).catch(() => undefined);
  const idle = await get('/slots?model=chat');
  t.equal(idle.statusCode, 409, 'a model that does not run has no slots');
  t.match(idle.json().error, { code: 'model_not_running' });
  await post('/models/load', { model: 'chat' });
  t.same((await get('/slots?model=chat')).json(), [
    { id: 0, n_ctx: 384, speculative: false, is_processing: false, n_ctx_used: 0 },
    { id: 1, n_ctx: 384, speculative: false, is_processing: false, n_ctx_used: 0 },
  ]);
  const answer = await post('/completion', { model: 'chat', prompt: 'hello there', n_predict: 3, ignore_eos: true });
  const used = answer.json().tokens_cached as number;
  t.ok(used > 3);
  const slots = (await get('/slots')).json() as Array<{ n_ctx_used: number; is_processing: boolean }>;
  // The last answer token was sampled, never fed back, so its KV state is not there.
  t.same(slots.map((s) => s.n_ctx_used).sort((a, b) => b - a), [used - 1, 0], 'the answered sequence keeps prompt and answer; `model` left out while one model runs');
  t.ok(slots.every((s) => !s.is_processing));
  await post('/models/unload', { model: 'chat' });
});
