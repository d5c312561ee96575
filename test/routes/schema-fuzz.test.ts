import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ERROR_CODES } from '../../src/errors.ts';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, QWEN_TOOLS_TEMPLATE, writeFixtureModel } from '../helpers/llama-fixtures.ts';
import { writeTinyBertRerankerGguf } from '../helpers/gguf-writer.ts';
import { writeImageClassifierOnnx, writeTextClassifierOnnx, writeTokenizerJson } from '../helpers/onnx-writer.ts';

// Bad input gets a clear error, never a crash: every field of every request body (nested ones
// included), replaced by values of the wrong type, the schema's edges (bounds, enum members,
// lengths) and nothing at all, sent to the real engines. A 5xx other than a busy or absent
// upstream, an error without the envelope or with an unlisted code, or a stream that ends in an
// internal error is a finding. The committed OpenAPI document says where the edges are.
const dir = await tempDir();
// Small contexts: a value that lifts the token limit generates until the context is full.
await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 128 }, parameters: { ctx_len: 128, n_parallel: 1 } });
await writeFixtureModel(dir, 'qwen', { gguf: { chatTemplate: QWEN_TOOLS_TEMPLATE, contextLength: 640, extraTokens: ['<tool_call>', '</tool_call>'] }, parameters: { ctx_len: 640, n_parallel: 1 } });
await writeFixtureModel(dir, 'spare', { parameters: { ctx_len: 128, n_parallel: 1 } });
await writeFixtureModel(dir, 'coder', { gguf: { contextLength: 128, extraTokens: ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|repo_name|>', '<|file_sep|>'] }, parameters: { ctx_len: 128, n_parallel: 1, n_batch: 64 } });
await writeFixtureModel(dir, 'embedder', { parameters: { ctx_len: 128, embedding: true, n_parallel: 1 } });
await mkdir(path.join(dir, 'text'));
writeTextClassifierOnnx(path.join(dir, 'text/text.onnx'));
writeTokenizerJson(path.join(dir, 'text/tokenizer.json'));
await writeFile(path.join(dir, 'text/model.json'), '{}');
await mkdir(path.join(dir, 'ranker'));
writeTextClassifierOnnx(path.join(dir, 'ranker/ranker.onnx'), { tokenTypeIds: true, classes: 1, labels: ['relevance'] });
writeTokenizerJson(path.join(dir, 'ranker/tokenizer.json'));
await writeFile(path.join(dir, 'ranker/model.json'), '{}');
await mkdir(path.join(dir, 'bertrank'));
writeTinyBertRerankerGguf(path.join(dir, 'bertrank/bertrank.gguf'), { contextLength: 64 });
await writeFile(path.join(dir, 'bertrank/model.json'), '{}');
await mkdir(path.join(dir, 'img'));
writeImageClassifierOnnx(path.join(dir, 'img/img.onnx'), { size: 8, classes: 3, labels: ['cat', 'dog', 'bird'] });
await writeFile(path.join(dir, 'img/model.json'), JSON.stringify({ metadata: { preprocess: { scale: 1 / 255 } } }));
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });

const doc = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../openapi/openapi.json'), 'utf8'));
const user = [{ role: 'user', content: 'hi' }];
const tool = { type: 'function', function: { name: 'f', description: 'd', parameters: { type: 'object', properties: { a: { type: 'string' } } } } };
const objectSchema = { type: 'object', properties: { a: { type: 'integer', minimum: 0 } }, required: ['a'] };

/** A valid request per route (`#…` tells variants apart), each answered 200 as it stands. */
const bases: Record<string, Record<string, unknown>> = {
  '/v1/chat/completions': {
    model: 'qwen', max_tokens: 3, tools: [tool], tool_choice: 'auto', logprobs: true, top_logprobs: 2, stop: ['x'], logit_bias: { 5: 1 },
    messages: [
      { role: 'system', content: 's' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      { role: 'assistant', content: 'a', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c', content: 'r' },
    ],
  },
  '/v1/chat/completions#format': { model: 'chatml', messages: user, max_tokens: 3, seed: 1, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: objectSchema } } },
  '/v1/completions': { model: 'chatml', prompt: 'hello', max_tokens: 3, logprobs: 2, stop: 'x' },
  '/v1/completions#echo': { model: 'chatml', prompt: [[1, 2, 3], 'x'], max_tokens: 2, echo: true },
  '/api/v0/chat/completions': { model: 'chatml', messages: user, max_tokens: 3, seed: 1 },
  '/api/v0/completions': { model: 'chatml', prompt: 'hello', max_tokens: 3, stop: 'x' },
  '/v1/embeddings': { model: 'embedder', input: ['hello', 'world'], encoding_format: 'float' },
  '/v1/classifications': { model: 'text', input: ['a b'], top_k: 2 },
  '/v1/rerank': { model: 'ranker', query: 'good film', documents: ['a movie', { text: 'bad' }], top_n: 1, return_documents: true },
  '/v1/rerank#gguf': { model: 'bertrank', query: 'good film', documents: ['a movie', { text: 'bad' }], top_n: 1 },
  '/tokenize': { model: 'chatml', content: 'hello', with_pieces: true },
  '/detokenize': { model: 'chatml', tokens: [1, 2, 3] },
  '/apply-template': { model: 'qwen', messages: user, tools: [tool] },
  '/v1/messages': {
    model: 'qwen', system: [{ type: 'text', text: 's' }], max_tokens: 3, stop_sequences: ['x'], tools: [{ name: 'f', description: 'd', input_schema: { type: 'object' } }],
    messages: [
      { role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'r' }] },
    ],
  },
  '/v1/messages/count_tokens': { model: 'qwen', messages: user, system: 's' },
  '/v1/chat/completions/input_tokens': { model: 'qwen', messages: user, tools: [tool] },
  '/v1/responses/input_tokens': { model: 'qwen', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }], instructions: 'i', tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }] },
  '/v1/responses': { model: 'qwen', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }], instructions: 'i', max_output_tokens: 3, tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }], store: true },
  '/v1/responses#format': { model: 'chatml', input: 'hi', max_output_tokens: 3, text: { format: { type: 'json_schema', name: 'x', schema: objectSchema } }, top_logprobs: 2, include: ['message.output_text.logprobs'] },
  '/api/chat': {
    model: 'qwen', messages: user, stream: false, tools: [tool],
    options: { num_predict: 3, temperature: 0.5, top_p: 0.9, top_k: 5, min_p: 0.1, seed: 4, stop: ['x'], repeat_penalty: 1.1, presence_penalty: 0.5, frequency_penalty: 0.5, num_ctx: 512, num_thread: 2 },
  },
  '/api/chat#format': { model: 'chatml', messages: user, stream: false, options: { num_predict: 3 }, format: objectSchema, keep_alive: '5m' },
  '/api/generate': { model: 'chatml', prompt: 'hi', system: 's', stream: false, options: { num_predict: 3 } },
  '/api/generate#raw': { model: 'chatml', prompt: 'x', raw: true, stream: false, options: { num_predict: 3, stop: ['q'], seed: 3 }, suffix: '' },
  '/api/embed': { model: 'embedder', input: ['a', 'b'] },
  '/api/embeddings': { model: 'embedder', prompt: 'a' },
  '/api/show': { model: 'chatml' },
  '/api/pull': { model: 'chatml', stream: false },
  '/completion': { model: 'chatml', prompt: 'hi', n_predict: 3, temperature: 0.5, top_k: 5, top_p: 0.9, min_p: 0.1, seed: 1, stop: ['x'], repeat_penalty: 1.1, ignore_eos: false },
  '/infill': { model: 'coder', input_prefix: 'a', input_suffix: 'b', input_extra: [{ filename: 'f', text: 't' }], prompt: 'p', n_predict: 3, t_max_predict_ms: 500 },
  '/api/copy': { source: 'chatml', destination: 'copied' },
  '/api/create': { model: 'created', from: 'chatml', system: 's', license: 'l', parameters: { num_ctx: 64, temperature: 0.5, stop: 'x', num_predict: 3 }, stream: false },
  '/v1/models': { id: 'made/one', source_url: path.join(dir, 'spare/spare.gguf'), name: 'n', description: 'd', parameters: { ctx_len: 64 }, metadata: { tags: ['a'] }, skip_existing: true },
  '/v1/models/{id}/start': { ctx_len: 64, n_parallel: 1, threads: 1, n_batch: 64, keep_alive: '1m' },
  '/v1/models/start': { model: 'spare', ctx_len: 64 },
  '/models/load': { model: 'spare' },
};

