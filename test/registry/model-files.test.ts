// What the scan makes of files that are not what they claim: cut-off GGUFs, FIFOs, folders
// named like model objects, binaries that name nothing, invalid fields; and a read-only scan of
// a missing folder.
import { execFileSync } from 'node:child_process';
import * as realSyncFs from 'node:fs';
import { closeSync, constants, existsSync, openSync, truncateSync } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ModelRegistry, staticState } from '../../src/registry/registry.ts';
import { SHARED_MODELS, buildTestApp, modelsFolder, putFile } from '../helpers/app.ts';
import { writeCorruptGguf, writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';
import { writeImageClassifierOnnx } from '../helpers/onnx-writer.ts';
import type * as RegistryModule from '../../src/registry/registry.ts';
import { readGgufHeader } from '../../src/registry/headers/gguf-header.ts';
import { readOnnxHeader } from '../../src/registry/headers/onnx-header.ts';



/** Whether a scan finishes within `ms` (a scan that opens a FIFO blocking never does). */
async function scansWithin(reg: { scan(): Promise<unknown> }, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    reg.scan().then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  return finished;
}
t.test('a GGUF cut off in its header or in its tensor data is an error naming the file', async (t) => {
  const dir = await modelsFolder(t);
  for (const kind of ['truncated-header', 'truncated'] as const) {
    await mkdir(path.join(dir, kind));
    writeCorruptGguf(path.join(dir, kind, `${kind}.gguf`), kind);
    await putFile(dir, `${kind}/model.json`, {});
  }
  // `head -c 100 model.gguf`: inside the metadata
  await mkdir(path.join(dir, 'head100'));
  writeTinyLlamaGguf(path.join(dir, 'head100/head100.gguf'));
  truncateSync(path.join(dir, 'head100/head100.gguf'), 100);
  await putFile(dir, 'head100/model.json', {});
  // the last tensor loses its final byte
  await mkdir(path.join(dir, 'short'));
  const { bytes } = writeTinyLlamaGguf(path.join(dir, 'short/short.gguf'), { layers: 1 });
  truncateSync(path.join(dir, 'short/short.gguf'), bytes - 1);
  await mkdir(path.join(dir, 'good'));
  writeTinyLlamaGguf(path.join(dir, 'good/good.gguf'), { layers: 1 });
  await putFile(dir, 'good/model.json', {});
  await putFile(dir, 'short/model.json', {});

  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.equal(staticState(reg.resolve('good')), 'stopped', 'a complete file still reads');
  for (const [id, why] of [['truncated-header', /header/], ['head100', /header/], ['truncated', /tensor data/], ['short', /tensor data/]] as const) {
    const e = reg.resolve(id);
    t.equal(staticState(e), 'error', `${id} is an error`);
    t.equal(e.problem?.file, path.join(dir, id, `${id}.gguf`), `${id}: the problem names the binary`);
    t.match(e.problem?.message, new RegExp(`${id}\\.gguf is not a readable GGUF file: the file is cut off`), id);
    t.match(e.problem?.message, why, id);
    t.same(e.header, {}, `${id}: no garbage metadata`);
  }
});

t.test('the shared stories260K cut to 100 bytes is an error', { skip: !existsSync(path.join(SHARED_MODELS, 'stories260K/stories260K.gguf')) && 'no ../shared/models' }, async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'cut'));
  const { readFile } = await import('node:fs/promises');
  const whole = await readFile(path.join(SHARED_MODELS, 'stories260K/stories260K.gguf'));
  await writeFile(path.join(dir, 'cut/t.gguf'), whole.subarray(0, 100));
  await writeFile(path.join(dir, 'cut/model.json'), '{}');
  await mkdir(path.join(dir, 'whole'));
  await writeFile(path.join(dir, 'whole/model.json'), JSON.stringify({ source_url: path.join(SHARED_MODELS, 'stories260K/stories260K.gguf') }));
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.equal(staticState(reg.resolve('cut')), 'error');
  t.match(reg.resolve('cut').problem?.message, /t\.gguf .*cut off inside its header/);
  t.equal(staticState(reg.resolve('whole')), 'stopped', 'the whole file fits exactly');
});

