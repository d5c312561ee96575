/**
 * Query rows per sequence from which ggml-cpu's flash attention runs its tiled kernel
 * (`GGML_FA_TILE_Q`); a micro-batch with fewer rows of a sequence goes through it one row at a
 * time. Measured on the 0.5B shape, 7 prompts in one batch (docs/cpu-batching.md §8): 6.3 ms a
 * token with 63 rows each, 5.3 ms with 64, and 8.4 ms at 63 once the cache holds as many again.
 */
export const CPU_ATTENTION_TILE = 64;

/**
 * How many tokens of each prompt still being read go into the next batch.
 *
 * `lefts` are the prompts' unread tokens in admission order, `room` what the batch holds after
 * the generating sequences' one token each, and `min` the shortest chunk worth sending (0: any).
 * Prompts join in order while each can have `min` tokens (or all it has left); the room is then
 * shared equally among them, the rest going to the longer prompts; and a chunk that would leave
 * fewer than `min` tokens for a later batch takes less now, so that later chunk is not short
 * too. A prompt given 0 waits for a later batch. With `min` 0 every prompt shares the room.
 */
export function promptChunks(lefts: readonly number[], room: number, min: number): number[] {
  const chunks = lefts.map(() => 0);
  const joined: number[] = [];
  let needed = 0;
  for (const [i, left] of lefts.entries()) {
    const need = Math.max(1, Math.min(left, min));
    // The first prompt always joins: a batch smaller than `min` still reads something.
    if (joined.length > 0 && needed + need > room) break;
    joined.push(i);
    needed += need;
  }
  let free = room;
  while (free > 0) {
    const open = joined.filter((i) => chunks[i]! < lefts[i]!);
    if (open.length === 0) break;
    const share = Math.max(1, Math.floor(free / open.length));
    for (const i of open) {
      const add = Math.min(lefts[i]! - chunks[i]!, share, free);
      chunks[i]! += add;
      free -= add;
      if (free === 0) break;
    }
  }
  for (const i of joined) {
    const rest = lefts[i]! - chunks[i]!;
    if (rest > 0 && rest < min && lefts[i]! - min >= min) chunks[i] = lefts[i]! - min;
  }
  return chunks;
}

/**
 * Rows × cached tokens from which reading a thin chunk one row at a time costs more than reading
 * `minRead` tokens tiled. Measured break-evens (new tokens × cached tokens) ran from ~4,400 to
 * ~24,000 on the 135M and 0.5B shapes (docs/cpu-batching.md §8); at this value neither shape loses
 * more than a few tens of milliseconds where re-reading does not pay, and short caches never re-read.
 */
export const THIN_READ_WORK = 8192;

/**
 * Of `usable` cached (or copyable) prompt tokens, how many a request keeps so that what it reads
 * after them is no thin chunk: a few new tokens after a long cache (a chat's next turn) would go
 * through ggml-cpu's flash attention one row at a time, each against the whole cache, where
 * re-reading the last `minRead` tokens takes its tiled kernel (135M shape, 1000 tokens cached:
 * 40 new tokens 1.1–1.3 s, the last 64 again 0.24–0.30 s; 0.5B shape, 3000 cached: 3.7–4.1 s
 * against 0.64–0.71 s). Only where new tokens × cached tokens reach `THIN_READ_WORK`: with a short
 * cache the one-row reads are cheap. One token to read (a repeated prompt, a copied choice) takes
 * the single-row path, which is fast. `minRead` 0 keeps every usable token.
 */
export function cachedToKeep(usable: number, promptLength: number, minRead: number): number {
  const read = promptLength - usable;
  const thin = read > 1 && read < minRead && read * usable >= THIN_READ_WORK;
  return thin ? Math.max(0, promptLength - minRead) : usable;
}
