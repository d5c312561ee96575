/** The machine and software a benchmark run measured, for the head of RESULTS.md. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { llamaCppBundleCommit, llamaCppBundleRelease, nodeLlamaCppRoot } from '../../scripts/lib/llama-source.ts';
import { physicalCoreCount } from '../../src/engines/llamacpp/llama-runtime.ts';

export interface MachineInfo {
  date: string;
  cpu: string;
  physicalCores: number;
  logicalCores: number;
  ramGiB: number;
  os: string;
  node: string;
  nodeLlamaCpp: string;
  llamaCppRelease: string;
  llamaCppCommit: string;
  /** What modeld's runtime picks: prebuilt or local, OpenMP or not (from a child process, since loading a backend is per process). */
  llamaBuild: string;
  onnxruntimeNode: string;
  /** 1-minute load average at the start: how shared the machine was. */
  loadAverage: number;
  gitCommit: string;
  /** OMP_WAIT_POLICY every llama.cpp process ran with ("default" = libgomp's spin-then-sleep). */
  ompWaitPolicy: string;
}

function osName(): string {
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty) return `${pretty} (${os.type()} ${os.release()}, ${os.arch()})`;
  } catch {
    // not Linux
  }
  return `${os.type()} ${os.release()} ${os.arch()}`;
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Asks a child process which llama.cpp binary the runtime would load (the parent must not load
 * one). The child runs a script file, not `-e`: node-llama-cpp tests a prebuilt binary in a
 * process started with the parent's arguments, which an `-e` script breaks.
 */
export function llamaBuild(repoRoot: string): string {
  const runtime = pathToFileURL(path.join(repoRoot, 'src/engines/llamacpp/llama-runtime.ts')).href;
  const script =
    `const m = await import(${JSON.stringify(runtime)});` +
    'const r = await m.getLlamaRuntime({ gpu: false });' +
    'console.log(m.describeRuntime(r.info)); await m.disposeLlamaRuntime();\n';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'modeld-bench-probe-'));
  const file = path.join(dir, 'probe.mts');
  try {
    writeFileSync(file, script);
    return execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop() ?? 'unknown';
  } catch (err) {
    return `unknown (${(err as Error).message.split('\n')[0]})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function machineInfo(repoRoot: string): Promise<MachineInfo> {
  const nlc = nodeLlamaCppRoot();
  let gitCommit = 'unknown';
  try {
    gitCommit = execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    physicalCores: physicalCoreCount(),
    logicalCores: os.availableParallelism(),
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    node: process.version,
    nodeLlamaCpp: packageVersion(nlc),
    llamaCppRelease: await llamaCppBundleRelease(),
    llamaCppCommit: llamaCppBundleCommit().slice(0, 12),
    llamaBuild: llamaBuild(repoRoot),
    onnxruntimeNode: packageVersion(path.join(nlc, '..', 'onnxruntime-node')),
    loadAverage: Math.round(os.loadavg()[0]! * 100) / 100,
    gitCommit,
    ompWaitPolicy: process.env.OMP_WAIT_POLICY ?? 'default',
  };
}
