// Creating and deleting model objects: ids the scan would not read back, exclusive creation
// under concurrency, all-or-nothing creation of several objects, and deletion that never
// reaches outside the models folder through a link.
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ModelRegistry } from '../../src/registry/registry.ts';
import { modelsFolder, putFile } from '../helpers/app.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';


const remote = (name = 'm') => ({ source_url: `https://example.com/${name}.gguf` });

async function registry(dir: string) {
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  return reg;
}

t.test('ids the scan would not read back are refused before anything is written', async (t) => {
  const dir = await modelsFolder(t);
  const reg = await registry(dir);
  for (const id of ['cfg/config', 'cfg/tokenizer', 'cfg/schema', 'cfg/vocab', 'cfg/tokenizer_config']) {
    await t.rejects(reg.write(id, remote()), { code: 'invalid_model_id', param: 'id', message: /config file name/ }, id);
  }
  await t.rejects(reg.write('cfg/x.json', remote()), { code: 'invalid_model_id', param: 'id', message: /without '\.json' \('cfg\/x'\)/ });
  await t.rejects(reg.write('a/b/c', remote()), { code: 'invalid_model_id', param: 'id' }, 'a bad id names `id`, not `model`');
  t.notOk(existsSync(path.join(dir, 'cfg')), 'no folder, no file');
  const ok = await reg.write('cfg/model', remote());
  t.equal(ok.id, 'cfg/model');
});

t.test('an invalid object is refused naming the field, before anything is written', async (t) => {
  const dir = await modelsFolder(t);
  const reg = await registry(dir);
  await t.rejects(reg.write('e/model', { ...remote(), metadata: { engine: 'foo' } } as never), {
    code: 'invalid_value', param: 'metadata.engine', message: `'metadata.engine' must be one of "llamacpp", "onnx", "api", "tensorrt", got "foo"`,
  });
  await t.rejects(reg.write('e/model', { ...remote(), name: 5 } as never), { code: 'invalid_type', param: 'name' });
  await t.rejects(reg.write('e/model', { ...remote(), parameters: { ctx_len: 4 } }), { code: 'parameter_out_of_range', param: 'parameters.ctx_len', message: /'parameters\.ctx_len' must be within \[16, 1048576\], got 4/ });
  await t.rejects(reg.write('e/model', { ...remote(), parameters: { n_parallel: 'many' } }), { code: 'invalid_type', param: 'parameters.n_parallel' });
  await t.rejects(reg.write('e/model', { source_url: 'https://example.com/m.onnx', parameters: { graph_optimization: 'max' } }), { code: 'invalid_value', param: 'parameters.graph_optimization' }, 'checked against the onnx engine');
  t.notOk(existsSync(path.join(dir, 'e')));
  const ok = await reg.write('e/model', { ...remote(), parameters: { ctx_len: 2048, pre_prompt: 'kept', jan_only_key: 1 } });
  t.same(ok.object.parameters, { ctx_len: 2048, pre_prompt: 'kept', jan_only_key: 1 }, 'names no engine knows are kept');
});

t.test('concurrent creators of one id: exactly one wins, the others get 409; no temporary file stays', async (t) => {
  const dir = await modelsFolder(t);
  const reg = await registry(dir);
  const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => reg.write('race/model', { ...remote(), name: `writer ${i}` })));
  const won = results.filter((r) => r.status === 'fulfilled');
  t.equal(won.length, 1, 'one creator wins');
  for (const r of results) if (r.status === 'rejected') t.match(r.reason, { code: 'model_exists', param: 'id' });
  t.same(await readdir(path.join(dir, 'race')), ['model.json'], 'no temporary files left');
  const winner = (won[0] as PromiseFulfilledResult<{ object: { name?: string } }>).value.object.name;
  t.equal(JSON.parse(await readFile(path.join(dir, 'race/model.json'), 'utf8')).name, winner, 'the file is the winner\'s');
  await t.rejects(reg.write('race/model', remote()), { code: 'model_exists' }, 'and a later one is refused too');
});

