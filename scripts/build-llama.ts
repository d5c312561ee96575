/**
 * `npm run build:llama [-- --gpu false|cuda|vulkan] [--force]`
 *
 * Builds node-llama-cpp's native addon from the llama.cpp source it bundles,
 * so the runtime gets an OpenMP build tuned for this CPU (GGML_NATIVE) instead
 * of the prebuilt binary, which spawns fresh threads on every decode. Works
 * offline: the source comes from node-llama-cpp's git bundle and the Node
 * headers cmake-js wants to download are seeded from the system's copy.
 *
 * The result lands in node_modules/node-llama-cpp/llama/localBuilds/, where
 * `getLlama({build: 'never'})` (see src/engines/llamacpp/llama-runtime.ts)
 * picks it up ahead of the prebuilt binary.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, symlink, cp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  formatDuration,
  llamaCppBundleCommit,
  llamaCppBundleRelease,
  nodeLlamaCppRoot,
  parseArgs,
  run,
} from './lib/llama-source.ts';

type GpuArg = false | 'cuda' | 'vulkan';

interface ProbeResult {
  found: boolean;
  error?: string;
  buildType?: string;
  gpu?: string | false;
  systemInfo?: string;
  release?: string;
}

function parseGpu(value: string | true | undefined): GpuArg {
  if (value === undefined || value === true || value === 'false' || value === 'cpu') return false;
  if (value === 'cuda' || value === 'vulkan') return value;
  throw new Error(`--gpu must be false, cuda or vulkan (got ${value})`);
}

function nodeMajorOfHeaders(includeNodeDir: string): number | undefined {
  try {
    const header = readFileSync(path.join(includeNodeDir, 'node_version.h'), 'utf8');
    const m = /#define\s+NODE_MAJOR_VERSION\s+(\d+)/.exec(header);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * cmake-js 8 downloads `node-v<ver>-headers.tar.gz` from nodejs.org unless it
 * finds `<dir>/include/node/node.h`, where <dir> is `npm_config_nodedir` or
 * `~/.cmake-js/node-<arch>/v<ver>`. We seed the latter from the headers the
 * running Node was installed with and also point nodedir at it, so a stale
 * user-level `nodedir` can't redirect the build. The addon only uses N-API, so
 * any header set of the same major version is ABI-compatible.
 */
async function seedNodeHeaders(): Promise<string> {
  const cacheRoot = path.join(os.homedir(), '.cmake-js', `node-${process.arch}`, `v${process.versions.node}`);
  const cacheInclude = path.join(cacheRoot, 'include', 'node');
  if (existsSync(path.join(cacheInclude, 'node.h'))) return cacheRoot;

  const major = Number(process.versions.node.split('.')[0]);
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/local/include/node',
    '/usr/include/node',
  ].filter((p): p is string => Boolean(p));
  const source = candidates.find(
    (dir) => existsSync(path.join(dir, 'node.h')) && existsSync(path.join(dir, 'node_api.h')) && nodeMajorOfHeaders(dir) === major,
  );
  if (!source) {
    throw new Error(
      `No Node ${major} headers found (looked in ${candidates.join(', ')}). ` +
        'Install them (Debian: apt-get install libnode-dev; official node images ship them) or allow cmake-js to download them.',
    );
  }
  await mkdir(path.dirname(cacheInclude), { recursive: true });
  try {
    await symlink(source, cacheInclude, 'dir');
  } catch {
    await cp(source, cacheInclude, { recursive: true, dereference: true });
  }
  console.log(`[build:llama] seeded cmake-js headers ${cacheInclude} -> ${source}`);
  return cacheRoot;
}

/**
 * Loads the local build (and only the local build) in a child process, so the
 * parent never holds a stale addon and the check is exactly what the runtime
 * will see.
 */
