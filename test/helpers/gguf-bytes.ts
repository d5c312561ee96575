import { createHash, randomBytes } from 'node:crypto';
import { GGUFValueType, serializeGgufMetadata, type GGUFTypedMetadata } from '@huggingface/gguf';

export interface GgufBytesOptions {
  architecture?: string;
  contextLength?: number;
  /** GGUF `general.file_type` (15 = Q4_K_M, 7 = Q8_0, 1 = F16). */
  fileType?: number;
  name?: string;
  /** Bytes after the header standing in for the weights. Default 64 KiB. */
  payloadBytes?: number;
  /** Extra string metadata (e.g. `split.count`). */
  extra?: Record<string, string | number>;
}

/**
 * A header-only GGUF (no tensors) plus a random payload: enough for header readers and
 * download tests, not for inference. The payload is random, so every call has its own sha256.
 */
export function ggufBytes(o: GgufBytesOptions = {}): Buffer {
  const arch = o.architecture ?? 'llama';
  const kv: Record<string, { value: unknown; type: GGUFValueType }> = {
    'general.architecture': { value: arch, type: GGUFValueType.STRING },
    'general.name': { value: o.name ?? 'test model', type: GGUFValueType.STRING },
    'general.file_type': { value: o.fileType ?? 15, type: GGUFValueType.UINT32 },
    [`${arch}.context_length`]: { value: o.contextLength ?? 4096, type: GGUFValueType.UINT32 },
    [`${arch}.embedding_length`]: { value: 64, type: GGUFValueType.UINT32 },
  };
  for (const [k, v] of Object.entries(o.extra ?? {})) {
    kv[k] = typeof v === 'number' ? { value: v, type: GGUFValueType.UINT32 } : { value: v, type: GGUFValueType.STRING };
  }
  const typed = {
    version: { value: 3, type: GGUFValueType.UINT32 },
    tensor_count: { value: 0n, type: GGUFValueType.UINT64 },
    kv_count: { value: BigInt(Object.keys(kv).length), type: GGUFValueType.UINT64 },
    ...kv,
  } as unknown as GGUFTypedMetadata;
  return Buffer.concat([Buffer.from(serializeGgufMetadata(typed)), randomBytes(o.payloadBytes ?? 64 * 1024)]);
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
