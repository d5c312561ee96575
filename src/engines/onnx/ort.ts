import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type Ort = typeof import('onnxruntime-node');

let ortPromise: Promise<Ort> | undefined;

/** onnxruntime-node, imported on first use so a server without ONNX models never loads it. */
export function loadOrt(): Promise<Ort> {
  ortPromise ??= import('onnxruntime-node').then((m) => ((m as { default?: Ort }).default ?? m) as Ort);
  return ortPromise;
}

/** The folder holding onnxruntime-node's native binding and libraries for this platform. */
function bindingDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
    return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/**
 * Whether the CUDA execution provider's binaries are installed beside the binding (the
 * package's install script fetches them only when asked; `.npmrc` skips it by default).
 */
export function cudaInstalled(): boolean {
  const dir = bindingDir();
  if (!dir) return false;
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(path.join(dir, lib));
}

/** Whether the native binding for this platform is present at all. */
export function bindingInstalled(): boolean {
  const dir = bindingDir();
  return !!dir && existsSync(path.join(dir, 'onnxruntime_binding.node'));
}

/** Physical CPU cores: intra-op threads beyond them only contend for the same arithmetic units. */
export { physicalCoreCount as physicalCores } from '../cpu-cores.ts';
