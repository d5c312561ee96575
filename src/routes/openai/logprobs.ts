import type { TokenLogprob } from '../../engines/engine.ts';

/** Chat's `logprobs.content` entries (OpenAI's current shape). */
export function chatLogprobs(entries: readonly TokenLogprob[]) {
  return {
    content: entries.map((e) => ({
      token: e.token, logprob: e.logprob, bytes: e.bytes,
      top_logprobs: e.top.map((c) => ({ token: c.token, logprob: c.logprob, bytes: c.bytes })),
    })),
    refusal: null,
  };
}

/**
 * The legacy completions shape, whose `text_offset` counts characters (code points, as
 * Python's `len`, which OpenAI's clients use) from the start of the prompt: one per prompt,
 * fed the answer's entries in order (streamed chunks continue the offsets).
 */
export function completionLogprobs(prompt: string) {
  let offset = codePoints(prompt);
  return (entries: readonly TokenLogprob[]) => {
    const text_offset: number[] = [];
    for (const e of entries) {
      text_offset.push(offset);
      offset += codePoints(e.token);
    }
    return {
      tokens: entries.map((e) => e.token),
      token_logprobs: entries.map((e) => e.logprob),
      // Alternatives with the same text collapse into one key, the likelier kept (it comes first).
      top_logprobs: entries.map((e) => {
        // No prototype: a token may well be the text "constructor" or "__proto__".
        const top = Object.create(null) as Record<string, number>;
        for (const c of e.top) top[c.token] ??= c.logprob;
        return top;
      }),
      text_offset,
    };
  };
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
