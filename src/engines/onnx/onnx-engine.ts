import { createRequire } from 'node:module';
import type { Capability, Engine, EngineStatus, LoadedModel, LoadSpec, ParamDescriptor } from '../engine.ts';
import { OnnxClassifier, type OnnxLoadParams } from './onnx-classifier.ts';
import { onnxDescriptors } from './onnx-descriptors.ts';
import { bindingInstalled, cudaInstalled, loadOrt, physicalCores } from './ort.ts';

export interface OnnxEngineOptions {
  /** Default intra-op threads; 0 or absent = the machine's physical cores. */
  threads?: number;
}

function ortVersion(): string | undefined {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * The onnx engine: ONNX classifiers on onnxruntime-node (CPU, or CUDA when its binaries are
 * installed). The native library loads on the first model load.
 */
export class OnnxEngine implements Engine {
  readonly name = 'onnx' as const;
  readonly descriptors: readonly ParamDescriptor[];
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(['classification', 'rerank']);

  constructor(options: OnnxEngineOptions = {}) {
    this.descriptors = onnxDescriptors(options.threads && options.threads > 0 ? options.threads : physicalCores());
  }

  async status(): Promise<EngineStatus> {
    if (!bindingInstalled()) {
      return { available: false, reason: `onnxruntime-node has no native binding for ${process.platform}/${process.arch}` };
    }
    const cuda = cudaInstalled();
    return {
      available: true,
      reason: cuda ? 'CUDA execution provider installed; CPU as fallback' : 'CPU execution provider (CUDA binaries not installed)',
      info: {
        onnxruntime_node: ortVersion(),
        execution_providers: cuda ? ['cuda', 'cpu'] : ['cpu'],
        physical_cores: physicalCores(),
      },
    };
  }

  async load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel> {
    const ort = await loadOrt();
    signal.throwIfAborted();
    return OnnxClassifier.load(ort, spec, spec.params as unknown as OnnxLoadParams, signal);
  }

  async dispose(): Promise<void> {
    // Sessions belong to their LoadedModels, which the model manager disposes.
  }
}
