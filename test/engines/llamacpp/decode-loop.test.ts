import t from 'tap';
import { DecodeLoop, type DecodeJob, type KvSequence } from '../../../src/engines/llamacpp/decode-loop.ts';
import type { NativeContext, NativeSampler } from '../../../src/engines/llamacpp/native-context.ts';

// The real engine is proven end to end in engine.test.ts and the route tests; this fake native
// context checks the loop's bookkeeping exactly: which tokens go into which batch at which
// position, that the KV cells match each sequence's `contextTokens`, and how jobs end.

/** Next token of the fake model: the last one + 1; token 0 is end-of-generation. */
const next = (token: number) => (token + 1) % 40;

class FakeNative implements NativeContext {
  /** seq → tokens by position: what the KV cache holds. */
  readonly cells = new Map<number, number[]>();
  /** Every decoded batch as [sequence, position, token] rows. */
  readonly batches: Array<Array<[number, number, number]>> = [];
  failNextDecode = false;
  #batch: Array<[number, number, number]> = [];
  #capacity = 0;
  #logits: number[] = [];

  initBatch(tokens: number): void {
    this.#batch = [];
    this.#capacity = tokens;
  }

  /** A sequence whose next addToBatch throws. */
  failAddFor: number | undefined;

  addToBatch(sequenceId: number, firstPosition: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array {
    if (sequenceId === this.failAddFor) {
      this.failAddFor = undefined;
      throw new Error('add failed');
    }
    if (this.#batch.length + tokens.length > this.#capacity) throw new Error('batch overflow');
    const out: number[] = [];
    tokens.forEach((token, i) => {
      this.#batch.push([sequenceId, firstPosition + i, token]);
      if (logitIndexes.includes(i)) out.push(this.#batch.length - 1);
    });
    return Uint32Array.from(out);
  }

  async decodeBatch(): Promise<void> {
    const batch = this.#batch;
    await new Promise((r) => setImmediate(r));
    if (this.failNextDecode) {
      this.failNextDecode = false;
      throw new Error('decode failed');
    }
    for (const [seq, pos, token] of batch) {
      const cells = this.cells.get(seq) ?? [];
      if (pos !== cells.length) throw new Error(`sequence ${seq}: position ${pos} but the cache holds ${cells.length}`);
      cells.push(token);
      this.cells.set(seq, cells);
    }
    this.batches.push(batch);
    this.#logits = batch.map(([, , token]) => next(token));
  }

  async sampleToken(batchLogitIndex: number): Promise<number> {
    await Promise.resolve();
    return this.#logits[batchLogitIndex]!;
  }

  /** Like a recurrent model's state: only a whole sequence can be removed. */
  recurrent = false;

  removeTokenCellsFromSequence(sequenceId: number, start: number): boolean {
    if (this.recurrent && start > 0) return false;
    const cells = this.cells.get(sequenceId) ?? [];
    cells.length = Math.min(cells.length, start);
    return true;
  }

  /** [target, source] of every copy. */
  readonly copies: Array<[number, number]> = [];
  failNextCopy = false;

  async copySequenceStateFromOtherSequence(target: number, source: number): Promise<number> {
    await Promise.resolve();
    if (this.failNextCopy) {
      this.failNextCopy = false;
      this.cells.set(target, [99, 99]);
      throw new Error('copy failed');
    }
    this.copies.push([target, source]);
    const cells = [...(this.cells.get(source) ?? [])];
    this.cells.set(target, cells);
    return cells.length - 1;
  }
}

const sampler: NativeSampler = { applyConfig() {}, dispose() {} };

interface TestJob extends DecodeJob {
  tokens: number[];
  drained: number[];
}

function job(sequence: KvSequence, prompt: number[], o: { max?: number; stopAt?: number; signal?: AbortSignal } = {}): TestJob {
  const tokens: number[] = [];
  const drained: number[] = [];
  return {
    sequence, prompt, sampler, signal: o.signal ?? new AbortController().signal, tokens, drained,
    accept(token) {
      if (token === 0) return false;
      tokens.push(token);
      return tokens.length < (o.max ?? 5);
    },
    drain() {
      drained.push(...tokens.slice(drained.length));
      return !(o.stopAt !== undefined && drained.includes(o.stopAt));
    },
  };
}

const seq = (id: number, contextTokens: number[] = []): KvSequence => ({ id, contextTokens });

t.test('jobs that arrive together share every batch; each sequence decodes its own tokens in order', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const a = job(seq(0), [1, 2, 3], { max: 4 });
  const b = job(seq(1), [10, 11], { max: 4 });
  const uses = await Promise.all([loop.run(a), loop.run(b)]);
  t.same(a.tokens, [4, 5, 6, 7]);
  t.same(b.tokens, [12, 13, 14, 15]);
  t.same(a.drained, a.tokens, 'every accepted token was drained');
  t.same(uses, [{ cachedTokens: 0, evaluatedTokens: 3 }, { cachedTokens: 0, evaluatedTokens: 2 }]);
  t.same(native.batches.map((b) => b.length), [5, 2, 2, 2], 'both prompts in the first batch, then one token of each per step');
  // The last sampled token of each answer is never decoded: nothing asks for what follows it.
  t.same(native.cells.get(0), [1, 2, 3, 4, 5, 6]);
  t.same(a.sequence.contextTokens, native.cells.get(0), 'contextTokens mirrors the cache');
  t.equal(loop.active, 0);
});

t.test('a cached prefix is kept, the differing suffix erased, and the prompt\'s last token always decoded', async (t) => {
  const native = new FakeNative();
  native.cells.set(0, [1, 2, 3, 9, 9]);
  const s = seq(0, [1, 2, 3, 9, 9]);
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const use = await loop.run(job(s, [1, 2, 3, 4], { max: 1 }));
  t.same(use, { cachedTokens: 3, evaluatedTokens: 1 });
  t.same(native.batches[0], [[0, 3, 4]], 'only the new token, at position 3');
  const again = await loop.run(job(s, [1, 2, 3, 4], { max: 1 }));
  t.same(again, { cachedTokens: 3, evaluatedTokens: 1 }, 'a full match still decodes the last prompt token');
  t.same(s.contextTokens, native.cells.get(0));
});

t.test('minPromptChunk: a few new tokens after a long cached prefix are read with the last of that prefix, one token alone is not', async (t) => {
  const native = new FakeNative();
  // Long enough that 2 new tokens × the cache reach THIN_READ_WORK.
  const history = Array.from({ length: 5000 }, (_, i) => 1 + (i % 30));
  native.cells.set(0, history.slice());
  const s = seq(0, history.slice());
  const loop = new DecodeLoop(native, { batchSize: 64, minPromptChunk: 4 });
  t.same(await loop.run(job(s, [...history, 31, 32], { max: 1 })), { cachedTokens: 4997, evaluatedTokens: 5 }, 'two new tokens: the last 4 + 1 read again');
  t.same(native.batches[0]!.map(([, pos]) => pos), [4997, 4998, 4999, 5000, 5001]);
  const short = seq(1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  native.cells.set(1, short.contextTokens.slice());
  t.same(await loop.run(job(short, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { max: 1 })), { cachedTokens: 10, evaluatedTokens: 2 }, 'after a short cache the new tokens alone');
  native.batches.length = 0;
  const prompt = s.contextTokens.slice();
  t.same(await loop.run(job(s, prompt, { max: 1 })), { cachedTokens: prompt.length - 1, evaluatedTokens: 1 }, 'the same prompt again: its last token alone');
  const longer = [...prompt, 40, 41, 42, 43, 44, 45];
  t.same(await loop.run(job(s, longer, { max: 1 })), { cachedTokens: prompt.length, evaluatedTokens: 6 }, 'enough new tokens: the cache kept whole');
  t.same(s.contextTokens, native.cells.get(0));
});

t.test('prompts longer than n_batch go in chunks; generating sequences keep their place in every batch', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 4 });
  const a = job(seq(0), [1], { max: 6 });
  const first = loop.run(a);
  while (native.batches.length < 2) await new Promise((r) => setImmediate(r));
  const b = job(seq(1), [20, 21, 22, 23, 24, 25, 26, 27, 28]);
  await Promise.all([first, loop.run(b)]);
  for (const batch of native.batches) t.ok(batch.length <= 4, 'never more than n_batch tokens');
  const withB = native.batches.filter((batch) => batch.some(([s]) => s === 1));
  t.ok(withB.slice(0, 3).every((batch) => batch.some(([s]) => s === 0)), 'a decodes a token in each batch that carries b\'s prompt');
  t.same(b.tokens, [29, 30, 31, 32, 33], 'b sampled only after its whole prompt');
  t.same(native.cells.get(1)!.slice(0, 9), b.prompt);
});

