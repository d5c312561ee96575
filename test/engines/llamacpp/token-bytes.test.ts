import type { LlamaModel, Token } from 'node-llama-cpp';
import t from 'tap';
import { rawTokenBytes } from '../../../src/engines/llamacpp/token-bytes.ts';

const vocab = (model: string, tokens: string[], types: number[]) =>
  ({ fileInfo: { metadata: { tokenizer: { ggml: { model, tokens, token_type: types } } } } }) as unknown as LlamaModel;

t.test('a byte token is its byte; a byte-level BPE token its bytes, part of a character or not', async (t) => {
  const spm = vocab('llama', ['<unk>', '<0xE4>', '▁hello', '<0x0A>'], [2, 6, 1, 6]);
  t.same(rawTokenBytes(spm, 1 as Token), [0xe4]);
  t.same(rawTokenBytes(spm, 3 as Token), [0x0a]);
  t.equal(rawTokenBytes(spm, 2 as Token), undefined, 'a SentencePiece word: its UTF-8 text is exact');
  // GPT-2's alphabet: Ġ is the space, ä¸ the first two bytes of 中 (E4 B8), Ċ a newline.
  const bpe = vocab('gpt2', ['Ġhello', 'ä¸', 'Ċ', '<|im_end|>'], [1, 1, 1, 3]);
  t.same(rawTokenBytes(bpe, 0 as Token), [0x20, ...Buffer.from('hello')]);
  t.same(rawTokenBytes(bpe, 1 as Token), [0xe4, 0xb8]);
  t.same(rawTokenBytes(bpe, 2 as Token), [0x0a]);
  t.equal(rawTokenBytes(bpe, 3 as Token), undefined, 'a control token: its text');
  t.equal(rawTokenBytes(bpe, 9 as Token), undefined, 'outside the vocabulary');
});
