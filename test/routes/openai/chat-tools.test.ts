import { Ajv } from 'ajv';
import { resolveChatWrapper, type ChatHistoryItem } from 'node-llama-cpp';
import OpenAI from 'openai';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';
import { buildTinyVocab } from '../../helpers/gguf-writer.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, QWEN_TOOLS_TEMPLATE, testLlama, writeFixtureModel } from '../../helpers/llama-fixtures.ts';

// Real node-llama-cpp on generated models with random weights: a forced call (`required`, a
// named function) is shaped by grammar, so its arguments parse and follow the schema whatever
// the weights; `auto` lets the model choose, and a random model writes text.
const dir = await tempDir();
// `<tool_call>` and `</tool_call>` are single user-defined tokens, as in Qwen's vocabulary.
const qwen = await writeFixtureModel(dir, 'qwen', { gguf: { chatTemplate: QWEN_TOOLS_TEMPLATE, contextLength: 2048, extraTokens: ['<tool_call>', '</tool_call>'] }, parameters: { ctx_len: 2048, n_parallel: 2 } });
await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 2048 }, parameters: { ctx_len: 2048, n_parallel: 1 } });
/** Qwen3-style: the Qwen template with a thought opened on every fresh answer. */
const QWEN_THINKING_TEMPLATE = QWEN_TOOLS_TEMPLATE
  .replace(`(message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}`, `(message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' }}{%- if message.reasoning_content %}{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}{%- endif %}{{- message.content + '<|im_end|>' + '\\n' }}`)
  .replace(`{{- '<|im_start|>assistant\\n' }}
{%- endif %}`, `{{- '<|im_start|>assistant\\n<think>\\n' }}
{%- endif %}`);
await writeFixtureModel(dir, 'thinker', { gguf: { chatTemplate: QWEN_THINKING_TEMPLATE, contextLength: 2048, extraTokens: ['<tool_call>', '</tool_call>'] }, parameters: { ctx_len: 2048, n_parallel: 1 } });
await writeFixtureModel(dir, 'plain', { gguf: { contextLength: 2048 }, parameters: { ctx_len: 2048, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });

const weather = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 16 }, days: { enum: [1, 3, 7] }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'days', 'unit'],
  additionalProperties: false,
};
const tools: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather of a city', parameters: weather } },
  { type: 'function', function: { name: 'get_time', description: 'The time now', parameters: { type: 'object', properties: {} } } },
];
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
// The length bound keeps a random model's strings short; it is left out of the check because
// the grammar counts a broken UTF-8 sequence as one character and its text as several U+FFFD.
const followsWeather = new Ajv().compile({ ...weather, properties: { ...weather.properties, city: { type: 'string' } } });

/**
 * Unloads a model, so its next request reads the prompt afresh: a seeded answer repeats
 * exactly only from the same cache state (a prompt partly cached differs in the logits' last
 * digits), and the comparisons below send one prompt twice.
 */
async function fresh(model: string) {
  const res = await app.inject({ method: 'POST', url: `/v1/models/${model}/model/stop` });
  if (res.statusCode !== 200 && res.json().error?.code !== 'model_not_running') throw new Error(res.body);
}

/** Streamed call deltas put together by index, as a client does; also how many argument pieces came. */
function assemble(deltas: OpenAI.ChatCompletionChunk.Choice.Delta[]) {
  const calls: Array<{ id?: string; name: string; arguments: string; pieces: number }> = [];
  for (const d of deltas.flatMap((x) => x.tool_calls ?? [])) {
    const c = (calls[d.index] ??= { name: '', arguments: '', pieces: 0 });
    if (d.id) c.id = d.id;
    if (d.function?.name) c.name += d.function.name;
    if (d.function?.arguments) {
      c.arguments += d.function.arguments;
      c.pieces++;
    }
  }
  return calls;
}

