import path from 'node:path';
import { expandHome } from '../../config/config.ts';
import { readGgufAdapterHeader } from '../../registry/headers/gguf-header.ts';
import { fsReason } from '../../registry/regular-file.ts';
import { ModelObjectError } from '../engine.ts';

/** One adapter as node-llama-cpp's `createContext({lora})` takes it. */
export interface LoraAdapter {
  filePath: string;
  scale: number;
}

/**
 * The `lora` run parameter's files (relative to the model folder, as `metadata.classes` names
 * a labels file), each checked before llama.cpp sees it: node-llama-cpp reports any failure
 * of `llama_adapter_lora_init` as "Failed to initialize LoRA adapter" and llama.cpp's reason
 * goes only to its log, so the usual mistakes are told here by name (a file that is missing,
 * cut off, no LoRA adapter, or made for another architecture). What llama.cpp still refuses
 * (a tensor shape from another model of the same architecture) fails the load with its message.
 */
export async function loraAdapters(folder: string, names: readonly string[] | null | undefined, scale: number, modelArchitecture: string): Promise<LoraAdapter[]> {
  const adapters: LoraAdapter[] = [];
  for (const name of names ?? []) {
    const filePath = path.resolve(folder, expandHome(name));
    const header = await readGgufAdapterHeader(filePath).catch((err: unknown) => {
      throw new ModelObjectError(`'lora' names ${filePath}, which cannot be read as a GGUF: ${fsReason(err)}`, 'lora');
    });
    if (header.type !== 'adapter' || header.adapterType !== 'lora') {
      const says = header.type !== 'adapter' ? `general.type ${JSON.stringify(header.type ?? null)}` : `adapter.type ${JSON.stringify(header.adapterType ?? null)}`;
      throw new ModelObjectError(`'lora' names ${filePath}, which is no LoRA adapter (its ${says}; an adapter says general.type "adapter" and adapter.type "lora")`, 'lora');
    }
    if (header.architecture !== modelArchitecture) {
      throw new ModelObjectError(`'lora' names ${filePath}, an adapter for ${JSON.stringify(header.architecture ?? null)} models; this model is ${JSON.stringify(modelArchitecture)}`, 'lora');
    }
    adapters.push({ filePath, scale });
  }
  if (new Set(adapters.map((a) => a.filePath)).size !== adapters.length) throw new ModelObjectError(`'lora' names one adapter twice`, 'lora');
  return adapters;
}
