import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { closeThought, LLAMA_TEST_CONFIG, unloader, writeChatFixtures, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// Ollama's native API on real node-llama-cpp with generated models: the same answers as the
// OpenAI routes for the same conversation, in Ollama's shapes and NDJSON streams.
const dir = await tempDir();
await writeChatFixtures(dir);
await writeFixtureModel(dir, 'embedder', { parameters: { ctx_len: 128, embedding: true, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
const fresh = unloader(app);

const post = (path: string, payload: Record<string, unknown>) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
/** An NDJSON answer's lines, parsed. */
const lines = async (res: Response) => (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);

t.test('/api/chat answers as chat completions does, streamed by default as NDJSON, or whole with stream: false', async (t) => {
  const messages = [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }];
  await fresh('chatml');
  const whole = await (await post('/api/chat', { model: 'chatml', messages, stream: false, options: { temperature: 0, num_predict: 12 } })).json() as Record<string, any>;
  t.match(whole, { model: 'chatml/model', done: true, done_reason: 'length', message: { role: 'assistant' }, eval_count: 12 });
  t.match(whole.created_at, /^\d{4}-\d\d-\d\dT/);
  t.ok(whole.total_duration >= whole.eval_duration && whole.eval_duration > 0, 'durations in nanoseconds');
  await fresh('chatml');
  const chat = await openai.chat.completions.create({ model: 'chatml', messages: messages as OpenAI.ChatCompletionMessageParam[], temperature: 0, max_tokens: 12 });
  t.equal(whole.message.content, chat.choices[0]!.message.content, 'the same text');
  t.equal(whole.prompt_eval_count, chat.usage!.prompt_tokens, 'the same prompt');

  await fresh('chatml');
  const res = await post('/api/chat', { model: 'chatml', messages, options: { temperature: 0, num_predict: 12 } });
  t.match(res.headers.get('content-type'), /^application\/x-ndjson/);
  const stream = await lines(res);
  t.ok(stream.length > 2);
  t.same(stream.slice(0, -1).map((l) => l.done), stream.slice(0, -1).map(() => false));
  t.equal(stream.slice(0, -1).map((l) => l.message.content).join(''), whole.message.content, 'the lines make the text');
  t.match(stream.at(-1), { done: true, done_reason: 'length', eval_count: 12, message: { content: '' } });
});

t.test('/api/chat tools: calls come with arguments objects; tool messages answer them in order', async (t) => {
  // An enum ends the argument: under a forced `<tool_call>` a free string would fill with it.
  const tools = [{ type: 'function', function: { name: 'get_time', description: 'The time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] } }, required: ['zone'] } } }];
  const body = {
    model: 'qwen', stream: false, tools, options: { seed: 1, num_predict: 2 },
    messages: [
      { role: 'user', content: 'time?' },
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_time', arguments: { zone: 'UTC' } } }, { function: { name: 'get_time', arguments: { zone: 'CET' } } }] },
      { role: 'tool', content: '12:00' },
      { role: 'tool', content: '13:00', tool_name: 'get_time' },
    ],
  };
  const r = await (await post('/api/chat', body)).json() as Record<string, any>;
  t.equal(r.done, true);
  const chat = await openai.chat.completions.create({
    model: 'qwen', seed: 1, max_tokens: 2, tools: tools as OpenAI.ChatCompletionTool[],
    messages: [
      { role: 'user', content: 'time?' },
      { role: 'assistant', content: '', tool_calls: [
        { id: 'a', type: 'function', function: { name: 'get_time', arguments: '{"zone":"UTC"}' } },
        { id: 'b', type: 'function', function: { name: 'get_time', arguments: '{"zone":"CET"}' } },
      ] },
      { role: 'tool', tool_call_id: 'a', content: '12:00' },
      { role: 'tool', tool_call_id: 'b', content: '13:00' },
    ],
  });
  t.equal(r.prompt_eval_count, chat.usage!.prompt_tokens, 'the same prompt as the chat messages with ids');

  // A random model calls no tool unless made to: `<tool_call>` is forced, and the lazy grammar writes a call.
  const toolCallToken = (await (await post('/tokenize', { model: 'qwen', content: '<tool_call>' })).json() as { tokens: number[] }).tokens[0]!;
  await fresh('qwen');
  const called = await (await post('/api/chat', {
    // logit_bias is llama.cpp's, not Ollama's: options take every sampling field chat takes.
    model: 'qwen', stream: false, tools, messages: [{ role: 'user', content: 'time?' }], options: { seed: 1, num_predict: 200, logit_bias: { [toolCallToken]: 100 } },
  })).json() as Record<string, any>;
  t.ok(Array.isArray(called.message.tool_calls), 'the call comes back');
  t.equal(called.message.tool_calls[0].function.name, 'get_time');
  t.match(called.message.tool_calls[0].function.arguments, { zone: /^(UTC|CET)$/ }, 'arguments as an object, as Ollama sends them');
  t.equal(called.done_reason, 'stop');
});

t.test('/api/generate: the prompt through the template, raw, or an empty prompt that loads and unloads', async (t) => {
  await app.inject({ method: 'POST', url: '/v1/models/chatml/model/stop' });
  const load = await (await post('/api/generate', { model: 'chatml' })).json() as Record<string, any>;
  t.match(load, { done: true, done_reason: 'load', response: '' });
  t.equal((await app.inject({ method: 'GET', url: '/v1/models/chatml/model/state' })).json().state, 'running');
  const ps = await (await fetch(`${url}/api/ps`)).json() as { models: Array<{ name: string; expires_at: string }> };
  const listed = ps.models.find((m) => m.name === 'chatml/model');
  t.ok(listed, '/api/ps lists it');
  t.ok(new Date(listed!.expires_at).getFullYear() > 2200, `kept loaded (keep_alive -1): Ollama's far date (${listed!.expires_at})`);
  const before = Date.now();
  await post('/api/generate', { model: 'chatml', keep_alive: '5m' });
  const timed = (await (await fetch(`${url}/api/ps`)).json() as typeof ps).models.find((m) => m.name === 'chatml/model')!;
  const left = new Date(timed.expires_at).getTime() - before;
  t.ok(left > 290_000 && left <= 300_000 + (Date.now() - before), `keep_alive 5m: unloads 5 minutes after the request (${left} ms)`);
  const unload = await (await post('/api/generate', { model: 'chatml', keep_alive: 0 })).json() as Record<string, any>;
  t.match(unload, { done: true, done_reason: 'unload' });
  t.equal((await app.inject({ method: 'GET', url: '/v1/models/chatml/model/state' })).json().state, 'stopped');

  const templated = await (await post('/api/generate', { model: 'chatml', prompt: 'hello', system: 'Be brief.', stream: false, options: { temperature: 0, num_predict: 5 } })).json() as Record<string, any>;
  const chat = await openai.chat.completions.create({ model: 'chatml', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }], max_tokens: 1 });
  t.equal(templated.prompt_eval_count, chat.usage!.prompt_tokens, 'system and prompt through the chat template');
  await fresh('chatml');
  const raw = await lines(await post('/api/generate', { model: 'chatml', prompt: 'hello', raw: true, options: { temperature: 0, num_predict: 5 } }));
  await fresh('chatml');
  const completion = await openai.completions.create({ model: 'chatml', prompt: 'hello', temperature: 0, max_tokens: 5 });
  t.equal(raw.map((l) => l.response).join(''), completion.choices[0]!.text, 'raw: the prompt as it is, streamed');
  t.match(raw.at(-1), { done: true, prompt_eval_count: completion.usage!.prompt_tokens });

  const thought = await (await post('/api/generate', { model: 'thinker', prompt: 'hello', stream: false, options: { seed: 2, num_predict: 20, logit_bias: closeThought() } })).json() as Record<string, any>;
  t.ok(thought.thinking.length > 0, 'a thought comes as thinking, apart from the response');
  t.ok(thought.response.length > 0, 'the response follows the closed thought');
});

t.test('/api/embed, /api/embeddings, /api/tags, /api/version, /api/show (names with :latest)', async (t) => {
  const e = await (await post('/api/embed', { model: 'embedder', input: ['a', 'b c'] })).json() as Record<string, any>;
  const ref = await openai.embeddings.create({ model: 'embedder', input: ['a', 'b c'], encoding_format: 'float' });
  t.same(e.embeddings, ref.data.map((d) => d.embedding), 'the vectors /v1/embeddings gives');
  t.equal(e.prompt_eval_count, ref.usage.prompt_tokens);
  const legacy = await (await post('/api/embeddings', { model: 'embedder', prompt: 'b c' })).json() as Record<string, any>;
  t.same(legacy, { embedding: ref.data[1]!.embedding }, 'the legacy /api/embeddings: one prompt, one vector');
  t.same(await (await post('/api/embeddings', { model: 'embedder', prompt: '' })).json(), { embedding: [] }, 'an empty prompt, as Ollama answers it');
  const tags = await (await fetch(`${url}/api/tags`)).json() as { models: Array<Record<string, any>> };
  t.same(tags.models.map((m) => m.name).sort(), ['chatml/model', 'embedder/model', 'qwen/model', 'thinker/model']);
  t.match(tags.models[0], { details: { format: 'gguf', family: 'llama' }, digest: /^[0-9a-f]{64}$/ });
  t.equal(new Set(tags.models.map((m) => m.digest)).size, tags.models.length, 'each model its own digest (ollama list\'s ID)');
  t.ok(tags.models.every((m) => m.size > 0 && /^\d{4}-/.test(m.modified_at)));
  t.match(await (await fetch(`${url}/api/version`)).json(), { version: /^\d+\.\d+\.\d+/ });
  const show = await (await post('/api/show', { model: 'chatml' })).json() as Record<string, any>;
  t.match(show, { details: { format: 'gguf', family: 'llama' }, capabilities: ['completion', 'tools'], model_info: { 'general.architecture': 'llama', 'llama.context_length': 1024 } });
  t.match(show.parameters, /^num_ctx 1024\nctx_len 1024\nn_parallel 1$/);
  t.same((await (await post('/api/show', { model: 'embedder' })).json() as Record<string, any>).capabilities, ['embedding']);
  // Ollama's clients add `:latest` to an untagged name.
  t.same((await (await post('/api/show', { model: 'chatml/model:latest' })).json() as Record<string, any>).details, show.details, 'name:latest is the name');
  const unknown = await post('/api/show', { model: 'chatml/other:latest' });
  t.equal(unknown.status, 404);
  t.match(((await unknown.json()) as { error: Record<string, unknown> }).error, { code: 'model_not_found', message: /'chatml\/other:latest'/ });
});

t.test('400s name the field', async (t) => {
  const bad = async (path: string, payload: Record<string, unknown>, param: string) => {
    const res = await post(path, { model: 'chatml', stream: false, ...payload });
    t.equal(res.status, 400, param);
    t.match(((await res.json()) as { error: Record<string, unknown> }).error, { param });
  };
  await bad('/api/chat', { messages: [{ role: 'user', content: 'x', images: ['abc'] }] }, 'messages[0].images');
  await bad('/api/chat', { messages: [{ role: 'tool', content: 'x' }] }, 'messages[0]');
  await bad('/api/chat', { messages: [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: {} } }] }, { role: 'user', content: 'x' }] }, 'messages[0].tool_calls[0]');
  await bad('/api/chat', { messages: [{ role: 'user', content: 'x' }], options: { temperature: -1 } }, 'options.temperature');
  await bad('/api/generate', { prompt: 'x', options: { num_predict: 0 } }, 'options.num_predict');
  await bad('/api/generate', { prompt: 'x', suffix: 'y' }, 'suffix');
  await bad('/api/generate', { prompt: 'x', format: { type: 'nope' } }, 'format');
});
