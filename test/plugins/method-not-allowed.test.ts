import t from 'tap';
import { buildTestApp } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';

// A wrong method on a path that exists is a 405 with `Allow` (what HTTP clients and users of
// Ollama or llama-server expect), in the OpenAI envelope; a path no route has stays a 404.

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

t.test('a wrong method on an existing route is 405 naming the method, the path and the allowed methods', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  const cases: Array<[Method, string, string]> = [
    ['GET', '/v1/chat/completions', 'POST, OPTIONS'],
    ['DELETE', '/v1/completions', 'POST, OPTIONS'],
    ['GET', '/v1/embeddings', 'POST, OPTIONS'],
    ['GET', '/v1/classifications', 'POST, OPTIONS'],
    ['PUT', '/v1/models', 'GET, HEAD, POST, OPTIONS'],
    ['POST', '/health', 'GET, HEAD, OPTIONS'],
    ['DELETE', '/v1/status', 'GET, HEAD, PUT, OPTIONS'],
    ['PATCH', '/v1/models', 'GET, HEAD, POST, OPTIONS'],
  ];
  for (const [method, url, allow] of cases) {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 405, `${method} ${url}`);
    t.equal(res.headers.allow, allow, `${method} ${url}`);
    t.match(res.headers['content-type'], /application\/json/);
    t.same(res.json(), {
      error: {
        message: `method ${method} is not allowed on ${url}; it accepts ${allow}`,
        type: 'invalid_request_error',
        param: null,
        code: 'method_not_allowed',
      },
    });
  }
});

t.test('routes with a model id: encoded, raw slash, folder alias and a 1,000-character id', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  const allow = async (method: Method, url: string) => {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 405, `${method} ${url}`);
    return res.headers.allow;
  };
  t.equal(await allow('POST', '/v1/models/llama2%2Fmodel'), 'GET, HEAD, DELETE, OPTIONS');
  t.equal(await allow('POST', '/v1/models/llama2/model'), 'GET, HEAD, DELETE, OPTIONS');
  t.equal(await allow('PUT', '/v1/models/llama2'), 'GET, HEAD, DELETE, OPTIONS');
  t.equal(await allow('GET', '/v1/models/llama2/model/start'), 'POST, PUT, OPTIONS');
  t.equal(await allow('DELETE', '/v1/models/llama2/model/state'), 'GET, HEAD, OPTIONS');
  t.equal(await allow('PUT', '/v1/models/llama2/model/download'), 'POST, DELETE, OPTIONS');
  // Two segments are also a raw-slash id (`GET /v1/models/:folder/:file`): GET is allowed there.
  t.equal(await allow('PUT', '/v1/models/x/download'), 'GET, HEAD, POST, DELETE, OPTIONS');
  // Fastify's maxParamLength (4000 here, 100 by default) applies to the 405 check too.
  t.equal(await allow('POST', `/v1/models/${'a%2F'.repeat(250)}`), 'GET, HEAD, DELETE, OPTIONS');
  t.equal(await allow('POST', '/docs/static/index.css'), 'GET, HEAD, OPTIONS', 'wildcard routes count');
  // An encoded id and a segment: the per-model route's methods, not the raw-slash route's.
  t.equal(await allow('GET', '/v1/models/llama2%2Fmodel/start'), 'POST, PUT, OPTIONS');
  t.equal(await allow('DELETE', '/v1/models/llama2%2Fmodel/stop'), 'POST, PUT, OPTIONS');
  t.equal(await allow('DELETE', '/v1/models/llama2%2Fmodel/state'), 'GET, HEAD, OPTIONS');
  t.equal(await allow('PATCH', '/v1/models/llama2%2Fmodel/download'), 'POST, DELETE, OPTIONS');
  const unknown = await app.inject({ method: 'GET', url: '/v1/models/llama2%2Fmodel/bogus' });
  t.equal(unknown.statusCode, 404, 'an encoded id and a segment no route has');
  t.equal(unknown.json().error.code, 'route_not_found');
  // A plugin's root answers with and without its trailing slash.
  t.equal(await allow('POST', '/docs/'), 'GET, HEAD, OPTIONS');
  const q = await app.inject({ method: 'GET', url: '/v1/chat/completions?stream=true' });
  t.equal(q.statusCode, 405);
  t.match(q.json().error.message, /on \/v1\/chat\/completions; /, 'the path without its query');
});

t.test('paths no route has stay 404 route_not_found', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  for (const [method, url] of [
    ['GET', '/v1/nothing'],
    ['POST', '/v1/chat'],
    ['GET', '/v1/chat/completions/'],
    ['POST', '/V1/CHAT/COMPLETIONS'],
    ['GET', '/v1/models/a/b/c/d'],
    ['OPTIONS', '/v1/nothing'],
  ] as Array<[Method, string]>) {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 404, `${method} ${url}`);
    t.equal(res.json().error.code, 'route_not_found');
    t.notOk(res.headers.allow);
  }
  const bad = await app.inject({ method: 'PATCH', url: '/v1/%' });
  t.equal(bad.statusCode, 400, 'a malformed URL is still the framework error');
  t.equal(bad.json().error.code, 'invalid_request');
});

t.test('HEAD: served where GET is, 405 elsewhere', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  t.equal((await app.inject({ method: 'HEAD', url: '/v1/models' })).statusCode, 200);
  const head = await app.inject({ method: 'HEAD', url: '/v1/chat/completions' });
  t.equal(head.statusCode, 405);
  t.equal(head.headers.allow, 'POST, OPTIONS');
});

t.test('CORS off: OPTIONS on an existing path answers 204 with Allow', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });
  const res = await app.inject({ method: 'OPTIONS', url: '/v1/models/llama2%2Fmodel' });
  t.equal(res.statusCode, 204);
  t.equal(res.headers.allow, 'GET, HEAD, DELETE, OPTIONS');
  t.equal(res.body, '');
  t.notOk(res.headers['access-control-allow-origin'], 'no CORS without CORS configured');
});

t.test('CORS on: preflights keep their 204; a wrong method is a 405 the page can read', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()], config: { corsOrigins: ['*'] } });
  for (const url of ['/v1/chat/completions', '/v1/models/x/start', '/v1/nothing']) {
    const pre = await app.inject({
      method: 'OPTIONS', url,
      headers: { origin: 'http://x.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    t.equal(pre.statusCode, 204, `preflight ${url}`);
    t.equal(pre.headers['access-control-allow-origin'], 'http://x.test');
  }
  const wrong = await app.inject({ method: 'GET', url: '/v1/chat/completions', headers: { origin: 'http://x.test' } });
  t.equal(wrong.statusCode, 405);
  t.equal(wrong.headers.allow, 'POST, OPTIONS');
  t.equal(wrong.headers['access-control-allow-origin'], 'http://x.test');
  const missing = await app.inject({ method: 'GET', url: '/v1/nothing', headers: { origin: 'http://x.test' } });
  t.equal(missing.statusCode, 404, "CORS's OPTIONS catch-all does not make every path exist");
});

t.test('with API keys a wrong method without a key is 401, as an unknown path is', async (t) => {
  const { app } = await buildTestApp(t, { engines: [new FakeEngine()], config: { apiKeys: ['k1'] } });
  t.equal((await app.inject({ method: 'GET', url: '/v1/chat/completions' })).statusCode, 401);
  const keyed = await app.inject({ method: 'GET', url: '/v1/chat/completions', headers: { authorization: 'Bearer k1' } });
  t.equal(keyed.statusCode, 405);
  t.equal(keyed.json().error.code, 'method_not_allowed');
});