t.test('a metadata.binaries entry with neither path nor url is an error naming it, not the folder', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'nothing/model.json', { metadata: { binaries: [{ sha256: 'a'.repeat(64) }] } });
  await putFile(dir, 'second/model.json', { metadata: { binaries: [{ url: 'https://example.com/a.gguf' }, { size: 3 }] } });
  await mkdir(path.join(dir, 'dir/sub'), { recursive: true });
  await putFile(dir, 'dir/model.json', { metadata: { binaries: [{ path: 'sub' }] } });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('nothing');
  t.equal(staticState(e), 'error');
  t.equal(e.problem?.field, 'metadata.binaries[0]');
  t.match(e.problem?.message, /model\.json: field 'metadata\.binaries\[0\]' needs a path or an http\(s\) url/);
  t.same(e.binaries, [], 'the folder is never taken for a binary');
  t.equal(reg.resolve('second').problem?.field, 'metadata.binaries[1]');
  t.equal(reg.resolve('dir').problem?.field, 'metadata.binaries[0]');
  t.match(reg.resolve('dir').problem?.message, /sub is not a regular file/);
});

t.test('FIFOs and other non-regular files are never read: the scan finishes', { skip: process.platform === 'win32' && 'no mkfifo' }, async (t) => {
  const dir = await modelsFolder(t);
  const fifos: string[] = [];
  const fifo = async (rel: string) => {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, rel)]);
    fifos.push(path.join(dir, rel));
  };
  // Whatever blocked on a FIFO gets an end of file, so a failing run still ends.
  t.teardown(() => {
    for (const f of fifos) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader: nothing blocked on it */
      }
    }
  });
  await fifo('pipe/model.json');
  await fifo('pipebin/pipebin.gguf');
  await putFile(dir, 'pipebin/model.json', {});
  await fifo('elsewhere/x.gguf');
  await putFile(dir, 'src/model.json', { source_url: '../elsewhere/x.gguf' });
  await mkdir(path.join(dir, 'good'));
  writeTinyLlamaGguf(path.join(dir, 'good/good.gguf'), { layers: 1 });
  await putFile(dir, 'good/model.json', {});
  await mkdir(path.join(dir, 'dangling'));
  await symlink(path.join(dir, 'nowhere.json'), path.join(dir, 'dangling/model.json'));

  const reg = new ModelRegistry({ modelsDir: dir });
  const finished = await scansWithin(reg, 5000);
  t.ok(finished, 'the scan finished (nothing waited on a FIFO)');
  if (!finished) return;
  t.same(reg.list().map((e) => e.id), ['dangling/model', 'good/model', 'pipe/model', 'pipebin/model', 'src/model']);
  // Listed broken, as a model object with invalid JSON is: the user sees which file and why.
  const pipe = reg.resolve('pipe');
  t.equal(staticState(pipe), 'error', 'a FIFO named model.json is a broken model');
  t.equal(pipe.problem?.file, path.join(dir, 'pipe/model.json'));
  t.match(pipe.problem?.message, /^model\.json is a FIFO \(named pipe\), not a regular file/);
  const dangling = reg.resolve('dangling');
  t.equal(staticState(dangling), 'error');
  t.match(dangling.problem?.message, /^model\.json is a link to .*nowhere\.json, which does not exist/);
  await reg.remove(pipe);
  t.notOk(existsSync(path.join(dir, 'pipe/model.json')), 'deleting the broken model removes the FIFO');
  t.equal(staticState(reg.resolve('good')), 'stopped');
  t.equal(staticState(reg.resolve('pipebin')), 'error', 'a FIFO named *.gguf is no binary');
  const src = reg.resolve('src');
  t.equal(staticState(src), 'error');
  t.equal(src.problem?.field, 'source_url');
  t.match(src.problem?.message, /x\.gguf is not a regular file/);
});

