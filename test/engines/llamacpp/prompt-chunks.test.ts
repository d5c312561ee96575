import t from 'tap';
import { THIN_READ_WORK, cachedToKeep, promptChunks } from '../../../src/engines/llamacpp/prompt-chunks.ts';

t.test('without a floor the room is shared equally, the rest to the longer prompts', async (t) => {
  t.same(promptChunks([10, 6], 8, 0), [4, 4]);
  t.same(promptChunks([10, 2], 8, 0), [6, 2]);
  t.same(promptChunks([3, 3, 3], 100, 0), [3, 3, 3], 'all that is left, when it fits');
  t.same(promptChunks([136, 136, 136, 136, 136, 136, 136], 511, 0), [73, 73, 73, 73, 73, 73, 73]);
});

t.test('with a floor, no chunk is thinner than it where the prompts allow', async (t) => {
  // Seven 136-token prompts beside a generating sequence (floor 64 + 1): 73 each would leave 63.
  t.same(promptChunks(Array(7).fill(136), 511, 65), Array(7).fill(71), 'each leaves exactly the floor for its next batch');
  t.same(promptChunks(Array(7).fill(65), 511, 65), Array(7).fill(65), 'the rest of each, whole');
  // Eight 139-token prompts at once: 64 each fills the batch.
  t.same(promptChunks(Array(8).fill(139), 512, 64), Array(8).fill(64));
  t.same(promptChunks(Array(8).fill(75), 512, 64), Array(8).fill(64), 'a short rest is unavoidable when the room is exactly the floor each');
  // Nine prompts but room for eight floors: the ninth waits; the eight share the batch.
  t.same(promptChunks(Array(9).fill(200), 512, 64), [...Array(8).fill(64), 0]);
  t.same(promptChunks([300, 300, 300], 150, 64), [75, 75, 0], 'two of three fit a floor each, and take the room');
  t.same(promptChunks([100, 30], 200, 64), [100, 30], 'prompts shorter than the floor go whole');
  t.same(promptChunks([100], 80, 64), [80], 'a rest below the floor stays when taking less would leave two thin chunks');
  t.same(promptChunks([500], 32, 64), [32], 'a batch smaller than the floor still reads the first prompt');
});

t.test('cachedToKeep: a thin read after a long cache re-reads the last minRead tokens; otherwise the cache is kept whole', async (t) => {
  t.equal(cachedToKeep(1000, 1040, 65), 975, '40 new tokens after 1000 cached: the last 65 read');
  t.equal(cachedToKeep(100, 140, 65), 100, 'after a short cache (40 × 100 < THIN_READ_WORK): the new tokens alone');
  t.equal(cachedToKeep(THIN_READ_WORK / 2, THIN_READ_WORK / 2 + 2, 65), THIN_READ_WORK / 2 + 2 - 65, 'exactly THIN_READ_WORK: re-read');
  t.equal(cachedToKeep(1000, 1001, 65), 1000, 'one token to read: the single-row path');
  t.equal(cachedToKeep(1000, 1065, 65), 1000, 'minRead new tokens: nothing to add');
  t.equal(cachedToKeep(1000, 1040, 0), 1000, 'minRead 0: every usable token kept');
  t.equal(cachedToKeep(0, 40, 65), 0);
});
