import { LlamaVocabularyType, type LlamaModel, type Token } from 'node-llama-cpp';
import { ApiError } from '../../errors.ts';
import { longestFirst } from '../longest-first.ts';

/** BPE pre-tokenizers after which llama.cpp adds a separator when the GGUF does not say (llama-vocab.cpp). */
const SEP_BY_DEFAULT_PRE = new Set(['jina-v1-en', 'jina-v2-code', 'roberta-bpe']);

/**
 * The tokens a GGUF reranker reads for a query and a document, laid out as llama-server's
 * `format_prompt_rerank` lays them out, so a score here is llama-server's score:
 * - with `tokenizer.chat_template.rerank` (Qwen3-Reranker), that prompt with `{query}` and
 *   `{document}` filled in, special tokens parsed, nothing added;
 * - else `[BOS] query [EOS] [SEP] document [EOS]`, each special token only where the vocabulary
 *   adds it (`add_bos_token`, `add_eos_token`, `add_sep_token`; EOS falls back to SEP), which
 *   gives XLM-RoBERTa's `<s> q </s></s> d </s>` for bge-reranker.
 *
 * Where llama-server refuses a pair longer than its context, the query and the document are cut
 * as the ONNX cross-encoders' pairs are (Hugging Face's `longest_first`), so one long document
 * still gets a score.
 */
export class RerankPrompt {
  readonly #model: LlamaModel;
  readonly #template: string | undefined;
  readonly #bos: Token | null;
  readonly #eos: Token | null;
  readonly #sep: Token | null;

  constructor(model: LlamaModel) {
    this.#model = model;
    const tokenizer = model.fileInfo.metadata.tokenizer as Record<string, unknown> | undefined;
    const template = tokenizer?.['chat_template.rerank'];
    this.#template = typeof template === 'string' ? template : undefined;
    const ggml = (tokenizer?.ggml ?? {}) as Record<string, unknown>;
    this.#bos = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
    this.#eos = model.tokens.shouldAppendEosToken ? (model.tokens.eos ?? model.tokens.sep) : null;
    const addSep = typeof ggml.add_sep_token === 'boolean' ? ggml.add_sep_token
      : model.vocabularyType === LlamaVocabularyType.wpm || (model.vocabularyType === LlamaVocabularyType.bpe && SEP_BY_DEFAULT_PRE.has(String(ggml.pre)));
    this.#sep = addSep ? model.tokens.sep : null;
  }

  /** The pair's tokens, at most `limit` of them; `param` names the document in an error. */
  tokens(query: string, document: string, limit: number, param: string): Token[] {
    const tokens = this.#template !== undefined ? this.#fromTemplate(this.#template, query, document, limit) : this.#plain(query, document, limit);
    if (tokens.length > limit) {
      throw new ApiError('context_length_exceeded', `'${param}' with the query needs ${tokens.length} tokens even cut; the model's context holds ${limit}`, { param });
    }
    return tokens;
  }

  #plain(query: string, document: string, limit: number): Token[] {
    const [bos, eos, sep] = [this.#bos, this.#eos, this.#sep];
    let q = this.#model.tokenize(query);
    let d = this.#model.tokenize(document);
    const fixed = (bos != null ? 1 : 0) + (eos != null ? 2 : 0) + (sep != null ? 1 : 0);
    [q, d] = cut(q, d, limit - fixed);
    return [...(bos != null ? [bos] : []), ...q, ...(eos != null ? [eos] : []), ...(sep != null ? [sep] : []), ...d, ...(eos != null ? [eos] : [])];
  }

  #fromTemplate(template: string, query: string, document: string, limit: number): Token[] {
    const pieces = template.split(/(\{query\}|\{document\})/);
    // One pass, so a query that contains "{document}" stays text.
    const whole = this.#model.tokenize(pieces.map((p) => (p === '{query}' ? query : p === '{document}' ? document : p)).join(''), true);
    if (whole.length <= limit) return whole;
    // Too long: the template's own text keeps its tokens and the two texts share the rest.
    const fixed = pieces.filter((p) => p !== '{query}' && p !== '{document}').map((p) => this.#model.tokenize(p, true));
    const room = limit - fixed.reduce((n, t) => n + t.length, 0);
    const [q, d] = cut(this.#model.tokenize(query), this.#model.tokenize(document), room);
    let literal = 0;
    return pieces.flatMap((p) => (p === '{query}' ? q : p === '{document}' ? d : fixed[literal++]!));
  }
}

function cut(q: Token[], d: Token[], room: number): [Token[], Token[]] {
  const [keepQ, keepD] = longestFirst(q.length, d.length, Math.max(0, room));
  return [q.slice(0, keepQ), d.slice(0, keepD)];
}