/** The model a route's valid request makes, deleted after each so the next finds its name free. */
const made: Record<string, string> = { '/api/copy': 'copied', '/api/create': 'created' };

const wrong: unknown[] = [null, true, 0, -1, 1.5, 1e12, '', '\u0000\ud800', 'a'.repeat(3000), [], [[]], {}, [1, -5, 1e9]];
/** Streamed variants see fewer values: what matters there is that a failure ends the stream cleanly. */
const wrongStreamed: unknown[] = [null, -1, '', {}];
const generates = /\/chat$|chat\/completions$|completions?$|messages$|responses$|generate|infill/;

type Path = (string | number)[];
function fieldPaths(v: unknown, prefix: Path = []): Path[] {
  const out: Path[] = [];
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : v && typeof v === 'object' ? Object.entries(v) : [];
  for (const [k, x] of entries) out.push([...prefix, k], ...fieldPaths(x, [...prefix, k]));
  return out;
}
function withValue(body: unknown, p: Path, value: unknown): unknown {
  const copy = structuredClone(body) as Record<string | number, unknown>;
  let o = copy;
  for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = p.at(-1)!;
  if (value !== undefined) o[last] = value;
  else if (Array.isArray(o)) o.splice(last as number, 1);
  else delete o[last];
  return copy;
}

