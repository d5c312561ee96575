import net from 'node:net';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { listCommand } from '../../src/cli/ls.ts';
import { buildProgram } from '../../src/cli/program.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { buildTestApp, tempDir } from '../helpers/app.ts';
import { captureCli } from '../helpers/cli.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

const bin = path.resolve(import.meta.dirname, '../../bin/modeld.cjs');
const run = promisify(execFile);
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELD_')));

async function folder() {
  const dir = await tempDir();
  await mkdir(path.join(dir, 'tiny'));
  writeTinyLlamaGguf(path.join(dir, 'tiny/tiny.gguf'));
  await writeFile(path.join(dir, 'tiny/model.json'), JSON.stringify({ name: 'Tiny' }));
  await mkdir(path.join(dir, 'remote'));
  await writeFile(path.join(dir, 'remote/model.json'), JSON.stringify({ source_url: 'https://huggingface.co/O/R/resolve/main/r.gguf' }));
  return dir;
}

t.test('modeld ls reads the folder when no server answers', async (t) => {
  const dir = await folder();
  const { stdout } = await run(process.execPath, [bin, 'ls', '-m', dir, '-p', '1'], { env: cleanEnv });
  t.match(stdout, /│ id\s+│ name\s+│ engine\s+│ task\s+│ state/);
  t.match(stdout, /tiny\/model\s+│ Tiny\s+│ llamacpp/);
  t.match(stdout, /remote\/model.+not-downloaded/);
  t.match(stdout, new RegExp(`2 models from ${dir.replaceAll('/', '\\/')}`));
  const json = JSON.parse((await run(process.execPath, [bin, 'ls', '--json', '-m', dir, '-p', '1'], { env: cleanEnv })).stdout);
  t.same(json.map((r: { id: string; state: string }) => [r.id, r.state]), [['remote/model', 'not-downloaded'], ['tiny/model', 'stopped']]);
});

t.test('modeld ls prints the same rows with and without a server: names, and full Model objects with --json', async (t) => {
  const dir = await folder();
  await mkdir(path.join(dir, 'broken'));
  await writeFile(path.join(dir, 'broken/model.json'), JSON.stringify({ name: 5, parameters: 'x' }));
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const ls = (json: boolean, p: number) => captureCli(() => listCommand(loadConfig({ modelsDir: dir, port: p }, {}), { json }));

  const online = await ls(true, port);
  const offline = await ls(true, 1);
  t.equal(offline.code, 0);
  const served = JSON.parse(online.stdout) as Array<Record<string, unknown>>;
  t.same(served.map((m) => m.id), ['broken/model', 'remote/model', 'tiny/model']);
  t.same(JSON.parse(offline.stdout), served, 'the folder gives the Model objects the server gives');
  t.match(served.find((m) => m.id === 'remote/model'), { name: 'r', object: 'model', owned_by: 'O', source_url: 'https://huggingface.co/O/R/resolve/main/r.gguf' });

  const table = await ls(false, 1);
  t.match(table.stdout, /remote\/model\s+│ r\s+│ llamacpp/, 'the name column shows what the server shows');
  t.match(table.stdout, /broken\/model\s+│ model\s+│/);
  t.match(table.stdout, new RegExp(`3 models from ${dir.replaceAll('/', '\\/')}`));
  t.match((await ls(false, port)).stdout, /remote\/model\s+│ r\s+│ llamacpp/);
});

t.test('modeld ls of a missing folder without a server creates nothing and says so', async (t) => {
  const parent = await tempDir();
  t.teardown(() => rm(parent, { recursive: true, force: true }));
  const missing = path.join(parent, 'no', 'models');
  const res = await captureCli(() => listCommand(loadConfig({ modelsDir: missing, port: 1 }, {}), { json: false }));
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(`the models folder ${missing.replaceAll('/', '\\/')} does not exist`));
  t.notOk(existsSync(path.join(parent, 'no')), 'no folder created');
});

t.test('modeld serve listens, answers, and modeld ls asks it; SIGTERM closes cleanly', async (t) => {
  const dir = await folder();
  const child = spawn(process.execPath, [bin, 'serve', '-m', dir, '-p', '0', '--log-level', 'info'], { env: cleanEnv });
  t.teardown(() => child.kill('SIGKILL'));
  const address = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
  const health = await fetch(`${address}/health`);
  t.same(await health.json(), { status: 'ok' });
  const port = new URL(address).port;
  const { stdout } = await run(process.execPath, [bin, 'ls', '-p', port, '-m', '/nonexistent'], { env: cleanEnv });
  t.match(stdout, new RegExp(`2 models from ${address.replaceAll('/', '\\/')}`), 'read from the server, not the folder');
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});

