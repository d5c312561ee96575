import type { Config } from '../config/config.ts';
import type { Engine } from './engine.ts';
import { ApiEngine } from './api/api-engine.ts';
import { LlamaCppEngine } from './llamacpp/engine.ts';
import { OnnxEngine } from './onnx/onnx-engine.ts';

/** Every engine built into the server. Native libraries load lazily, on first use. */
export async function createEngines(config: Config): Promise<Engine[]> {
  return [new LlamaCppEngine({ gpu: config.gpu, threads: config.threads }), new OnnxEngine({ threads: config.threads }), new ApiEngine()];
}
