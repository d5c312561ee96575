import { format } from 'node:util';

/**
 * Runs a CLI command function in this process, capturing what it prints with console.log
 * (stdout) and console.error (stderr). Spawning the CLI costs seconds of start-up per call.
 */
export async function captureCli(fn: () => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(format(...a));
  console.error = (...a: unknown[]) => void err.push(format(...a));
  try {
    const code = await fn();
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}
