import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { closeThought, LLAMA_TEST_CONFIG, unloader, writeChatFixtures } from '../../helpers/llama-fixtures.ts';

// POST /v1/messages on real node-llama-cpp with generated models, read by Anthropic's own SDK
// (its stream accumulator included): the same answers as chat for the same conversation.
const dir = await tempDir();
await writeChatFixtures(dir);
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const anthropic = new Anthropic({ baseURL: url, apiKey: 'none', maxRetries: 0 });
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

const fresh = unloader(app);

// llama.cpp's fields (seed, logit_bias) are not in Anthropic's request types.
const create = (body: object) => anthropic.messages.create(body as Anthropic.MessageCreateParamsNonStreaming);
const streamOf = (body: object) => anthropic.messages.stream(body as unknown as Anthropic.MessageCreateParamsStreaming);
const textOf = (m: Anthropic.Message) => m.content.map((b) => (b.type === 'text' ? b.text : '')).join('');

t.test('system and messages answer as chat does; the stream, read by the SDK, gives the same message', async (t) => {
  const body = { model: 'chatml', system: 'You are a test.', messages: [{ role: 'user' as const, content: 'hello world' }], max_tokens: 12, temperature: 0 };
  await fresh('chatml');
  const m = await anthropic.messages.create(body);
  t.match(m.id, /^msg_/);
  t.match(m, { type: 'message', role: 'assistant', model: 'chatml/model', stop_reason: 'max_tokens', stop_sequence: null });
  t.equal(m.usage.output_tokens, 12);
  await fresh('chatml');
  const chat = await openai.chat.completions.create({ model: 'chatml', messages: [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }], temperature: 0, max_tokens: 12 });
  t.equal(textOf(m), chat.choices[0]!.message.content, 'the same text');
  t.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens!, chat.usage!.prompt_tokens, 'the same prompt (input and cache-read tokens together)');

  await fresh('chatml');
  const stream = anthropic.messages.stream(body);
  const types: string[] = [];
  let deltas = '';
  let start: Anthropic.Usage | undefined;
  stream.on('streamEvent', (e) => {
    types.push(e.type);
    if (e.type === 'message_start') start = { ...e.message.usage };
  });
  stream.on('text', (text) => (deltas += text));
  const final = await stream.finalMessage();
  t.match(start, { input_tokens: chat.usage!.prompt_tokens, cache_read_input_tokens: 0, output_tokens: 0 }, 'message_start counts the prompt before the answer');
  t.equal(deltas, textOf(m), 'text deltas make the text');
  t.same(final.content, m.content);
  t.match(final, { stop_reason: 'max_tokens', usage: { output_tokens: 12, input_tokens: m.usage.input_tokens } });
  t.same([types[0], types[1], types.at(-3), types.at(-2), types.at(-1)], ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);

  // The same request again: its prompt is read from the sequence's cache, as message_start says up front.
  const again = anthropic.messages.stream(body);
  again.on('streamEvent', (e) => {
    if (e.type === 'message_start') start = { ...e.message.usage };
  });
  const cachedFinal = await again.finalMessage();
  t.ok(cachedFinal.usage.cache_read_input_tokens! > 0, 'a cache hit');
  t.match(start, { input_tokens: cachedFinal.usage.input_tokens, cache_read_input_tokens: cachedFinal.usage.cache_read_input_tokens }, 'message_start foretold it');

  const counted = await anthropic.messages.countTokens({ model: 'chatml', system: 'You are a test.', messages: body.messages });
  t.equal(counted.input_tokens, chat.usage!.prompt_tokens, 'count_tokens counts the prompt chat reads');
});

