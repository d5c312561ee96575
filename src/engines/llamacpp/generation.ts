import type { LlamaModel, Token } from 'node-llama-cpp';
import type { TokenChoice, TokenLogprob } from '../engine.ts';
import type { DecodeJob, KvSequence } from './decode-loop.ts';
import type { LogprobReaders, NativeSampler, NativeSamplerConfig } from './native-context.ts';
import { StopText, TrailingWhitespace } from './stop-text.ts';
import { ThoughtSplit, type ThoughtSegment } from './thought-split.ts';

/** Repeat-penalty settings in node-llama-cpp's terms. */
export interface RepeatPenalty {
  /** How many of the last generated tokens are penalised. */
  lastTokens: number;
  penalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

export interface GenerationOptions {
  model: LlamaModel;
  sequence: KvSequence;
  prompt: readonly Token[];
  sampler: NativeSampler;
  /** Sampler settings without the repeat-penalty window (filled in per token). */
  samplerConfig: NativeSamplerConfig;
  repeatPenalty?: RepeatPenalty;
  maxTokens: number;
  /** OpenAI `stop` strings plus textual stop triggers of the chat template. */
  stopStrings: string[];
  /** Tokens that end the answer besides the model's end-of-generation tokens (chat template triggers). */
  stopTokens: ReadonlySet<Token>;
  /** Whitespace at the end of the answer is dropped (node-llama-cpp's JSON grammars ask for it). */
  trimWhitespaceSuffix: boolean;
  /**
   * Texts dropped from the very start of the answer, the longest that matches (a chat
   * template's `ignoreStartText`: node-llama-cpp's Jinja wrapper lists leading whitespace).
   */
  ignoreStart?: readonly string[];
  /**
   * The answer continues the prompt's text (raw completions): its first tokens are
   * detokenised after the prompt's last ones, so a SentencePiece leading space survives and
   * prompt + answer reads as one text, as llama-server sends it. Chat answers start afresh
   * (node-llama-cpp's `LlamaChat` text, without that space).
   */
  continuesPrompt?: boolean;
  /** The chat template's thought segment: its text goes to `onReasoning`, the rest to `onText`. */
  thought?: ThoughtSegment;
  signal: AbortSignal;
  /** Logprobs of every answer token and its `top` likeliest alternatives, read by `readers`. */
  logprobs?: { readers: LogprobReaders; top: number; piece(token: Token): TokenPiece };
  onText?: (text: string, logprobs?: TokenLogprob[]) => void;
  onReasoning?: (text: string, logprobs?: TokenLogprob[]) => void;
  /**
   * Asked after each piece of text has gone through; true ends the answer there (a tool call
   * opened in the content, which the thought may not open).
   */
  endWhen?: () => boolean;
  /** Asked after each piece of text; true ends the answer there as a limit does (see GenerateOptions.limitWhen). */
  limitWhen?: () => boolean;
}

/**
 * One request's generation for the {@link DecodeLoop}: counts tokens against `max_tokens`,
 * ends on end-of-generation tokens, and turns tokens into text the way node-llama-cpp's
 * `LlamaCompletion` streams it (each chunk detokenised after the tokens generated before it;
 * a token whose text is an incomplete UTF-8 sequence waits for the next), through the
 * stop-string filter to `onText`.
 */
export class Generation implements DecodeJob {
  readonly sequence: KvSequence;
  readonly prompt: readonly Token[];
  readonly sampler: NativeSampler;
  readonly signal: AbortSignal;
  readonly logprobs?: DecodeJob['logprobs'];
  /** Accepted tokens (the answer), end-of-generation tokens excluded. */
  readonly tokens: Token[] = [];
  /** Why it ended: a stop (end of generation, stop string, template trigger) or `max_tokens`. */
  finishReason: 'stop' | 'length' = 'length';
  readonly #o: GenerationOptions;
  readonly #stop: StopText;
  readonly #thought: ThoughtSplit | undefined;
  readonly #trim: TrailingWhitespace | undefined;
  /** Tokens up to here have been turned into text. */
  #textUpTo = 0;
  /** The answer's first text while it may still be one of `ignoreStart`; undefined once decided. */
  #start: string | undefined;
  /** With logprobs: one per token of `tokens`. */
  readonly #entries: TokenLogprob[] = [];
  /** Where each token's text ends in the text given to the stop filter. */
  readonly #ends: number[] = [];
  /** Length of the text given to the stop filter. */
  #pushed = 0;
  /** Entries handed out with streamed text. */
  #sent = 0;
  /** Leading tokens whose whole text is past the stop filter (see {@link #emittedTokens}). */
  #emitted = 0;
  /** `endWhen` or `limitWhen` ended the answer. */
  #ended = false;

