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

t.test('a bad value names the setting, where it came from and what it accepts', async (t) => {
  t.throws(() => loadConfig({}, { MODELD_LOG_LEVEL: 'bogus' }), {
    message: 'invalid setting logLevel (MODELD_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, not "bogus"',
  });
  t.throws(() => loadConfig({}, { MODELD_PORT: '12abc' }), { message: 'invalid setting port (MODELD_PORT): must be an integer from 0 to 65535, not "12abc"' });
  t.throws(() => loadConfig({}, { MODELD_BODY_LIMIT: '10' }), { message: /bodyLimit \(MODELD_BODY_LIMIT\): must be an integer of at least 1024, not "10"$/ });
  // A misspelt boolean used to mean true (anything but 0/false/no/off did).
  for (const name of ['MODELD_JIT', 'MODELD_WATCH']) {
    t.throws(() => loadConfig({}, { [name]: 'flase' }), { message: new RegExp(`\\(${name}\\): must be true or false \\(or 1/0, yes/no, on/off\\), not "flase"$`) });
  }
  for (const [raw, jit] of [['TRUE', true], ['1', true], ['yes', true], ['On', true], ['False', false], ['0', false], ['no', false], ['OFF', false]] as const) {
    t.equal(loadConfig({}, { MODELD_JIT: raw }).jit, jit, raw);
  }
});

t.test('command-line flags: raw text coerced like the environment, beating it, and named in errors', async (t) => {
  const port = (value: string) => ({ port: { flag: '-p, --port', value } });
  t.equal(loadConfig({}, { MODELD_PORT: '80' }, port('8080')).port, 8080);
  t.equal(loadConfig({ port: 9 }, {}, port('8080')).port, 9, 'an explicit override beats a flag');
  t.throws(() => loadConfig({}, { MODELD_PORT: '80' }, port('abc')), { message: 'invalid setting port (-p, --port): must be an integer from 0 to 65535, not "abc"' });
  t.throws(() => loadConfig({}, {}, port('')), { message: 'invalid setting port (-p, --port): must be an integer from 0 to 65535, not ""' }, "'' is no port 0");
  t.equal(loadConfig({}, { MODELD_JIT: 'false' }, { jit: { flag: '--jit', value: true } }).jit, true);
  t.throws(() => loadConfig({}, {}, { keepAlive: { flag: '--keep-alive', value: 'soon' } }), { message: /^invalid setting keepAlive \(--keep-alive\): invalid duration "soon"/ });
});