t.test('stop_sequences: stop_reason stop_sequence names the one that matched', async (t) => {
  await fresh('chatml');
  const long = await create({ model: 'chatml', messages: [{ role: 'user', content: 'go' }], max_tokens: 30, seed: 4, temperature: 1 });
  const text = textOf(long);
  // Three letters from the middle of the answer (a random model's text has broken characters too).
  const stop = /[a-z]{3}/.exec(text.slice(8))![0];
  t.ok(stop.trim().length > 0, `a stop taken from the answer: ${JSON.stringify(stop)}`);
  await fresh('chatml');
  const m = await create({ model: 'chatml', messages: [{ role: 'user', content: 'go' }], max_tokens: 30, seed: 4, temperature: 1, stop_sequences: ['zzzz', stop] });
  t.equal(m.stop_reason, 'stop_sequence');
  t.equal(m.stop_sequence, stop);
  t.equal(textOf(m), text.slice(0, text.indexOf(stop)));
});

t.test('tools: a forced call is a tool_use block whose input follows the schema, streamed as input_json_delta', async (t) => {
  const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, days: { enum: [1, 3, 7] } }, required: ['city', 'days'], additionalProperties: false };
  const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'The weather of a city', input_schema: schema as Anthropic.Tool.InputSchema }];
  const body = { model: 'qwen', messages: [{ role: 'user' as const, content: 'Weather in Paris?' }], tools, tool_choice: { type: 'any' as const, disable_parallel_tool_use: true }, max_tokens: 200, seed: 1 };
  await fresh('qwen');
  const m = await create(body);
  t.equal(m.stop_reason, 'tool_use');
  const uses = m.content.filter((b) => b.type === 'tool_use');
  t.equal(uses.length, 1);
  const use = uses[0]!;
  t.match(use.id, /^toolu_/);
  t.equal(use.name, 'get_weather');
  t.ok(new Ajv().compile({ ...schema, properties: { ...schema.properties, city: { type: 'string' } } })(use.input), JSON.stringify(use.input));

  await fresh('qwen');
  const stream = streamOf(body);
  let pieces = 0;
  stream.on('inputJson', () => pieces++);
  const final = await stream.finalMessage();
  t.same(final.content.filter((b) => b.type === 'tool_use').map((b) => b.input), [use.input], 'the streamed input parses to the same object');
  t.ok(pieces > 3, `piece by piece (${pieces})`);

  // The call and its result go back; the template renders them as chat's assistant call and tool message.
  const turn = await create({
    model: 'qwen', tools, max_tokens: 2, seed: 1,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'text', text: 'Let me look.' }, { type: 'tool_use', id: use.id, name: use.name, input: use.input }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp": 21}' }, { type: 'text', text: 'Thanks' }] },
    ],
  });
  const chat = await openai.chat.completions.create({
    model: 'qwen', max_tokens: 2, seed: 1,
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'The weather of a city', parameters: schema } }],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'x', type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } }] },
      { role: 'tool', tool_call_id: 'x', content: '{"temp": 21}' },
      { role: 'user', content: 'Thanks' },
    ],
  });
  t.equal(turn.usage.input_tokens + turn.usage.cache_read_input_tokens!, chat.usage!.prompt_tokens, 'the same prompt as the chat messages');

  // A failed tool's result (is_error) reaches the model as its text after 'Error: ' (Claude Code marks failures so).
  const count = async (result: Record<string, unknown>) => (await anthropic.messages.countTokens({
    model: 'qwen', tools: tools as Anthropic.Tool[],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: use.id, name: use.name, input: use.input }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, ...result } as Anthropic.ToolResultBlockParam] },
    ],
  })).input_tokens;
  t.equal(await count({ content: 'no such city', is_error: true }), await count({ content: 'Error: no such city' }), 'is_error shows in the text');
  t.ok(await count({ content: 'no such city', is_error: true }) > await count({ content: 'no such city', is_error: false }));
});

