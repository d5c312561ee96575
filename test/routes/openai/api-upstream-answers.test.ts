import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, tempDir } from '../../helpers/app.ts';

// An api model's upstream that answers 200 with something other than an OpenAI answer (an HTML
// page, a proxy's JSON, a body cut short, an event that is not JSON) gives a 502
// `upstream_error` naming what was wrong: before this, most of these were 500 internal errors,
// and a streamed request to an upstream answering plain JSON came back as an empty answer.
const json = (body: string) => (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
};
const events = (body: string, cut = false) => (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (!cut) return void res.end(body);
  res.write(body);
  setTimeout(() => res.socket?.destroy(), 20);
};
const chunk = (delta: object) => `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
const upstreams: Record<string, (res: ServerResponse) => void> = {
  html: json('<html>hi'),
  empty: json(''),
  other: json('{"id":"x","object":"chat.completion"}'),
  nulls: json('{"choices":[null],"data":[null]}'),
  wrongtypes: json('{"choices":[{"message":{"content":{"x":1}},"text":5}],"data":[{"index":0,"embedding":"no"}]}'),
  fewer: json('{"data":[{"index":0,"embedding":[0.5]}]}'),
  badevent: events(`${chunk({ content: 'a' })}data: {nope\n\ndata: [DONE]\n\n`),
  oddevent: events(`${chunk({ content: 'a' })}${chunk({ content: 5 })}data: [DONE]\n\n`),
  errorevent: events(`${chunk({ content: 'a' })}data: {"error":{"message":"boom"}}\n\n`),
  cut: events(chunk({ content: 'a' }), true),
};
const upstream = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => upstreams[JSON.parse(body).model]!(res));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => upstream.close());
const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
const dir = await tempDir();
for (const m of Object.keys(upstreams)) {
  await mkdir(path.join(dir, m));
  await writeFile(path.join(dir, m, 'model.json'), JSON.stringify({ metadata: { engine: 'api', api: { base_url: base, model: m } } }));
}
const { app } = await buildTestApp(t, { modelsDir: dir });
const messages = [{ role: 'user', content: 'hi' }];
const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
const upstreamError = (model: string, said: RegExp) => ({ code: 'upstream_error', type: 'server_error', message: new RegExp(`^the upstream of api model '${model}/model' \\(${base.replace(/[.]/g, '\\.')}\\) ${said.source}`) });

t.test('a 200 that is not an OpenAI answer is a 502 naming what is wrong, on every route', async (t) => {
  const same = (r: RegExp): [RegExp, RegExp, RegExp] => [r, r, r];
  const cases: [string, RegExp, RegExp, RegExp][] = [
    // model, what chat says, what completions say, what embeddings say
    ['html', ...same(/answered with something this server cannot read: Unexpected token '<'/)],
    ['empty', ...same(/answered with something this server cannot read: Unexpected end of JSON input/)],
    ['other', /answered something that is not a chat completion: the answer must have required properties choices/, /answered something that is not a completion: the answer must have required properties choices/, /answered something that is not embeddings: the answer must have required properties data/],
    ['nulls', /answered something that is not a chat completion: choices\[0\] must be object/, /answered something that is not a completion: choices\[0\] must be object/, /answered something that is not embeddings: data\[0\] must be object/],
    ['wrongtypes', /answered something that is not a chat completion: choices\[0\]\.message\.content must be string/, /answered something that is not a completion: choices\[0\]\.text must be string/, /answered something that is not embeddings: data\[0\]\.embedding must be array/],
  ];
  for (const [model, chat, completion, embedding] of cases) {
    for (const [url, payload, said] of [
      ['/v1/chat/completions', { model, messages }, chat], ['/v1/responses', { model, input: 'hi' }, chat],
      ['/v1/messages', { model, messages, max_tokens: 4 }, chat],
      ['/v1/completions', { model, prompt: 'x' }, completion], ['/v1/embeddings', { model, input: 'x' }, embedding],
    ] as const) {
      const res = await post(url, payload);
      t.equal(res.statusCode, 502, `${model} ${url}`);
      t.match(res.json().error, upstreamError(model, said), `${model} ${url}`);
    }
  }
  const fewer = await post('/v1/embeddings', { model: 'fewer', input: ['a', 'b'] });
  t.equal(fewer.statusCode, 502);
  t.match(fewer.json().error, upstreamError('fewer', /answered 1 vectors \(indices 0\) for 2 inputs/));
});

t.test('a streamed request answered with plain JSON is a 502, not an empty answer', async (t) => {
  for (const [url, payload] of [['/v1/chat/completions', { model: 'other', messages, stream: true }], ['/api/chat', { model: 'other', messages }], ['/v1/completions', { model: 'html', prompt: 'x', stream: true }]] as const) {
    const res = await post(url, payload);
    t.equal(res.statusCode, 502, url);
    t.match(res.json().error, { code: 'upstream_error', message: /answered application\/json for a streamed request, not an event stream/ });
  }
});

t.test('a stream that goes wrong midway ends with the error, after what came before it', async (t) => {
  for (const [model, said] of [
    ['badevent', /answered with something this server cannot read: Expected property name/],
    ['oddevent', /answered something that is not a stream chunk: choices\[0\]\.delta\.content must be string/],
    ['errorevent', /reported an error: boom/],
    ['cut', /dropped the connection mid-answer/],
  ] as const) {
    const res = await post('/v1/chat/completions', { model, messages, stream: true });
    t.equal(res.statusCode, 200, model);
    const frames = res.body.split('\n\n').filter(Boolean).map((f) => JSON.parse(f.slice('data: '.length)));
    t.equal(frames.at(-2)?.choices?.[0]?.delta?.content, 'a', `${model}: the text before the failure was sent`);
    t.match(frames.at(-1).error, upstreamError(model, said), model);
    const ollama = await post('/api/chat', { model, messages });
    const lines = ollama.body.trim().split('\n').map((l) => JSON.parse(l));
    t.match(lines.at(-1).error, { code: 'upstream_error' }, `${model}: Ollama's stream ends with the error too`);
  }
  t.equal((await app.inject('/health')).statusCode, 200);
});
