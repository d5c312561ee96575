import type { FileHandle } from 'node:fs/promises';
import { gguf, GGMLFileQuantizationType, GGMLQuantizationType, type GGUFParseOutput } from '@huggingface/gguf';
import { withRegularFile } from '../regular-file.ts';

/** GGUF `<arch>.pooling_type` of a reranker: llama.cpp runs the model's relevance head on a query–document pair. */
export const GGUF_POOLING_RANK = 4;

/**
 * Reads what the model table shows from a GGUF header: architecture, parameter count,
 * quantization, context/embedding length, layers, chat template presence, tokenizer.
 * Only the header and tensor infos are read, never the weights: from a local file (opened by
 * openRegularFile: a FIFO or device in its place is refused, never waited on), or from an
 * http(s) URL with range requests (`headers` go with them, e.g. a hub token).
 *
 * The parser reads past the end of a file as zeros, so a file cut off inside its header
 * still "parses" into garbage: the header must end within the file, and every tensor the
 * header describes must fit in it (llama.cpp refuses the file otherwise), or this throws.
 */
export async function readGgufHeader(file: string, headers?: Record<string, string>): Promise<Record<string, unknown>> {
  if (!/^https?:\/\//i.test(file)) return withRegularFile(file, (handle, stats) => readGgufHeaderFrom(handle, stats.size));
  let remoteSize: number | undefined;
  // The size of a remote file comes with the first range answer (`content-range: bytes 0-n/size`).
  const sizingFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const total = res.headers.get('content-range')?.match(/\/\s*(\d+)\s*$/)?.[1];
    if (total !== undefined && remoteSize === undefined) remoteSize = Number(total);
    return res;
  };
  const parsed = await gguf(file, {
    computeParametersCount: true,
    fetch: sizingFetch,
    ...(headers ? { additionalFetchHeaders: headers } : {}),
  });
  if (remoteSize !== undefined) checkExtent(parsed, remoteSize);
  checkHyperparameters(parsed);
  return summarize(parsed);
}

/**
 * Reads the header of a local GGUF through an open handle of `size` bytes (its fstat size).
 * The parser's own local-file reader opens the path again for every chunk, with a blocking
 * open that a FIFO swapped in meanwhile would hang; here it gets the handle's bytes through
 * its range-request interface instead, so it reads only the inode the caller checked.
 */
export async function readGgufHeaderFrom(handle: FileHandle, size: number): Promise<Record<string, unknown>> {
  const parsed = await gguf(HANDLE_URL, { computeParametersCount: true, fetch: rangesOf(handle, size) });
  checkExtent(parsed, size);
  checkHyperparameters(parsed);
  return summarize(parsed);
}

/** What a LoRA adapter GGUF says about itself: llama.cpp applies one only to a model of its architecture. */
export interface GgufAdapterHeader {
  architecture?: string;
  /** `general.type`: "adapter" for an adapter ("model" or absent for a model). */
  type?: string;
  /** `adapter.type`: "lora" for a LoRA adapter. */
  adapterType?: string;
}

/** Reads an adapter GGUF's header (never its weights), refusing a file cut off before its tensor data ends. */
export async function readGgufAdapterHeader(file: string): Promise<GgufAdapterHeader> {
  return withRegularFile(file, async (handle, stats) => {
    const parsed = await gguf(HANDLE_URL, { fetch: rangesOf(handle, stats.size) });
    checkExtent(parsed, stats.size);
    const m = parsed.metadata as Record<string, unknown>;
    const text = (k: string) => (typeof m[k] === 'string' ? (m[k] as string) : undefined);
    return { architecture: text('general.architecture'), type: text('general.type'), adapterType: text('adapter.type') };
  });
}

/** Never fetched: only rangesOf() answers for it. */
const HANDLE_URL = 'http://open-file-handle.invalid/model.gguf';

/** A fetch that answers `Range: bytes=a-b` requests from the handle, as a range-serving host would. */
function rangesOf(handle: FileHandle, size: number): typeof fetch {
  return async (_input, init) => {
    const range = new Headers(init?.headers).get('range') ?? '';
    const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
    if (!m) throw new Error(`unexpected range request '${range}'`);
    const start = Math.min(Number(m[1]), size);
    const end = Math.min(m[2] ? Number(m[2]) + 1 : size, size);
    const buf = Buffer.alloc(end - start);
    let filled = 0;
    while (filled < buf.length) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    const body = buf.subarray(0, filled);
    return new Response(body, {
      status: 206,
      headers: { 'content-range': filled > 0 ? `bytes ${start}-${start + filled - 1}/${size}` : `bytes */${size}` },
    });
  };
}

function summarize(parsed: GGUFParseOutput & { parameterCount: number }): Record<string, unknown> {
  const { metadata, parameterCount } = parsed;
  const m = metadata as Record<string, unknown>;
  const arch = typeof m['general.architecture'] === 'string' ? (m['general.architecture'] as string) : undefined;
  const key = (k: string) => (arch ? m[`${arch}.${k}`] : undefined);
  const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : undefined);
  const fileType = num(m['general.file_type']);
  const tokens = m['tokenizer.ggml.tokens'];
  return strip({
    format: 'gguf',
    gguf_version: num(m.version),
    architecture: arch,
    model_name: m['general.name'],
    parameter_count: parameterCount,
    quantization: fileType === undefined ? undefined : quantName(fileType),
    context_length: num(key('context_length')),
    embedding_length: num(key('embedding_length')),
    block_count: num(key('block_count')),
    head_count: num(key('attention.head_count')),
    has_chat_template: typeof m['tokenizer.chat_template'] === 'string',
    tokenizer_model: m['tokenizer.ggml.model'],
    vocab_size: Array.isArray(tokens) ? tokens.length : undefined,
    pooling_type: num(key('pooling_type')),
  });
}

