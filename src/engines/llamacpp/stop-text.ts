/**
 * OpenAI `stop` on the decoded text, as llama-server does it: text that could still turn out
 * to be the start of a stop sequence is held back, a match ends the generation and neither
 * the stop sequence nor anything after it is emitted. (node-llama-cpp's own custom stop
 * triggers compare tokens and miss a stop that starts with a space on SentencePiece vocabularies.)
 */
export class StopText {
  readonly #stops: string[];
  readonly #emit: (text: string) => void;
  #held = '';
  #text = '';
  #matched = false;
  #matchedStop: string | undefined;

  /** @param emit receives the text that is certain to be part of the answer, in order. */
  constructor(stops: string[], emit: (text: string) => void = () => undefined) {
    this.#stops = stops.filter((s) => s.length > 0);
    this.#emit = emit;
  }

  /** The answer so far (without held-back text). */
  get text(): string {
    return this.#text;
  }

  get matched(): boolean {
    return this.#matched;
  }

  /** The stop sequence that matched (the earliest in the text; the longest of those starting there). */
  get matchedStop(): string | undefined {
    return this.#matchedStop;
  }

  /** Feeds decoded text; returns true once a stop sequence matched (then ignores more). */
  push(chunk: string): boolean {
    if (this.#matched) return true;
    // Most requests have no stop strings: pass the token's text straight through.
    if (this.#stops.length === 0) {
      this.#out(chunk);
      return false;
    }
    const buf = this.#held + chunk;
    let cut = -1;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut || (i === cut && s.length > this.#matchedStop!.length))) {
        cut = i;
        this.#matchedStop = s;
      }
    }
    if (cut >= 0) {
      this.#matched = true;
      this.#held = '';
      this.#out(buf.slice(0, cut));
      return true;
    }
    let keep = 0;
    for (const s of this.#stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.#held = buf.slice(buf.length - keep);
    this.#out(buf.slice(0, buf.length - keep));
    return false;
  }

  /** The generation ended without a match: held-back text is part of the answer after all. */
  flush(): void {
    if (this.#matched) return;
    this.#out(this.#held);
    this.#held = '';
  }

  #out(text: string): void {
    if (!text) return;
    this.#text += text;
    this.#emit(text);
  }
}

/**
 * Holds whitespace back until text follows it, so an answer whose end must be trimmed
 * (node-llama-cpp's JSON grammars end on a run of newlines) never streams its trailing
 * whitespace; what is still held when the answer ends is dropped. Stop strings have seen
 * that whitespace already: this sits after {@link StopText}.
 */
export class TrailingWhitespace {
  readonly #emit: (text: string) => void;
  #held = '';
  #text = '';

  constructor(emit: (text: string) => void = () => undefined) {
    this.#emit = emit;
  }

  /** The answer so far, trailing whitespace excluded. */
  get text(): string {
    return this.#text;
  }

  push(chunk: string): void {
    const buf = this.#held + chunk;
    const body = buf.trimEnd();
    this.#held = buf.slice(body.length);
    if (!body) return;
    this.#text += body;
    this.#emit(body);
  }
}
