import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../../src/app.ts';
import { controlCommand, copyCommand } from '../../src/cli/control.ts';
import { listCommand } from '../../src/cli/ls.ts';
import { pullCommand, type PullOptions } from '../../src/cli/pull.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { partPathOf } from '../../src/downloads/part-files.ts';
import { tempDir, temporaryHome, until } from '../helpers/app.ts';
import { captureCli } from '../helpers/cli.ts';
import { startFakeHub } from '../helpers/fake-hub.ts';
import { startFileServer } from '../helpers/file-server.ts';
import { ggufBytes, sha256 } from '../helpers/gguf-bytes.ts';

const bin = path.resolve(import.meta.dirname, '../../bin/modeld.cjs');
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELD_') && !k.startsWith('HF_')));
type Teardown = { teardown(fn: () => unknown): void };

/** A listening modeld in this process; returns the config a CLI command uses to reach it. */
async function serve(t: Teardown, modelsDir: string, hubUrl: string): Promise<{ app: FastifyInstance; config: Config }> {
  const config = loadConfig({ modelsDir, port: 0, logLevel: 'silent', watch: false, hfEndpoint: hubUrl }, {});
  const app = await buildApp({ config, engines: [], logger: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  return { app, config: loadConfig({ port, modelsDir, hfEndpoint: hubUrl }, {}) };
}

/** `modeld serve` as a real process (for kill -9); resolves with its port once it listens. */
async function spawnServe(t: Teardown, modelsDir: string, env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [bin, 'serve', '-m', modelsDir, '-p', '0', '--log-level', 'info'], { env: { ...baseEnv, ...env } });
  t.teardown(() => child.kill('SIGKILL'));
  const address = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`modeld serve exited ${code}: ${buf}`)));
  });
  return { child, port: Number(new URL(address).port) };
}

const pull = (config: Config, target: string, opts: PullOptions = {}) => captureCli(() => pullCommand(config, target, opts));

const stateAt = (port: number, id: string) => () => fetch(`http://127.0.0.1:${port}/v1/models/${id}/state`).then((r) => r.json() as Promise<any>);

const Q = { Q2_K: 10, Q4_K_M: 15, Q8_0: 7 } as const;

async function hubWithRepo(t: Teardown) {
  const files: Record<string, Buffer> = {};
  for (const [q, ft] of Object.entries(Q)) files[`tiny.${q}.gguf`] = ggufBytes({ fileType: ft, payloadBytes: 400_000 });
  const hub = await startFakeHub({ 'acme/tiny-GGUF': { files } });
  for (const [p, body] of Object.entries(files)) hub.files.set(`/acme/tiny-GGUF/resolve/main/${p}`, { body, throttle: 2_000_000 });
  t.teardown(() => hub.close());
  return { hub, files };
}

