import t from 'tap';
import { LlamaCompletion, type LlamaContextSequence, type Token } from 'node-llama-cpp';
import { commonPrefixLength, SequencePool } from '../../../src/engines/llamacpp/sequence-pool.ts';
import { loadTinyModel } from '../../helpers/llama-fixtures.ts';

const fake = (name: string, contextTokens: number[]) => ({ name, contextTokens });

t.test('commonPrefixLength', async (t) => {
  t.equal(commonPrefixLength([1, 2, 3], [1, 2, 4]), 2);
  t.equal(commonPrefixLength([], [1]), 0);
  t.equal(commonPrefixLength([1, 2], [1, 2, 3]), 2);
});

t.test('hands out the free sequence with the longest cached prefix, ties to the least recently used', async (t) => {
  const a = fake('a', [1, 2, 3, 4]);
  const b = fake('b', [1, 2, 9]);
  const c = fake('c', []);
  const pool = new SequencePool([a, b, c], { minSimilarity: 0 });

  const first = await pool.acquire([1, 2, 3, 4, 5]);
  t.equal(first.sequence.name, 'a');
  t.equal(first.cachedPrefix, 4);
  const second = await pool.acquire([1, 2, 3, 4, 5]);
  t.equal(second.sequence.name, 'b', 'a is busy: b is the next best');
  t.equal(second.cachedPrefix, 2);
  t.equal(pool.busy, 2);

  first.release();
  second.release();
  first.release();
  t.equal(pool.busy, 0, 'release is idempotent');
  // a, b, c all share 0 tokens with [7]: c was never released (oldest), then a (released before b).
  const l1 = await pool.acquire([7]);
  const l2 = await pool.acquire([7]);
  const l3 = await pool.acquire([7]);
  t.same([l1.sequence.name, l2.sequence.name, l3.sequence.name], ['c', 'a', 'b']);
});

t.test('a match below minSimilarity of the prompt yields to the least recently used sequence', async (t) => {
  const pool = new SequencePool([fake('cached', [1, 2, 3, 4, 5, 6]), fake('empty', [])]);
  const lease = await pool.acquire([1, 9, 9, 9]);
  t.equal(lease.sequence.name, 'empty', 'sharing 1 of 4 tokens does not claim the cached conversation');
  t.equal(lease.cachedPrefix, 0);
  const other = await pool.acquire([1, 2, 3, 7]);
  t.equal(other.sequence.name, 'cached');
  t.equal(other.cachedPrefix, 3);
});

t.test('waits in FIFO order while every sequence is busy, and honours abort', async (t) => {
  const pool = new SequencePool([fake('only', [5, 6])]);
  const held = await pool.acquire([5]);
  const order: string[] = [];
  const w1 = pool.acquire([5, 6]).then((l) => { order.push('w1'); return l; });
  const controller = new AbortController();
  const w2 = pool.acquire([5], controller.signal);
  const w3 = pool.acquire([5]).then((l) => { order.push('w3'); return l; });
  t.equal(pool.waiting, 3);
  controller.abort(new Error('client went away'));
  await t.rejects(w2, { message: 'client went away' });
  t.equal(pool.waiting, 2);

  held.release();
  const l1 = await w1;
  t.equal(l1.cachedPrefix, 1, 'the whole prompt is cached, but its last token is always evaluated again');
  l1[Symbol.dispose]();
  (await w3).release();
  t.same(order, ['w1', 'w3']);
  await t.rejects(pool.acquire([1], AbortSignal.abort(new Error('already'))), { message: 'already' });
});

t.test('second turn of a conversation reuses its sequence and evaluates only the new tokens', async (t) => {
  const model = await loadTinyModel(t);
  const context = await model.createContext({ sequences: 2, threads: 2, contextSize: 1024 });
  t.teardown(() => context.dispose());
  const pool = new SequencePool<LlamaContextSequence>([context.getSequence(), context.getSequence()]);
  const bos: Token[] = model.tokens.bos == null ? [] : [model.tokens.bos];

  // A turn: the prompt as tokens (LlamaCompletion prepends BOS itself), the lease, the tokens evaluated.
  const turn = async (prompt: Token[]) => {
    const lease = await pool.acquire([...bos, ...prompt]);
    try {
      const meter = lease.sequence.tokenMeter;
      const inputBefore = meter.usedInputTokens;
      const outputBefore = meter.usedOutputTokens;
      const generated: Token[] = [];
      await new LlamaCompletion({ contextSequence: lease.sequence })
        .generateCompletion(prompt, { maxTokens: 8, onToken: (chunk) => generated.push(...chunk) });
      // Prompt tokens are decoded without logits except the last; each generated token but the last is decoded with logits.
      const evaluatedPrompt = meter.usedInputTokens - inputBefore + (meter.usedOutputTokens - outputBefore) - (generated.length - 1);
      return { lease, generated, evaluatedPrompt };
    } finally {
      lease.release();
    }
  };

  const systemA = model.tokenize('You are a helpful assistant. Conversation A is about the sea and its many fish and boats.');
  const systemB = model.tokenize('Another conversation entirely, conversation B, about mountains.');
  const a1 = await turn(systemA);
  t.equal(a1.lease.cachedPrefix, 0);
  t.equal(a1.evaluatedPrompt, bos.length + systemA.length, 'first turn evaluates the whole prompt');
  const b1 = await turn(systemB);
  t.not(b1.lease.sequence, a1.lease.sequence, 'the other conversation gets the other sequence (least recently used)');

  const newTokens = model.tokenize(' Tell me more about the boats.');
  const prompt2 = [...systemA, ...a1.generated, ...newTokens];
  const a2 = await turn(prompt2);
  t.equal(a2.lease.sequence, a1.lease.sequence, 'conversation A gets its own sequence back');
  t.ok(a2.lease.cachedPrefix >= bos.length + systemA.length + a1.generated.length - 1, `cached prefix ${a2.lease.cachedPrefix} covers turn 1`);
  t.equal(a2.evaluatedPrompt, bos.length + prompt2.length - a2.lease.cachedPrefix, 'second turn evaluates only the uncached tokens');
  t.ok(a2.evaluatedPrompt <= newTokens.length + 1, `evaluated ${a2.evaluatedPrompt} of ${bos.length + prompt2.length} prompt tokens`);
});
