import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { expandHome } from '../../config/config.ts';
import { ApiError } from '../../errors.ts';
import { longestFirst } from '../longest-first.ts';
import { MetadataError, type Preprocess } from './classifier-metadata.ts';

export const DEFAULT_MAX_CHARS = 100_000;
const DEFAULT_MAX_LENGTH = 512;

/** One tokenised text, before padding. */
export interface Encoded {
  ids: number[];
  typeIds: number[];
}

/** The resolved text pipeline of one model, shown in the model state. */
export interface TextSettings {
  tokenizer: string;
  max_length: number;
  truncation: boolean;
  padding: 'max_length' | 'longest';
  pad_id: number;
  max_chars: number;
}

interface TokenizerJson {
  truncation?: { max_length?: number } | null;
  padding?: { pad_id?: number; pad_token?: string; strategy?: unknown } | null;
  [key: string]: unknown;
}

async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8'));
}

/**
 * A Hugging Face tokenizer.json (tokenised by @huggingface/tokenizers) with truncation to
 * the model's max length, which that library leaves to the caller: the text's tokens are
 * cut first and the special tokens added after, so `[SEP]` survives truncation.
 */
export class TextEncoder {
  readonly settings: TextSettings;
  readonly #tok: Tokenizer;
  readonly #specials: number;
  readonly #vocab: Map<string, number>;
  readonly #unk: number;

  private constructor(tok: Tokenizer, settings: TextSettings) {
    this.#tok = tok;
    this.settings = settings;
    this.#vocab = tok.get_vocab(true);
    this.#unk = tok.model?.unk_token_id ?? 0;
    this.#specials = this.#withSpecials([]).tokens.length;
  }

  /**
   * Loads the tokenizer beside the model. `seqLen` is the model's fixed sequence length, if
   * any; `modelMax` what the model's metadata_props say (`max_length`).
   */
  static async load(folder: string, p: Preprocess, seqLen: number | undefined, modelMax?: number): Promise<TextEncoder> {
    const file = path.resolve(folder, expandHome(p.tokenizer ?? 'tokenizer.json'));
    const field = 'metadata.preprocess.tokenizer';
    let json: TokenizerJson;
    try {
      json = (await readJson(file)) as TokenizerJson;
    } catch (err) {
      throw new MetadataError(`the model takes token ids, but its tokenizer ${file} cannot be read: ${(err as Error).message}; put the Hugging Face tokenizer.json beside the model or set '${field}'`, field);
    }
    const config = ((await readJson(path.join(path.dirname(file), 'tokenizer_config.json')).catch(() => ({}))) ?? {}) as Record<string, unknown>;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json, config);
    } catch (err) {
      throw new MetadataError(`tokenizer ${file} is not a usable Hugging Face tokenizer.json: ${(err as Error).message}`, field);
    }
    const configMax = typeof config.model_max_length === 'number' && config.model_max_length < 1e6 ? config.model_max_length : undefined;
    const maxLength = p.max_length ?? seqLen ?? modelMax ?? json.truncation?.max_length ?? configMax ?? DEFAULT_MAX_LENGTH;
    if (seqLen !== undefined && maxLength > seqLen) {
      throw new MetadataError(`'metadata.preprocess.max_length' is ${maxLength} but the model's inputs take ${seqLen} tokens`, 'metadata.preprocess.max_length');
    }
    const padToken = json.padding?.pad_token;
    const padId =
      json.padding?.pad_id ??
      (padToken !== undefined ? tok.token_to_id(padToken) : undefined) ??
      tok.token_to_id('[PAD]') ??
      tok.token_to_id('<pad>') ??
      0;
    const enc = new TextEncoder(tok, {
      tokenizer: file,
      max_length: maxLength,
      truncation: p.truncation ?? true,
      // A fixed sequence length leaves no choice.
      padding: seqLen !== undefined ? 'max_length' : (p.padding ?? 'max_length'),
      pad_id: padId,
      max_chars: p.max_chars ?? DEFAULT_MAX_CHARS,
    });
    if (enc.#specials >= maxLength) {
      throw new MetadataError(`max_length ${maxLength} leaves no room for text after ${enc.#specials} special tokens`, 'metadata.preprocess.max_length');
    }
    return enc;
  }

  #withSpecials(tokens: string[], pair: string[] | null = null): { tokens: string[]; token_type_ids?: number[] } {
    const post = this.#tok.post_processor;
    return post ? post(tokens, pair, true) : { tokens: pair ? [...tokens, ...pair] : tokens };
  }

  /**
   * Tokenises a sentence pair as one input with the tokenizer's pair template (`[CLS] A [SEP]
   * B [SEP]`, type ids 0 then 1), as cross-encoder rerankers read a query and a document. Too
   * long, it is cut as Hugging Face's `longest_first` cuts it, or it is a 400 input_too_long
   * naming `param` when truncation is off.
   */
  encodePair(text: string, pair: string, param: string): Encoded {
    const { max_length: max, truncation, max_chars } = this.settings;
    for (const t of [text, pair]) {
      if (t.length > max_chars) throw new ApiError('input_too_long', `'${param}' has ${t.length} characters; this model accepts up to ${max_chars} (metadata.preprocess.max_chars)`, { param });
    }
    let a = this.#tok.tokenize(text, { add_special_tokens: false });
    let b = this.#tok.tokenize(pair, { add_special_tokens: false });
    const specials = this.#withSpecials([], []).tokens.length;
    const room = max - specials;
    if (a.length + b.length > room) {
      if (!truncation) {
        throw new ApiError('input_too_long', `'${param}' with the query is ${a.length + b.length + specials} tokens; this model accepts up to ${max} and truncation is off (metadata.preprocess.truncation)`, { param });
      }
      const [keepA, keepB] = longestFirst(a.length, b.length, room);
      a = a.slice(0, keepA);
      b = b.slice(0, keepB);
    }
    const out = this.#withSpecials(a, b);
    const ids = out.tokens.map((t) => this.#vocab.get(t) ?? this.#unk);
    return { ids, typeIds: out.token_type_ids ?? new Array(ids.length).fill(0) };
  }

  /** Tokenises one text with special tokens; truncates or answers 400 input_too_long. */
  encode(text: string, param: string): Encoded {
    const { max_length: max, truncation, max_chars } = this.settings;
    if (text.length > max_chars) {
      throw new ApiError('input_too_long', `'${param}' has ${text.length} characters; this model accepts up to ${max_chars} (metadata.preprocess.max_chars)`, { param });
    }
    let tokens = this.#tok.tokenize(text, { add_special_tokens: false });
    const room = max - this.#specials;
    if (tokens.length > room) {
      if (!truncation) {
        throw new ApiError('input_too_long', `'${param}' is ${tokens.length + this.#specials} tokens; this model accepts up to ${max} and truncation is off (metadata.preprocess.truncation)`, { param });
      }
      tokens = tokens.slice(0, room);
    }
    const out = this.#withSpecials(tokens);
    const ids = out.tokens.map((t) => this.#vocab.get(t) ?? this.#unk);
    return { ids, typeIds: out.token_type_ids ?? new Array(ids.length).fill(0) };
  }
}

/** Checks a raw text for a string-tensor model. */
export function checkRawText(text: string, param: string, maxChars: number): string {
  if (text.length > maxChars) {
    throw new ApiError('input_too_long', `'${param}' has ${text.length} characters; this model accepts up to ${maxChars} (metadata.preprocess.max_chars)`, { param });
  }
  return text;
}
