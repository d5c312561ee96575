import PQueue from 'p-queue';

/**
 * Runs `fn` over `items` with at most `limit()` at once, in index order (a p-queue), and
 * resolves with the results in that order; the first failure rejects and starts nothing more.
 * `limit()` is read again whenever one ends or calls its `started` (a JIT load has just told
 * the model's concurrency). A request with many prompts thus holds at most the model's
 * parallel sequences in its queue, instead of filling `max_waiting` with its own prompts.
 */
export async function mapWithLimit<T, R>(
  items: readonly T[],
  limit: () => number,
  fn: (item: T, index: number, started: () => void) => Promise<R>,
): Promise<R[]> {
  const queue = new PQueue({ concurrency: Math.max(1, limit()) });
  const grow = () => {
    queue.concurrency = Math.max(1, limit());
  };
  try {
    return await Promise.all(items.map((item, i) => queue.add(async () => {
      try {
        return await fn(item, i, grow);
      } finally {
        grow();
      }
    })));
  } finally {
    // After a failure the prompts not started yet never start.
    queue.clear();
  }
}
