import t from 'tap';
import { loadConfig, parseDuration } from '../src/config/config.ts';

t.test('defaults, environment and overrides', async (t) => {
  const c = loadConfig({}, {});
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, 1337);
  t.ok(Object.isFrozen(c));
  const e = loadConfig({ port: 9 }, { MODELD_PORT: '8080', MODELD_API_KEY: 'a, b', MODELD_JIT: 'false', HF_ENDPOINT: 'http://127.0.0.1:1' });
  t.equal(e.port, 9, 'explicit beats environment');
  t.same(e.apiKeys, ['a', 'b']);
  t.equal(e.jit, false);
  t.equal(e.hfEndpoint, 'http://127.0.0.1:1');
  t.throws(() => loadConfig({}, { MODELD_PORT: 'abc' }), /port \(MODELD_PORT\)/);
});

t.test('Ollama-style durations', async (t) => {
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('0'), 0);
  t.equal(parseDuration('-1'), -1);
  t.equal(parseDuration(10), 10_000);
  t.equal(parseDuration(-5), -1);
  t.throws(() => parseDuration('soon'));
  // A bad keep-alive is a start-up error, not a 500 on every model start later.
  t.throws(() => loadConfig({ keepAlive: 'banana' }, {}), { message: /keepAlive.*MODELD_KEEP_ALIVE.*invalid duration "banana"/ });
  t.throws(() => loadConfig({}, { MODELD_KEEP_ALIVE: 'soon' }), { message: /invalid duration "soon"/ });
});