t.test('a thought comes as a thinking block, streamed as thinking_delta', async (t) => {
  const body = { model: 'thinker', messages: [{ role: 'user', content: 'hello' }], max_tokens: 20, seed: 2, logit_bias: closeThought() };
  await fresh('thinker');
  const m = await create(body);
  t.same(m.content.map((b) => b.type), ['thinking', 'text']);
  const thinking = m.content[0] as Anthropic.ThinkingBlock;
  t.ok(thinking.thinking.length > 0);
  await fresh('thinker');
  const stream = streamOf(body);
  let streamed = '';
  stream.on('thinking', (delta) => (streamed += delta));
  const final = await stream.finalMessage();
  t.equal(streamed, thinking.thinking);
  t.same(final.content, m.content);
});

t.test('400s name the field; errors reach the SDK as its APIError', async (t) => {
  const bad = async (payload: Record<string, unknown>, param: string, code: string) => {
    const res = await app.inject({ method: 'POST', url: '/v1/messages', payload: { model: 'chatml', max_tokens: 4, messages: [{ role: 'user', content: 'x' }], ...payload } });
    t.equal(res.statusCode, 400, `${param}: ${res.body}`);
    t.match(res.json().error, { param, code });
  };
  await bad({ messages: [{ role: 'system', content: 'x' }] }, 'messages[0].role', 'invalid_value');
  await bad({ messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }, 'messages[0].content[0].type', 'unsupported_feature');
  await bad({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: 'x' }] }] }, 'messages[0].content[0].tool_use_id', 'invalid_value');
  await bad({ messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f', input: {} }] }, { role: 'user', content: 'x' }] }, 'messages[0].content[0].id', 'invalid_value');
  await bad({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'tools[0].type', 'unsupported_feature');
  await bad({ tools: [{ name: 'f' }], tool_choice: { type: 'tool' } }, 'tool_choice.name', 'missing_required_parameter');
  await bad({ tools: [{ name: 'f' }], tool_choice: { type: 'tool', name: 'g' } }, 'tool_choice.name', 'invalid_value');
  await bad({ temperature: -1 }, 'temperature', 'parameter_out_of_range');
  const err = await anthropic.messages.create({ model: 'nope', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
  t.ok(err instanceof Anthropic.NotFoundError, 'a 404 is the SDK\'s NotFoundError');
  t.match((err as Error).message, /nope/);
});

t.test('a failure mid-stream is an error event, raised by both SDKs', async (t) => {
  const stopSoon = async () => {
    await new Promise((r) => setTimeout(r, 300));
    await app.inject({ method: 'POST', url: '/v1/models/chatml/model/stop' });
  };
  // The stop's grace period (2 s) ends the running answer with model_stopped.
  const body = { model: 'chatml', messages: [{ role: 'user', content: 'go' }], max_tokens: 4000, ignore_eos: true };
  const stopping = stopSoon();
  const err = await streamOf(body).finalMessage().catch((e: unknown) => e);
  await stopping;
  t.ok(err instanceof Anthropic.APIError, `Anthropic's SDK raises it: ${String(err)}`);
  t.match(String(err), /stopped/);

  const again = stopSoon();
  const raw = await fetch(`${url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chatml', input: 'go', max_output_tokens: 4000, ignore_eos: true, stream: true }) });
  const frames = (await raw.text()).split('\n\n').filter(Boolean);
  await again;
  const last = frames.at(-1)!;
  t.match(last, /^event: error\ndata: /, 'the Responses stream ends with an error event');
  t.match(JSON.parse(last.split('\n')[1]!.slice(6)), { type: 'error', error: { code: 'model_stopped' } });
  const third = stopSoon();
  const responsesErr = await openai.responses.stream({ model: 'chatml', input: 'go', max_output_tokens: 4000, ignore_eos: true } as unknown as OpenAI.Responses.ResponseCreateParamsStreaming)
    .finalResponse().catch((e: unknown) => e);
  await third;
  t.ok(responsesErr instanceof OpenAI.APIError, `and the OpenAI SDK raises it: ${String(responsesErr)}`);
});