function probeLocalBuild(gpu: GpuArg): ProbeResult {
  const entry = pathToFileURL(path.join(nodeLlamaCppRoot(), 'dist', 'index.js')).href;
  const code = `
    const { getLlama } = await import(${JSON.stringify(entry)});
    try {
      const llama = await getLlama({ gpu: ${JSON.stringify(gpu)}, build: 'never', usePrebuiltBinaries: false,
        skipDownload: true, progressLogs: false, logLevel: 'error', maxThreads: 1 });
      console.log(JSON.stringify({ found: true, buildType: llama.buildType, gpu: llama.gpu,
        systemInfo: llama.systemInfo, release: llama.llamaCppRelease.release }));
      await llama.dispose();
    } catch (err) {
      console.log(JSON.stringify({ found: false, error: String(err && err.message || err) }));
    }`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  return line ? (JSON.parse(line) as ProbeResult) : { found: false, error: out };
}

function hasOpenMp(systemInfo: string | undefined): boolean {
  return /OPENMP = 1/.test(systemInfo ?? '');
}

async function isSourceCloned(root: string, release: string): Promise<boolean> {
  const info = path.join(root, 'llama', 'llama.cpp.info.json');
  if (!existsSync(path.join(root, 'llama', 'llama.cpp', '.git')) || !existsSync(info)) return false;
  try {
    return (JSON.parse(await readFile(info, 'utf8')) as { tag?: string }).tag === release;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const gpu = parseGpu(args.get('gpu'));
  const force = args.has('force');
  const root = nodeLlamaCppRoot();
  const release = await llamaCppBundleRelease();
  const commit = llamaCppBundleCommit();
  const label = gpu === false ? 'CPU' : gpu;

  if (Object.keys(process.env).some((k) => k.startsWith('NODE_LLAMA_CPP_CMAKE_OPTION_'))) {
    console.warn(
      '[build:llama] NODE_LLAMA_CPP_CMAKE_OPTION_* is set: the build folder name includes these options, ' +
        'so the server must run with the same variables to find this build.',
    );
  }

  if (!force) {
    const existing = probeLocalBuild(gpu);
    if (existing.found && existing.release === release && (gpu !== false || hasOpenMp(existing.systemInfo))) {
      console.log(`[build:llama] local ${label} build of llama.cpp ${release} already present (OpenMP ${hasOpenMp(existing.systemInfo) ? 'on' : 'off'}); use --force to rebuild`);
      return;
    }
  }

  const started = Date.now();
  const nodedir = await seedNodeHeaders();
  const cli = path.join(root, 'dist', 'cli', 'cli.js');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    npm_config_nodedir: nodedir,
    // The build must never fall back to cloning from GitHub.
    NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true',
    // Keep npm's update check and funding chatter off the offline build.
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
  };
  const gpuFlag = String(gpu);
  console.log(`[build:llama] building llama.cpp ${release} (${commit.slice(0, 12)}) for ${label} from ${path.join(root, 'llama', 'gitRelease.bundle')}`);

  if (force || !(await isSourceCloned(root, release))) {
    // `source download` with the release the bundle was made for clones the
    // bundle (no network), applies node-llama-cpp's patches, then builds.
    await run(process.execPath, [cli, 'source', 'download', '--release', release, '--gpu', gpuFlag, '--noUsageExample'], { env });
  } else {
    await run(process.execPath, [cli, 'source', 'build', '--gpu', gpuFlag, '--noUsageExample'], { env });
  }

  const built = probeLocalBuild(gpu);
  const elapsed = formatDuration(Date.now() - started);
  if (!built.found) throw new Error(`build finished but the local build does not load: ${built.error}`);
  console.log(`[build:llama] ${built.systemInfo?.trim()}`);
  if (!hasOpenMp(built.systemInfo)) {
    throw new Error('local build loads but lacks OpenMP (OPENMP = 1 missing from systemInfo); is libgomp (gcc) installed?');
  }
  console.log(`[build:llama] done in ${elapsed}: local ${label} build with OpenMP (gpu: ${built.gpu})`);
}

main().catch((err: unknown) => {
  console.error(`[build:llama] ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