/** The SDK's call union narrowed to a function call (this server makes no other kind). */
function functionCall(call: OpenAI.ChatCompletionMessageToolCall): OpenAI.ChatCompletionMessageFunctionToolCall {
  if (call.type !== 'function') throw new Error(`a '${call.type}' call`);
  return call;
}

for (const model of ['qwen', 'chatml']) {
  t.test(`${model}: tool_choice required gives calls whose arguments parse and follow the function's schema`, async (t) => {
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', parallel_tool_calls: false, seed, max_tokens: 200 });
      const choice = r.choices[0]!;
      t.equal(choice.finish_reason, 'tool_calls', `seed ${seed}`);
      t.equal(choice.message.content, null, 'an answer of calls only has no content');
      t.equal(choice.message.tool_calls?.length, 1, 'one call without parallel_tool_calls');
      const call = functionCall(choice.message.tool_calls![0]!);
      t.match(call.id, /^call_[0-9a-f]{24}$/);
      t.ok(['get_weather', 'get_time'].includes(call.function.name), call.function.name);
      const args = JSON.parse(call.function.arguments);
      if (call.function.name === 'get_weather') t.ok(followsWeather(args), `arguments follow the schema: ${call.function.arguments}`);
      else t.same(args, {});
    }
  });

  t.test(`${model}: a named tool_choice calls that function; the stream sends the same call as the plain answer`, async (t) => {
    const body = { model, messages, tools, tool_choice: { type: 'function' as const, function: { name: 'get_weather' } }, seed: 7, max_tokens: 300 };
    await fresh(model);
    const plain = await client.chat.completions.create({ ...body, parallel_tool_calls: false });
    const call = functionCall(plain.choices[0]!.message.tool_calls![0]!);
    t.equal(call.function.name, 'get_weather');
    t.ok(followsWeather(JSON.parse(call.function.arguments)), call.function.arguments);

    await fresh(model);
    const stream = await client.chat.completions.create({ ...body, parallel_tool_calls: false, stream: true });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(chunk.choices[0]!.delta);
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    t.equal(finish, 'tool_calls');
    t.equal(deltas.map((d) => d.content ?? '').join(''), '', 'no call text leaks into content');
    const streamed = assemble(deltas);
    t.equal(streamed.length, 1);
    t.match(streamed[0]!.id, /^call_/);
    t.same({ name: streamed[0]!.name, arguments: streamed[0]!.arguments }, call.function, 'the same call, streamed');
    t.ok(streamed[0]!.pieces > 3, `the arguments stream as they are written (${streamed[0]!.pieces} pieces)`);

    // The SDK's stream helper puts the deltas back together into the same message.
    await fresh(model);
    const helper = client.chat.completions.stream({ ...body, parallel_tool_calls: false });
    const final = await helper.finalChatCompletion();
    t.same(functionCall(final.choices[0]!.message.tool_calls![0]!).function, call.function, 'the SDK assembles the call');
  });
}

t.test("a model without a chat template (Jan's prompts) is shown the tools and calls them in node-llama-cpp's syntax", async (t) => {
  const without = await client.chat.completions.create({ model: 'plain', messages, seed: 1, max_tokens: 1 });
  const r = await client.chat.completions.create({ model: 'plain', messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false, seed: 1, max_tokens: 200 });
  t.ok(r.usage!.prompt_tokens > without.usage!.prompt_tokens + 50, 'the tools are in the prompt');
  t.equal(r.choices[0]!.finish_reason, 'tool_calls');
  const call = functionCall(r.choices[0]!.message.tool_calls![0]!);
  t.ok(followsWeather(JSON.parse(call.function.arguments)), call.function.arguments);
});

t.test('parallel_tool_calls (the default) lets a forced answer make several calls, each parsed', async (t) => {
  let most = 0;
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'qwen', messages, tools, tool_choice: 'required', seed, max_tokens: 300 });
    const choice = r.choices[0]!;
    if (choice.finish_reason === 'length') continue;
    t.equal(choice.finish_reason, 'tool_calls');
    for (const call of choice.message.tool_calls!) JSON.parse(functionCall(call).function.arguments);
    most = Math.max(most, choice.message.tool_calls!.length);
  }
  t.ok(most >= 1, `at most ${most} calls in an answer`);
});

