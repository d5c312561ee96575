import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { readPartRecord, sidecarPathOf, writePartRecord } from '../../src/downloads/part-files.ts';
import { tempDir } from '../helpers/app.ts';

t.test('concurrent sidecar writes in one process never collide on a temp name', async (t) => {
  const dir = await tempDir('modeld-part-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dest = path.join(dir, 'm.gguf');
  const writes = Array.from({ length: 20 }, (_, i) => writePartRecord(dest, { url: `http://x.test/${i}`, total_bytes: i }));
  const results = await Promise.allSettled(writes);
  t.same(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], 'every write succeeds');
  const record = await readPartRecord(dest);
  t.match(record, { url: /^http:\/\/x\.test\/\d+$/ }, 'the sidecar is one whole record');
  t.ok(JSON.parse(await readFile(sidecarPathOf(dest), 'utf8')));
  t.same(await readdir(dir), [path.basename(sidecarPathOf(dest))], 'no temp file left');
});
