import t from 'tap';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlamaCompletion } from 'node-llama-cpp';
import {
  countPhysicalCores,
  describeRuntime,
  disposeLlamaRuntime,
  getLlamaRuntime,
  hasLocalBuild,
  parseCgroupCpuMax,
  parseCpuList,
  physicalCoreCount,
  runtimeHint,
  runtimeInfoFromLlama,
  type LlamaRuntimeInfo,
} from '../../../src/engines/llamacpp/llama-runtime.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const sharedModels = path.resolve(repoRoot, process.env.MODELD_SHARED_MODELS ?? '../shared/models');
const stories = path.join(sharedModels, 'stories260K', 'stories260K.gguf');

function cpuinfo(entries: Array<[processor: number, physical: number, core: number]>): string {
  return entries
    .map(([p, phys, core]) => `processor\t: ${p}\nvendor_id\t: GenuineIntel\nphysical id\t: ${phys}\ncore id\t\t: ${core}\nflags\t\t: fpu sse\n`)
    .join('\n');
}

t.test('physicalCoreCount is a sane positive integer', async (t) => {
  const n = physicalCoreCount();
  t.ok(Number.isInteger(n) && n >= 1, `got ${n}`);
  t.ok(n <= os.availableParallelism(), 'never more than the usable logical CPUs');
});

t.test('countPhysicalCores ignores hyper-threads and CPUs outside the affinity mask', async (t) => {
  // 2 sockets × 2 cores × 2 threads
  const info = cpuinfo([
    [0, 0, 0], [1, 0, 1], [2, 1, 0], [3, 1, 1],
    [4, 0, 0], [5, 0, 1], [6, 1, 0], [7, 1, 1],
  ]);
  t.equal(countPhysicalCores(info), 4);
  t.equal(countPhysicalCores(info, new Set([0, 4])), 1, 'SMT siblings of one core');
  t.equal(countPhysicalCores(info, new Set([0, 2])), 2, 'same core id on different sockets');
  t.equal(countPhysicalCores('processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\n'), undefined, 'no topology -> caller falls back');
});

t.test('CPU list and cgroup quota parsing', async (t) => {
  t.same([...parseCpuList('0-2,5,7-8')], [0, 1, 2, 5, 7, 8]);
  t.equal(parseCgroupCpuMax('max 100000\n'), undefined);
  t.equal(parseCgroupCpuMax('200000 100000\n'), 2);
  t.equal(parseCgroupCpuMax('150000 100000'), 2, 'fractional quota rounds up');
  t.equal(parseCgroupCpuMax('50000 100000'), 1);
  t.equal(parseCgroupCpuMax('garbage'), undefined);
});

t.test('runtimeInfoFromLlama parses llama.cpp system info', async (t) => {
  const info = runtimeInfoFromLlama({
    systemInfo: 'CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | AVX512 = 0 | OPENMP = 1 | REPACK = 1 | ',
    buildType: 'localBuild',
    gpu: 'cuda',
    maxThreads: 8,
    llamaCppRelease: { repo: 'ggml-org/llama.cpp', release: 'b1234' },
  });
  t.same(info, { build: 'local', openmp: true, gpu: 'cuda', cpuFeatures: 'SSE3 AVX2 FMA REPACK', threads: 8, llamaCppRelease: 'b1234' });
});

t.test('runtimeHint suggests the OpenMP build only where it helps', async (t) => {
  const base: LlamaRuntimeInfo = { build: 'prebuilt', openmp: false, gpu: false, cpuFeatures: 'AVX2', threads: 2, llamaCppRelease: 'v0.5.0' };
  t.match(runtimeHint(base), /npm run build:llama.*faster CPU decoding/);
  t.equal(runtimeHint({ ...base, build: 'local', openmp: true }, '1'), undefined, 'already on the fast build, one pool thread');
  t.match(runtimeHint({ ...base, build: 'local', openmp: true }, undefined), /UV_THREADPOOL_SIZE is unset.*set UV_THREADPOOL_SIZE=1/, 'OpenMP build with libuv\'s default pool');
  t.equal(runtimeHint({ ...base, gpu: 'cuda' }), undefined, 'GPU decoding does not depend on the CPU thread pool');
  t.match(runtimeHint({ ...base, build: 'local' }), /--force/, 'local build without OpenMP points at a rebuild');
  t.match(describeRuntime(base), /prebuilt binary, OpenMP off, CPU AVX2, no GPU, 2 threads/);
  t.match(describeRuntime({ ...base, build: 'local', openmp: true, gpu: 'vulkan', threads: 1 }), /local source build, OpenMP on, .*GPU vulkan, 1 thread$/);
});

t.test('getLlamaRuntime loads the build on disk with physical-core threads', async (t) => {
  t.teardown(disposeLlamaRuntime);
  const first = await getLlamaRuntime({ gpu: false });
  const second = await getLlamaRuntime({ gpu: false });
  t.equal(second, first, 'memoised');
  t.equal(second.llama, first.llama, 'one backend per process');

  const { llama, info } = first;
  const local = hasLocalBuild(false);
  t.equal(info.build, local ? 'local' : 'prebuilt', `local build on disk: ${local}`);
  if (local) t.ok(info.openmp, 'npm run build:llama links OpenMP');
  t.equal(info.threads, physicalCoreCount());
  t.equal(llama.maxThreads, physicalCoreCount());
  t.equal(info.gpu, false);
  t.ok(info.llamaCppRelease.length > 0);
  t.comment(describeRuntime(info));
  const hint = runtimeHint(info);
  if (hint) t.comment(hint);

  if (!existsSync(stories)) {
    t.comment(`skipping generation: ${stories} not found`);
    return;
  }
  const model = await llama.loadModel({ modelPath: stories });
  t.teardown(() => model.dispose());
  const context = await model.createContext({ contextSize: 256 });
  const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
  const text = await completion.generateCompletion('Once upon a time', { maxTokens: 16, temperature: 0 });
  t.ok(text.trim().length > 0, `generated: ${JSON.stringify(text)}`);
  await context.dispose();
});
