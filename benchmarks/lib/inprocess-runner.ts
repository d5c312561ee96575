/** Runs `inprocess-llama.ts` in a child process and parses its one-line JSON answer. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { DecodeRun, InprocessDecode, InprocessJob, InprocessLifecycle } from './inprocess-llama.ts';
import { spawnLogged } from './process.ts';

export async function runInprocess<J extends Exclude<InprocessJob, { kind: 'serve' }>>(job: J): Promise<J['kind'] extends 'lifecycle' ? InprocessLifecycle : InprocessDecode> {
  const proc = spawnLogged(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(import.meta.dirname, 'inprocess-llama.ts'), JSON.stringify(job)]);
  const code = await proc.exited;
  const line = proc.tail().split('\n').reverse().find((l) => l.startsWith('{'));
  if (code !== 0 || !line) throw new Error(`in-process ${job.kind} run failed (exit ${code}):\n${proc.tail()}`);
  return JSON.parse(line) as never;
}

export interface InprocessDecoder {
  runtime: string;
  pid: number | undefined;
  decode(prompt: string, tokens: number): Promise<DecodeRun>;
  stop(): Promise<void>;
}

/** A long-lived in-process decoder (model loaded once) answering one decode run per call, in order. */
export async function startInprocessDecoder(job: { model: string; threads: number; ctx: number }): Promise<InprocessDecoder> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'inprocess-llama.ts'), JSON.stringify({ kind: 'serve', ...job })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  const queued: string[] = [];
  lines.on('line', (line) => {
    if (!line.startsWith('{')) return;
    const w = waiting.shift();
    if (w) w(line);
    else queued.push(line);
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const next = (): Promise<string> =>
    queued.length > 0
      ? Promise.resolve(queued.shift()!)
      : Promise.race([new Promise<string>((resolve) => waiting.push(resolve)), exited.then(() => Promise.reject(new Error('in-process decoder exited')))]);
  const ready = JSON.parse(await next()) as { runtime: string };
  return {
    runtime: ready.runtime,
    pid: child.pid,
    async decode(prompt, tokens) {
      child.stdin!.write(JSON.stringify({ prompt, tokens }) + '\n');
      return JSON.parse(await next()) as DecodeRun;
    },
    async stop() {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
