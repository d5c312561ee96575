import type { LlamaModel, Token } from 'node-llama-cpp';
import t from 'tap';
import { Generation, type GenerationOptions } from '../../../src/engines/llamacpp/generation.ts';

// The text side of a generation against a fake vocabulary (each token one piece of text);
// the real detokeniser is covered by the engine and route tests' equality with node-llama-cpp.
const PIECES: Record<number, string> = { 1: ' ', 2: 'Hi', 3: ' there', 4: '\n', 5: '\xE2', 6: '\x82', 7: '\xAC', 8: 'STOP', 9: '  ', 0: '' };
const EOG = 0;
const tokens = (...ns: number[]) => ns as Token[];

/** Detokenises like llama.cpp: bytes joined, then decoded as UTF-8 (broken sequences → U+FFFD). */
const model = {
  detokenize: (tokens: readonly number[]) => Buffer.from(tokens.map((tk) => PIECES[tk]!).join(''), 'latin1').toString('utf8'),
  isEogToken: (tk: number) => tk === EOG,
} as unknown as LlamaModel;

function generation(answer: number[], o: Partial<GenerationOptions> = {}) {
  const chunks: string[] = [];
  const g = new Generation({
    model, sequence: { id: 0, contextTokens: [] }, prompt: tokens(2), sampler: { applyConfig() {}, dispose() {} },
    samplerConfig: { temperature: 0, minP: 0, topK: 40, topP: 1, seed: 1 }, maxTokens: 100, stopStrings: [],
    stopTokens: new Set(), trimWhitespaceSuffix: false, signal: new AbortController().signal,
    onText: (text) => chunks.push(text), ...o,
  });
  let going = true;
  for (const tk of tokens(...answer)) {
    if (!going) break;
    going = g.accept(tk) && g.drain();
  }
  g.finish();
  return { g, chunks };
}

t.test('text per token; end of generation and max_tokens set the finish reason', async (t) => {
  const a = generation([2, 3, EOG, 3]);
  t.same(a.chunks, ['Hi', ' there']);
  t.equal(a.g.text, 'Hi there');
  t.equal(a.g.finishReason, 'stop');
  t.same(a.g.tokens, [2, 3], 'the end-of-generation token is not part of the answer');
  const b = generation([2, 3, 3, 3], { maxTokens: 2 });
  t.equal(b.g.text, 'Hi there');
  t.equal(b.g.finishReason, 'length');
  const c = generation([2, 4, 3], { stopTokens: new Set(tokens(4)) });
  t.equal(c.g.text, 'Hi', 'a template stop token ends the answer like end of generation');
  t.equal(c.g.finishReason, 'stop');
});

t.test('a character split over tokens waits for its last byte; cut by max_tokens it is not sent', async (t) => {
  const a = generation([2, 5, 6, 7, 3]);
  t.same(a.chunks, ['Hi', '€', ' there']);
  const b = generation([2, 5, 6], { maxTokens: 3 });
  t.same(b.chunks, ['Hi']);
  t.same(b.g.tokens, [2, 5, 6], 'the partial character\'s tokens still count');
});

t.test('stop strings across tokens; grammar whitespace at the end is dropped', async (t) => {
  const a = generation([2, 3, 8, 3], { stopStrings: ['thereSTOP'] });
  t.equal(a.g.text, 'Hi ');
  t.equal(a.g.finishReason, 'stop');
  t.same(a.chunks.join(''), a.g.text, 'streamed == returned');
  const b = generation([2, 4, 4, 3, 4, 1], { trimWhitespaceSuffix: true });
  t.equal(b.g.text, 'Hi\n\n there', 'inner whitespace stays, trailing whitespace goes');
  t.same(b.chunks.join(''), b.g.text);
  // A JSON grammar's stop trigger is a run of newlines: it must match although none is streamed.
  const c = generation([2, 4, 4, 4, 4, 4, 4, 4], { trimWhitespaceSuffix: true, stopStrings: ['\n\n\n\n'] });
  t.equal(c.g.finishReason, 'stop', 'the whitespace stop trigger matched');
  t.equal(c.g.tokens.length, 5, 'at the fourth newline');
  t.equal(c.g.text, 'Hi');
  t.same(c.chunks, ['Hi']);
  // Text held back as a possible stop start is part of the answer when no stop follows.
  const d = generation([2, 3], { trimWhitespaceSuffix: true, stopStrings: [' thereSTOP'], maxTokens: 2 });
  t.equal(d.g.text, 'Hi there');
  t.same(d.chunks.join(''), 'Hi there');
});

t.test('a template\'s ignoreStartText drops the longest match at the very start only', async (t) => {
  const ignoreStart = [' ', '  ', '   '];
  t.equal(generation([1, 2, 3], { ignoreStart }).g.text, 'Hi there');
  t.equal(generation([9, 1, 2], { ignoreStart }).g.text, 'Hi', 'three spaces over two tokens: the longest match');
  t.equal(generation([2, 1, 3], { ignoreStart }).g.text, 'Hi  there', 'later whitespace is kept');
  t.equal(generation([1], { ignoreStart }).g.text, '', 'an answer that is only ignored text is empty');
  t.equal(generation([1, 2], {}).g.text, ' Hi', 'without the list nothing is dropped');
  t.equal(generation([1], { ignoreStart: ['  '] }).g.text, ' ', 'an answer that ends while it could still grow into ignored text keeps what does not match');
});

t.test('a thought segment: its text goes to onReasoning, the rest to onText; stop strings see both', async (t) => {
  const reasoning: string[] = [];
  const thought = { prefix: 'STOP', suffix: '  ', open: false };
  const a = generation([8, 2, 9, 4, 3], { thought, onReasoning: (text) => reasoning.push(text) });
  t.equal(a.g.reasoning, 'Hi');
  t.same(reasoning, ['Hi']);
  t.equal(a.g.text, 'there', 'content after the thought, its leading whitespace dropped');
  t.same(a.chunks.join(''), a.g.text, 'streamed content == returned');
  const b = generation([8, 2, 3], { thought: { ...thought, open: true }, maxTokens: 3 });
  t.equal(b.g.reasoning, 'STOPHi there', 'an open thought cut by max_tokens keeps its text');
  t.equal(b.g.text, '');
  const c = generation([8, 2, 9, 3], { thought, stopStrings: ['Hi'] });
  t.equal(c.g.reasoning, '', 'a stop string inside the thought ends the answer');
  t.equal(c.g.finishReason, 'stop');
});