t.test('auto: the template shows the tools; a model that writes text answers in content, streamed alike', async (t) => {
  const without = await client.chat.completions.create({ model: 'qwen', messages, seed: 3, max_tokens: 12 });
  await fresh('qwen');
  const plain = await client.chat.completions.create({ model: 'qwen', messages, tools, seed: 3, max_tokens: 12 });
  t.ok(plain.usage!.prompt_tokens > without.usage!.prompt_tokens + 50, 'the tools are in the prompt');
  t.not(plain.choices[0]!.finish_reason, 'tool_calls');
  t.notOk(plain.choices[0]!.message.tool_calls);
  await fresh('qwen');
  const stream = await client.chat.completions.create({ model: 'qwen', messages, tools, seed: 3, max_tokens: 12, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  t.equal(text, plain.choices[0]!.message.content);

  const none = await client.chat.completions.create({ model: 'qwen', messages, tools, tool_choice: 'none', seed: 3, max_tokens: 12 });
  t.equal(none.usage!.prompt_tokens, without.usage!.prompt_tokens, "tool_choice 'none' leaves the tools out");
});

t.test('auto: a call the model opens is finished under the call grammar, so it parses (llama-server\'s lazy grammar)', async (t) => {
  // The bias makes the random model open a call at once; what follows is up to the grammar.
  const toolCallToken = buildTinyVocab().tokens.length;
  const body = { model: 'qwen', messages, tools, parallel_tool_calls: false, logit_bias: { [toolCallToken]: 100 }, max_tokens: 300 };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ ...body, seed });
    const choice = r.choices[0]!;
    t.equal(choice.finish_reason, 'tool_calls', `seed ${seed}`);
    t.equal(choice.message.content, null);
    const call = functionCall(choice.message.tool_calls![0]!);
    if (call.function.name === 'get_weather') t.ok(followsWeather(JSON.parse(call.function.arguments)), call.function.arguments);
    else t.same(JSON.parse(call.function.arguments), {});
    t.ok(r.usage!.completion_tokens > 5, 'usage counts the call\'s tokens');
  }
  await fresh('qwen');
  const stream = await client.chat.completions.create({ ...body, seed: 1, stream: true });
  const deltas: OpenAI.ChatCompletionChunk.Choice.Delta[] = [];
  for await (const chunk of stream) deltas.push(chunk.choices[0]!.delta);
  await fresh('qwen');
  const plain = await client.chat.completions.create({ ...body, seed: 1 });
  const streamed = assemble(deltas);
  t.same(streamed.map((c) => ({ name: c.name, arguments: c.arguments })), plain.choices[0]!.message.tool_calls!.map((c) => functionCall(c).function), 'streamed alike');
  t.ok(streamed[0]!.pieces > 3, 'piece by piece');
});

t.test('auto: a call start inside the thought opens no call', async (t) => {
  t.not(QWEN_THINKING_TEMPLATE, QWEN_TOOLS_TEMPLATE, 'the template was changed');
  const toolCallToken = buildTinyVocab().tokens.length;
  const r = await client.chat.completions.create({ model: 'thinker', messages, tools, logit_bias: { [toolCallToken]: 100 }, seed: 1, max_tokens: 6 });
  const message = r.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
  t.equal(r.choices[0]!.finish_reason, 'length');
  t.notOk(message.tool_calls);
  t.equal(message.reasoning_content, '<tool_call>'.repeat(6), 'the thought keeps what the model wrote');
});

