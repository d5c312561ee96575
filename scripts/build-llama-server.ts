/**
 * `npm run build:llama-server [-- --jobs N] [--force]`
 *
 * Builds upstream `llama-server` and `llama-bench` from the same llama.cpp
 * commit node-llama-cpp bundles, so benchmarks compare modeld against
 * llama.cpp's own server on identical kernels. CPU only, OpenMP, Release,
 * native CPU flags, fully offline (no curl, no TLS, no web UI download).
 *
 * The checkout and build live outside the repo, in
 * `$MODELD_LLAMA_CACHE/<commit>` (default `~/.cache/modeld/llama.cpp/<commit>`),
 * so they survive `npm ci` and are shared by all worktrees.
 *
 * Prints the binary paths as `LLAMA_SERVER=...` / `LLAMA_BENCH=...` lines on
 * stdout for scripts to pick up.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  formatDuration,
  llamaCppBundleCommit,
  llamaCppBundlePath,
  parseArgs,
  run,
} from './lib/llama-source.ts';

const TARGETS = ['llama-server', 'llama-bench'];

/**
 * CMake cache entries. Tests/examples/UI/TLS are off because benchmarks only
 * need the two binaries and the build must not reach the network; static libs
 * keep the binaries runnable from anywhere without LD_LIBRARY_PATH.
 */
const CMAKE_OPTIONS: Record<string, string> = {
  CMAKE_BUILD_TYPE: 'Release',
  BUILD_SHARED_LIBS: 'OFF',
  GGML_NATIVE: 'ON',
  GGML_OPENMP: 'ON',
  GGML_CUDA: 'OFF',
  GGML_VULKAN: 'OFF',
  GGML_METAL: 'OFF',
  GGML_CCACHE: 'OFF',
  // Deprecated in this llama.cpp (warns), kept so older commits stay offline too.
  LLAMA_CURL: 'OFF',
  LLAMA_OPENSSL: 'OFF',
  LLAMA_BUILD_BORINGSSL: 'OFF',
  LLAMA_BUILD_UI: 'OFF',
  LLAMA_USE_PREBUILT_UI: 'OFF',
  LLAMA_BUILD_TESTS: 'OFF',
  LLAMA_BUILD_EXAMPLES: 'OFF',
  LLAMA_BUILD_APP: 'OFF',
  LLAMA_BUILD_TOOLS: 'ON',
  LLAMA_BUILD_SERVER: 'ON',
};

interface Stamp {
  commit: string;
  options: Record<string, string>;
  builtAt: string;
  seconds: number;
}

function llamaCacheRoot(): string {
  return process.env.MODELD_LLAMA_CACHE ?? path.join(os.homedir(), '.cache', 'modeld', 'llama.cpp');
}

async function readStamp(file: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
}

function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/** libgomp (GCC) or libomp (clang) in the dynamic deps is the reliable sign OpenMP made it in. */
function linksOpenMp(binary: string): boolean | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return /lib(g|i)?omp/.test(execFileSync('ldd', [binary], { encoding: 'utf8' }));
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const force = args.has('force');
  const jobsArg = args.get('jobs');
  const jobs = typeof jobsArg === 'string' ? Number(jobsArg) : os.availableParallelism();
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a positive integer (got ${String(jobsArg)})`);

  const bundle = llamaCppBundlePath();
  const commit = llamaCppBundleCommit(bundle);
  const dir = path.join(llamaCacheRoot(), commit);
  const src = path.join(dir, 'src');
  const build = path.join(dir, 'build');
  const stampFile = path.join(build, 'modeld-build.json');
  const bins = Object.fromEntries(TARGETS.map((t) => [t, path.join(build, 'bin', t)]));

  const stamp = await readStamp(stampFile);
  if (
    !force &&
    stamp?.commit === commit &&
    sameOptions(stamp.options, CMAKE_OPTIONS) &&
    TARGETS.every((t) => existsSync(bins[t]!))
  ) {
    console.error(`[build:llama-server] up to date (llama.cpp ${commit.slice(0, 12)}, built ${stamp.builtAt}); use --force to rebuild`);
    printPaths(bins);
    return;
  }

  const started = Date.now();
  if (force || !existsSync(path.join(src, '.git'))) {
    await rm(src, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    console.error(`[build:llama-server] cloning ${bundle} -> ${src}`);
    await run('git', ['clone', '--quiet', bundle, src]);
  }
  // The bundle has one head; pinning makes a reused checkout deterministic too.
  await run('git', ['-C', src, 'checkout', '--quiet', '--detach', commit]);
  if (force) await rm(build, { recursive: true, force: true });

  const generatorName = hasOnPath('ninja') ? 'Ninja' : 'Unix Makefiles';
  // The build number feeds `--version`; without git tags it would read 0.
  const defs = Object.entries({ ...CMAKE_OPTIONS, LLAMA_BUILD_NUMBER: '1' }).map(([k, v]) => `-D${k}=${v}`);
  // cmake refuses to reconfigure a build dir made with another generator;
  // otherwise keep it so an interrupted build resumes incrementally.
  if ((await cachedGenerator(build)) !== generatorName) await rm(build, { recursive: true, force: true });
  await run('cmake', ['-S', src, '-B', build, '-G', generatorName, ...defs, '-Wno-dev']);
  await run('cmake', ['--build', build, '--config', 'Release', '-j', String(jobs), '--target', ...TARGETS]);

  for (const t of TARGETS) {
    if (!existsSync(bins[t]!)) throw new Error(`build finished but ${bins[t]} is missing`);
  }
  const omp = linksOpenMp(bins['llama-bench']!);
  if (omp === false) throw new Error('llama-bench does not link an OpenMP runtime; is libgomp (gcc) installed?');

  const seconds = Math.round((Date.now() - started) / 1000);
  const newStamp: Stamp = { commit, options: CMAKE_OPTIONS, builtAt: new Date().toISOString(), seconds };
  await writeFile(stampFile, JSON.stringify(newStamp, null, 2) + '\n');
  console.error(`[build:llama-server] built in ${formatDuration(seconds * 1000)} (OpenMP ${omp === undefined ? 'unchecked' : 'linked'}) with -j${jobs}`);
  printPaths(bins);
}

async function cachedGenerator(build: string): Promise<string | undefined> {
  try {
    const cache = await readFile(path.join(build, 'CMakeCache.txt'), 'utf8');
    return /^CMAKE_GENERATOR:INTERNAL=(.*)$/m.exec(cache)?.[1];
  } catch {
    return undefined;
  }
}

function hasOnPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && existsSync(path.join(d, cmd)));
}

function printPaths(bins: Record<string, string>): void {
  console.log(`LLAMA_SERVER=${bins['llama-server']}`);
  console.log(`LLAMA_BENCH=${bins['llama-bench']}`);
}

main().catch((err: unknown) => {
  console.error(`[build:llama-server] ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
