import net from 'node:net';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { listCommand } from '../../src/cli/ls.ts';
import { loadConfig } from '../../src/config/config.ts';
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