t.test('rows go in by sequence id and prompts share the room equally (llama.cpp splits batches by consecutive ids, equal tokens each)', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 8 });
  const late = job(seq(2), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { max: 1 });
  const early = job(seq(0), [11, 12, 13, 14, 15, 16], { max: 1 });
  await Promise.all([loop.run(late), loop.run(early)]);
  t.same(native.batches[0]!.map(([s]) => s), [0, 0, 0, 0, 2, 2, 2, 2], 'sequence 0 first, 4 tokens each');
  t.same(native.batches[1]!.map(([s]) => s), [0, 0, 2, 2, 2, 2, 2, 2], 'the shorter prompt ends; the longer takes the rest of the room');
});

t.test('minPromptChunk: a chunk leaves its prompt at least that much (one more beside a generating row) for the next batch', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 16, minPromptChunk: 4 });
  const a = job(seq(0), [1], { max: 8 });
  const first = loop.run(a);
  while (native.batches.length < 1) await new Promise((r) => setImmediate(r));
  const b = job(seq(1), [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51], { max: 1 });
  const c = job(seq(2), [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71], { max: 1 });
  await Promise.all([first, loop.run(b), loop.run(c)]);
  const shared = native.batches.find((batch) => batch.some(([s]) => s === 1))!;
  const rows = (s: number) => shared.filter(([q]) => q === s).length;
  t.same([rows(0), rows(1), rows(2)], [1, 7, 7], 'equal shares would be 8 and 7, leaving 4: below the floor of 4 + 1');
  t.same(b.tokens.length, 1);
  t.same(native.cells.get(2)!.slice(0, 12), c.prompt);
});

