import { isLlamaText, LlamaText, SpecialTokensText } from 'node-llama-cpp';

/** The text of a LlamaText (or a template piece), special-token texts written out as the model writes them, named special tokens left out. */
export function plainText(value: string | LlamaText): string {
  const text = isLlamaText(value) ? value : LlamaText(value);
  return text.values.map((v) => (typeof v === 'string' ? v : v instanceof SpecialTokensText ? v.value : '')).join('');
}
