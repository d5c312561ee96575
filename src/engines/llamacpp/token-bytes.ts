import type { LlamaModel, Token } from 'node-llama-cpp';

/** `tokenizer.ggml.token_type` of a byte token (llama.cpp's LLAMA_TOKEN_TYPE_BYTE). */
const BYTE_TOKEN = 6;
/** `tokenizer.ggml.token_type` of an ordinary token. */
const NORMAL_TOKEN = 1;

/**
 * GPT-2's byte-level alphabet reversed: byte-level BPE vocabularies (`tokenizer.ggml.model`
 * "gpt2": Qwen, SmolLM, Llama 3 …) spell every byte as one printable character, `Ġ` for a
 * space, so a token that holds part of a character is still a string of such characters.
 */
const GPT2_BYTES: ReadonlyMap<string, number> = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : 256 + shifted++), b);
  return map;
})();

/**
 * A token's own bytes from the vocabulary, where its detokenised text cannot carry them (a
 * byte token `<0xE4>`, a byte-level BPE token holding part of a character, which both
 * detokenise to U+FFFD); undefined when its UTF-8 text is exact.
 */
export function rawTokenBytes(model: LlamaModel, token: Token): number[] | undefined {
  const ggml = model.fileInfo.metadata.tokenizer?.ggml;
  const piece = ggml?.tokens?.[token];
  if (typeof piece !== 'string') return undefined;
  const type = ggml?.token_type?.[token] as number | undefined;
  if (type === BYTE_TOKEN) {
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    return hex ? [Number.parseInt(hex[1]!, 16)] : undefined;
  }
  if (ggml?.model === 'gpt2' && (type === undefined || type === NORMAL_TOKEN)) {
    const bytes: number[] = [];
    for (const ch of piece) {
      const b = GPT2_BYTES.get(ch);
      if (b === undefined) return undefined;
      bytes.push(b);
    }
    return bytes;
  }
  return undefined;
}
