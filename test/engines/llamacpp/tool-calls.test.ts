import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import t from 'tap';
import type { TokenLogprob } from '../../../src/engines/engine.ts';
import { callHeads, gbnfLiteral, parseToolCalls, ToolCallStream, ToolCallSplit, toolCallGrammar, type ToolCallSyntax } from '../../../src/engines/llamacpp/tool-calls.ts';

/** Qwen's syntax as node-llama-cpp reads it from the template. */
const qwen: ToolCallSyntax = { prefixes: ['<tool_call>\n{"name": "'], paramsPrefix: '", "arguments": ', suffix: '}\n</tool_call>', between: '\n', emptyParams: '{}' };
/** node-llama-cpp's own, for templates without tool support. */
const own: ToolCallSyntax = { prefixes: ['||call: ', '||call:'], paramsPrefix: '(', suffix: ')', between: '', emptyParams: '' };
const functions = [{ name: 'get' }, { name: 'get_weather' }];

t.test('parseToolCalls reads the content before the calls and each call', async (t) => {
  const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get", "arguments": {}}\n</tool_call>';
  t.same(parseToolCalls(text, qwen, functions), {
    content: 'Let me check.',
    calls: [{ name: 'get_weather', arguments: '{"city": "Paris"}' }, { name: 'get', arguments: '{}' }],
  });
  t.same(parseToolCalls('||call: get_weather({"a": [1, ")"]})', own, functions).calls, [{ name: 'get_weather', arguments: '{"a": [1, ")"]}' }], 'a suffix inside a string does not end the arguments');
  t.same(parseToolCalls('||call:get()', own, functions).calls, [{ name: 'get', arguments: '{}' }], 'an alternate prefix; no arguments');
  t.same(parseToolCalls('<tool_call>\n{"name": "get", "arguments": {"x": 1}}', qwen, functions).calls, [{ name: 'get', arguments: '{"x": 1}' }], 'a turn ended before the suffix');
});

t.test("parseToolCalls takes JSON's free spacing where the syntax has JSON", async (t) => {
  const text = 'Hi <tool_call>{"name":"get_weather" ,"arguments":{"city":"Paris"}} </tool_call>\n\n<tool_call>\n  {"name": "get", "arguments": {}}\n</tool_call>';
  t.same(parseToolCalls(text, qwen, functions), {
    content: 'Hi',
    calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }, { name: 'get', arguments: '{}' }],
  });
  t.same(parseToolCalls('||call:get_weather( {"a": 1} )', own, functions).calls, [{ name: 'get_weather', arguments: '{"a": 1}' }]);
  t.same(parseToolCalls('<tool_call>{"name": "get weather", "arguments": {}}</tool_call>', qwen, functions).calls, [], 'but not inside a name');
});

t.test('parseToolCalls leaves text that is no call as content', async (t) => {
  for (const text of [
    'plain answer',
    'I would write <tool_call>\n{"name": "other", "arguments": {}}\n</tool_call>',
    '<tool_call>\n{"name": "get", "arguments": {oops}\n</tool_call>',
  ]) t.same(parseToolCalls(text, qwen, functions), { content: text, calls: [] }, text);
  const one = parseToolCalls('<tool_call>\n{"name": "get", "arguments": {}}\n</tool_call> and then prose', qwen, functions);
  t.same(one, { content: '', calls: [{ name: 'get', arguments: '{}' }] }, 'text after the calls is not content');
});

t.test('ToolCallSplit streams the text before a call, never a piece of its prefix', async (t) => {
  const sent: string[] = [];
  const split = new ToolCallSplit(qwen, (text) => sent.push(text));
  for (const piece of ['Sure', '. ', '\n<tool', '_call>\n{"name": "get', '", "arguments": {}}']) split.push(piece);
  t.same(sent, ['Sure', '.'], 'the spaces before the call and the call are held');
  split.finish('Sure.');
  t.same(sent, ['Sure', '.'], 'nothing more when the content is what went out');

  const prose: string[] = [];
  const noCall = new ToolCallSplit(qwen, (text) => prose.push(text));
  for (const piece of ['a <tool', '_call>\n{"name": "nope"']) noCall.push(piece);
  noCall.finish('a <tool_call>\n{"name": "nope"');
  t.equal(prose.join(''), 'a <tool_call>\n{"name": "nope"', 'a prefix that led to no call goes out at the end');
});

t.test('ToolCallSplit holds back from where any call could begin, whatever its spacing', async (t) => {
  const sent: string[] = [];
  const split = new ToolCallSplit(qwen, (text) => sent.push(text));
  for (const piece of ['ok <tool', '_call>{"name":"get"', ',"arguments":{}}</tool_call>']) split.push(piece);
  t.same(sent, ['ok']);
  const { content } = parseToolCalls('ok <tool_call>{"name":"get","arguments":{}}</tool_call>', qwen, functions);
  t.equal(content, 'ok', 'the content is what went out');
});