t.test('modeld pull: org/repo, a direct URL and a local path; rm, start and stop', async (t) => {
  const { hub, files } = await hubWithRepo(t);
  const modelsDir = await tempDir();
  const { config } = await serve(t, modelsDir, hub.origin);

  const repo = await pull(config, 'acme/tiny-GGUF');
  t.equal(repo.code, 0, repo.stderr);
  t.match(repo.stdout, /created tiny-GGUF\/tiny\.Q2_K, tiny-GGUF\/tiny\.Q4_K_M, tiny-GGUF\/tiny\.Q8_0/);
  t.match(repo.stdout, /acme\/tiny-GGUF has 3 quantizations \(Q2_K, Q4_K_M, Q8_0\); pulling Q4_K_M/);
  t.match(repo.stdout, /tiny-GGUF\/tiny\.Q4_K_M: downloaded 40\d\.\d KB in \d+\.\ds, verified/);
  t.match(repo.stderr, /tiny-GGUF\/tiny\.Q4_K_M: 100% 40\d\.\d KB\/40\d\.\d KB/, 'progress lines end at 100%');
  t.same(await readFile(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q4_K_M.gguf')), files['tiny.Q4_K_M.gguf']);

  const q8 = await pull(config, 'acme/tiny-GGUF:Q8_0');
  t.equal(q8.code, 0, q8.stderr);
  t.notMatch(q8.stdout, /created/, 'the existing model objects are reused');
  t.ok(existsSync(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q8_0.gguf')));
  const again = await pull(config, 'tiny-GGUF/tiny.Q8_0');
  t.match(again.stdout, /tiny-GGUF\/tiny\.Q8_0: already downloaded/);
  const none = await pull(config, 'acme/tiny-GGUF', { quant: 'Q3_K_S' });
  t.equal(none.code, 1);
  t.match(none.stderr, /acme\/tiny-GGUF' has no Q3_K_S quantization; it has Q2_K, Q4_K_M, Q8_0/);

  const direct = ggufBytes({ fileType: 7, payloadBytes: 100_000 });
  const web = await startFileServer({ files: { '/files/direct-model.gguf': { body: direct } } });
  t.teardown(() => web.close());
  const url = await pull(config, web.url('/files/direct-model.gguf'));
  t.equal(url.code, 0, url.stderr);
  t.match(url.stdout, /created direct-model\/model/);
  t.same(await readFile(path.join(modelsDir, 'direct-model', 'direct-model.gguf')), direct);
  // Two path segments ending in a model file are a file URL, not a hub `org/repo`.
  const twice = await pull(config, web.url('/files/direct-model.gguf'));
  t.equal(twice.code, 0, twice.stderr);
  t.match(twice.stdout, /direct-model\/model: already downloaded/, 'the second pull finds the object the first created');

  const home = await temporaryHome(t);
  await mkdir(path.join(home, 'llms'));
  await writeFile(path.join(home, 'llms', 'mine.gguf'), ggufBytes());
  const local = await pull(config, '~/llms/mine.gguf');
  t.equal(local.code, 0, local.stderr);
  t.match(local.stdout, /created mine\/model[\s\S]*mine\/model: already downloaded \(stopped\)/);

  const start = await captureCli(() => controlCommand(config, 'start', 'mine/model'));
  t.equal(start.code, 1, 'no engine is built in on this branch, so start fails with the reason');
  t.match(start.stderr, /modeld: start mine\/model: engine 'llamacpp' of model 'mine\/model' is not available/);
  // `mine` is the folder alias of the folder's one object: the output names the canonical id.
  const stop = await captureCli(() => controlCommand(config, 'stop', 'mine'));
  t.equal(stop.code, 0);
  t.equal(stop.stdout, 'mine/model: stopped');
  // `modeld cp`: Ollama's copy. A file outside the models folder stays shared, named by its path;
  // a downloaded one is hard-linked into the new folder.
  const cp = await captureCli(() => copyCommand(config, 'mine', 'yours:latest'));
  t.equal(cp.code, 0, cp.stderr);
  t.equal(cp.stdout, 'copied mine/model to yours/model');
  t.equal(((await (await fetch(`http://127.0.0.1:${config.port}/v1/models/yours`)).json()) as { source_url: string }).source_url, path.join(home, 'llms', 'mine.gguf'));
  const pulledCopy = await captureCli(() => copyCommand(config, 'tiny-GGUF/tiny.Q8_0', 'q8-copy'));
  t.equal(pulledCopy.code, 0, pulledCopy.stderr);
  t.equal((await stat(path.join(modelsDir, 'q8-copy', 'tiny.Q8_0.gguf'))).ino, (await stat(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q8_0.gguf'))).ino, 'the same file');
  const taken = await captureCli(() => copyCommand(config, 'mine', 'yours'));
  t.equal(taken.code, 1);
  t.match(taken.stderr, /modeld: cp mine yours: .*'yours\/model' already exists/);
  const rm = await captureCli(() => controlCommand(config, 'rm', 'mine'));
  t.equal(rm.code, 0);
  t.equal(rm.stdout, 'deleted mine/model');
  t.ok(existsSync(path.join(home, 'llms', 'mine.gguf')), 'the local file stays');
  const gone = await captureCli(() => controlCommand(config, 'rm', 'mine/model'));
  t.equal(gone.code, 1);
  t.match(gone.stderr, /does not exist/);
});

t.test('modeld pull fails with the reason (wrong bytes), and Ctrl-C cancels keeping the part', async (t) => {
  const { hub, files } = await hubWithRepo(t);
  const modelsDir = await tempDir();
  const { config } = await serve(t, modelsDir, hub.origin);
  hub.files.set('/acme/tiny-GGUF/resolve/main/tiny.Q2_K.gguf', { body: files['tiny.Q2_K.gguf']!, wrong: true });
  const bad = await pull(config, 'acme/tiny-GGUF', { quant: 'q2_k' });
  t.equal(bad.code, 1);
  t.match(bad.stderr, new RegExp(`modeld: download of tiny-GGUF/tiny\\.Q2_K failed: sha256 mismatch for tiny\\.Q2_K\\.gguf: expected ${sha256(files['tiny.Q2_K.gguf']!)}, got [0-9a-f]{64}`));
  t.notOk(existsSync(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q2_K.gguf')));

  const key = '/acme/tiny-GGUF/resolve/main/tiny.Q8_0.gguf';
  hub.files.set(key, { body: files['tiny.Q8_0.gguf']!, holdAt: 100_000 });
  const pulling = pull(config, 'tiny-GGUF/tiny.Q8_0');
  await hub.held(key);
  await until(stateAt(config.port, 'tiny-GGUF/tiny.Q8_0'), (v) => v.progress?.downloaded_bytes === 100_000);
  process.emit('SIGINT');
  const cancelled = await pulling;
  t.equal(cancelled.code, 130);
  t.match(cancelled.stderr, /cancelled the download of tiny-GGUF\/tiny\.Q8_0 \(100\.0 KB kept\); run `modeld pull tiny-GGUF\/tiny\.Q8_0` again to resume/);
  t.match(await stateAt(config.port, 'tiny-GGUF/tiny.Q8_0')(), { state: 'not-downloaded', progress: { downloaded_bytes: 100_000 } });
  t.ok(existsSync(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q8_0.gguf.part')));
  hub.release(key);
});

t.test('after kill -9 mid-download a restarted server shows partial progress and the next pull resumes from the offset', async (t) => {
  const { hub, files } = await hubWithRepo(t);
  const modelsDir = await tempDir();
  const key = '/acme/tiny-GGUF/resolve/main/tiny.Q4_K_M.gguf';
  const first = await spawnServe(t, modelsDir, { HF_ENDPOINT: hub.origin });
  const base1 = `http://127.0.0.1:${first.port}`;
  await fetch(`${base1}/v1/models`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source_url: 'acme/tiny-GGUF' }) });
  // Held after the header reads, so the download itself stops there.
  hub.files.set(key, { body: files['tiny.Q4_K_M.gguf']!, holdAt: 250_000 });
  t.equal((await fetch(`${base1}/v1/models/tiny-GGUF%2Ftiny.Q4_K_M/download`, { method: 'POST' })).status, 202);
  await hub.held(key);
  await until(stateAt(first.port, 'tiny-GGUF/tiny.Q4_K_M'), (v) => v.progress?.downloaded_bytes === 250_000);
  // Received bytes reach the part file in batches, or once the connection is quiet (see download-file.ts).
  const part = partPathOf(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q4_K_M.gguf'));
  await until(() => stat(part).then((s) => s.size), (size) => size === 250_000);
  const died = new Promise((r) => first.child.once('exit', r));
  first.child.kill('SIGKILL');
  await died;
  hub.release(key);

  const { config } = await serve(t, modelsDir, hub.origin);
  const total = files['tiny.Q4_K_M.gguf']!.length;
  t.match(await stateAt(config.port, 'tiny-GGUF/tiny.Q4_K_M')(), { state: 'not-downloaded', progress: { downloaded_bytes: 250_000, total_bytes: total, bytes_per_second: 0 } });
  const ls = await captureCli(() => listCommand(config, { json: false }));
  t.match(ls.stdout, /tiny-GGUF\/tiny\.Q4_K_M.+not-downloaded/);

  const resumed = await pull(config, 'tiny-GGUF/tiny.Q4_K_M');
  t.equal(resumed.code, 0, resumed.stderr);
  t.equal(hub.requests.filter((r) => r.path === key && r.method === 'GET').at(-1)!.range, 'bytes=250000-', 'resumed from the offset');
  t.same(await readFile(path.join(modelsDir, 'tiny-GGUF', 'tiny.Q4_K_M.gguf')), files['tiny.Q4_K_M.gguf'], 'byte-identical');
});

t.test('modeld pull without a server says how to start one', async (t) => {
  const r = await pull(loadConfig({ port: 1 }, {}), 'acme/x');
  t.equal(r.code, 1);
  t.match(r.stderr, /no modeld server answers at http:\/\/127\.0\.0\.1:1; start one with `modeld serve`/);
});

t.test('the last progress line of a finished download shows the average speed and no ETA', async (t) => {
  // Unthrottled: the download ends before the server's speed meter has two samples.
  const body = ggufBytes({ fileType: 7, payloadBytes: 300_000 });
  const hub = await startFakeHub({ 'acme/fast-GGUF': { files: { 'fast.Q8_0.gguf': body } } });
  t.teardown(() => hub.close());
  const modelsDir = await tempDir();
  const { config } = await serve(t, modelsDir, hub.origin);
  const r = await pull(config, 'acme/fast-GGUF');
  t.equal(r.code, 0, r.stderr);
  const last = r.stderr.trim().split('\n').at(-1)!;
  t.match(last, /^fast-GGUF\/fast\.Q8_0: 100% 30\d\.\d KB\/30\d\.\d KB [\d.]+ [KMG]?B\/s average$/);
  t.notMatch(last, /ETA/);
  t.notMatch(r.stderr, /(^|[^.\d])0 B\/s/, 'a speed not measured yet is left out, not shown as 0 B/s');
  t.equal(r.stderr.match(/100%/g)?.length, 1, 'one 100% line');
});

t.test('modeld pull of a repository tells an unreachable hub from a missing repository from one without GGUF files', async (t) => {
  const hub = await startFakeHub({ 'acme/docs-only': { files: { 'README.md': Buffer.from('# no weights here') } } });
  t.teardown(() => hub.close());
  const closed = await startFileServer({ files: {} });
  const offline = closed.origin;
  await closed.close();

  const unreachable = await pull((await serve(t, await tempDir(), offline)).config, 'acme/anything');
  const missing = await pull((await serve(t, await tempDir(), hub.origin)).config, 'acme/nope');
  const noGguf = await pull((await serve(t, await tempDir(), hub.origin)).config, 'acme/docs-only');
  for (const r of [unreachable, missing, noGguf]) {
    t.equal(r.code, 1);
    t.equal(r.stderr.split('\n').length, 1, 'one line');
    t.notMatch(r.stderr, /\n\s+at /);
  }
  t.match(unreachable.stderr, new RegExp(`^modeld: cannot reach the Hugging Face hub at ${offline}`));
  t.match(missing.stderr, /^modeld: the Hugging Face repository 'acme\/nope' \(or the file asked for\) does not exist/);
  t.match(noGguf.stderr, /^modeld: the Hugging Face repository 'acme\/docs-only' has no GGUF model files$/);
});

t.test('a mistyped local id (folder/model looks like org/repo) names the models of that folder, not only the hub\'s answer', async (t) => {
  const hub = await startFakeHub({ 'acme/fast-GGUF': { files: { 'fast.Q8_0.gguf': ggufBytes({ fileType: 7, payloadBytes: 1000 }) } } });
  t.teardown(() => hub.close());
  const { config } = await serve(t, await tempDir(), hub.origin);
  t.equal((await pull(config, 'acme/fast-GGUF')).code, 0);
  const typo = await pull(config, 'fast-GGUF/fast.Q4_K_X');
  t.equal(typo.code, 1);
  t.match(typo.stderr, /^modeld: the Hugging Face repository 'fast-GGUF\/fast\.Q4_K_X' .*does not exist.*; no model 'fast-GGUF\/fast\.Q4_K_X' is on the server either \(it has fast-GGUF\/fast\.Q8_0\)$/);
});

t.test('org/repo:QUANT, --quant and --all create the objects of quantizations deleted from the server', async (t) => {
  const files = {
    'vis.Q4_K_M.gguf': ggufBytes({ fileType: 15, payloadBytes: 20_000 }),
    'vis.Q8_0.gguf': ggufBytes({ fileType: 7, payloadBytes: 20_000 }),
    'vis.Q2_K.gguf': ggufBytes({ fileType: 10, payloadBytes: 20_000 }),
    'mmproj-vis-f16.gguf': ggufBytes({ fileType: 1, payloadBytes: 5_000, architecture: 'clip' }),
  };
  const hub = await startFakeHub({ 'acme/vis-GGUF': { files } });
  t.teardown(() => hub.close());
  const modelsDir = await tempDir();
  const { config } = await serve(t, modelsDir, hub.origin);
  const objectOf = async (q: string) => JSON.parse(await readFile(path.join(modelsDir, 'vis-GGUF', `vis.${q}.json`), 'utf8'));

  const first = await pull(config, 'acme/vis-GGUF:Q4_K_M');
  t.equal(first.code, 0, first.stderr);
  const imported = { Q2_K: await objectOf('Q2_K'), Q8_0: await objectOf('Q8_0') };
  for (const q of ['Q2_K', 'Q8_0']) t.equal((await captureCli(() => controlCommand(config, 'rm', `vis-GGUF/vis.${q}`))).code, 0);

  // One object of the repository left: the quantization asked for must still decide.
  const q8 = await pull(config, 'acme/vis-GGUF:Q8_0');
  t.equal(q8.code, 0, q8.stderr);
  t.match(q8.stdout, /^created vis-GGUF\/vis\.Q8_0$/m);
  t.match(q8.stdout, /^vis-GGUF\/vis\.Q8_0: downloaded /m);
  t.notMatch(q8.stdout, /Q4_K_M/);
  t.same(await readFile(path.join(modelsDir, 'vis-GGUF', 'vis.Q8_0.gguf')), files['vis.Q8_0.gguf']);
  t.same(await objectOf('Q8_0'), imported.Q8_0, 'the object a repository import makes, projector included');

  const none = await pull(config, 'acme/vis-GGUF', { quant: 'Q3_K_S' });
  t.equal(none.code, 1);
  t.equal(none.stderr, "modeld: the Hugging Face repository 'acme/vis-GGUF' has no Q3_K_S quantization; it has Q2_K, Q4_K_M, Q8_0");

  const all = await pull(config, hub.url('/acme/vis-GGUF'), { all: true });
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, /^created vis-GGUF\/vis\.Q2_K$/m);
  t.match(all.stdout, /^vis-GGUF\/vis\.Q2_K: downloaded /m);
  t.match(all.stdout, /^vis-GGUF\/vis\.Q4_K_M: already downloaded/m);
  t.match(all.stdout, /^vis-GGUF\/vis\.Q8_0: already downloaded/m);
  t.same(await objectOf('Q2_K'), imported.Q2_K);

  await hub.stop();
  const offline = await pull(config, 'acme/vis-GGUF', { all: true });
  t.equal(offline.code, 0, offline.stderr);
  t.match(offline.stderr, /^modeld: cannot reach the Hugging Face hub at .*; pulling only the 3 objects the server has$/);
  t.equal(offline.stdout.match(/already downloaded/g)?.length, 3);
});

t.test('the quantization hint offers target:<QUANT> for org/repo only', async (t) => {
  const { hub } = await hubWithRepo(t);
  const { config } = await serve(t, await tempDir(), hub.origin);
  hub.files.set('/acme/tiny-GGUF/resolve/main/tiny.Q4_K_M.gguf', { body: ggufBytes({ fileType: 15, payloadBytes: 1000 }), status: 404 });
  const byUrl = await pull(config, hub.url('/acme/tiny-GGUF'));
  t.match(byUrl.stdout, /has 3 quantizations \(Q2_K, Q4_K_M, Q8_0\); pulling Q4_K_M — choose with --quant <QUANT> or --all$/m);
  t.notMatch(byUrl.stdout, /:<QUANT>/);
  const byRepo = await pull(config, 'acme/tiny-GGUF');
  t.match(byRepo.stdout, /pulling Q4_K_M — choose with --quant or acme\/tiny-GGUF:<QUANT>, or --all$/m);
});

t.test('modeld pull refuses an empty target rather than pulling the current folder', async (t) => {
  const { app, config } = await serve(t, await tempDir(), 'http://127.0.0.1:1');
  for (const target of ['', '  ']) {
    const r = await pull(config, target);
    t.equal(r.code, 1);
    t.equal(r.stderr, 'modeld: pull needs a model: an id, a URL, a local path or org/repo[:QUANT]');
    t.equal(r.stdout, '');
  }
  t.same(app.registry.list(), [], 'no model object created');
});
