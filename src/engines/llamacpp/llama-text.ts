import { isLlamaText, LlamaText, SpecialToken, SpecialTokensText, type LlamaModel } from 'node-llama-cpp';

/** The text of a LlamaText (or a template piece), special-token texts written out as the model writes them, named special tokens left out. */
export function plainText(value: string | LlamaText): string {
  const text = isLlamaText(value) ? value : LlamaText(value);
  return text.values.map((v) => (typeof v === 'string' ? v : v instanceof SpecialTokensText ? v.value : '')).join('');
}

/**
 * The text of a LlamaText as the model's template writes it: special-token texts as they are,
 * named special tokens (BOS) as the model's own text for them. Unlike detokenising the
 * prompt's tokens, this keeps the template's spacing (no "▁" read as a space after a control token).
 */
export function templateText(value: LlamaText, model: LlamaModel): string {
  return value.values.map((v) => {
    if (typeof v === 'string') return v;
    if (v instanceof SpecialTokensText) return v.value;
    if (v instanceof SpecialToken) return model.detokenize(v.tokenize(model.tokenizer), true);
    return '';
  }).join('');
}
