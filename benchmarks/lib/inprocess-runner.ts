/** Runs `inprocess-llama.ts` in a child process and parses its one-line JSON answer. */
import path from 'node:path';
import type { InprocessDecode, InprocessJob, InprocessLifecycle } from './inprocess-llama.ts';
import { spawnLogged } from './process.ts';

export async function runInprocess<J extends InprocessJob>(job: J): Promise<J['kind'] extends 'lifecycle' ? InprocessLifecycle : InprocessDecode> {
  const proc = spawnLogged(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(import.meta.dirname, 'inprocess-llama.ts'), JSON.stringify(job)]);
  const code = await proc.exited;
  const line = proc.tail().split('\n').reverse().find((l) => l.startsWith('{'));
  if (code !== 0 || !line) throw new Error(`in-process ${job.kind} run failed (exit ${code}):\n${proc.tail()}`);
  return JSON.parse(line) as never;
}
