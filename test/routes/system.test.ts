import net from 'node:net';
import t from 'tap';
import { buildTestApp } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';

t.test('health, status and maintenance mode', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  t.same((await app.inject('/health')).json(), { status: 'ok' });
  const st = (await app.inject('/v1/status')).json();
  t.equal(st.status, 'sleeping');
  t.equal(st.dev_mode, false);
  t.same(st.models_running, []);
  t.type(st.uptime_s, 'number');
  const put = await app.inject({ method: 'PUT', url: '/v1/status', payload: { dev_mode: true } });
  t.equal(put.json().dev_mode, true);
  t.equal(app.manager.maintenance, true);
  const extra = await app.inject({ method: 'PUT', url: '/v1/status', payload: { dev_mode: false, other: 1 } });
  t.equal(extra.statusCode, 400);
  t.equal(extra.json().error.code, 'unknown_parameter');
});

t.test('engines list every known engine with descriptors in the seed form', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  const res = await app.inject('/v1/engines');
  t.equal(res.statusCode, 200);
  const data = res.json().data as Array<{ name: string; available: boolean; parameters: Array<Record<string, unknown>> }>;
  t.same(data.map((e) => e.name), ['llamacpp', 'onnx', 'api', 'tensorrt']);
  const llama = data[0]!;
  t.equal(llama.available, true);
  const ctx = llama.parameters.find((p) => p.name === 'ctx_len')!;
  t.match(ctx, { name: 'ctx_len', default: 512, min_value: 16, max_value: 4096, increment: 16, description: String });
  t.ok(llama.parameters.find((p) => p.name === 'keep_alive'), 'common descriptors included');
  t.equal(data[3]!.available, false);
});

t.test('metrics, Swagger UI and the OpenAPI document', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  await app.inject('/health');
  const m = await app.inject('/metrics');
  t.equal(m.statusCode, 200);
  t.match(m.headers['content-type'], /text\/plain/);
  t.match(m.body, /modeld_http_requests_total\{method="GET",route="\/health",status="200"\} 1/);
  const docs = await app.inject('/docs/');
  t.equal(docs.statusCode, 200);
  t.match(docs.body, /swagger/i);
  const doc = (await app.inject('/openapi.json')).json();
  t.equal(doc.openapi, '3.1.0');
  t.same(doc.servers, [{ url: '/' }], 'relative: "Try it out" goes to the server that served the page');
  for (const p of ['/v1/models', '/v1/models/{id}', '/v1/models/{id}/state', '/v1/models/{id}/metadata', '/v1/models/{id}/start', '/v1/models/{id}/stop', '/health', '/v1/status', '/v1/engines', '/metrics']) {
    t.ok(doc.paths[p], `documents ${p}`);
  }
  t.ok(doc.components.schemas.Model);
  t.ok(doc.components.schemas.Error);
});

