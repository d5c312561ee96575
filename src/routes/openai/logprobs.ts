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
 * The legacy completions shape, whose `text_offset` counts from the start of the prompt: one
 * per prompt, fed the answer's entries in order (streamed chunks continue the offsets).
 */
export function completionLogprobs(promptLength: number) {
  let offset = promptLength;
  return (entries: readonly TokenLogprob[]) => {
    const text_offset: number[] = [];
    for (const e of entries) {
      text_offset.push(offset);
      offset += e.token.length;
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
