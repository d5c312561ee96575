/** Where benchmark inputs and outputs live. Caches sit outside the repository so they survive `npm ci` and are shared by worktrees. */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file is `benchmarks/lib/paths.ts`). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const BENCH_DIR = path.join(REPO_ROOT, 'benchmarks');

/** Raw JSON per section, committed beside RESULTS.md. */
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

/** Synthesised GGUFs and the extracted vocab files; `MODELD_BENCH_CACHE` overrides `~/.cache/modeld/bench`. */
export function benchCacheDir(): string {
  return process.env.MODELD_BENCH_CACHE ?? path.join(os.homedir(), '.cache', 'modeld', 'bench');
}

/** Third-party models shared by the team; absent on a fresh clone (sections then skip them). */
export const SHARED_MODELS_DIR = process.env.MODELD_SHARED_MODELS ?? path.resolve(REPO_ROOT, '..', 'shared', 'models');