t.test('ToolCallSplit sends logprobs with the text that carries them', async (t) => {
  const lp = (token: string): TokenLogprob => ({ token, logprob: -1, bytes: [], top: [] });
  const sent: Array<[string, string[]]> = [];
  const split = new ToolCallSplit(qwen, (text, lps) => sent.push([text, (lps ?? []).map((l) => l.token)]));
  split.push('a', [lp('a')]);
  split.push(' ', [lp(' ')]);
  split.push('<', [lp('<')]);
  split.push('b', [lp('b')]);
  t.same(sent, [['a', ['a']], [' <b', [' ', '<', 'b']]]);
});

t.test('toolCallGrammar: every function by its own renamed rules, compiled by llama.cpp', async (t) => {
  t.equal(gbnfLiteral('a"b\\c\nd'), '"a\\"b\\\\c\\nd"');
  const llama = await getLlama({ gpu: false, maxThreads: 2, build: 'never', logLevel: LlamaLogLevel.error });
  const params = await Promise.all([
    { type: 'object', properties: { city: { type: 'string' } } },
    { type: 'object', properties: { n: { type: 'array', items: { type: 'string' } } } },
  ].map(async (schema) => (await llama.createGrammarForJsonSchema(schema as never)).grammar));
  const gbnf = toolCallGrammar(qwen, [{ name: 'get', gbnf: params[0]! }, { name: 'get_weather', gbnf: params[1]! }], true);
  t.match(gbnf, /^root ::= call \( "\\n" call \)\*$/m);
  t.match(gbnf, /^f0-string-rule ::= /m, 'rules are renamed per function');
  t.match(gbnf, /^f1-string-rule ::= /m);
  t.notMatch(gbnf, /\\n\\n\\n\\n/, "node-llama-cpp's end-of-JSON newlines are cut");
  const grammar = await llama.createGrammar({ grammar: gbnf });
  t.ok(grammar, 'llama.cpp parses it');
  t.match(toolCallGrammar(own, [{ name: 'get', gbnf: params[0]! }], false), /^root ::= call$/m, 'one call only without parallel calls');
});

t.test('callHeads: the distinctive literal starts a free answer switches to the call grammar on', async (t) => {
  t.same(callHeads(qwen), ['<tool_call>']);
  t.same(callHeads(own), ['||call']);
  t.same(callHeads({ ...qwen, prefixes: ['{"name": "'] }), [], 'bare JSON is read after the fact');
  t.same(callHeads({ ...qwen, prefixes: ['[TOOL_CALLS][{"name": "'] }), ['[TOOL_CALLS]['], 'up to the JSON');
});

t.test('ToolCallStream sends a call\'s name, then its arguments as they come, adding up to what parseToolCalls reads', async (t) => {
  const text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "a}\\n</tool_call>", "n": [1, 2] }}\n</tool_call>\n<tool_call>\n{"name": "get", "arguments": {}}\n</tool_call>';
  for (const size of [1, 3, 7, text.length]) {
    const deltas: Array<{ index: number; name?: string; arguments?: string }> = [];
    const stream = new ToolCallStream(qwen, functions, (d) => deltas.push(d));
    for (let i = 0; i < text.length; i += size) stream.push(text.slice(i, i + size));
    const got = [0, 1].map((index) => ({
      name: deltas.find((d) => d.index === index && d.name)?.name,
      arguments: deltas.filter((d) => d.index === index).map((d) => d.arguments ?? '').join(''),
    }));
    t.same(got, parseToolCalls(text, qwen, functions).calls, `in pieces of ${size}`);
    if (size === 1) t.ok(deltas.filter((d) => d.arguments).length > 10, 'piece by piece');
  }
  const bare: Array<{ index: number; name?: string; arguments?: string }> = [];
  const noArgs = new ToolCallStream(own, functions, (d) => bare.push(d));
  for (const c of '||call: get()||call: get_weather({"a": 1})') noArgs.push(c);
  t.same(bare.filter((d) => d.name), [{ index: 0, name: 'get' }, { index: 1, name: 'get_weather' }], 'a call without arguments ends at its suffix');
  t.equal(bare.filter((d) => d.index === 1).map((d) => d.arguments ?? '').join(''), '{"a": 1}');
  const opened: string[] = [];
  const after = new ToolCallStream(own, functions, (d) => opened.push(d.name ?? d.arguments!), true);
  after.push('get_weather({"a": 1})');
  t.same(opened, ['get_weather', '{"a": 1}'], 'opened: the prompt ended with the prefix');
});
