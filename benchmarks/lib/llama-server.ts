/**
 * Upstream llama-server and llama-bench, built by `npm run build:llama-server`
 * from the llama.cpp commit node-llama-cpp bundles (same kernels as modeld's
 * backend). Located through the build's stamp file so a half-finished build
 * is never used; `LLAMA_SERVER` / `LLAMA_BENCH` override the paths.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { llamaCppBundleCommit } from '../../scripts/lib/llama-source.ts';
import { freePort, rssMiB, spawnLogged, stopProcess, waitForHealthy, type Spawned } from './process.ts';

export interface LlamaBinaries {
  server: string;
  bench: string;
  commit: string;
  /** When the stamp says the build finished. */
  builtAt?: string;
}

/** The finished build's binaries, or a reason why there is none. */
export function findLlamaBinaries(): LlamaBinaries | { missing: string } {
  const commit = llamaCppBundleCommit();
  const root = process.env.MODELD_LLAMA_CACHE ?? path.join(os.homedir(), '.cache', 'modeld', 'llama.cpp');
  const build = path.join(root, commit, 'build');
  const server = process.env.LLAMA_SERVER ?? path.join(build, 'bin', 'llama-server');
  const bench = process.env.LLAMA_BENCH ?? path.join(build, 'bin', 'llama-bench');
  let builtAt: string | undefined;
  if (!process.env.LLAMA_SERVER) {
    try {
      builtAt = (JSON.parse(readFileSync(path.join(build, 'modeld-build.json'), 'utf8')) as { builtAt: string }).builtAt;
    } catch {
      return { missing: `no finished llama-server build for llama.cpp ${commit.slice(0, 12)} (run \`npm run build:llama-server\`)` };
    }
  }
  for (const bin of [server, bench]) if (!existsSync(bin)) return { missing: `${bin} not found (run \`npm run build:llama-server\`)` };
  return { server, bench, commit, builtAt };
}

export interface LlamaServerOptions {
  model: string;
  /** Decode and batch threads (`-t`/`-tb`). */
  threads: number;
  /** Slots (`-np`): concurrent sequences. */
  parallel: number;
  /** Context per slot, tokens; `-c` is this times `parallel` since llama-server splits it across slots. */
  ctxPerSlot: number;
  /** More flags, e.g. `['--chat-template', 'chatml']`. */
  extraArgs?: string[];
}

export interface RunningServer {
  baseUrl: string;
  pid: number | undefined;
  rssMiB(): number | undefined;
  stop(): Promise<void>;
}

/** Starts llama-server on a free loopback port and waits until /health says the model is loaded. */
export async function startLlamaServer(bin: string, opts: LlamaServerOptions): Promise<RunningServer> {
  const port = await freePort();
  const args = [
    '-m', opts.model,
    '-t', String(opts.threads), '-tb', String(opts.threads),
    '-np', String(opts.parallel),
    '-c', String(opts.ctxPerSlot * opts.parallel),
    '--host', '127.0.0.1', '--port', String(port),
    '--no-webui',
    // Logs cost nothing measurable but would fill the pipe buffer.
    '--log-disable',
    ...(opts.extraArgs ?? []),
  ];
  const proc: Spawned = spawnLogged(bin, args);
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHealthy(`${baseUrl}/health`, proc);
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  return { baseUrl, pid: proc.child.pid, rssMiB: () => rssMiB(proc.child.pid), stop: () => stopProcess(proc) };
}

export interface LlamaBenchRow {
  /** Prompt tokens processed (0 for a generation test). */
  n_prompt: number;
  /** Tokens generated (0 for a prompt test). */
  n_gen: number;
  /** tokens/s per repetition. */
  samples_ts: number[];
  avg_ts: number;
  build_commit?: string;
}

/** Runs `llama-bench -o json` and returns its rows (one per test: pp and tg). */
export async function runLlamaBench(bin: string, opts: { model: string; threads: number; prompt: number; gen: number; reps: number }): Promise<LlamaBenchRow[]> {
  const { stdout } = await promisify(execFile)(
    bin,
    ['-m', opts.model, '-t', String(opts.threads), '-p', String(opts.prompt), '-n', String(opts.gen), '-r', String(opts.reps), '-o', 'json'],
    { maxBuffer: 16 * 1024 * 1024, timeout: 10 * 60 * 1000 },
  );
  return JSON.parse(stdout) as LlamaBenchRow[];
}
