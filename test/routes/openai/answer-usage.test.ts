import t from 'tap';
import { answerUsage } from '../../../src/routes/openai/inference.ts';

t.test('answerUsage: each prompt once, from the choice that read it; every choice\'s completion tokens', async (t) => {
  const u = (cached: number, completion: number) => ({ promptTokens: 100, completionTokens: completion, cachedPromptTokens: cached, evaluatedPromptTokens: 100 - cached });
  // Prompt 0: choice 1 read it (2 cached), choices 0 and 2 copied it (99 "cached"); prompt 1: all read their own.
  const usage = answerUsage([u(99, 5), u(2, 6), u(99, 7), u(0, 1), u(0, 1), u(0, 1)], 3);
  t.same(usage, { promptTokens: 200, completionTokens: 21, cachedPromptTokens: 2, evaluatedPromptTokens: 198 });
  t.same(answerUsage([u(10, 4)], 1), { promptTokens: 100, completionTokens: 4, cachedPromptTokens: 10, evaluatedPromptTokens: 90 });
});