t.test('a conversation with calls and their answers is rendered by the template as node-llama-cpp renders it', async (t) => {
  const conversation: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'user', content: 'Weather in Paris and Rome?' },
    {
      role: 'assistant', content: 'Let me look.',
      tool_calls: [
        { id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":3,"unit":"c"}' } },
        { id: 'b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome","days":3,"unit":"c"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'b', content: '{"temp": 25}' },
    { role: 'tool', tool_call_id: 'a', content: 'sunny' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'c', content: '12:00' },
  ];
  const r = await client.chat.completions.create({ model: 'qwen', messages: conversation, tools, seed: 1, max_tokens: 4 });

  const llama = await testLlama();
  const model = await llama.loadModel({ modelPath: qwen });
  t.teardown(() => model.dispose());
  const history: ChatHistoryItem[] = [
    { type: 'user', text: 'Weather in Paris and Rome?' },
    {
      type: 'model', response: [
        'Let me look.',
        { type: 'functionCall', name: 'get_weather', params: { city: 'Paris', days: 3, unit: 'c' }, result: 'sunny' },
        { type: 'functionCall', name: 'get_weather', params: { city: 'Rome', days: 3, unit: 'c' }, result: { temp: 25 } },
        { type: 'functionCall', name: 'get_time', params: {}, result: '12:00', startsNewChunk: true },
      ],
    },
  ];
  const availableFunctions = { get_weather: { description: 'The weather of a city', params: weather }, get_time: { description: 'The time now', params: { type: 'object', properties: {} } } };
  const text = resolveChatWrapper(model)!.generateContextState({ chatHistory: history, availableFunctions: availableFunctions as never }).contextText;
  t.equal(r.usage!.prompt_tokens, text.tokenize(model.tokenizer).length, 'the same prompt, token for token');
  t.match(text.toString(), /<tool_response>\n\{"temp": 25\}\n<\/tool_response>/, 'a JSON answer is shown as sent');
});

t.test('bad tool requests are 400s that name the field', async (t) => {
  const post = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'qwen', messages, ...body } });
  const call = { id: 'x', type: 'function', function: { name: 'get_time', arguments: '{}' } };
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ['a tool answer with no call', { messages: [...messages, { role: 'tool', tool_call_id: 'x', content: '1' }] }, 'messages[1].tool_call_id', 'invalid_value'],
    ['a tool message without its id', { messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', content: '1' }] }, 'messages[2].tool_call_id', 'missing_required_parameter'],
    ['an unanswered call', { messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'user', content: 'hi' }] }, 'messages[1].tool_calls[0].id', 'invalid_value'],
    ['an unanswered last call', { messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] }] }, 'messages[1].tool_calls[0].id', 'invalid_value'],
    ['arguments that are not JSON', { messages: [...messages, { role: 'assistant', content: null, tool_calls: [{ ...call, function: { name: 'get_time', arguments: '{city' } }] }, { role: 'tool', tool_call_id: 'x', content: '1' }] }, 'messages[1].tool_calls[0].function.arguments', 'invalid_value'],
    ['calls on a user message', { messages: [{ role: 'user', content: 'hi', tool_calls: [call] }] }, 'messages[0].tool_calls', 'invalid_value'],
    ['a named choice not among the tools', { tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name', 'invalid_value'],
    ['required without tools', { tool_choice: 'required' }, 'tool_choice', 'invalid_value'],
    ['a name given twice', { tools: [tools[0], tools[0]] }, 'tools[1].function.name', 'invalid_value'],
    ['parameters that are no JSON Schema', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'foo' } } }] }, 'tools[0].function.parameters', 'invalid_value'],
    ['a name with a space', { tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools[0].function.name', 'invalid_value'],
    ['response_format with tools', { tools, response_format: { type: 'json_object' } }, 'response_format', 'invalid_value'],
    ['legacy functions', { functions: [{ name: 'f' }] }, 'functions', 'unsupported_feature'],
  ];
  for (const [what, body, param, code] of cases) {
    const res = await post(body);
    t.equal(res.statusCode, 400, `${what}: ${res.body}`);
    t.equal(res.json().error.param, param, what);
    t.equal(res.json().error.code, code, what);
  }
});