const deref = (x: any): any => (x?.$ref ? doc.components.schemas[x.$ref.split('/').at(-1)] : x);
const branches = (x: any): any[] => [x, ...(x?.anyOf ?? []), ...(x?.oneOf ?? [])].map(deref).filter(Boolean);
function schemaAt(root: unknown, p: Path): any {
  let x = deref(root);
  for (const k of p) {
    if (!x) return undefined;
    const alts = branches(x);
    x = deref(typeof k === 'number' ? alts.find((a) => a.items)?.items : alts.map((a) => a.properties?.[k]).find(Boolean));
  }
  return x;
}
/** The schema's own edges: its bounds and just past them, its enum members, its lengths. */
function edges(x: any): unknown[] {
  const out: unknown[] = [];
  for (const b of branches(x)) {
    if (b !== x) out.push(...edges(b));
    if (b.enum) out.push(...b.enum);
    if (b.const !== undefined) out.push(b.const);
    for (const k of ['minimum', 'exclusiveMinimum']) if (typeof b[k] === 'number') out.push(b[k], b[k] - 1, b[k] - 0.5);
    for (const k of ['maximum', 'exclusiveMaximum']) if (typeof b[k] === 'number') out.push(b[k], b[k] + 1, b[k] + 0.5);
    if (typeof b.maxItems === 'number') out.push(Array.from({ length: b.maxItems + 1 }, () => 'x'));
    if (typeof b.maxLength === 'number') out.push('y'.repeat(b.maxLength), 'y'.repeat(b.maxLength + 1));
    if (b.type === 'boolean') out.push(true, false);
  }
  return out;
}

