// Model files the server may not read: a model folder without execute permission (its entries
// cannot be stat'ed), one without read permission (cannot be listed), a model object without
// read permission. Tests run as root, whom permission bits do not stop, so the kernel's EACCES
// is injected through `node:fs/promises` and `node:fs` (the registry's calls are synchronous:
// src/registry/fs-now.ts) for paths in the "locked" folders; one test checks the
// real thing in a child process without root's override.
import { execFileSync, spawnSync } from 'node:child_process';
import * as realSyncFs from 'node:fs';
import { existsSync } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { loadConfig } from '../../src/config/config.ts';
import type * as RegistryModule from '../../src/registry/registry.ts';
import type * as AppModule from '../../src/app.ts';
import { modelsFolder, putFile } from '../helpers/app.ts';
import { FakeEngine } from '../helpers/fake-engine.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

interface Locks {
  /** Folders with read but no execute permission (chmod 644): listed, but nothing inside can be reached. */
  noExecute?: string[];
  /** Folders without read permission (chmod 311): nothing in them can be listed. */
  noRead?: string[];
  /** Files without read permission (chmod 000): they can be stat'ed, not opened. */
  noReadFiles?: string[];
}

const eacces = (syscall: string, p: string) =>
  Object.assign(new Error(`EACCES: permission denied, ${syscall} '${p}'`), { code: 'EACCES', errno: -13, syscall, path: p });

/** The EACCES the kernel would answer `call` on `p` for a process without root's override, if any. */
function denial(locks: Locks, call: string, p: unknown): Error | undefined {
  if (typeof p !== 'string') return undefined;
  if ((locks.noExecute ?? []).some((d) => path.relative(d, p) !== '' && !path.relative(d, p).startsWith('..'))) return eacces(call.toLowerCase(), p);
  if (call === 'readdir' && (locks.noRead ?? []).includes(p)) return eacces('scandir', p);
  if ((call === 'open' || call === 'readFile') && (locks.noReadFiles ?? []).includes(p)) return eacces('open', p);
  return undefined;
}

const pathArg = (args: unknown[]) => (args[0] instanceof URL ? args[0].pathname : args[0]);

/** `node:fs/promises` answering EACCES where the kernel would. */
function lockedFs(locks: Locks): typeof realFs {
  const fake: Record<string, unknown> = { ...realFs };
  for (const [name, fn] of Object.entries(realFs)) {
    if (typeof fn !== 'function' || name === 'constants') continue;
    fake[name] = (...args: unknown[]) => {
      const err = denial(locks, name, pathArg(args));
      return err ? Promise.reject(err) : (fn as (...a: unknown[]) => unknown)(...args);
    };
  }
  return fake as unknown as typeof realFs;
}

/** `node:fs`'s synchronous calls answering EACCES where the kernel would. */
function lockedSyncFs(locks: Locks): typeof realSyncFs {
  const fake: Record<string, unknown> = { ...realSyncFs };
  const wrap = (name: string, fn: (...a: unknown[]) => unknown) => (...args: unknown[]) => {
    const err = denial(locks, name, pathArg(args));
    if (err) throw err;
    return fn(...args);
  };
  for (const [name, fn] of Object.entries(realSyncFs)) {
    if (typeof fn !== 'function' || !name.endsWith('Sync')) continue;
    fake[name] = wrap(name.slice(0, -'Sync'.length), fn as (...a: unknown[]) => unknown);
  }
  (fake.realpathSync as { native?: unknown }).native = wrap('realpath', realSyncFs.realpathSync.native as (...a: unknown[]) => unknown);
  return fake as unknown as typeof realSyncFs;
}

const lockedModules = (locks: Locks) => ({ 'node:fs/promises': lockedFs(locks), 'node:fs': lockedSyncFs(locks) });

async function registryWith(t: Test, locks: Locks): Promise<typeof RegistryModule> {
  return t.mockImport<typeof RegistryModule>('../../src/registry/registry.ts', lockedModules(locks));
}

/** A models folder with a good model and a locked one holding a model object and a binary. */
async function withLockedFolder(t: Test) {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'good'));
  writeTinyLlamaGguf(path.join(dir, 'good/good.gguf'), { layers: 1 });
  await putFile(dir, 'good/model.json', {});
  await mkdir(path.join(dir, 'locked'));
  writeTinyLlamaGguf(path.join(dir, 'locked/locked.gguf'), { layers: 1 });
  await putFile(dir, 'locked/model.json', {});
  return { dir, locked: path.join(dir, 'locked') };
}