t.test('creating several objects is all or nothing', async (t) => {
  const dir = await modelsFolder(t);
  const reg = await registry(dir);
  await t.rejects(reg.create([{ id: 'rep/a', object: remote('a') }, { id: 'rep/a', object: remote('b') }]), { code: 'model_exists', message: /'rep\/a' more than once/ });
  t.notOk(existsSync(path.join(dir, 'rep')), 'a duplicate within the list writes nothing');
  await putFile(dir, 'rep/b.json', remote('b'));
  await t.rejects(reg.create([{ id: 'rep/a', object: remote('a') }, { id: 'rep/b', object: remote('b') }]), { code: 'model_exists', message: /'rep\/b' already exists/ });
  t.same(await readdir(path.join(dir, 'rep')), ['b.json'], 'an id taken on disk (not yet scanned) writes nothing');
  await t.rejects(reg.create([{ id: 'rep/c', object: remote('c') }, { id: 'rep/config', object: remote('d') }]), { code: 'invalid_model_id' });
  t.same(await readdir(path.join(dir, 'rep')), ['b.json']);
  const made = await reg.create([{ id: 'rep/z', object: remote('z') }, { id: 'rep/c', object: remote('c') }]);
  t.same(made.map((e) => e.id), ['rep/z', 'rep/c'], 'answered in the order asked');
});

t.test('a folder name taken by a file or a broken link is a 400 naming id', async (t) => {
  const dir = await modelsFolder(t);
  await writeFile(path.join(dir, 'toplevel.json'), '{}');
  await symlink(path.join(dir, 'gone'), path.join(dir, 'dangling'));
  const reg = await registry(dir);
  await t.rejects(reg.write('toplevel.json/model', remote()), { code: 'invalid_model_id', param: 'id', message: /'toplevel\.json' in the models folder is a file, not a folder/ });
  await t.rejects(reg.write('dangling/model', remote()), { code: 'invalid_model_id', param: 'id', message: /'dangling' in the models folder is a link to .*gone, which does not exist/ });
  t.ok((await lstat(path.join(dir, 'dangling'))).isSymbolicLink(), 'the link is left alone');
});

t.test('deleting a model whose folder links outside the models folder deletes no file there', async (t) => {
  const dir = await modelsFolder(t);
  const outside = await modelsFolder(t);
  await mkdir(path.join(outside, 'foo'));
  writeTinyLlamaGguf(path.join(outside, 'foo/user.gguf'), { layers: 1 });
  await putFile(outside, 'foo/model.json', {});
  await symlink(path.join(outside, 'foo'), path.join(dir, 'extlink'));
  // a folder of two objects behind one link
  await mkdir(path.join(outside, 'two'));
  writeTinyLlamaGguf(path.join(outside, 'two/a.gguf'), { layers: 1 });
  await putFile(outside, 'two/a.json', {});
  await putFile(outside, 'two/b.json', { source_url: 'https://example.com/b.gguf' });
  await symlink(path.join(outside, 'two'), path.join(dir, 'twolink'));
  const reg = await registry(dir);

  const { kept } = await reg.remove(reg.resolve('extlink/model'));
  t.ok(existsSync(path.join(outside, 'foo/user.gguf')), 'the binary outside stays');
  t.ok(existsSync(path.join(outside, 'foo/model.json')), 'the object outside stays');
  t.notOk(existsSync(path.join(dir, 'extlink')), 'the link in the models folder went, so the model is gone');
  t.notOk(reg.get('extlink/model'));
  t.same(kept.sort(), [path.join(dir, 'extlink/model.json'), path.join(dir, 'extlink/user.gguf')]);

  await t.rejects(reg.checkRemovable(reg.resolve('twolink/a')), { code: 'model_not_deletable', message: /outside the models folder, beside 'twolink\/b'/ });
  await t.rejects(reg.remove(reg.resolve('twolink/a')), { code: 'model_not_deletable' });
  t.ok(existsSync(path.join(outside, 'two/a.gguf')) && existsSync(path.join(outside, 'two/a.json')), 'nothing deleted');
  t.ok(reg.get('twolink/a') && reg.get('twolink/b'), 'both still listed');
});