/** What is wrong with one answer, or undefined. */
function finding(res: { statusCode: number; body: string; headers: Record<string, unknown> }): string | undefined {
  const s = res.statusCode;
  // 501: no engine for the model; 502/503: an absent or busy upstream or model, by design.
  if (s >= 500 && ![501, 502, 503].includes(s)) return `${s} ${res.body.slice(0, 300)}`;
  if (s >= 400) {
    let e: { message?: unknown; code?: unknown } | undefined;
    try {
      e = JSON.parse(res.body).error;
    } catch {
      return `${s} is not JSON: ${res.body.slice(0, 200)}`;
    }
    if (typeof e?.message !== 'string' || !e.message) return `${s} without the error envelope: ${res.body.slice(0, 200)}`;
    if (typeof e.code !== 'string' || !(e.code in ERROR_CODES)) return `${s} with an unlisted code ${String(e.code)}`;
    return undefined;
  }
  if (/internal_error/.test(res.body)) return `a stream that failed inside: ${res.body.slice(-300)}`;
  return undefined;
}

for (const [route, base] of Object.entries(bases)) {
  const template = route.replace(/#.*/, '');
  const url = template.replace('{id}', 'spare');
  t.test(`POST ${route}: every field wrong, at its edges, or absent`, async (t) => {
    const schema = doc.paths[template].post.requestBody.content['application/json'].schema;
    const first = await app.inject({ method: 'POST', url, payload: base });
    t.ok(first.statusCode < 300, `the base request is valid: ${first.statusCode}`);
    if (template === '/v1/models') await app.inject({ method: 'DELETE', url: '/v1/models/made/one' });
    if (made[template]) await app.inject({ method: 'DELETE', url: '/api/delete', payload: { model: made[template] } });
    const paths = fieldPaths(base);
    for (const k of Object.keys(deref(schema)?.properties ?? {})) if (!(k in base)) paths.push([k]);
    const findings: string[] = [];
    let sent = 0;
    const send = async (body: unknown, label: string) => {
      sent++;
      const res = await app.inject({ method: 'POST', url, payload: body as object });
      const f = finding(res);
      if (f) findings.push(`${label}: ${f}`);
      // Leave the fixtures as they were: a created object goes, a started model stops.
      if (template === '/v1/models' && res.statusCode < 300) await app.inject({ method: 'DELETE', url: `/v1/models/${res.json().id ?? 'made/one'}` });
      if (made[template] && res.statusCode < 300) await app.inject({ method: 'DELETE', url: '/api/delete', payload: { model: made[template] } });
      if (template.endsWith('start') || template === '/models/load') await app.inject({ method: 'POST', url: '/v1/models/spare/stop' });
    };
    for (const p of paths) {
      const label = p.join('.');
      // `n` at its top (128 answers, 4 s each here) is left to the chat tests.
      const edge = edges(schemaAt(schema, p)).filter((v) => !(label === 'n' && typeof v === 'number' && v > 8));
      for (const v of [...wrong, ...edge, undefined]) await send(withValue(base, p, v), `${label}=${JSON.stringify(v)?.slice(0, 30)}`);
      if (generates.test(template) && p[0] !== 'stream') {
        for (const v of wrongStreamed) await send({ ...(withValue(base, p, v) as object), stream: true }, `streamed ${label}=${JSON.stringify(v)}`);
      }
    }
    t.same(findings, [], `${sent} requests`);
  });
}

t.test('whole bodies that are not a JSON object, and bodies in other media types', async (t) => {
  const routes = Object.keys(bases).map((r) => r.replace(/#.*/, '').replace('{id}', 'spare'));
  const bodies: [string, string][] = [
    ['[]', 'application/json'], ['"x"', 'application/json'], ['1', 'application/json'], ['null', 'application/json'],
    ['', 'application/json'], ['{', 'application/json'], ['\u0000', 'application/json'],
    ['{"model":"chatml","__proto__":{"x":1}}', 'application/json'], ['{"model":"chatml","constructor":{"prototype":{"x":1}}}', 'application/json'],
    ['{"model":"chatml"}', 'text/plain'], ['{"model":"chatml"}', 'application/x-www-form-urlencoded'],
  ];
  const findings: string[] = [];
  for (const url of new Set(routes)) {
    for (const [payload, type] of bodies) {
      const res = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': type } });
      // A start takes no body at all (no overrides), so null and nothing are valid there.
      const optional = url.endsWith('/spare/start') && (payload === 'null' || payload === '');
      const f = res.statusCode < 400 && !optional ? `${res.statusCode}, not refused` : finding(res);
      if (f) findings.push(`${url} ${JSON.stringify(payload).slice(0, 30)} as ${type}: ${f}`);
    }
  }
  t.same(findings, []);
});

t.test('ids and query strings that are odd, unknown or out of bounds', async (t) => {
  const findings: string[] = [];
  for (const q of ['', '?limit=0', '?limit=101', '?limit=-1', '?limit=abc', '?limit=1.5', '?order=up', '?after=nope', '?limit=1&limit=2', '?order[]=asc', '?__proto__=1']) {
    for (const id of ['resp_nope', '%00', '..%2F..%2Fetc', 'a'.repeat(3000), '%E0%A4%A']) {
      for (const url of [`/v1/responses/${id}/input_items${q}`, `/v1/responses/${id}${q}`, `/v1/models/${id}${q}`, `/v1/models/${id}/state`, `/v1/models/${id}/download${q}`, `/v1/models/chatml/download${q.replace('?', '?discard=')}`]) {
        for (const method of ['GET', 'DELETE', 'POST'] as const) {
          const res = await app.inject({ method, url });
          const f = finding(res);
          if (f) findings.push(`${method} ${url.slice(0, 80)}: ${f}`);
        }
      }
    }
  }
  t.same(findings, []);
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'the server still serves');
  t.equal((await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: user, max_tokens: 2 } })).statusCode, 200);
});

