/**
 * The single place that obtains node-llama-cpp's process-wide `Llama` backend.
 *
 * Two facts drive this module:
 * - node-llama-cpp defaults `maxThreads` to max(cpuMathCores, 4). On a 2-core
 *   box that oversubscribes the CPU and the prebuilt binary decodes ~160×
 *   slower, so we always pass the real physical core count.
 * - The prebuilt CPU binaries lack OpenMP and spawn threads per decode; a
 *   local source build (`npm run build:llama`) is ~1.7× faster on CPU. We use
 *   it whenever it exists, but never build or download at run time: CI and
 *   fresh clones must start on the prebuilt binary without touching the
 *   network.
 */
import { existsSync } from 'node:fs';
import { getLlama, type Llama, type LlamaLogLevel } from 'node-llama-cpp';
import { physicalCoreCount } from '../cpu-cores.ts';

export { countPhysicalCores, parseCgroupCpuMax, parseCpuList, physicalCoreCount } from '../cpu-cores.ts';

export type LlamaGpuOption = 'auto' | false | 'cuda' | 'vulkan';

export interface LlamaRuntimeOptions {
  /**
   * Compute backend. `'auto'` picks the best working one (CUDA, then Vulkan,
   * then CPU); `false` forces CPU. Default `'auto'`.
   */
  gpu?: LlamaGpuOption;
  /**
   * Upper bound on llama.cpp worker threads (count). Default: physical cores,
   * see {@link physicalCoreCount}. Exceeding physical cores slows decoding.
   */
  threads?: number;
  /** Minimum llama.cpp log level forwarded to the console. Default `'warn'`. */
  logLevel?: LlamaLogLevel | `${LlamaLogLevel}`;
  /**
   * Use a local source build from `npm run build:llama` when one matches the
   * requested GPU type. Default `true`; `false` forces the prebuilt binary
   * (useful to compare the two).
   */
  preferLocalBuild?: boolean;
}

export interface LlamaRuntimeInfo {
  /** `'local'`: built from source by `npm run build:llama`; `'prebuilt'`: shipped with node-llama-cpp. */
  build: 'local' | 'prebuilt';
  /** Whether the ggml CPU backend was compiled with OpenMP (persistent thread pool). */
  openmp: boolean;
  /** GPU backend in use (`'cuda'`, `'vulkan'`, `'metal'`) or `false` for CPU only. */
  gpu: string | false;
  /** Space-separated CPU features the CPU backend was compiled for, e.g. `"AVX2 FMA F16C"`. */
  cpuFeatures: string;
  /** Maximum worker threads llama.cpp will use (count). */
  threads: number;
  /** llama.cpp release tag the binary was built from. */
  llamaCppRelease: string;
}

export interface LlamaRuntime {
  llama: Llama;
  info: LlamaRuntimeInfo;
}

/** Rough wall time of `npm run build:llama` on a 2-core machine, for the hint. */
const LOCAL_BUILD_MINUTES = 7;
/** Decode speed-up of the OpenMP build over the prebuilt CPU binary: 2.25× measured on a 100 M-param Q8_0 model, more on tinier ones (docs/llama-build.md). */
const LOCAL_BUILD_SPEEDUP = '2×';

/**
 * Features from the `CPU :` section of llama.cpp's system info string
 * (`"CPU : SSE3 = 1 | AVX2 = 1 | OPENMP = 1 | "`), OpenMP excluded since it is
 * reported on its own.
 */
function parseCpuFeatures(systemInfo: string): string {
  const features: string[] = [];
  let section = '';
  for (const raw of systemInfo.split('|')) {
    let part = raw.trim();
    const header = /^(\w+)\s*:\s*(.*)$/.exec(part);
    if (header) {
      section = header[1]!;
      part = header[2]!;
    }
    const kv = /^(\w+)\s*=\s*(\S+)$/.exec(part);
    if (section === 'CPU' && kv && kv[2] === '1' && kv[1] !== 'OPENMP') features.push(kv[1]!);
  }
  return features.join(' ');
}

/** @internal exported for tests */
export function runtimeInfoFromLlama(llama: Pick<Llama, 'systemInfo' | 'buildType' | 'gpu' | 'maxThreads' | 'llamaCppRelease'>): LlamaRuntimeInfo {
  const systemInfo = llama.systemInfo;
  return {
    build: llama.buildType === 'localBuild' ? 'local' : 'prebuilt',
    openmp: /\bOPENMP = 1\b/.test(systemInfo),
    gpu: llama.gpu,
    cpuFeatures: parseCpuFeatures(systemInfo),
    threads: llama.maxThreads,
    llamaCppRelease: llama.llamaCppRelease.release,
  };
}

let current: Promise<LlamaRuntime> | undefined;

