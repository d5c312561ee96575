import t from 'tap';
import { buildTestApp } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';

// Which of ajv's errors a client sees: unions (nullable fields, string-or-array, tagged objects)
// report one error per branch, and the message must name the one that applies.
const { app } = await buildTestApp(t, { engines: [new FakeEngine()] });

async function error(url: string, payload: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url, payload });
  t.equal(res.statusCode, 400, JSON.stringify(payload));
  return (res.json() as { error: { message: string; param: string; code: string } }).error;
}

const chat = (extra: Record<string, unknown>) => error('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });

t.test('a nullable field names its real type, not null', async (t) => {
  t.match(await chat({ max_tokens: '5' }), { param: 'max_tokens', code: 'invalid_type', message: /must be integer/ });
  t.match(await chat({ max_tokens: 2.5 }), { param: 'max_tokens', message: /must be integer/ });
  t.match(await chat({ temperature: 'hot' }), { param: 'temperature', message: /must be number/ });
  t.match(await chat({ stream: 'yes' }), { param: 'stream', message: /must be boolean/ });
  t.notMatch((await chat({ max_tokens: '5' })).message, /null/);
});

t.test('a bound inside a union is named; alternatives are listed', async (t) => {
  t.match(await chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), { param: 'stop', code: 'invalid_value', message: /more than 4 items/ });
  t.match(await chat({ stop: 5 }), { param: 'stop', message: /must be string or array/ });
  const rf = await chat({ response_format: { type: 'xml' } });
  t.equal(rf.param, 'response_format.type');
  t.match(rf.message, /must be one of \["text","json_object","json_schema"\]/);
});

t.test('an object where a union expects one names its missing or unknown field', async (t) => {
  const e = await error('/v1/classifications', { model: 'm', input: { img: 'x' } });
  t.match(e.message, /input\.(image|img)/);
  t.notMatch(e.message, /must be array/);
});
