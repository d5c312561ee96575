/**
 * modeld as a user runs it: `node bin/modeld.cjs serve` in its own process on a
 * temporary models folder. A separate process (rather than `buildApp` in the
 * benchmark process) keeps the load generator's event loop and the llama.cpp
 * backend out of each other's way, gives llama-server-like isolation (one
 * llama backend per process, so a prebuilt and a local build never meet) and
 * measures the real CLI start-up path and RSS.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import { freePort, rssMiB, spawnLogged, stopProcess, waitForHealthy } from './process.ts';

export interface ModelFolder {
  /** Folder name, which is also the model id. */
  id: string;
  /** The model object written as `model.json`. */
  object: Record<string, unknown>;
}

/** Writes one folder per model object into a new temp models folder; returns its path. */
export async function writeModelsDir(models: ModelFolder[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modeld-bench-models-'));
  for (const m of models) {
    await mkdir(path.join(dir, m.id), { recursive: true });
    await writeFile(path.join(dir, m.id, 'model.json'), JSON.stringify(m.object, null, 2));
  }
  return dir;
}

export interface ModeldServerOptions {
  modelsDir: string;
  /** Server-wide llama.cpp threads (`MODELD_THREADS`). */
  threads: number;
  /** Checkout to run; default this repository (handy to benchmark another worktree). */
  repoRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Node options before the entry script (e.g. `--single-threaded-gc`, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
}

export interface RunningModeld {
  baseUrl: string;
  pid: number | undefined;
  rssMiB(): number | undefined;
  /** POST /v1/models/{id}/start with load overrides; resolves with the response once running. */
  startModel(id: string, overrides?: Record<string, unknown>): Promise<unknown>;
  stopModel(id: string): Promise<unknown>;
  stop(): Promise<void>;
  /** Removes the models folder too. */
  stopAndClean(): Promise<void>;
}

export async function startModeld(opts: ModeldServerOptions): Promise<RunningModeld> {
  const port = await freePort();
  const root = opts.repoRoot ?? REPO_ROOT;
  const proc = spawnLogged(
    process.execPath,
    [...(opts.nodeArgs ?? []), path.join(root, 'bin', 'modeld.cjs'), 'serve', '-p', String(port), '-m', opts.modelsDir, '-l', 'warn', '--keep-alive', '-1'],
    {
      cwd: root,
      env: { ...process.env, MODELD_WATCH: 'false', MODELD_THREADS: String(opts.threads), MODELD_GPU: 'false', MODELD_HOST: '127.0.0.1', ...opts.env },
    },
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHealthy(`${baseUrl}/health`, proc, 60_000);
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  const control = async (id: string, action: 'start' | 'stop', body?: Record<string, unknown>): Promise<unknown> => {
    const res = await fetch(`${baseUrl}/v1/models/${encodeURIComponent(id)}/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const json = (await res.json()) as unknown;
    if (!res.ok) throw new Error(`${action} ${id}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const stop = () => stopProcess(proc, 15_000);
  return {
    baseUrl,
    pid: proc.child.pid,
    rssMiB: () => rssMiB(proc.child.pid),
    startModel: (id, overrides) => control(id, 'start', overrides),
    stopModel: (id) => control(id, 'stop'),
    stop,
    stopAndClean: async () => {
      await stop();
      await rm(opts.modelsDir, { recursive: true, force: true });
    },
  };
}

/** A model object serving `file` (absolute path; the folder then holds only model.json). */
export function llamaModelObject(file: string, parameters: Record<string, unknown>): Record<string, unknown> {
  return { source_url: file, metadata: { engine: 'llamacpp', task: 'text-generation' }, parameters };
}
