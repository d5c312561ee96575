import { gguf, GGMLFileQuantizationType } from '@huggingface/gguf';

/**
 * Reads what the model table shows from a GGUF header: architecture, parameter count,
 * quantization, context/embedding length, layers, chat template presence, tokenizer.
 * Only the header and tensor infos are read, never the weights: from a local file, or from
 * an http(s) URL with range requests (`headers` go with them, e.g. a hub token).
 */
export async function readGgufHeader(file: string, headers?: Record<string, string>): Promise<Record<string, unknown>> {
  const { metadata, parameterCount } = await gguf(file, {
    allowLocalFile: true,
    computeParametersCount: true,
    ...(headers ? { additionalFetchHeaders: headers } : {}),
  });
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

function quantName(fileType: number): string {
  const name = GGMLFileQuantizationType[fileType];
  return name ? name.replace(/^MOSTLY_/, '') : `file_type_${fileType}`;
}

function strip(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