t.test('the modeld command runs with one libuv pool thread unless UV_THREADPOOL_SIZE says otherwise', { skip: !existsSync('/proc/self/status') && 'needs /proc' }, async (t) => {
  // One pool thread keeps every llama.cpp decode on one OpenMP team (docs/cpu-batching.md §4).
  // The pool is started by the time the server listens (the registry scan reads files through it).
  const threadsOf = async (env: NodeJS.ProcessEnv): Promise<number> => {
    const dir = await tempDir();
    // tap puts an ES-module preload into every child's NODE_OPTIONS, which would start the pool
    // before the command's first line (a user's own NODE_OPTIONS=--import would too): drop it.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, bin, 'serve', '-m', dir, '-p', '0', '--log-level', 'info'], { env: { ...cleanEnv, MODELD_WATCH: 'false', ...env } });
    try {
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('Server listening at')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${buf}`)));
      });
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      return Number(/Threads:\s+(\d+)/.exec(status)![1]);
    } finally {
      child.kill('SIGKILL');
    }
  };
  const one = await threadsOf({ UV_THREADPOOL_SIZE: undefined });
  const four = await threadsOf({ UV_THREADPOOL_SIZE: '4' });
  t.equal(four - one, 3, `libuv's default pool of 4 would add 3 threads (${one} vs ${four})`);
});

t.test('bad settings exit 2 with the setting named', async (t) => {
  const err = await run(process.execPath, [bin, 'ls', '-m', '/tmp'], { env: { ...cleanEnv, MODELD_PORT: 'x' } }).catch((e) => e);
  t.equal(err.code, 2);
  t.match(err.stderr, /MODELD_PORT/);
  const ka = await run(process.execPath, [bin, 'serve', '-m', '/tmp', '--keep-alive', 'banana'], { env: cleanEnv }).catch((e) => e);
  t.equal(ka.code, 2);
  t.match(ka.stderr, /invalid duration "banana"/);
});

t.test('serve on a port in use, or on a models path that is a file, exits 1 with one line', async (t) => {
  const blocker = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  t.teardown(() => blocker.close());
  const port = String((blocker.address() as net.AddressInfo).port);
  const dir = await folder();
  const busy = await run(process.execPath, [bin, 'serve', '-m', dir, '-p', port, '-l', 'silent'], { env: cleanEnv, timeout: 60_000 }).catch((e) => e);
  t.equal(busy.code, 1);
  t.match(busy.stderr, new RegExp(`modeld: cannot serve: 127\\.0\\.0\\.1:${port} is already in use`));
  t.notMatch(busy.stderr, /\n\s+at /, 'no stack trace');
  const file = path.join(dir, 'not-a-folder');
  await writeFile(file, 'x');
  const notDir = await run(process.execPath, [bin, 'serve', '-m', file, '-p', '0', '-l', 'silent'], { env: cleanEnv, timeout: 60_000 }).catch((e) => e);
  t.equal(notDir.code, 1);
  t.match(notDir.stderr, /^modeld: cannot serve: /);
});

t.test('modeld ls against a server that wants a key says so in one line', async (t) => {
  const { app } = await buildTestApp(t, { engines: [], config: { apiKeys: ['k'] } });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  const r = await captureCli(() => listCommand(loadConfig({ port: Number(url.port), modelsDir: '/nonexistent' }, {}), { json: false }));
  t.equal(r.code, 1);
  t.match(r.stderr, /^modeld: ls: .*API key/);
  t.notMatch(r.stderr, /\n\s+at /);
});

t.test('help pages: serve binds, the client commands name the server they talk to; each shows its default and variable', async (t) => {
  const help = async (cmd: string) => (await run(process.execPath, [bin, cmd, '--help'], { env: cleanEnv })).stdout.replace(/\s+/g, ' ');
  const [serve, ls, pull, rm] = await Promise.all(['serve', 'ls', 'pull', 'rm'].map(help));
  t.match(serve, /--host <host> interface to bind \(default 127\.0\.0\.1, env MODELD_HOST\)/);
  t.match(serve, /-p, --port <port> port to listen on \(default 1337, env MODELD_PORT\)/);
  t.match(serve, /-m, --models-dir <dir> models folder \(default \.\/models, env MODELD_MODELS_DIR\)/);
  t.match(serve, /-l, --log-level <level> log level \(default info, env MODELD_LOG_LEVEL\)/);
  t.match(serve, /--keep-alive <duration> .*\(default 5m, env MODELD_KEEP_ALIVE\)/);
  t.match(serve, /--no-jit .*\(default: load it, env MODELD_JIT=false\)/);
  for (const [name, page] of [['ls', ls], ['pull', pull], ['rm', rm]] as const) {
    t.notMatch(page, /interface to bind/, `${name} binds nothing`);
    t.match(page, /--host <host> host of the modeld server to talk to \(default 127\.0\.0\.1, env MODELD_HOST\)/, name);
    t.match(page, /-p, --port <port> port of the modeld server to talk to \(default 1337, env MODELD_PORT\)/, name);
  }
  t.match(ls, /-m, --models-dir <dir> models folder to read when no server answers \(default \.\/models, env MODELD_MODELS_DIR\)/);
  t.notMatch(pull, /--models-dir/, 'the server, not the CLI, decides where a pull lands');
});

t.test('MODELD_PORT applies when no -p is given, and -p wins over it', async (t) => {
  const dir = await folder();
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [] });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  const env = { ...cleanEnv, MODELD_PORT: url.port };
  const [fromEnv, fromFlag] = await Promise.all([
    run(process.execPath, [bin, 'ls', '-m', '/nonexistent'], { env }),
    run(process.execPath, [bin, 'ls', '-m', dir, '-p', '1'], { env }),
  ]);
  t.match(fromEnv.stdout, new RegExp(`2 models from http://127\\.0\\.0\\.1:${url.port}`));
  t.match(fromFlag.stdout, new RegExp(`2 models from ${dir.replaceAll('/', '\\/')}`));
});

