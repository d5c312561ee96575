import t from 'tap';
import { LlamaCompletion, type BatchItem } from 'node-llama-cpp';
import { createBatchScheduler, maximumParallelism } from '../../benchmarks/lib/batch-schedule.ts';
import { loadTinyModel } from '../helpers/llama-fixtures.ts';

const item = (tokens: number, evaluationPriority = 5): BatchItem => ({
  tokens: Array.from({ length: tokens }, (_, i) => i) as never,
  logits: [],
  evaluationPriority: evaluationPriority as never,
});


t.test('barrier holds a batch until every generating sequence has queued, then gives up after maxWaitMs', async (t) => {
  let active = 3;
  const scheduler = createBatchScheduler({ activeSequences: () => active, maxWaitMs: 50 });
  const strategy = scheduler.batching.itemPrioritizationStrategy as (o: { items: BatchItem[]; size: number }) => unknown[];
  t.same(strategy({ items: [item(1), item(1)], size: 512 }), [], '2 of 3 queued: decode nothing yet');
  t.equal(strategy({ items: [item(1), item(1), item(1)], size: 512 }).length, 3, 'all 3 queued: decode them');
  active = 2;
  t.equal(strategy({ items: [item(1), item(1)], size: 512 }).length, 2, 'a finished generation no longer counts');

  const impatient = createBatchScheduler({ activeSequences: () => 4, maxWaitMs: 0 });
  const s2 = impatient.batching.itemPrioritizationStrategy as typeof strategy;
  t.equal(s2({ items: [item(1)], size: 512 }).length, 1, 'after maxWaitMs the partial batch goes');
  t.same(impatient.stats(), { batches: 1, tokens: 1, histogram: { 1: 1 }, timeouts: 1 });

  const excusing = createBatchScheduler({ activeSequences: () => 3, maxWaitMs: 0, reprobeAfter: 2 });
  const s3 = excusing.batching.itemPrioritizationStrategy as typeof strategy;
  const two = { items: [item(1), item(1)], size: 512 };
  s3(two);
  s3(two);
  t.equal(excusing.stats().timeouts, 2, 'one timeout does not excuse a sequence (a preempted main thread)');
  t.equal(s3(two).length, 2);
  t.equal(excusing.stats().timeouts, 2, 'two in a row do: no wait for the missing one');
  s3(two);
  t.equal(excusing.stats().timeouts, 2, 'still excused for the second decode');
  s3(two);
  t.equal(excusing.stats().timeouts, 3, 'after reprobeAfter decodes it waits for it again');
  s3(two);
  t.equal(excusing.stats().timeouts, 3, 'and a single further timeout excuses it again');
  s3({ items: [item(1), item(1), item(1)], size: 512 });
  s3(two);
  t.equal(excusing.stats().timeouts, 4, 'once it is back, a full batch clears the record');

  const off = createBatchScheduler({ barrier: false, activeSequences: () => 4 });
  t.equal((off.batching.itemPrioritizationStrategy as typeof strategy)({ items: [item(1)], size: 512 }).length, 1, 'barrier: false never waits');
});

t.test('maximumParallelism shares the batch and never exceeds its size', async (t) => {
  const items = [item(100), item(1), item(30, 9)];
  const out = maximumParallelism(items, 64);
  t.same(out.map((p) => p.processAmount), [33, 1, 30]);
  t.ok(out.reduce((s, p) => s + p.processAmount, 0) <= 64);
  t.same(maximumParallelism([item(1), item(1)], 512).map((p) => p.processAmount), [1, 1]);
});

t.test('4 concurrent completions decode in shared batches of 4 on node-llama-cpp', async (t) => {
  const model = await loadTinyModel(t);
  const maxTokens = 12;

  const generate = async (barrier: boolean) => {
    // A generous cap: the assertion is about the mechanism, not about a loaded machine's scheduling.
    const scheduler = createBatchScheduler({ barrier, maxWaitMs: 1000 });
    const context = await model.createContext({ sequences: 4, threads: 2, contextSize: 1024, batching: scheduler.batching });
    try {
      const counts = await Promise.all([0, 1, 2, 3].map((i) => scheduler.track(async () => {
        let tokens = 0;
        await new LlamaCompletion({ contextSequence: context.getSequence() })
          .generateCompletion(`story ${i}: once upon a time`, { maxTokens, onToken: (chunk) => { tokens += chunk.length; } });
        return tokens;
      })));
      return { counts, stats: scheduler.stats() };
    } finally {
      await context.dispose();
    }
  };

  const before = await generate(false);
  t.comment(`node-llama-cpp default batching: sequences per batch ${JSON.stringify(before.stats.histogram)}`);

  const after = await generate(true);
  t.same(after.counts, [maxTokens, maxTokens, maxTokens, maxTokens], 'every stream generated maxTokens');
  // One prompt batch plus maxTokens - 1 generation steps, each with all 4 sequences.
  t.same(after.stats.histogram, { 4: maxTokens }, 'every decode carried all 4 sequences');
  t.equal(after.stats.batches, maxTokens);
  t.equal(after.stats.timeouts, 0);
  t.ok(after.stats.batches < before.stats.batches, `fewer decodes than default batching (${after.stats.batches} < ${before.stats.batches})`);
});

t.test('a request that must erase stale KV cells is not starved by running generations (patches/node-llama-cpp)', async (t) => {
  const model = await loadTinyModel(t);
  const scheduler = createBatchScheduler({ barrier: true });
  const context = await model.createContext({ sequences: 4, threads: 2, contextSize: 2048, batching: scheduler.batching });
  t.teardown(() => context.dispose());
  t.equal((context as unknown as { _contextLockWaiters?: number })._contextLockWaiters, 0, 'the patch is applied (npm ci runs patch-package)');
  const sequences = [0, 1, 2, 3].map(() => context.getSequence());
  // The fourth sequence holds an old conversation, so a new prompt must first erase its cells.
  await new LlamaCompletion({ contextSequence: sequences[3]! }).generateCompletion('an old conversation', { maxTokens: 4 });
  const maxTokens = 120;
  let steps = 0;
  const running = [0, 1, 2].map((i) => scheduler.track(() => new LlamaCompletion({ contextSequence: sequences[i]! })
    .generateCompletion(`story ${i}`, { maxTokens, onToken: () => { if (i === 0) steps++; } })));
  while (steps < 10) await new Promise((r) => setTimeout(r, 1));
  let firstTokenAt = -1;
  const late = scheduler.track(() => new LlamaCompletion({ contextSequence: sequences[3]! })
    .generateCompletion('a brand new prompt', { maxTokens: 4, onToken: () => { if (firstTokenAt < 0) firstTokenAt = steps; } }));
  await Promise.all([...running, late]);
  // Unpatched node-llama-cpp holds the context lock until the others finish (first token at ~maxTokens).
  t.ok(firstTokenAt >= 0 && firstTokenAt < maxTokens / 2, `late request's first token at step ${firstTokenAt} of ${maxTokens}`);
});