t.test('a model folder without execute permission is one broken model; the scan, creates and deletes go on', async (t) => {
  const { dir, locked } = await withLockedFolder(t);
  const { ModelRegistry, staticState } = await registryWith(t, { noExecute: [locked] });
  const reg = new ModelRegistry({ modelsDir: dir });
  await t.resolves(reg.scan(), 'the scan does not fail on EACCES');
  t.same(reg.list().map((e) => e.id), ['good/model', 'locked/model']);
  const e = reg.resolve('locked');
  t.equal(staticState(e), 'error');
  t.equal(e.problem?.file, path.join(locked, 'model.json'), 'the problem names the model object');
  t.equal(e.problem?.message, 'model.json cannot be read: permission denied (EACCES)');
  t.equal(staticState(reg.resolve('good')), 'stopped', 'the other models are read as ever');

  const [created] = await reg.create([{ id: 'fresh/model', object: { source_url: path.join(dir, 'good/good.gguf') } }]);
  t.equal(staticState(created!), 'stopped', 'a create rescans without failing');
  await t.resolves(reg.remove(reg.resolve('fresh')), 'a delete rescans without failing');
  t.notOk(reg.get('fresh'));

  await t.rejects(reg.remove(reg.resolve('locked')), {
    code: 'model_not_deletable',
    message: /^cannot delete 'locked\/model': model\.json cannot be reached: permission denied \(EACCES\)/,
  }, 'the locked model is refused, not a 500');
  t.ok(existsSync(path.join(locked, 'model.json')) && existsSync(path.join(locked, 'locked.gguf')), 'nothing of it deleted');
});

t.test('a model folder that cannot be listed is one broken model naming the folder', async (t) => {
  const { dir, locked } = await withLockedFolder(t);
  const { ModelRegistry, staticState } = await registryWith(t, { noRead: [locked] });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.same(reg.list().map((e) => e.id), ['good/model', 'locked/model'], 'its models do not vanish without a word');
  const e = reg.resolve('locked');
  t.equal(staticState(e), 'error');
  t.equal(e.problem?.file, locked);
  t.equal(e.problem?.message, 'the model folder locked/ cannot be read: permission denied (EACCES)');
  await t.rejects(reg.remove(e), { code: 'model_not_deletable', message: /cannot be read: permission denied.*remove the folder .*locked yourself/ });
  t.ok(existsSync(path.join(locked, 'model.json')));
});

t.test('an unreadable model object is "cannot be read", not a JSON error', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'secret/model.json', {});
  const { ModelRegistry, staticState } = await registryWith(t, { noReadFiles: [path.join(dir, 'secret/model.json')] });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('secret');
  t.equal(staticState(e), 'error');
  t.equal(e.problem?.file, path.join(dir, 'secret/model.json'));
  t.equal(e.problem?.message, 'model.json cannot be read: permission denied (EACCES)');
});

t.test('a binary that cannot be read is an error naming it, not "not-downloaded" and not a GGUF error', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'bin'));
  writeTinyLlamaGguf(path.join(dir, 'bin/bin.gguf'), { layers: 1 });
  await putFile(dir, 'bin/model.json', {});
  await mkdir(path.join(dir, 'elsewhere'));
  writeTinyLlamaGguf(path.join(dir, 'elsewhere/x.gguf'), { layers: 1 });
  await putFile(dir, 'far/model.json', { source_url: '../elsewhere/x.gguf' });
  const { ModelRegistry, staticState } = await registryWith(t, { noReadFiles: [path.join(dir, 'bin/bin.gguf')], noExecute: [path.join(dir, 'elsewhere')] });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const bin = reg.resolve('bin');
  t.equal(staticState(bin), 'error');
  t.equal(bin.problem?.file, path.join(dir, 'bin/bin.gguf'));
  t.equal(bin.problem?.message, 'bin.gguf cannot be read: permission denied (EACCES)');
  const far = reg.resolve('far');
  t.equal(staticState(far), 'error', 'a binary in an unreachable folder is no download to start');
  t.equal(far.problem?.field, 'source_url');
  t.match(far.problem?.message, /elsewhere\/x\.gguf cannot be read: permission denied \(EACCES\)/);
});