/** A FIFO at `file` that nothing ever writes to; whatever blocked on it is let go at the test's end. */
function fifoNoOneWrites(t: { teardown(fn: () => unknown): void }, file: string): void {
  execFileSync('mkfifo', [file]);
  t.teardown(() => {
    try {
      closeSync(openSync(file, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      /* no reader: nothing blocked on it */
    }
  });
}

t.test('a binary swapped for a FIFO after every stat is refused on its handle: the scan finishes', { skip: process.platform === 'win32' && 'no mkfifo' }, async (t) => {
  const dir = await modelsFolder(t);
  // What the binaries were before the swap: every stat by path (registry, binaries, header
  // cache) sees these, the worst case of a rename racing the scan; only the open meets the FIFO.
  const before = path.join(dir, '.before');
  await mkdir(before);
  writeTinyLlamaGguf(path.join(before, 'x.gguf'), { layers: 1 });
  writeImageClassifierOnnx(path.join(before, 'x.onnx'), { classes: 3 });
  const swapped = new Map<string, string>();
  for (const [folder, file] of [['racy', 'x.gguf'], ['racyonnx', 'x.onnx']] as const) {
    await mkdir(path.join(dir, folder));
    fifoNoOneWrites(t, path.join(dir, folder, file));
    // Named, not found by listing: the folder's listing would say FIFO.
    await putFile(dir, `${folder}/model.json`, { source_url: file });
    swapped.set(path.join(dir, folder, file), path.join(before, file));
  }
  await mkdir(path.join(dir, 'good'));
  writeTinyLlamaGguf(path.join(dir, 'good/good.gguf'), { layers: 1 });
  await putFile(dir, 'good/model.json', {});
  const statAsBefore = (fn: (p: string, ...rest: unknown[]) => Promise<unknown>) =>
    (p: unknown, ...rest: unknown[]) => fn(typeof p === 'string' ? (swapped.get(p) ?? p) : (p as string), ...rest);
  const statAsBeforeSync = (fn: (p: string, ...rest: unknown[]) => unknown) =>
    (p: unknown, ...rest: unknown[]) => fn(typeof p === 'string' ? (swapped.get(p) ?? p) : (p as string), ...rest);
  const fs = { ...realFs, stat: statAsBefore(realFs.stat as never), lstat: statAsBefore(realFs.lstat as never) };
  // The registry's own calls are synchronous (src/registry/fs-now.ts).
  const syncFs = { ...realSyncFs, statSync: statAsBeforeSync(realSyncFs.statSync as never), lstatSync: statAsBeforeSync(realSyncFs.lstatSync as never) };
  const { ModelRegistry, staticState } = await t.mockImport<typeof RegistryModule>('../../src/registry/registry.ts', { 'node:fs/promises': fs, 'node:fs': syncFs });

  const reg = new ModelRegistry({ modelsDir: dir });
  const finished = await scansWithin(reg, 5000);
  t.ok(finished, 'the scan finished (nothing opened the FIFO blocking)');
  if (!finished) return;
  for (const [id, file] of [['racy', 'x.gguf'], ['racyonnx', 'x.onnx']]) {
    const e = reg.resolve(id!);
    t.equal(staticState(e), 'error', `${id}: a broken model`);
    t.equal(e.problem?.file, path.join(dir, id!, file!), `${id}: the problem names the binary`);
    t.equal(e.problem?.message, `${file} is a FIFO (named pipe), not a regular file`, id);
  }
  t.equal(staticState(reg.resolve('good')), 'stopped');
});

t.test('the header readers refuse a FIFO instead of waiting for a writer', { skip: process.platform === 'win32' && 'no mkfifo' }, async (t) => {
  const dir = await modelsFolder(t);
  for (const [file, read] of [['x.gguf', readGgufHeader], ['x.onnx', readOnnxHeader]] as const) {
    fifoNoOneWrites(t, path.join(dir, file));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      read(path.join(dir, file)).then(() => 'read', (err: Error) => err.message),
      new Promise<string>((r) => (timer = setTimeout(() => r('still waiting'), 5000))),
    ]);
    clearTimeout(timer);
    t.equal(outcome, `${file} is a FIFO (named pipe), not a regular file`);
  }
});