t.test('repeat_penalty 0 is refused: llama.cpp would divide logits by zero and a grammar no longer holds', async (t) => {
  // Seen: 19 of 60 json_object answers at repeat_penalty 0 failed inside the sampler ("empty grammar stack").
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: user, max_tokens: 8, response_format: { type: 'json_object' }, repeat_penalty: 0 } });
  t.equal(res.statusCode, 400);
  t.match(res.json().error, { param: 'repeat_penalty', code: 'parameter_out_of_range', message: /\[0\.01, 10\]/ });
  for (let i = 0; i < 20; i++) {
    const ok = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: user, max_tokens: 8, response_format: { type: 'json_object' }, repeat_penalty: 0.01 } });
    t.equal(ok.statusCode, 200, ok.statusCode === 200 ? 'the smallest penalty keeps the grammar' : ok.body);
  }
});

t.test('a JSON Schema nested deeper than 128 levels is a 400 naming it (1,000 levels overflowed the stack, a 500)', async (t) => {
  const chatError = async (extra: object) => {
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: user, max_tokens: 2, ...extra } });
    t.equal(res.statusCode, 400);
    return res.json().error;
  };
  let deep: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < 1000; i++) deep = { type: 'object', properties: { a: deep } };
  const rf = await chatError({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: deep } } });
  t.match(rf, { param: 'response_format.json_schema.schema', code: 'invalid_value', message: /schema is nested 2001 levels deep; at most 128 are taken/ });
  const tool = await chatError({ tools: [{ type: 'function', function: { name: 'f', parameters: deep } }] });
  t.match(tool, { param: 'tools[0].function.parameters', message: /parameters is nested 2001 levels deep/ });
  let ok: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < 63; i++) ok = { type: 'object', properties: { a: ok } };
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: user, max_tokens: 2, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: ok } } } });
  t.equal(res.statusCode, 200, '127 levels are taken');
});