t.test('environment settings apply to serve unless a flag is given: --no-jit, -p and the rest carry no default of their own', async (t) => {
  const configs = async (argv: string[], env: NodeJS.ProcessEnv): Promise<Config> => {
    let got: Config | undefined;
    const stub = async () => 0;
    const program = buildProgram({ serve: async (c) => void (got = c), ls: stub, pull: stub, control: stub, copy: stub }, env);
    // A usage error throws here instead of ending the test process.
    for (const c of [program, ...program.commands]) c.exitOverride();
    await program.parseAsync(['serve', ...argv], { from: 'user' });
    return got!;
  };
  const env = { MODELD_JIT: 'false', MODELD_PORT: '4242', MODELD_HOST: '0.0.0.0', MODELD_KEEP_ALIVE: '1h', MODELD_LOG_LEVEL: 'warn' };
  t.match(await configs([], env), { jit: false, port: 4242, host: '0.0.0.0', keepAlive: '1h', logLevel: 'warn' });
  t.match(await configs(['-p', '5', '--host', '::1', '--keep-alive', '0', '-l', 'error'], env), { jit: false, port: 5, host: '::1', keepAlive: '0', logLevel: 'error' });
  t.match(await configs(['--no-jit'], {}), { jit: false, port: 1337, host: '127.0.0.1', keepAlive: '5m', logLevel: 'info' });
  t.match(await configs([], {}), { jit: true });
  t.match(await configs(['--jit'], env), { jit: true }, '--jit overrides MODELD_JIT=false');
  t.match(await configs(['--jit', '--no-jit'], {}), { jit: false }, 'the last of the two wins');

  const help = buildProgram({ serve: async () => {}, ls: async () => 0, pull: async () => 0, control: async () => 0, copy: async () => 0 }, env)
    .commands.find((c) => c.name() === 'serve')!.helpInformation().replace(/\s+/g, ' ');
  t.match(help, /port to listen on \(default 1337, env MODELD_PORT=4242\)/, 'help shows the value that applies');
  t.match(help, /env MODELD_JIT=false; set to false\)/);
  t.match(help, /--jit load a stopped model on its first request, whatever MODELD_JIT says/);
});

t.test('usage errors and bad settings are one line naming the flag or variable, without the help page', async (t) => {
  const fails = async (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await run(process.execPath, [bin, ...argv], { env: { ...cleanEnv, ...env }, timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    return { code: r.code, stderr: r.stderr, argv: argv.join(' ') };
  };
  const results = await Promise.all([
    fails(['serve', '-l', 'bogus']),
    fails(['pull', '--bogus', 'x']),
    fails(['serve', '--hots', 'x']),
    fails(['pull']),
    fails(['frobnicate']),
    fails(['ls', '-p', 'abc']),
    fails(['ls', '-p', '']),
    fails(['serve', '-m', '/nonexistent'], { MODELD_JIT: 'flase' }),
    fails(['serve', '-m', '/nonexistent'], { MODELD_LOG_LEVEL: 'bogus' }),
  ]);
  const expected = [
    [1, `modeld: option '-l, --log-level <level>' argument 'bogus' is invalid. Allowed choices are fatal, error, warn, info, debug, trace, silent (see modeld serve --help)`],
    [1, `modeld: unknown option '--bogus' (see modeld pull --help)`],
    [1, `modeld: unknown option '--hots'; did you mean --host? (see modeld serve --help)`],
    [1, `modeld: missing required argument 'model' (see modeld pull --help)`],
    [1, `modeld: unknown command 'frobnicate' (see modeld --help)`],
    [2, 'modeld: invalid setting port (-p, --port): must be an integer from 0 to 65535, not "abc"'],
    [2, 'modeld: invalid setting port (-p, --port): must be an integer from 0 to 65535, not ""'],
    [2, 'modeld: invalid setting jit (MODELD_JIT): must be true or false (or 1/0, yes/no, on/off), not "flase"'],
    [2, 'modeld: invalid setting logLevel (MODELD_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, not "bogus"'],
  ] as const;
  results.forEach((r, i) => {
    t.equal(r.code, expected[i]![0], `${r.argv}: exit code`);
    t.equal(r.stderr, `${expected[i]![1]}\n`, `${r.argv}: one line`);
  });
});
