/**
 * Placeholder for branch `llamabuild`'s runtime module (same exported shape): the
 * process-wide node-llama-cpp backend, loaded once with the machine's real core count.
 * Replaced wholesale when that branch merges.
 */
import os from 'node:os';
import { getLlama, type Llama, type LlamaLogLevel } from 'node-llama-cpp';

export type LlamaGpuOption = 'auto' | false | 'cuda' | 'vulkan';

export interface LlamaRuntimeOptions {
  /** Compute backend; `false` forces CPU. Default `'auto'`. */
  gpu?: LlamaGpuOption;
  /** Upper bound on llama.cpp worker threads. Default: physical cores. */
  threads?: number;
}

export interface LlamaRuntimeInfo {
  build: 'local' | 'prebuilt';
  openmp: boolean;
  gpu: string | false;
  cpuFeatures: string;
  threads: number;
  llamaCppRelease: string;
}

export interface LlamaRuntime {
  llama: Llama;
  info: LlamaRuntimeInfo;
}

/** Physical cores (SMT siblings excluded, best effort). */
export function physicalCoreCount(): number {
  return Math.max(1, os.availableParallelism());
}

let current: Promise<LlamaRuntime> | undefined;

/** The process-wide backend; the first call's options win. */
export function getLlamaRuntime(options: LlamaRuntimeOptions = {}): Promise<LlamaRuntime> {
  current ??= (async () => {
    const threads = options.threads ?? physicalCoreCount();
    const llama = await getLlama({
      gpu: options.gpu ?? 'auto', build: 'never', skipDownload: true, usePrebuiltBinaries: true,
      progressLogs: false, maxThreads: threads, logLevel: 'warn' as LlamaLogLevel,
    });
    const info: LlamaRuntimeInfo = {
      build: llama.buildType === 'localBuild' ? 'local' : 'prebuilt',
      openmp: /\bOPENMP = 1\b/.test(llama.systemInfo),
      gpu: llama.gpu,
      cpuFeatures: '',
      threads: llama.maxThreads,
      llamaCppRelease: llama.llamaCppRelease.release,
    };
    return { llama, info };
  })().catch((err: unknown) => {
    current = undefined;
    throw err;
  });
  return current;
}

export async function disposeLlamaRuntime(): Promise<void> {
  const pending = current;
  current = undefined;
  if (pending) await (await pending.catch(() => undefined))?.llama.dispose();
}

export function describeRuntime(info: LlamaRuntimeInfo): string {
  return `llama.cpp ${info.llamaCppRelease}: ${info.build}, OpenMP ${info.openmp ? 'on' : 'off'}, ${info.gpu === false ? 'no GPU' : `GPU ${info.gpu}`}, ${info.threads} threads`;
}

export function runtimeHint(_info: LlamaRuntimeInfo): string | undefined {
  return undefined;
}