t.test('the HTTP API over a model folder without execute permission', async (t) => {
  const { dir, locked } = await withLockedFolder(t);
  const { buildApp } = await t.mockImport<typeof AppModule>('../../src/app.ts', lockedModules({ noExecute: [locked] }));
  const config = loadConfig({ modelsDir: dir, logLevel: 'silent', watch: false }, {});
  const app = await buildApp({ config, engines: [new FakeEngine()], logger: false });
  t.teardown(() => app.close());
  await app.ready(); // the startup scan: `modeld serve` exited here with "cannot serve: EACCES"

  const list = (await app.inject({ url: '/v1/models' })).json().data as Array<{ id: string; state: string }>;
  t.same(list.map((m) => [m.id, m.state]), [['good/model', 'stopped'], ['locked/model', 'error']]);
  const state = (await app.inject({ url: '/v1/models/locked/state' })).json();
  t.match(state, { state: 'error', error: /model\.json cannot be read: permission denied/ });

  const created = await app.inject({ method: 'POST', url: '/v1/models', payload: { id: 'fresh/model', source_url: path.join(dir, 'good/good.gguf') } });
  t.equal(created.statusCode, 201, created.body);
  const deleted = await app.inject({ method: 'DELETE', url: '/v1/models/fresh/model' });
  t.equal(deleted.statusCode, 200, deleted.body);
  t.notOk(existsSync(path.join(dir, 'fresh/model.json')));
  const refused = await app.inject({ method: 'DELETE', url: '/v1/models/locked/model' });
  t.equal(refused.statusCode, 409, refused.body);
  t.match(refused.json().error, { code: 'model_not_deletable', message: /model\.json cannot be reached: permission denied/ });
});

/**
 * Runs a child with permission bits in force: as `nobody` when this process is root, as this
 * user otherwise; without tap's NODE_OPTIONS (its loader lies in a checkout nobody may not read).
 */
const UNPRIVILEGED = { ...(process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}), env: { ...process.env, NODE_OPTIONS: '' } };
const REGISTRY_URL = pathToFileURL(path.join(REPO, 'src/registry/registry.ts')).href;
const childArgs = (script: string) => ['--import', 'tsx', '--input-type=module', '-e', script];
const cannotDropRoot = (() => {
  if (process.platform === 'win32') return 'POSIX permissions';
  // A checkout in a 0700 folder (a CI clone in mktemp -d) is out of nobody's reach: skip then.
  const probe = spawnSync(process.execPath, childArgs(`await import(${JSON.stringify(REGISTRY_URL)});`), { cwd: REPO, ...UNPRIVILEGED });
  return probe.error || probe.status !== 0 ? `cannot load the registry in a child as nobody: ${probe.error?.message ?? `exit ${probe.status}`}` : false;
})();

function scanUnprivileged(dir: string): Array<{ id: string; state: string; problem?: { file: string; message: string } }> {
  const script = `
    const { ModelRegistry, staticState } = await import(${JSON.stringify(REGISTRY_URL)});
    const reg = new ModelRegistry({ modelsDir: process.argv[1] });
    await reg.scan();
    console.log(JSON.stringify(reg.list().map((e) => ({ id: e.id, state: staticState(e), problem: e.problem }))));`;
  const out = execFileSync(process.execPath, [...childArgs(script), dir], { cwd: REPO, encoding: 'utf8', ...UNPRIVILEGED });
  return JSON.parse(out.trim().split('\n').pop()!);
}

t.test('real permissions: chmod 644 on a folder, 000 on a model object', { skip: cannotDropRoot }, async (t) => {
  const { dir, locked } = await withLockedFolder(t);
  await putFile(dir, 'secret/model.json', {});
  await chmod(dir, 0o755); // mkdtemp's 0700 would lock nobody out of the whole table
  await chmod(path.join(dir, 'secret/model.json'), 0o000);
  await chmod(locked, 0o644);
  t.teardown(() => chmod(locked, 0o755).catch(() => undefined));
  const models = scanUnprivileged(dir);
  t.same(models.map((m) => [m.id, m.state]), [['good/model', 'stopped'], ['locked/model', 'error'], ['secret/model', 'error']]);
  t.match(models[1]!.problem, { file: path.join(locked, 'model.json'), message: 'model.json cannot be read: permission denied (EACCES)' });
  t.match(models[2]!.problem, { file: path.join(dir, 'secret/model.json'), message: 'model.json cannot be read: permission denied (EACCES)' });
});