t.test('API keys: every route but /health and the docs needs a bearer key, 401 in the envelope', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()], config: { apiKeys: ['k1', 'second-key'] } });
  t.equal((await app.inject('/health')).statusCode, 200);
  const none = await app.inject('/v1/models');
  t.equal(none.statusCode, 401);
  t.same(none.json().error.type, 'authentication_error');
  t.same(none.json().error.code, 'invalid_api_key');
  t.equal((await app.inject({ url: '/v1/models', headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
  t.equal((await app.inject({ url: '/v1/models', headers: { authorization: 'Bearer k1' } })).statusCode, 200);
  t.equal((await app.inject({ url: '/v1/models', headers: { authorization: 'Bearer second-key' } })).statusCode, 200);
  t.equal((await app.inject({ url: '/v1/models', headers: { 'x-api-key': 'k1' } })).statusCode, 200, "x-api-key, as Anthropic's SDK sends the key");
  t.equal((await app.inject({ url: '/v1/models', headers: { 'x-api-key': 'wrong' } })).statusCode, 401);
  t.equal((await app.inject({ url: '/docs/', headers: {} })).statusCode, 200, 'Swagger UI opens without a key');
  t.equal((await app.inject('/openapi.json')).statusCode, 200);
  t.equal((await app.inject('/v1/health')).statusCode, 200, 'llama-server\'s health path, open too');
  const root = await app.inject('/');
  t.equal(root.statusCode, 200, 'Ollama\'s heartbeat is open, as Ollama has no key');
  t.equal(root.body, 'Ollama is running', 'the exact text Ollama\'s clients look for');
  t.match(root.headers['content-type'], /^text\/plain/);
  t.equal((await app.inject({ method: 'HEAD', url: '/' })).statusCode, 200, 'the ollama CLI\'s heartbeat');
  t.equal((await app.inject('/?x=1')).statusCode, 200);
  t.equal((await app.inject('/api/tags')).statusCode, 401, 'the rest of Ollama\'s API keeps the key');
  t.equal((await app.inject('/docsx')).statusCode, 401);
});

t.test('CORS with API keys: preflights pass without a key, a 401 carries the CORS headers, PUT and DELETE allowed', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()], config: { apiKeys: ['k1'], corsOrigins: ['*'] } });
  const pre = await app.inject({
    method: 'OPTIONS', url: '/v1/models/x',
    headers: { origin: 'http://x.test', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization, content-type' },
  });
  t.equal(pre.statusCode, 204);
  t.equal(pre.headers['access-control-allow-origin'], 'http://x.test');
  t.match(pre.headers['access-control-allow-methods'], /PUT/);
  t.match(pre.headers['access-control-allow-methods'], /DELETE/);
  const denied = await app.inject({ url: '/v1/models', headers: { origin: 'http://x.test' } });
  t.equal(denied.statusCode, 401);
  t.equal(denied.headers['access-control-allow-origin'], 'http://x.test', 'the page can read why');
});

t.test('CORS is off by default and on when configured', async (t) => {
  const off = await buildTestApp(t, { engines: [new FakeEngine()] });
  const a = await off.app.inject({ url: '/health', headers: { origin: 'http://x.test' } });
  t.notOk(a.headers['access-control-allow-origin']);
  const on = await buildTestApp(t, { engines: [new FakeEngine()], config: { corsOrigins: ['http://x.test'] } });
  const b = await on.app.inject({ url: '/health', headers: { origin: 'http://x.test' } });
  t.equal(b.headers['access-control-allow-origin'], 'http://x.test');
});

t.test('framework and HTTP-parser errors use the OpenAI envelope too', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  const raw = (request: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => socket.end(request));
      let out = '';
      socket.on('data', (d) => (out += d));
      socket.on('end', () => resolve(out));
      socket.on('error', reject);
    });
  const envelope = (response: string) => JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
  const bad = await raw('GET /v1/% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(bad, /^HTTP\/1\.1 400/);
  t.match(envelope(bad).error, { code: 'invalid_request', message: /URL is not valid/ });
  const big = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.match(big, /^HTTP\/1\.1 431/);
  t.equal(envelope(big).error.code, 'headers_too_large');
  const forbidden = await raw('GET /docs/static/../../package.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.notMatch(forbidden, /"name":\s*"modeld"/, 'no file outside the static folder');
  t.match(forbidden, /^HTTP\/1\.1 (403|404)/);
  t.match(envelope(forbidden).error.code, /^(forbidden|route_not_found)$/);
  const text = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'text/plain' }, payload: '{"model":"m"}' });
  t.equal(text.statusCode, 415);
  t.equal(text.json().error.code, 'unsupported_media_type');
  const proto = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: '{"model":"m","__proto__":{"x":1}}' });
  t.equal(proto.statusCode, 400);
  t.match(proto.json().error.message, /__proto__/);
  const broken = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: '{"model": }' });
  t.equal(broken.json().error.code, 'invalid_json');
  t.match(broken.json().error.message, /position 10|Unexpected token/, 'says where the JSON breaks');
  const empty = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: '' });
  t.equal(empty.statusCode, 400, 'an empty body is no body: a route that needs one says so');
  t.match(empty.json().error, { code: 'invalid_type', message: /body must be object/ });
  const bodiless = await app.inject({ method: 'DELETE', url: '/v1/models/nope', headers: { 'content-type': 'application/json' }, payload: '' });
  t.equal(bodiless.json().error.code, 'model_not_found', 'a DELETE with the header and no body reaches its route');
});