t.test('a folder named like a model object, or a link to one, is a broken model', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'empty/model.json'), { recursive: true });
  await putFile(dir, 'full/model.json/notes.txt', 'mine');
  await mkdir(path.join(dir, 'target'));
  await putFile(dir, 'target/keep.txt', 'kept');
  await mkdir(path.join(dir, 'linked'));
  await symlink(path.join(dir, 'target'), path.join(dir, 'linked/model.json'));
  await mkdir(path.join(dir, 'beside/q4.json'), { recursive: true });
  await putFile(dir, 'beside/q8.json', { source_url: 'https://example.com/q8.gguf' });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.same(reg.list().map((e) => e.id), ['beside/q4', 'beside/q8', 'empty/model', 'full/model', 'linked/model'], 'none vanishes from the table');
  for (const id of ['empty', 'full']) {
    const e = reg.resolve(id);
    t.equal(staticState(e), 'error', id);
    t.equal(e.problem?.file, path.join(dir, id, 'model.json'));
    t.match(e.problem?.message, /^model\.json is a folder, not a regular file/, id);
  }
  t.match(reg.resolve('linked').problem?.message, /^model\.json is a link to .*target, a folder, not a regular file/);
  t.match(reg.resolve('beside/q4').problem?.message, /^q4\.json is a folder/);
  t.equal(staticState(reg.resolve('beside/q8')), 'not-downloaded', 'its neighbour is unaffected');

  // Deleting: an empty folder goes as a file would, a link goes and its target stays, a folder
  // with files in it is refused (they are not the server's), touching nothing.
  await reg.remove(reg.resolve('empty'));
  t.notOk(existsSync(path.join(dir, 'empty')), 'the empty folder and then the model folder are gone');
  await reg.remove(reg.resolve('linked'));
  t.notOk(existsSync(path.join(dir, 'linked')), 'the link and the model folder are gone');
  t.same(await readdir(path.join(dir, 'target')), ['keep.txt'], 'the linked folder is untouched');
  await t.rejects(reg.remove(reg.resolve('full')), {
    code: 'model_not_deletable',
    message: /^cannot delete 'full\/model': model\.json is a folder with files in it.*remove .*full\/model\.json yourself/,
  });
  t.ok(existsSync(path.join(dir, 'full/model.json/notes.txt')), 'nothing deleted');
  t.equal(staticState(reg.resolve('full')), 'error', 'still listed');
});

t.test('over HTTP, a folder named model.json is listed broken and its DELETE is a 409 or a 200', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'full/model.json/notes.txt', 'mine');
  await mkdir(path.join(dir, 'empty/model.json'), { recursive: true });
  const { app } = await buildTestApp(t, { modelsDir: dir, engines: [] });
  const list = (await app.inject({ url: '/v1/models' })).json().data as Array<{ id: string; state: string }>;
  t.same(list.map((m) => [m.id, m.state]), [['empty/model', 'error'], ['full/model', 'error']]);
  t.match((await app.inject({ url: '/v1/models/full/state' })).json(), { state: 'error', error: /model\.json is a folder/ });
  const refused = await app.inject({ method: 'DELETE', url: '/v1/models/full/model' });
  t.equal(refused.statusCode, 409, refused.body);
  t.match(refused.json().error, { code: 'model_not_deletable', message: /model\.json is a folder with files in it/ });
  t.ok(existsSync(path.join(dir, 'full/model.json/notes.txt')));
  const deleted = await app.inject({ method: 'DELETE', url: '/v1/models/empty/model' });
  t.equal(deleted.statusCode, 200, deleted.body);
  t.notOk(existsSync(path.join(dir, 'empty')));
});

t.test('invalid fields are dropped from the object and all named in the error', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'bad/model.json', { name: 5, parameters: 'x', description: 'kept', source_url: 'https://huggingface.co/Org/R/resolve/main/r.gguf', metadata: { engine: 'foo', task: 'embedding', binaries: [5] } });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('bad');
  t.equal(staticState(e), 'error');
  t.same(e.object, { description: 'kept', source_url: 'https://huggingface.co/Org/R/resolve/main/r.gguf', metadata: { task: 'embedding' } });
  t.equal(e.ownedBy, 'Org');
  t.equal(e.problem?.field, 'name');
  for (const f of ['name', 'parameters', 'metadata.engine', 'metadata.binaries[0]']) t.match(e.problem?.message, `field '${f}'`, f);
});

t.test('an unknown engine names the engines there are', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'eng/model.json', { source_url: 'https://example.com/m.gguf', metadata: { engine: 'foo' } });
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  const e = reg.resolve('eng');
  t.equal(e.problem?.field, 'metadata.engine');
  t.equal(e.problem?.message, `model.json: field 'metadata.engine' must be one of "llamacpp", "onnx", "api", "tensorrt", got "foo"`);
});

t.test('a read-only scan of a missing folder lists nothing and creates nothing', async (t) => {
  const parent = await modelsFolder(t);
  const missing = path.join(parent, 'nope', 'models');
  const reg = new ModelRegistry({ modelsDir: missing, createDir: false });
  await reg.scan();
  t.same(reg.list(), []);
  t.notOk(existsSync(path.join(parent, 'nope')), 'no folder created');
  await new ModelRegistry({ modelsDir: missing }).scan();
  t.ok(existsSync(missing), 'the server still creates its models folder');
});
