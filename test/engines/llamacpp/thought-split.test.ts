import t, { type Test } from 'tap';
import { ThoughtSplit, type ThoughtSegment, type TextKind } from '../../../src/engines/llamacpp/thought-split.ts';

const THINK: ThoughtSegment = { prefix: '<think>', suffix: '</think>', open: false };

/** Feeds `chunks`, then flushes; returns the split and what was emitted, adjacent same-kind pieces joined. */
function split(chunks: string[], seg: ThoughtSegment = THINK) {
  const out: Array<[TextKind, string]> = [];
  const s = new ThoughtSplit(seg, (kind, text) => {
    const last = out.at(-1);
    if (last?.[0] === kind) last[1] += text;
    else out.push([kind, text]);
  });
  for (const c of chunks) s.push(c);
  s.flush();
  return { s, out };
}

/** Every way of cutting `text` into single characters, and whole, must give the same split. */
function agree(t: Test, text: string, seg: ThoughtSegment, reasoning: string, content: string) {
  for (const chunks of [[text], [...text], text.match(/.{1,3}/gs) ?? []]) {
    const { s, out } = split(chunks, seg);
    t.equal(s.reasoning, reasoning, `reasoning, chunks ${JSON.stringify(chunks.slice(0, 3))}…`);
    t.equal(s.content, content, 'content');
    t.same(out.map(([k, v]) => [k, v]), [...(reasoning ? [['reasoning', reasoning]] : []), ...(content ? [['content', content]] : [])], 'streamed in order, nothing emitted twice');
  }
}

t.test('a thought at the start goes to reasoning; whitespace around it is dropped', async (t) => {
  agree(t, '<think>\nLet me see.\n</think>\n\nHello!', THINK, 'Let me see.', 'Hello!');
  agree(t, '  <think>a</think>b', THINK, 'a', 'b');
});

t.test('no thought: everything is content, held text released at the end', async (t) => {
  agree(t, 'Hello <think>x</think>', THINK, '', 'Hello <think>x</think>');
  agree(t, '<thi', THINK, '', '<thi');
  agree(t, '  \n', THINK, '', '  \n');
});

t.test('a thought the prompt opened; one cut short keeps its text as reasoning', async (t) => {
  const open = { ...THINK, open: true };
  agree(t, 'Step 1.\n</think>\nAnswer', open, 'Step 1.', 'Answer');
  agree(t, 'still thinking </thi', open, 'still thinking </thi', '');
  agree(t, '</think>', open, '', '');
});

t.test('a segment without a prefix (opened by the template) starts open; an empty prefix otherwise means no thought', async (t) => {
  agree(t, 'x</think>y', { prefix: '', suffix: '</think>', open: true }, 'x', 'y');
  agree(t, 'x</think>y', { prefix: '', suffix: '</think>', open: false }, '', 'x</think>y');
});

t.test('partial suffixes inside the thought are text once they stop matching', async (t) => {
  agree(t, '<think>a </b> c</think>d', THINK, 'a </b> c', 'd');
  agree(t, '<think>a <</</think>d', THINK, 'a <</', 'd');
});

t.test('thoughtEnd: where in the pushed text the thought ends, its suffix included, however the text was cut', async (t) => {
  const text = '  <think>\nabc </think>\n\nHello';
  for (const chunks of [[text], [...text], text.match(/.{1,3}/gs) ?? []]) {
    const { s } = split(chunks);
    t.equal(s.thoughtEnd, text.indexOf('</think>') + '</think>'.length, JSON.stringify(chunks.slice(0, 3)));
  }
  t.equal(split(['Hello']).s.thoughtEnd, 0, 'no thought');
  t.equal(split(['<think>still thinking']).s.thoughtEnd, Infinity, 'a thought cut short');
  t.equal(split(['abc</think>x'], { ...THINK, open: true }).s.thoughtEnd, 'abc</think>'.length, 'a thought the prompt opened');
});