t.test('a stop found while the next batch decodes ends the job: its token in flight is decoded, nothing more sampled', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const a = job(seq(0), [1], { max: 10, stopAt: 3 });
  await loop.run(a);
  t.same(a.tokens, [2, 3], 'the token sampled after the stop is not taken');
  t.same(native.cells.get(0), [1, 2, 3], 'the stop token went into the batch that was already decoding');
  t.same(a.sequence.contextTokens, native.cells.get(0));
});

t.test('an end-of-generation token ends the job and is not decoded', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const a = job(seq(0), [37], { max: 10 });
  await loop.run(a);
  t.same(a.tokens, [38, 39]);
  t.same(native.cells.get(0), [37, 38, 39]);
});

t.test('an abort rejects with its reason at the next step; the other job runs on', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const ac = new AbortController();
  const a = job(seq(0), [1], { max: 30, signal: ac.signal });
  const b = job(seq(1), [1], { max: 6 });
  const ra = loop.run(a);
  const rb = loop.run(b);
  while (a.tokens.length < 2) await new Promise((r) => setImmediate(r));
  ac.abort(new Error('client gone'));
  await t.rejects(ra, { message: 'client gone' });
  await rb;
  t.ok(a.tokens.length <= 4, `a stopped within a token of the abort (${a.tokens.length})`);
  t.equal(b.tokens.length, 6);
  t.same(a.sequence.contextTokens, native.cells.get(0), 'the aborted sequence\'s cache stays consistent for the next request');
  await t.rejects(loop.run(job(seq(2), [1], { signal: AbortSignal.abort(new Error('already')) })), { message: 'already' });
});

t.test('a failed decode rejects the jobs in it and empties their caches', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  native.failNextDecode = true;
  const s = seq(0);
  await t.rejects(loop.run(job(s, [1, 2, 3])), { message: 'decode failed' });
  t.same(s.contextTokens, []);
  t.same(native.cells.get(0) ?? [], []);
  const a = job(s, [1, 2, 3], { max: 2 });
  t.same(await loop.run(a), { cachedTokens: 0, evaluatedTokens: 3 }, 'the next request reads its whole prompt');
  t.same(a.tokens, [4, 5]);
});

t.test('close rejects what is queued and running, then resolves', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  const a = loop.run(job(seq(0), [1], { max: 1000 }));
  while (native.batches.length < 3) await new Promise((r) => setImmediate(r));
  const closed = loop.close();
  await t.rejects(a, { message: /unloaded/ });
  await closed;
  await t.rejects(loop.run(job(seq(1), [1])), { message: /unloaded/ });
});

t.test('an empty prompt is rejected, not decoded; a bug in a job fails the loop\'s jobs, never the process', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64 });
  await t.rejects(loop.run(job(seq(0), [])), { message: /at least one prompt token/ });
  const broken = job(seq(0), [1, 2], { max: 10 });
  broken.accept = () => {
    throw new Error('bug in accept');
  };
  const neighbour = loop.run(job(seq(1), [5, 6], { max: 1000 }));
  await t.rejects(loop.run(broken), { message: 'bug in accept' });
  await t.rejects(neighbour, { message: 'bug in accept' }, 'the neighbour in the same loop fails too');
  t.same(native.cells.get(0), [], 'its cache was emptied');
  t.same(native.cells.get(1), []);
  const after = job(seq(0), [1, 2], { max: 2 });
  t.same(await loop.run(after), { cachedTokens: 0, evaluatedTokens: 2 }, 'the next job starts a fresh loop');
  t.same(after.tokens, [3, 4]);
});