  constructor(options: GenerationOptions) {
    this.#o = options;
    this.sequence = options.sequence;
    this.prompt = options.prompt;
    this.sampler = options.sampler;
    this.signal = options.signal;
    const lp = options.logprobs;
    if (lp) {
      this.logprobs = {
        readers: lp.readers,
        top: lp.top,
        record: (token, logprob, top) => {
          // An end-of-generation token is sampled but not part of the answer.
          if (this.#entries.length >= this.tokens.length) return;
          this.#entries.push({ ...choice(lp.piece(token as Token), logprob), top: top.map(([t, l]) => choice(lp.piece(t as Token), l)) });
        },
      };
    }
    // Streamed text carries the logprobs of the tokens whose text it completes.
    const onText = options.onText && lp ? (text: string) => options.onText!(text, this.#takeReady()) : options.onText;
    const onReasoning = options.onReasoning && lp ? (text: string) => options.onReasoning!(text, this.#takeReady()) : options.onReasoning;
    // Stop strings see the whole answer, thought included (as llama-server's do); the split comes after.
    this.#thought = options.thought
      ? new ThoughtSplit(options.thought, (kind, text) => (kind === 'content' ? onText : onReasoning)?.(text))
      : undefined;
    const out = this.#thought ? (text: string) => this.#thought!.push(text) : onText;
    // Stop strings (a JSON grammar's run of newlines among them) see trailing whitespace; the client never does.
    this.#trim = options.trimWhitespaceSuffix ? new TrailingWhitespace(out) : undefined;
    this.#stop = new StopText(options.stopStrings, this.#trim ? (text) => this.#trim!.push(text) : out);
    if (options.ignoreStart?.some((t) => t.length > 0)) this.#start = '';
    options.sampler.applyConfig(options.samplerConfig);
  }

  /** The answer's text so far, its thought excluded (held-back text excluded until {@link finish}). */
  get text(): string {
    return this.#thought ? this.#thought.content : (this.#trim ?? this.#stop).text;
  }

  /** The stop string that ended the answer, if one did. */
  get matchedStop(): string | undefined {
    return this.#stop.matchedStop;
  }

  /** The answer's thought, when the template has thought segments ('' otherwise). */
  get reasoning(): string {
    return this.#thought?.reasoning ?? '';
  }

  /** Tokens of the answer up to the end of its thought (the thought's tags included), after {@link finish}. */
  get reasoningTokens(): number {
    const end = this.#thought?.thoughtEnd ?? 0;
    if (end === 0 || end === Infinity) return end === 0 ? 0 : this.tokens.length;
    let n = 0;
    while (n < this.#ends.length && this.#ends[n]! <= end) n++;
    return n;
  }

  /**
   * With logprobs, after {@link finish}: an entry per token of the answer (a character cut
   * by max_tokens included: its bytes are there), but after a stop sequence only those
   * whose text lies wholly before it.
   */
  get tokenLogprobs(): TokenLogprob[] | undefined {
    if (!this.logprobs) return undefined;
    return this.#stop.matched ? this.#entries.slice(0, this.#emittedTokens()) : this.#entries;
  }

  /**
   * Tokens whose whole text is past the stop filter. Counted on from the last call: the
   * emitted text only grows and the token ends only ascend, so a long stream stays linear.
   */
  #emittedTokens(): number {
    const emitted = this.#stop.text.length;
    while (this.#emitted < this.#ends.length && this.#ends[this.#emitted]! <= emitted) this.#emitted++;
    return this.#emitted;
  }

  #takeReady(): TokenLogprob[] {
    const upTo = Math.min(this.#emittedTokens(), this.#entries.length);
    const ready = this.#entries.slice(this.#sent, upTo);
    this.#sent = Math.max(this.#sent, upTo);
    return ready;
  }

  beforeSample(): void {
    const rp = this.#o.repeatPenalty;
    if (!rp) return;
    // node-llama-cpp's window: the last N generated tokens, prompt excluded.
    this.sampler.applyConfig({
      ...this.#o.samplerConfig,
      repeatPenalty: rp.penalty,
      repeatPenaltyMaxTokens: rp.lastTokens,
      repeatPenaltyTokens: Uint32Array.from(this.tokens.slice(-rp.lastTokens)),
      repeatPenaltyPresencePenalty: rp.presencePenalty,
      repeatPenaltyFrequencyPenalty: rp.frequencyPenalty,
    });
  }

  accept(token: Token): boolean {
    if (this.#o.stopTokens.has(token) || this.#o.model.isEogToken(token)) {
      this.finishReason = 'stop';
      return false;
    }
    this.tokens.push(token);
    return this.tokens.length < this.#o.maxTokens;
  }

  drain(): boolean {
    return this.#textOf(false);
  }

  /** After the loop ended the job: the last held tokens and text become part of the answer. */
  finish(): void {
    this.#finishText();
    this.#thought?.flush();
  }

  #finishText(): void {
    if (this.#stop.matched) return;
    this.#textOf(true);
    // An answer whose whole text could still have grown into an ignored start: decide it now.
    if (this.#start && this.#stop.push(this.#dropIgnoredStart('', true))) this.finishReason = 'stop';
    // Held-back text that never became a stop is part of the answer (a JSON answer's closing brace).
    this.#stop.flush();
  }

  /**
   * Collects the answer's start while it could still grow into one of `ignoreStart`, then
   * returns it less the longest of them it begins with ('' while undecided).
   */
  #dropIgnoredStart(chunk: string, last: boolean): string {
    const start = this.#start! + chunk;
    const ignore = this.#o.ignoreStart!;
    if (!last && ignore.some((t) => t.length > start.length && t.startsWith(start))) {
      this.#start = start;
      return '';
    }
    this.#start = undefined;
    const cut = Math.max(0, ...ignore.filter((t) => start.startsWith(t)).map((t) => t.length));
    return start.slice(cut);
  }

  #tokensBefore(index: number): Token[] {
    const own = this.tokens.slice(Math.max(0, index - 3), index);
    if (!this.#o.continuesPrompt || own.length === 3) return own;
    return [...this.prompt.slice(Math.max(0, this.prompt.length - (3 - own.length))), ...own];
  }

  #textOf(final: boolean): boolean {
    const { model } = this.#o;
    while (this.#textUpTo < this.tokens.length && !this.#stop.matched) {
      // Grow the chunk until its text is complete UTF-8 (a character can span tokens).
      // Detokenised after the tokens before it (at most 3 matter: node-llama-cpp's
      // maxRecentDetokenizerTokens): the answer's, and the prompt's when the answer continues it.
      const before = this.#tokensBefore(this.#textUpTo);
      let end = this.#textUpTo + 1;
      let text = model.detokenize(this.tokens.slice(this.#textUpTo, end), false, before);
      while (text.endsWith('\uFFFD') && end < this.tokens.length) {
        end++;
        text = model.detokenize(this.tokens.slice(this.#textUpTo, end), false, before);
      }
      if (text.endsWith('\uFFFD') && end - this.#textUpTo < 4) {
        if (!final) return true;
        // Cut by max_tokens mid-character: like node-llama-cpp, the partial character is not sent.
        this.#textUpTo = this.tokens.length;
        break;
      }
      const first = this.#textUpTo;
      this.#textUpTo = end;
      let chunk = text;
      if (this.#start !== undefined) chunk = this.#dropIgnoredStart(chunk, final && this.#textUpTo === this.tokens.length);
      // The tokens of one character end together; a dropped start ends where it began.
      for (let i = first; i < end; i++) this.#ends.push(this.#pushed + chunk.length);
      if (chunk === '') continue;
      this.#pushed += chunk.length;
      if (this.#stop.push(chunk)) {
        this.finishReason = 'stop';
        return false;
      }
      if (this.#o.endWhen?.()) {
        this.finishReason = 'stop';
        this.#ended = true;
        return false;
      }
      if (this.#o.limitWhen?.()) {
        this.#ended = true;
        return false;
      }
    }
    return !this.#stop.matched && !this.#ended;
  }
}

/** A token's text and its own bytes (part of a character, for a byte token). */
export interface TokenPiece {
  text: string;
  bytes: number[];
}

/** OpenAI's shape of a token choice; a token the model rules out gets OpenAI's floor of −9999. */
function choice(piece: TokenPiece, logprob: number): TokenChoice {
  return { token: piece.text, logprob: Math.max(logprob, -9999), bytes: piece.bytes };
}
