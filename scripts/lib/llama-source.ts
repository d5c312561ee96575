/**
 * Helpers shared by the llama.cpp build scripts. Both builds must come from the
 * exact llama.cpp commit node-llama-cpp ships as a git bundle, so benchmarks of
 * `llama-server` compare like with like and nothing needs the network.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** node-llama-cpp's package directory, resolved the way the runtime resolves it. */
export function nodeLlamaCppRoot(): string {
  const entry = fileURLToPath(import.meta.resolve('node-llama-cpp'));
  // entry is <root>/dist/index.js
  return path.resolve(path.dirname(entry), '..');
}

/** The llama.cpp git bundle node-llama-cpp publishes alongside its prebuilt binaries. */
export function llamaCppBundlePath(): string {
  const bundle = path.join(nodeLlamaCppRoot(), 'llama', 'gitRelease.bundle');
  if (!existsSync(bundle)) {
    throw new Error(`llama.cpp source bundle not found at ${bundle}; reinstall node-llama-cpp`);
  }
  return bundle;
}

/** Commit (full sha) at the bundle's HEAD. */
export function llamaCppBundleCommit(bundle = llamaCppBundlePath()): string {
  const heads = execFileSync('git', ['bundle', 'list-heads', bundle], { encoding: 'utf8' });
  const head = heads.split('\n').find((l) => / HEAD$/.test(l)) ?? heads.split('\n')[0] ?? '';
  const sha = head.split(' ')[0];
  if (!sha || !/^[0-9a-f]{40}$/.test(sha)) throw new Error(`cannot read HEAD of ${bundle}`);
  return sha;
}

/** Release tag node-llama-cpp was built against (e.g. the one its prebuilt binaries carry). */
export async function llamaCppBundleRelease(): Promise<string> {
  const file = path.join(nodeLlamaCppRoot(), 'llama', 'binariesGithubRelease.json');
  const { readFile } = await import('node:fs/promises');
  return (JSON.parse(await readFile(file, 'utf8')) as { release: string }).release;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command with inherited stdio; rejects with its exit code so the script fails loudly. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', cwd: opts.cwd, env: opts.env ?? process.env });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${signal ?? code}`));
    });
  });
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

/** Parses `--flag value`, `--flag=value` and bare `--flag` into a map. */
export function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq !== -1) {
      out.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
      out.set(arg.slice(2), argv[++i]!);
    } else {
      out.set(arg.slice(2), true);
    }
  }
  return out;
}
