/** A chat template's thought segment, as text (e.g. `<think>` … `</think>`). */
export interface ThoughtSegment {
  prefix: string;
  suffix: string;
  /** The prompt already opened the thought: the answer starts inside it. */
  open: boolean;
}

export type TextKind = 'content' | 'reasoning';

const LEADING_WS = /^\s+/;

/**
 * Splits a reasoning model's answer into its thought and its reply, the way llama-server's
 * default reasoning format (`deepseek`) does: a thought is recognised only at the start of
 * the answer (or is already open when the prompt opened it), ends at the suffix, and goes
 * to `reasoning_content`; everything after it is the content. Whitespace around the thought
 * is dropped from both. Text that may still turn out to be the prefix or the suffix is held
 * back, so a streamed client never sees a piece of `<think>` in the content.
 */
export class ThoughtSplit {
  readonly #seg: ThoughtSegment;
  readonly #emit: (kind: TextKind, text: string) => void;
  #mode: 'start' | 'thought' | 'after' | 'content';
  #held = '';
  #content = '';
  #reasoning = '';
  /** Length of the text pushed so far. */
  #read = 0;
  /** Where in the pushed text the thought ended, its suffix included. */
  #thoughtEnd: number | undefined;

  constructor(segment: ThoughtSegment, emit: (kind: TextKind, text: string) => void = () => undefined) {
    this.#seg = segment;
    this.#emit = emit;
    this.#mode = segment.open ? 'thought' : segment.prefix ? 'start' : 'content';
  }

  get content(): string {
    return this.#content;
  }

  get reasoning(): string {
    return this.#reasoning;
  }

  /**
   * Where in the pushed text the thought ends (its suffix included): 0 for an answer without
   * one, Infinity while it is still open (or was cut short).
   */
  get thoughtEnd(): number {
    if (this.#thoughtEnd !== undefined) return this.#thoughtEnd;
    return this.#mode === 'thought' ? Infinity : 0;
  }

  push(chunk: string): void {
    this.#read += chunk.length;
    // Always the last buf.length characters pushed, so its offsets map back to the pushed text.
    let buf = this.#held + chunk;
    this.#held = '';
    while (buf) {
      if (this.#mode === 'start') {
        const body = buf.replace(LEADING_WS, '');
        if (body.startsWith(this.#seg.prefix)) {
          this.#mode = 'thought';
          buf = body.slice(this.#seg.prefix.length);
          continue;
        }
        if (this.#seg.prefix.startsWith(body)) {
          this.#held = buf;
          return;
        }
        this.#mode = 'content';
        continue;
      }
      if (this.#mode === 'thought') {
        const end = buf.indexOf(this.#seg.suffix);
        if (end >= 0) {
          this.#out('reasoning', buf.slice(0, end).trimEnd());
          this.#thoughtEnd = this.#read - buf.length + end + this.#seg.suffix.length;
          this.#mode = 'after';
          buf = buf.slice(end + this.#seg.suffix.length);
          continue;
        }
        // Hold what may be the suffix's start and the whitespace before it (dropped if the suffix follows).
        const partial = partialSuffix(buf, this.#seg.suffix);
        const sent = buf.slice(0, buf.length - partial).trimEnd();
        this.#out('reasoning', sent);
        this.#held = buf.slice(sent.length);
        return;
      }
      if (this.#mode === 'after') {
        buf = buf.replace(LEADING_WS, '');
        if (!buf) return;
        this.#mode = 'content';
      }
      this.#out('content', buf);
      return;
    }
  }

  /** The answer ended: what was held back is text after all (a thought cut short keeps its text). */
  flush(): void {
    const held = this.#held;
    this.#held = '';
    if (this.#mode === 'thought') this.#out('reasoning', held.trimEnd());
    else if (this.#mode === 'start') this.#out('content', held);
  }

  #out(kind: TextKind, text: string): void {
    if (kind === 'reasoning' && !this.#reasoning) text = text.replace(LEADING_WS, '');
    if (!text) return;
    if (kind === 'reasoning') this.#reasoning += text;
    else this.#content += text;
    this.#emit(kind, text);
  }
}

/** Length of the longest end of `text` that is a proper start of `suffix`. */
function partialSuffix(text: string, suffix: string): number {
  for (let n = Math.min(suffix.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(suffix.slice(0, n))) return n;
  }
  return 0;
}