/** ggml's block size (elements) and block bytes per tensor type, as in ggml.c's type traits. */
const Q = GGMLQuantizationType;
const TYPE_BLOCKS: Partial<Record<number, [elements: number, bytes: number]>> = {
  [Q.F32]: [1, 4], [Q.F16]: [1, 2], [Q.BF16]: [1, 2], [Q.F64]: [1, 8],
  [Q.I8]: [1, 1], [Q.I16]: [1, 2], [Q.I32]: [1, 4], [Q.I64]: [1, 8],
  [Q.Q4_0]: [32, 18], [Q.Q4_1]: [32, 20], [Q.Q5_0]: [32, 22], [Q.Q5_1]: [32, 24], [Q.Q8_0]: [32, 34], [Q.Q8_1]: [32, 36],
  [Q.Q2_K]: [256, 84], [Q.Q3_K]: [256, 110], [Q.Q4_K]: [256, 144], [Q.Q5_K]: [256, 176], [Q.Q6_K]: [256, 210], [Q.Q8_K]: [256, 292],
  [Q.IQ2_XXS]: [256, 66], [Q.IQ2_XS]: [256, 74], [Q.IQ3_XXS]: [256, 98], [Q.IQ1_S]: [256, 50], [Q.IQ4_NL]: [32, 18],
  [Q.IQ3_S]: [256, 110], [Q.IQ2_S]: [256, 82], [Q.IQ4_XS]: [256, 136], [Q.IQ1_M]: [256, 56],
  [Q.TQ1_0]: [256, 54], [Q.TQ2_0]: [256, 66], [Q.MXFP4]: [32, 17], [Q.NVFP4]: [64, 36], [Q.Q1_0]: [128, 18], [Q.Q2_0]: [64, 18],
};

/** Bytes of a tensor's data; 0 for a type this table does not know (only its offset is checked then). */
function tensorBytes(dtype: number, shape: bigint[]): bigint {
  const block = TYPE_BLOCKS[dtype];
  if (!block) return 0n;
  const elements = shape.reduce((a, d) => a * BigInt(d), 1n);
  const [n, bytes] = block.map(BigInt) as [bigint, bigint];
  return ((elements + n - 1n) / n) * bytes;
}

/** Throws unless the header ends within `size` bytes and the tensor data it describes fits too. */
function checkExtent(parsed: GGUFParseOutput, size: number): void {
  const headerEnd = parsed.tensorInfoByteRange[1];
  if (headerEnd > size) {
    throw new Error(`the file is cut off inside its header: the header needs at least ${headerEnd} bytes, the file has ${size}`);
  }
  const fileSize = BigInt(size);
  let last: { name: string; end: bigint } | undefined;
  for (const t of parsed.tensorInfos) {
    const end = parsed.tensorDataOffset + t.offset + tensorBytes(t.dtype, t.shape);
    if (!last || end > last.end) last = { name: t.name, end };
  }
  if (last && last.end > fileSize) {
    throw new Error(`the file is cut off in its tensor data: tensor '${last.name}' ends at byte ${last.end}, the file has ${size} bytes`);
  }
}

/**
 * Throws for the values llama.cpp does not refuse but aborts the whole process on (its
 * GGML_ASSERTs), loading or at the first decode: no layers, heads or feed-forward width, an
 * empty vocabulary, a norm epsilon that is not a number. Seen on this machine with generated
 * llama files; only single values are checked, since per-layer arrays may hold zeros by design
 * (layers without attention in hybrid models).
 */
function checkHyperparameters(parsed: GGUFParseOutput): void {
  const m = parsed.metadata as Record<string, unknown>;
  const arch = m['general.architecture'];
  const fail = (key: string, why: string) => {
    throw new Error(`'${key}' ${why}, a value llama.cpp would abort the server on rather than refuse`);
  };
  if (typeof arch === 'string') {
    // A mixture of experts may keep its width in expert_feed_forward_length instead.
    const moe = m[`${arch}.expert_count`] !== undefined;
    for (const k of ['block_count', 'embedding_length', 'feed_forward_length', 'attention.head_count', 'attention.head_count_kv']) {
      if (moe && k === 'feed_forward_length') continue;
      const v = m[`${arch}.${k}`];
      if ((typeof v === 'number' || typeof v === 'bigint') && Number(v) < 1) fail(`${arch}.${k}`, `is ${v}`);
    }
    for (const k of ['attention.layer_norm_rms_epsilon', 'attention.layer_norm_epsilon']) {
      const v = m[`${arch}.${k}`];
      if (typeof v === 'number' && !(v >= 0 && Number.isFinite(v))) fail(`${arch}.${k}`, `is ${v}`);
    }
  }
  const tokens = m['tokenizer.ggml.tokens'];
  if (Array.isArray(tokens) && tokens.length === 0) fail('tokenizer.ggml.tokens', 'is empty');
}

function quantName(fileType: number): string {
  const name = GGMLFileQuantizationType[fileType];
  return name ? name.replace(/^MOSTLY_/, '') : `file_type_${fileType}`;
}

function strip(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