t.test('jobs with the same prompt read it once: the others copy its KV state and decode only its last token', async (t) => {
  const native = new FakeNative();
  native.cells.set(2, [7, 7, 7]);
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const jobs = [job(seq(0), prompt, { max: 3 }), job(seq(1), prompt, { max: 3 }), job(seq(2, [7, 7, 7]), prompt, { max: 3 })];
  const uses = await Promise.all(jobs.map((j) => loop.run(j)));
  t.same(native.batches[0]!.map(([s]) => s), Array(10).fill(0), 'the first batch reads the prompt once, on the first job\'s sequence');
  t.same(native.copies, [[1, 0], [2, 0]]);
  t.same(native.batches[1], [[0, 10, 11], [1, 9, 10], [2, 9, 10]], 'the copies decode the prompt\'s last token beside the leader\'s first answer token');
  for (const j of jobs) {
    t.same(j.tokens, [11, 12, 13], 'every job answers as if it had read the prompt itself');
    t.same(j.sequence.contextTokens, native.cells.get(j.sequence.id), 'contextTokens mirrors the copied cache');
  }
  t.same(uses, [
    { cachedTokens: 0, evaluatedTokens: 10 },
    { cachedTokens: 0, evaluatedTokens: 1, sharedTokens: 9 },
    { cachedTokens: 0, evaluatedTokens: 1, sharedTokens: 9 },
  ]);
});

t.test('prompt sharing: short rests, unrelated prompts and jobs that cache most of the prompt read their own', async (t) => {
  const native = new FakeNative();
  const prompt = Array.from({ length: 20 }, (_, i) => i + 1);
  native.cells.set(1, prompt.slice(0, 14));
  native.cells.set(4, [...prompt.slice(0, 2), 39]);
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const a = job(seq(0), prompt, { max: 2 });
  const cachedMost = job(seq(1, prompt.slice(0, 14)), prompt, { max: 2 });
  const other = job(seq(2), [40, ...prompt.slice(1)], { max: 2 });
  const short = job(seq(3), [5, 6, 7], { max: 2 });
  const cachedLittle = job(seq(4, [...prompt.slice(0, 2), 39]), prompt, { max: 2 });
  const shortToo = job(seq(5), [5, 6, 7], { max: 2 });
  const uses = await Promise.all([a, cachedMost, other, short, cachedLittle, shortToo].map((j) => loop.run(j)));
  t.same(native.copies, [[4, 0]], 'only the job that would read 18 tokens waits for the one reading 20; a prompt differing in its first token shares nothing');
  t.same(native.batches[0]!.filter(([s]) => s === 1).map(([, p]) => p), [14, 15, 16, 17, 18, 19], 'the job caching 14 of 20 reads its 6 itself: waiting would take longer');
  t.same(uses[4], { cachedTokens: 0, evaluatedTokens: 1, sharedTokens: 19 });
  t.same(cachedLittle.tokens, a.tokens);
});

