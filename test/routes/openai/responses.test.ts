import { Ajv } from 'ajv';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { closeThought, LLAMA_TEST_CONFIG, unloader, writeChatFixtures } from '../../helpers/llama-fixtures.ts';

// POST /v1/responses on real node-llama-cpp with generated models: the same answers as chat
// for the same conversation, in the Responses API's items and events, which the OpenAI SDK
// (its stream helper included) reads.
const dir = await tempDir();
await writeChatFixtures(dir);
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

const fresh = unloader(app);

// llama.cpp's fields (seed, logit_bias) and loose input items are not in the SDK's request types.
const create = (body: object) => client.responses.create(body as OpenAI.Responses.ResponseCreateParamsNonStreaming);
const streamOf = (body: object) => client.responses.stream(body as OpenAI.Responses.ResponseCreateParamsStreaming);

const messageText = (r: OpenAI.Responses.Response) =>
  r.output.flatMap((item) => (item.type === 'message' ? item.content.map((c) => (c.type === 'output_text' ? c.text : '')) : [])).join('');

t.test('a string input with instructions answers as chat does for the same system and user messages', async (t) => {
  const r = await client.responses.create({ model: 'chatml', instructions: 'You are a test.', input: 'hello world', temperature: 0, max_output_tokens: 12 });
  t.match(r.id, /^resp_/);
  t.equal(r.object, 'response');
  t.equal(r.model, 'chatml/model');
  t.equal(r.status, 'incomplete', 'a random model runs to max_output_tokens');
  t.same(r.incomplete_details, { reason: 'max_output_tokens' });
  t.equal(r.output.length, 1);
  t.match(r.output[0], { type: 'message', role: 'assistant', status: 'incomplete', content: [{ type: 'output_text', annotations: [] }] });
  t.match(r.output[0]!.id, /^msg_/);
  t.equal(r.output_text, messageText(r), 'the SDK reads output_text from the items');
  t.equal(r.instructions, 'You are a test.');
  t.equal(r.max_output_tokens, 12);
  t.equal((r as unknown as { store: boolean }).store, true, 'kept, by default');
  t.equal(r.usage!.output_tokens, 12);
  t.equal(r.usage!.total_tokens, r.usage!.input_tokens + 12);
  t.same(r.usage!.output_tokens_details, { reasoning_tokens: 0 });

  await fresh('chatml');
  const chat = await client.chat.completions.create({
    model: 'chatml', messages: [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world' }], temperature: 0, max_tokens: 12,
  });
  t.equal(messageText(r), chat.choices[0]!.message.content, 'the same text');
  t.equal(r.usage!.input_tokens, chat.usage!.prompt_tokens, 'the same prompt');
});

t.test('stream: named events from response.created to response.incomplete, read by the SDK stream helper', async (t) => {
  await fresh('chatml');
  const plain = await client.responses.create({ model: 'chatml', input: 'tell me', temperature: 0, max_output_tokens: 10 });
  await fresh('chatml');
  const stream = client.responses.stream({ model: 'chatml', input: 'tell me', temperature: 0, max_output_tokens: 10 });
  const types: string[] = [];
  const numbers: number[] = [];
  let deltas = '';
  let doneItem: OpenAI.Responses.ResponseOutputItem | undefined;
  for await (const event of stream) {
    types.push(event.type);
    numbers.push(event.sequence_number);
    if (event.type === 'response.output_text.delta') deltas += event.delta;
    if (event.type === 'response.output_item.done') doneItem = event.item;
  }
  const final = await stream.finalResponse();
  t.equal(deltas, messageText(plain), 'the deltas make the non-streamed text');
  t.equal(final.output_text, messageText(plain));
  t.equal(final.status, 'incomplete');
  t.equal((doneItem as { status?: string } | undefined)?.status, 'incomplete', 'the cut item closes as incomplete');
  t.match(final.output, plain.output.map((item) => ({ ...item, id: final.output[0]!.id })), 'the same items as the plain answer (the SDK adds parsed: null)');
  t.same(final.usage, plain.usage);
  t.same(numbers, numbers.map((_, i) => i), 'numbered from 0 without gaps');
  t.same(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
  t.same(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete']);

  const res = await fetch(`${url}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chatml', input: 'tell me', temperature: 0, max_output_tokens: 3, stream: true }),
  });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/event-stream/);
  const frames = (await res.text()).split('\n\n').filter(Boolean);
  for (const f of frames) {
    const [event, data] = f.split('\n');
    t.equal(event!.slice('event: '.length), JSON.parse(data!.slice('data: '.length)).type, 'each frame names its event');
  }
  t.notOk(frames.includes('data: [DONE]'), 'no [DONE]: the Responses stream ends with its last event');
});

t.test('a request refused by the engine before it starts keeps its status, streamed or not', async (t) => {
  for (const stream of [false, true]) {
    const res = await app.inject({ method: 'POST', url: '/v1/responses', payload: { model: 'chatml', input: 'x'.repeat(6000), stream } });
    t.equal(res.statusCode, 400, `stream ${stream}: ${res.body.slice(0, 200)}`);
  }
});

t.test('tools: forced calls come as function_call items whose arguments follow the schema, streamed piece by piece', async (t) => {
  const weather = {
    type: 'object',
    properties: { city: { type: 'string', maxLength: 16 }, days: { enum: [1, 3, 7] } },
    required: ['city', 'days'],
    additionalProperties: false,
  };
  const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', description: 'The weather of a city', parameters: weather, strict: true }];
  const follows = new Ajv().compile({ ...weather, properties: { ...weather.properties, city: { type: 'string' } } });
  const body = { model: 'qwen', input: 'Weather in Paris?', tools, tool_choice: 'required', parallel_tool_calls: false, seed: 1, max_output_tokens: 200 };
  await fresh('qwen');
  const r = await create(body);
  t.equal(r.status, 'completed');
  const calls = r.output.filter((item) => item.type === 'function_call');
  t.equal(calls.length, 1, 'one call, no parallel calls');
  const call = calls[0]!;
  t.equal(call.name, 'get_weather');
  t.match(call.call_id, /^call_/);
  t.match(call.id, /^fc_/);
  t.ok(follows(JSON.parse(call.arguments)), `arguments follow the schema: ${call.arguments}`);
  t.same(r.tools.map((tool) => (tool as OpenAI.Responses.FunctionTool).name), ['get_weather'], 'tools echoed');

  await fresh('qwen');
  const stream = streamOf(body);
  let pieces = 0;
  let args = '';
  for await (const event of stream) {
    if (event.type === 'response.function_call_arguments.delta') {
      pieces++;
      args += event.delta;
    }
  }
  const final = await stream.finalResponse();
  const streamed = final.output.find((item) => item.type === 'function_call')!;
  t.equal(args, call.arguments, 'the argument deltas make the arguments');
  t.equal(streamed.arguments, call.arguments);
  t.ok(pieces > 3, `piece by piece (${pieces})`);

  // The call and its answer go back as items; the next answer reads them through the template.
  const turn = await create({
    model: 'qwen', tools, seed: 1, max_output_tokens: 4,
    input: [
      { role: 'user', content: 'Weather in Paris?' },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: '{"temp": 21}' },
    ],
  });
  const chat = await client.chat.completions.create({
    model: 'qwen', seed: 1, max_tokens: 4,
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'The weather of a city', parameters: weather, strict: true } }],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: call.name, arguments: call.arguments } }] },
      { role: 'tool', tool_call_id: 'x', content: '{"temp": 21}' },
    ],
  });
  t.equal(turn.usage!.input_tokens, chat.usage!.prompt_tokens, 'the same prompt as the chat messages with the call and its tool answer');
});

t.test('text.format json_schema: the text parses and follows the schema', async (t) => {
  const schema = { type: 'object', properties: { ok: { type: 'boolean' }, pick: { enum: ['a', 'b'] } }, required: ['ok', 'pick'], additionalProperties: false };
  const r = await create({ model: 'chatml', input: 'a number', seed: 3, max_output_tokens: 60, text: { format: { type: 'json_schema', name: 'n', schema, strict: true } } });
  t.equal(r.status, 'completed');
  t.ok(new Ajv().compile(schema)(JSON.parse(r.output_text)), r.output_text);
  t.match(r.text!.format, { type: 'json_schema', name: 'n' });
});

t.test('a thought comes as a reasoning item; usage counts its tokens; logprobs cover the text only', async (t) => {
  const bias = closeThought();
  const ask = { model: 'thinker', input: 'hello', seed: 2, logit_bias: bias, max_output_tokens: 20 };
  const r = await create({ ...ask, include: ['message.output_text.logprobs'], top_logprobs: 2 });
  const reasoning = r.output.find((item) => item.type === 'reasoning');
  t.ok(reasoning, 'a reasoning item');
  const thought = reasoning!.content![0]!.text;
  t.ok(thought.length > 0);
  t.equal(r.output[0]!.type, 'reasoning', 'the thought comes first');
  const reasoningTokens = r.usage!.output_tokens_details.reasoning_tokens;
  t.ok(reasoningTokens > 1 && reasoningTokens < r.usage!.output_tokens, `${reasoningTokens} of ${r.usage!.output_tokens} tokens are the thought, which closed`);
  const message = r.output.find((item) => item.type === 'message')!;
  const logprobs = (message.content[0] as OpenAI.Responses.ResponseOutputText).logprobs!;
  t.equal(logprobs.length, r.usage!.output_tokens - reasoningTokens, 'a logprob per token of the text');
  t.equal(logprobs[0]?.top_logprobs.length ?? 2, 2);

  // Chat tells the same count, and the tokens it counts are those of the thought and its tags.
  await fresh('thinker');
  const chat = await client.chat.completions.create({ model: 'thinker', messages: [{ role: 'user', content: 'hello' }], seed: 2, logit_bias: bias, max_tokens: 20, logprobs: true });
  t.equal(chat.usage!.completion_tokens_details!.reasoning_tokens, reasoningTokens);
  const tokens = chat.choices[0]!.logprobs!.content!.map((c) => c.token);
  const head = tokens.slice(0, reasoningTokens).join('');
  t.ok(head.includes(thought), 'the counted tokens hold the thought');
  t.match(head, /<\/think>$/, 'and end with its closing tag');

  await fresh('thinker');
  const stream = streamOf(ask);
  let streamedThought = '';
  for await (const event of stream) if (event.type === 'response.reasoning_text.delta') streamedThought += event.delta;
  const final = await stream.finalResponse();
  t.equal(streamedThought, thought, 'reasoning_text deltas make the thought');
  t.same(final.output.map((item) => item.type), r.output.map((item) => item.type));
});

t.test('400s name the field; state and hosted tools are refused', async (t) => {
  const bad = async (payload: Record<string, unknown>, param: string, code: string, message?: RegExp) => {
    const res = await app.inject({ method: 'POST', url: '/v1/responses', payload: { model: 'chatml', ...payload } });
    t.equal(res.statusCode, 400, `${param}: ${res.body}`);
    t.match(res.json().error, { param, code, ...(message ? { message } : {}) });
  };
  await bad({ input: 'x', conversation: 'conv_1' }, 'conversation', 'unsupported_feature', /previous_response_id/);
  await bad({ input: 'x', background: true }, 'background', 'unsupported_feature');
  await bad({ input: 'x', tools: [{ type: 'web_search' }] }, 'tools[0].type', 'unsupported_feature', /function tools only/);
  await bad({ input: 'x', tools: [{ type: 'function' }] }, 'tools[0].name', 'missing_required_parameter');
  await bad({ input: 'x', tools: [{ type: 'function', name: 'f' }, { type: 'function', name: 'f' }] }, 'tools[1].name', 'invalid_value', /given twice/);
  await bad({ input: 'x', tools: [{ type: 'function', name: 'f' }], tool_choice: { type: 'function', name: 'g' } }, 'tool_choice.name', 'invalid_value');
  await bad({ input: 'x', tools: [{ type: 'function', name: 'f' }], text: { format: { type: 'json_object' } } }, 'text.format', 'invalid_value');
  await bad({ input: 'x', text: { format: { type: 'json_schema', name: 'n' } } }, 'text.format.schema', 'missing_required_parameter');
  await bad({ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:' }] }] }, 'input[0].content[0].type', 'unsupported_feature');
  await bad({ input: [{ role: 'robot', content: 'x' }] }, 'input[0].role', 'invalid_value');
  await bad({ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0].type', 'unsupported_feature');
  await bad({ input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }] }, 'input[0].call_id', 'invalid_value', /answers no call/);
  await bad({ input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' }, { role: 'user', content: 'x' }] }, 'input[0].call_id', 'invalid_value', /function_call_output/);
  await bad({ input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '{' }] }, 'input[0].arguments', 'invalid_value', /not JSON/);
  await bad({ input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 'input[0].call_id', 'missing_required_parameter');
  await bad({ input: 'x', max_output_tokens: -1 }, 'max_output_tokens', 'parameter_out_of_range', /max_output_tokens/);
  await bad({ input: [] }, 'input', 'invalid_value');
  const unknown = await app.inject({ method: 'POST', url: '/v1/responses', payload: { model: 'nope', input: 'x' } });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().error.code, 'model_not_found');
});

t.test('items: consecutive calls are one assistant turn; the answers may come in any order; reasoning items are skipped', async (t) => {
  const input = [
    { role: 'user', content: 'Weather in Paris and Rome?' },
    { type: 'reasoning', id: 'rs_1', summary: [] },
    { role: 'assistant', content: [{ type: 'output_text', text: 'Let me look.', annotations: [] }] },
    { type: 'function_call', call_id: 'a', name: 'get_weather', arguments: '{"city":"Paris"}' },
    { type: 'function_call', call_id: 'b', name: 'get_weather', arguments: '{"city":"Rome"}' },
    { type: 'function_call_output', call_id: 'b', output: '{"temp": 25}' },
    { type: 'function_call_output', call_id: 'a', output: [{ type: 'input_text', text: 'sunny' }] },
  ];
  const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
  const r = await create({ model: 'qwen', input, tools, seed: 1, max_output_tokens: 2 });
  const chat = await client.chat.completions.create({
    model: 'qwen', seed: 1, max_tokens: 2,
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    messages: [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant', content: 'Let me look.', tool_calls: [
          { id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'b', content: '{"temp": 25}' },
      { role: 'tool', tool_call_id: 'a', content: 'sunny' },
    ],
  });
  t.equal(r.usage!.input_tokens, chat.usage!.prompt_tokens, 'the same prompt as the chat messages');
});

t.test('stored responses: previous_response_id continues the conversation (its prompt reused from the cache), GET reads, DELETE forgets', async (t) => {
  await fresh('chatml');
  const first = await client.responses.create({ model: 'chatml', instructions: 'Be brief.', input: 'hello', temperature: 0, max_output_tokens: 6 });
  t.same(await client.responses.retrieve(first.id), first, 'GET gives the answer back');
  // Instructions are not carried over (as in OpenAI): the same ones again keep the prompt's start.
  const second = await client.responses.create({ model: 'chatml', previous_response_id: first.id, instructions: 'Be brief.', input: 'and then?', temperature: 0, max_output_tokens: 6 });
  t.equal(second.previous_response_id, first.id);
  t.ok(second.usage!.input_tokens_details.cached_tokens > first.usage!.input_tokens / 2, 'the first turn is read from the KV cache');
  const chat = await client.chat.completions.create({
    model: 'chatml', temperature: 0, max_tokens: 6,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }, { role: 'assistant', content: first.output_text }, { role: 'user', content: 'and then?' }],
  });
  t.equal(second.usage!.input_tokens, chat.usage!.prompt_tokens, "the prompt is the first turn's input and output, then the new input");

  const items = await client.responses.create({
    model: 'chatml', max_output_tokens: 1,
    input: [{ role: 'user', content: 'one' }, { id: 'msg_mine', type: 'message', role: 'assistant', content: 'two' }, { role: 'user', content: [{ type: 'input_text', text: 'three' }] }],
  });
  const newest = await client.responses.inputItems.list(items.id);
  t.same(newest.data.map((i) => i.id === 'msg_mine' || /^msg_/.test(i.id)), [true, true, true], 'ids: its own, or new ones');
  t.same(newest.data.map((i) => i.type === 'message' && i.content), [
    [{ type: 'input_text', text: 'three' }], [{ type: 'output_text', text: 'two' }], [{ type: 'input_text', text: 'one' }],
  ], 'newest first; text as content parts');
  const page = await client.responses.inputItems.list(items.id, { order: 'asc', limit: 2 });
  t.same(page.data.map((i) => i.id), [newest.data[2]!.id, 'msg_mine']);
  const raw = (await app.inject({ method: 'GET', url: `/v1/responses/${items.id}/input_items?order=asc&limit=2` })).json() as Record<string, unknown>;
  t.match(raw, { object: 'list', has_more: true, first_id: newest.data[2]!.id, last_id: 'msg_mine' });
  const rest = await client.responses.inputItems.list(items.id, { order: 'asc', after: 'msg_mine' });
  t.same(rest.data.map((i) => i.id), [newest.data[0]!.id]);
  t.equal(rest.hasNextPage(), false);
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${items.id}/input_items?after=nope` })).json().error.param, 'after');
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${items.id}/input_items?limit=101` })).json().error.param, 'limit');

  const unkept = await client.responses.create({ model: 'chatml', input: 'x', max_output_tokens: 1, store: false });
  t.equal((unkept as unknown as { store: boolean }).store, false);
  const gone = await app.inject({ method: 'GET', url: `/v1/responses/${unkept.id}` });
  t.equal(gone.statusCode, 404);
  t.match(gone.json().error, { code: 'response_not_found', message: /no response/ });

  const del = await app.inject({ method: 'DELETE', url: `/v1/responses/${first.id}` });
  t.same(del.json(), { id: first.id, object: 'response', deleted: true });
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/responses/${first.id}` })).statusCode, 404, 'deleted once');
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${first.id}/input_items` })).statusCode, 404, 'no input items either');
  const missing = await app.inject({ method: 'POST', url: '/v1/responses', payload: { model: 'chatml', previous_response_id: first.id, input: 'x' } });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().error, { code: 'response_not_found', param: 'previous_response_id' });
  const third = await client.responses.create({ model: 'chatml', previous_response_id: second.id, input: 'more', max_output_tokens: 1 });
  t.equal(third.status, 'incomplete', 'a response whose predecessor was deleted still continues: it keeps its own conversation');
  const chat3 = await client.chat.completions.create({
    model: 'chatml', max_tokens: 1,
    messages: [
      { role: 'user', content: 'hello' }, { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'and then?' }, { role: 'assistant', content: second.output_text }, { role: 'user', content: 'more' },
    ],
  });
  t.equal(third.usage!.input_tokens, chat3.usage!.prompt_tokens, 'no instructions this time: none in the prompt');
});

t.test('a stored call is answered in the next request; left unanswered, the 400 names previous_response_id', async (t) => {
  const tools = [{ type: 'function', name: 'get_time', parameters: { type: 'object', properties: {} } }];
  const call = await create({ model: 'qwen', input: 'time?', tools, tool_choice: 'required', parallel_tool_calls: false, seed: 1, max_output_tokens: 60 });
  const fc = call.output.find((item) => item.type === 'function_call')!;
  t.ok(fc, 'a call');
  const answered = await create({ model: 'qwen', previous_response_id: call.id, tools, seed: 1, max_output_tokens: 2, input: [{ type: 'function_call_output', call_id: fc.call_id, output: '12:00' }] });
  t.equal(answered.previous_response_id, call.id);
  const listed = await client.responses.inputItems.list(answered.id);
  t.equal(listed.data.length, 1, "the response's own input only, not the conversation it continued");
  t.match(listed.data[0], { type: 'function_call_output', call_id: fc.call_id, output: '12:00', id: /^fco_/ });
  const res = await app.inject({ method: 'POST', url: '/v1/responses', payload: { model: 'qwen', previous_response_id: call.id, input: 'hi' } });
  t.equal(res.statusCode, 400);
  t.match(res.json().error, { param: 'previous_response_id', message: /function_call_output/ });
});

t.test('input_tokens counts what a response and a chat read, through the SDK and llama-server\'s paths', async (t) => {
  const tools = [{ type: 'function' as const, name: 'lookup', description: 'Looks a word up', parameters: { type: 'object', properties: { word: { type: 'string' } } }, strict: false }];
  const first = await client.responses.create({ model: 'qwen', instructions: 'Be brief.', input: 'what is a cat', tools, max_output_tokens: 3 });
  const counted = await client.responses.inputTokens.count({ model: 'qwen', instructions: 'Be brief.', input: 'what is a cat', tools });
  t.same(counted, { object: 'response.input_tokens', input_tokens: first.usage!.input_tokens }, 'the SDK\'s count equals what the response read');
  // A continuation counts the stored conversation before the new input.
  const next = await client.responses.create({ model: 'qwen', previous_response_id: first.id, input: 'and a dog', tools, max_output_tokens: 3 });
  const nextCount = await client.responses.inputTokens.count({ model: 'qwen', previous_response_id: first.id, input: 'and a dog', tools });
  t.equal(nextCount.input_tokens, next.usage!.input_tokens);
  t.ok(nextCount.input_tokens > counted.input_tokens);

  const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'hello' }];
  const chat = await client.chat.completions.create({ model: 'chatml', messages, max_tokens: 2 });
  for (const path of ['/v1/chat/completions/input_tokens', '/chat/completions/input_tokens']) {
    const res = await app.inject({ method: 'POST', url: path, payload: { model: 'chatml', messages } });
    t.same(res.json(), { object: 'response.input_tokens', input_tokens: chat.usage!.prompt_tokens }, path);
  }
  const alias = await app.inject({ method: 'POST', url: '/responses/input_tokens', payload: { model: 'qwen', instructions: 'Be brief.', input: 'what is a cat', tools } });
  t.equal(alias.json().input_tokens, counted.input_tokens, 'llama-server\'s path without /v1');
  const gone = await app.inject({ method: 'POST', url: '/v1/responses/input_tokens', payload: { model: 'qwen', previous_response_id: 'resp_nope', input: 'x' } });
  t.equal(gone.statusCode, 404);
  t.match(gone.json().error, { code: 'response_not_found', param: 'previous_response_id' });
});
