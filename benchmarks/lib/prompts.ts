/** Prompts of a given length in words. Each starts with a distinct id, so no server can answer from a cached prompt prefix. */

const WORDS = (
  'the story of a small town by the river where people lived and worked together for many years ' +
  'every morning the baker opened his shop and the children ran to school while their parents went ' +
  'to the market to buy bread fish and fresh fruit from the farmers who came from the green hills ' +
  'in the evening everyone gathered in the square to talk about the day and to listen to music'
).split(' ');

/** About `words` tokens of English (most of these words are one token in BPE vocabularies), unique per `id`. */
export function benchPrompt(id: number | string, words: number): string {
  const out = [`Request ${id}:`];
  for (let i = 0; out.length < words; i++) out.push(WORDS[i % WORDS.length]!);
  return out.join(' ');
}