t.test('a leader that aborts or fails before its prompt is read leaves its followers reading their own', async (t) => {
  await t.test('abort', async (t) => {
    const native = new FakeNative();
    const loop = new DecodeLoop(native, { batchSize: 4, sharePromptsFrom: 4 });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const stop = new AbortController();
    const leader = loop.run(job(seq(0), prompt, { signal: stop.signal }));
    const follower = job(seq(1), prompt, { max: 2 });
    const following = loop.run(follower);
    while (native.batches.length < 1) await new Promise((r) => setImmediate(r));
    t.same(native.batches[0]!.map(([s]) => s), [0, 0, 0, 0], 'the follower waits while the leader reads');
    stop.abort(new Error('gone'));
    await t.rejects(leader, { message: 'gone' });
    t.same(await following, { cachedTokens: 0, evaluatedTokens: 10 });
    t.same(follower.tokens, [11, 12]);
    t.same(native.copies, []);
  });
  await t.test('abort with two followers: one reads, the other copies from it', async (t) => {
    const native = new FakeNative();
    const loop = new DecodeLoop(native, { batchSize: 4, sharePromptsFrom: 4 });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const stop = new AbortController();
    const leader = loop.run(job(seq(0), prompt, { signal: stop.signal }));
    const followers = [job(seq(1), prompt, { max: 2 }), job(seq(2), prompt, { max: 2 })];
    const following = followers.map((f) => loop.run(f));
    while (native.batches.length < 1) await new Promise((r) => setImmediate(r));
    stop.abort(new Error('gone'));
    await t.rejects(leader, { message: 'gone' });
    t.same(await Promise.all(following), [{ cachedTokens: 0, evaluatedTokens: 10 }, { cachedTokens: 0, evaluatedTokens: 1, sharedTokens: 9 }]);
    t.same(native.copies, [[2, 1]]);
    for (const f of followers) t.same(f.tokens, [11, 12]);
  });
  await t.test('failed batch entry, with nothing else to decode', async (t) => {
    const native = new FakeNative();
    const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    native.failAddFor = 0;
    const leader = loop.run(job(seq(0), prompt));
    const follower = job(seq(1), prompt, { max: 2 });
    const following = loop.run(follower);
    await t.rejects(leader, { message: 'add failed' });
    t.same(await following, { cachedTokens: 0, evaluatedTokens: 10 });
    t.same(follower.tokens, [11, 12]);
  });
  await t.test('failed decode', async (t) => {
    const native = new FakeNative();
    const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    native.failNextDecode = true;
    const leader = loop.run(job(seq(0), prompt));
    const follower = job(seq(1), prompt, { max: 2 });
    const following = loop.run(follower);
    await t.rejects(leader, { message: 'decode failed' });
    t.same(await following, { cachedTokens: 0, evaluatedTokens: 10 });
    t.same(follower.tokens, [11, 12]);
  });
});

t.test('a copy that cannot be trimmed (a recurrent state) leaves the follower reading its whole prompt', async (t) => {
  const native = new FakeNative();
  native.recurrent = true;
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const follower = job(seq(1), prompt, { max: 2 });
  const uses = await Promise.all([loop.run(job(seq(0), prompt, { max: 2 })), loop.run(follower)]);
  t.same(native.copies, [[1, 0]], 'copied, then found untrimmable');
  t.same(uses[1], { cachedTokens: 0, evaluatedTokens: 10 });
  t.same(follower.tokens, [11, 12]);
  t.same(follower.sequence.contextTokens, native.cells.get(1));
});

t.test('a failed copy leaves the follower reading its whole prompt on a cleared sequence', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  native.failNextCopy = true;
  const leader = job(seq(0), prompt, { max: 2 });
  const follower = job(seq(1), prompt, { max: 2 });
  const uses = await Promise.all([loop.run(leader), loop.run(follower)]);
  t.same(uses[1], { cachedTokens: 0, evaluatedTokens: 10 });
  t.same(follower.tokens, [11, 12]);
  t.same(follower.sequence.contextTokens, native.cells.get(1));
});

t.test('prompts that share a prefix read it once: the copy is trimmed to the shared tokens and the rest is read', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const system = [1, 2, 3, 4, 5, 6, 7, 8];
  const a = job(seq(0), [...system, 20, 21], { max: 2 });
  const b = job(seq(1), [...system, 30, 31, 32], { max: 2 });
  const uses = await Promise.all([loop.run(a), loop.run(b)]);
  t.same(native.copies, [[1, 0]]);
  t.same(native.batches[1]!.filter(([s]) => s === 1), [[1, 8, 30], [1, 9, 31], [1, 10, 32]], 'b reads only what follows the shared part');
  t.same(b.tokens, [33, 34]);
  t.same(uses[1], { cachedTokens: 0, evaluatedTokens: 3, sharedTokens: 8 });
  t.same(b.sequence.contextTokens, native.cells.get(1));
});

t.test('a generating job\'s sequence is a source too: a later prompt that starts with its prompt copies it at once', async (t) => {
  const native = new FakeNative();
  const loop = new DecodeLoop(native, { batchSize: 64, sharePromptsFrom: 4 });
  const system = [1, 2, 3, 4, 5, 6, 7, 8];
  const a = job(seq(0), system, { max: 6 });
  const running = loop.run(a);
  while (native.batches.length < 2) await new Promise((r) => setImmediate(r));
  const b = job(seq(1), [...system, 30], { max: 2 });
  const use = await loop.run(b);
  await running;
  t.same(native.copies, [[1, 0]]);
  t.same(use, { cachedTokens: 0, evaluatedTokens: 1, sharedTokens: 8 });
  t.same(b.tokens, [31, 32]);
  t.same(b.sequence.contextTokens, native.cells.get(1), 'the leader\'s answer tokens were trimmed from the copy');
});
