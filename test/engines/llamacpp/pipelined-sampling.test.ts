import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { resolveParams } from '../../../src/engines/descriptors.ts';
import { LLAMACPP_DESCRIPTORS } from '../../../src/engines/llamacpp/descriptors.ts';
import { LlamaCppEngine } from '../../../src/engines/llamacpp/engine.ts';
import { tempDir } from '../../helpers/app.ts';
import { writeTinyLlamaGguf } from '../../helpers/gguf-writer.ts';

// With one libuv pool thread (what `bin/modeld.cjs` sets up) the decode loop queues each step's
// samplings behind its decode. This process has libuv's default pool, so the path is proven in a
// child started with UV_THREADPOOL_SIZE=1, against the ordinary path here, on the same file.
const HELPER = path.join(import.meta.dirname, '../../helpers/parallel-generations.ts');

t.test('pipelined sampling (one pool thread) gives the same greedy answers as sampling after each decode', async (t) => {
  const dir = await tempDir();
  const file = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(file, { contextLength: 512 });

  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', HELPER, file], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    timeout: 120_000,
  });
  const child = JSON.parse(stdout.trim().split('\n').pop()!) as { pipelined: boolean; batching: { sequences_per_batch: Record<string, number> }; alone: string[]; together: string[] };
  t.equal(child.pipelined, true, 'the child pipelines its sampling');
  t.ok((child.batching.sequences_per_batch['4'] ?? 0) > 10, `the parallel run shared batches: ${JSON.stringify(child.batching.sequences_per_batch)}`);
  t.same(child.together, child.alone, 'in parallel, the same answers as one at a time');

  const engine = new LlamaCppEngine({ gpu: 'false', threads: 2 });
  const params = resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'test', values: { ctx_len: 256, n_parallel: 4 } }]);
  const m = await engine.load({ id: 'p', files: [file], folder: dir, params, metadata: {} }, new AbortController().signal);
  t.teardown(() => m.dispose());
  t.equal(m.info!.pipelined_sampling, false, 'this process samples after each decode');
  const never = new AbortController().signal;
  const here = await Promise.all(['hello world', 'the cat', 'once upon a time', 'a big red ball'].map(async (p) => (await m.complete!(p, { params: { temperature: 0, max_tokens: 24 }, signal: never })).text));
  t.same(child.together, here, 'and the same answers as the ordinary path');
  t.ok(here.every((s) => s.length > 0));
});