/**
 * Returns the process-wide llama.cpp backend, loading it on first use.
 *
 * node-llama-cpp keeps global native state, so there is one backend per
 * process: the first call's options win and later calls get the same
 * instance (until {@link disposeLlamaRuntime}).
 *
 * Selection uses `build: 'never'`: for each GPU type node-llama-cpp tries
 * `llama/localBuilds/<platform>-<arch>[-gpu]` first, then the prebuilt
 * binary, and throws rather than compile or download if neither loads.
 */
export function getLlamaRuntime(options: LlamaRuntimeOptions = {}): Promise<LlamaRuntime> {
  current ??= loadRuntime(options).catch((err: unknown) => {
    current = undefined;
    throw err;
  });
  return current;
}

async function loadRuntime(options: LlamaRuntimeOptions): Promise<LlamaRuntime> {
  const threads = options.threads ?? physicalCoreCount();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer (got ${threads})`);
  const llama = await getLlama({
    gpu: options.gpu ?? 'auto',
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: threads,
    logLevel: (options.logLevel ?? 'warn') as LlamaLogLevel,
    // The local build folder name hashes custom CMake options while prebuilt
    // lookup ignores them, so a dummy option hides local builds and nothing
    // else: with build 'never' it is never passed to CMake.
    ...(options.preferLocalBuild === false ? { cmakeOptions: { MODELD_PREBUILT_ONLY: '1' } } : {}),
  });
  return { llama, info: runtimeInfoFromLlama(llama) };
}

/** Disposes the process-wide backend (tests, shutdown); the next `getLlamaRuntime` loads a fresh one. */
export async function disposeLlamaRuntime(): Promise<void> {
  const pending = current;
  current = undefined;
  if (!pending) return;
  let runtime: LlamaRuntime;
  try {
    runtime = await pending;
  } catch {
    return;
  }
  await runtime.llama.dispose();
}

/** The start-up log line: which binary runs and how it will use the machine. */
export function describeRuntime(info: LlamaRuntimeInfo): string {
  const build = info.build === 'local' ? 'local source build' : 'prebuilt binary';
  const gpu = info.gpu === false ? 'no GPU' : `GPU ${info.gpu}`;
  return (
    `llama.cpp ${info.llamaCppRelease}: ${build}, OpenMP ${info.openmp ? 'on' : 'off'}, ` +
    `CPU ${info.cpuFeatures || 'baseline'}, ${gpu}, ${info.threads} thread${info.threads === 1 ? '' : 's'}`
  );
}

/**
 * Whether libuv's pool has exactly one thread: UV_THREADPOOL_SIZE=1 in the environment the
 * process started with (libuv reads it once, when the pool starts; `bin/modeld.cjs` sets it
 * only before that). The decode loop then pipelines sampling behind each decode.
 */
export function singleThreadPool(uvThreadpoolSize = process.env.UV_THREADPOOL_SIZE): boolean {
  return uvThreadpoolSize === '1';
}

/**
 * A one-line suggestion when a faster build is within reach, else undefined.
 * Only CPU decoding benefits: with a GPU the thread pool is not the bottleneck.
 */
export function runtimeHint(info: LlamaRuntimeInfo, uvThreadpoolSize = process.env.UV_THREADPOOL_SIZE): string | undefined {
  if (info.gpu !== false) return undefined;
  if (info.openmp) {
    // Decodes run on whichever libuv pool thread is free; each thread has its own OpenMP team (bin/modeld.cjs).
    return singleThreadPool(uvThreadpoolSize)
      ? undefined
      : `UV_THREADPOOL_SIZE is ${uvThreadpoolSize ?? 'unset (4)'}: decodes hop between OpenMP teams and run up to ~1.5× slower; set UV_THREADPOOL_SIZE=1 in the environment (\`node bin/modeld.cjs\` does, unless an --import preload started the pool first)`;
  }
  if (info.build === 'prebuilt') {
    return `prebuilt llama.cpp lacks OpenMP: run \`npm run build:llama\` (≈${LOCAL_BUILD_MINUTES} min, once) for ~${LOCAL_BUILD_SPEEDUP} faster CPU decoding`;
  }
  return 'local llama.cpp build lacks OpenMP (libgomp missing at build time?): install gcc\'s OpenMP runtime and run `npm run build:llama -- --force`';
}

/**
 * Whether `npm run build:llama` left a finished build for `gpu` on disk,
 * without loading it (a loaded ggml cannot be swapped for another in-process).
 * Looks at the default folder name, i.e. assumes no NODE_LLAMA_CPP_CMAKE_OPTION_*.
 */
export function hasLocalBuild(gpu: false | 'cuda' | 'vulkan' = false): boolean {
  const folder = [process.platform === 'win32' ? 'win' : process.platform === 'darwin' ? 'mac' : process.platform, process.arch, ...(gpu ? [gpu] : [])].join('-');
  try {
    const entry = new URL(import.meta.resolve('node-llama-cpp'));
    return existsSync(new URL(`../llama/localBuilds/${folder}/buildDone.status`, entry));
  } catch {
    return false;
  }
}
