// modeld runs with one libuv pool thread that also runs every decode (docs/cpu-batching.md §4):
// the registry's scans, writes and deletions must not wait for it. Here every pool thread is
// held by a long job; the registry's work must end before those jobs do.
import { pbkdf2, pbkdf2Sync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ModelRegistry } from '../../src/registry/registry.ts';
import { modelsFolder, putFile } from '../helpers/app.ts';
import { writeTinyLlamaGguf } from '../helpers/gguf-writer.ts';

/** Holds every pool thread for about `ms`; `freed` tells whether any of them is free again. */
function holdPool(ms: number): { freed: () => boolean; done: Promise<void> } {
  const probe = 20_000;
  const t0 = performance.now();
  pbkdf2Sync('x', 'y', probe, 32, 'sha256');
  const iterations = Math.max(probe, Math.round((probe * ms) / Math.max(1, performance.now() - t0)));
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  let left = threads;
  const done = new Promise<void>((resolve) => {
    for (let i = 0; i < threads; i++) pbkdf2('x', 'y', iterations, 32, 'sha256', () => --left === 0 && resolve());
  });
  return { freed: () => left < threads, done };
}

t.test('a scan, a write and a delete of a model whose binary was read before need no pool thread', async (t) => {
  const dir = await modelsFolder(t);
  await putFile(dir, 'a/model.json', {});
  writeTinyLlamaGguf(path.join(dir, 'a', 'a.gguf'));
  const reg = new ModelRegistry({ modelsDir: dir });
  await reg.scan();
  t.equal(reg.resolve('a').problem, undefined);

  const pool = holdPool(1500);
  t.teardown(() => pool.done);
  // A second model object beside the first: its binary's header is cached.
  writeFileSync(path.join(dir, 'a', 'second.json'), '{}');
  await reg.scan();
  t.ok(reg.get('a/second'), 'the scan saw the new object');
  await reg.write('b/model', { source_url: 'https://example.com/b.gguf' });
  t.ok(reg.get('b/model'), 'written');
  await reg.remove(reg.resolve('b/model'));
  t.notOk(existsSync(path.join(dir, 'b')), 'deleted');
  t.notOk(pool.freed(), 'all of it before any pool thread was free again');
  await pool.done;
});