t.test('deleting through a linked models folder or a linked binary still deletes what lies inside', async (t) => {
  const base = await modelsFolder(t);
  const real = path.join(base, 'real-models');
  const outside = path.join(base, 'outside');
  await mkdir(path.join(real, 'm'), { recursive: true });
  await mkdir(outside);
  await symlink(real, path.join(base, 'models'));
  writeTinyLlamaGguf(path.join(real, 'm/m.gguf'), { layers: 1 });
  await putFile(real, 'm/model.json', {});
  // a binary linked in from elsewhere: the link goes, its target stays
  await mkdir(path.join(real, 'l'));
  writeTinyLlamaGguf(path.join(outside, 'big.gguf'), { layers: 1 });
  await symlink(path.join(outside, 'big.gguf'), path.join(real, 'l/l.gguf'));
  await putFile(real, 'l/model.json', {});
  const reg = await registry(path.join(base, 'models'));

  await reg.remove(reg.resolve('m'));
  t.notOk(existsSync(path.join(real, 'm')), 'binary, object and folder deleted when the models folder itself is a link');
  await reg.remove(reg.resolve('l'));
  t.notOk(existsSync(path.join(real, 'l')), 'the linked binary (the link), the object and the folder deleted');
  t.ok(existsSync(path.join(outside, 'big.gguf')), 'the link target stays');
});

t.test('a folder linked to another model folder: deleting the alias leaves the real model whole', async (t) => {
  const dir = await modelsFolder(t);
  await mkdir(path.join(dir, 'real'));
  writeTinyLlamaGguf(path.join(dir, 'real/real.gguf'), { layers: 1 });
  await putFile(dir, 'real/model.json', {});
  await symlink(path.join(dir, 'real'), path.join(dir, 'alias'));
  const reg = await registry(dir);
  t.ok(reg.get('alias/model') && reg.get('real/model'));
  await reg.remove(reg.resolve('alias/model'));
  t.notOk(existsSync(path.join(dir, 'alias')), 'the alias link went');
  t.ok(existsSync(path.join(dir, 'real/real.gguf')) && existsSync(path.join(dir, 'real/model.json')), 'the real model is whole');
  t.ok(reg.get('real/model'));
});

t.test('place: two places of one name at once leave the winner whole, whatever the order', async (t) => {
  // The first places three files, the second one of them: unserialised, the second finished
  // first, and the first's clean-up then removed the link the second's object named.
  const dir = await modelsFolder(t);
  const src = path.join(dir, '..', `src-${path.basename(dir)}`);
  await mkdir(src, { recursive: true });
  t.teardown(async () => { await (await import('node:fs/promises')).rm(src, { recursive: true, force: true }); });
  for (const f of ['a.gguf', 'b.gguf', 'c.gguf']) writeTinyLlamaGguf(path.join(src, f), {});
  const reg = await registry(dir);
  const object = (files: string[]) => ({ metadata: { binaries: files.map((f) => ({ path: `./${f}` })) } });
  const slow = reg.place('same/model', 'model', object(['a.gguf', 'b.gguf', 'c.gguf']) as never, ['a.gguf', 'b.gguf', 'c.gguf'].map((f) => ({ from: path.join(src, f), rel: f })));
  const quick = reg.place('same/model', 'model', object(['a.gguf']) as never, [{ from: path.join(src, 'a.gguf'), rel: 'a.gguf' }]);
  const results = await Promise.allSettled([slow, quick]);
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const won = (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ binaries: Array<{ path: string; present: boolean }> }>).value;
  t.ok(won.binaries.every((b) => b.present && existsSync(b.path)), 'every binary the winner names is there');
  t.match((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason, { code: 'model_exists', param: 'model' });
});
