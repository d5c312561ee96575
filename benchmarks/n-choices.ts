/**
 * Prompts read once (DecodeLoop's `sharePromptsFrom`, docs/cpu-batching.md §7), 135M shape,
 * 4 sequences, fresh prompts so nothing is cached: one chat request with n = 1 and n = 4 on a
 * long prompt, then 1 and 4 chats sent at once with one long system prompt and their own
 * questions. `--modeld-root` runs an older checkout for the before figures.
 *
 *   npx tsx benchmarks/n-choices.ts [--words 450] [--tokens 16] [--repeats 3] [--threads n] [--modeld-root dir]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../src/engines/llamacpp/llama-runtime.ts';
import { llamaModelObject, startModeld, writeModelsDir } from './lib/modeld-server.ts';
import { ensureBenchModel } from './lib/models.ts';

const { values: args } = parseArgs({
  options: {
    words: { type: 'string', default: '450' }, tokens: { type: 'string', default: '16' }, repeats: { type: 'string', default: '3' },
    threads: { type: 'string' }, 'modeld-root': { type: 'string' },
  },
});
const threads = Number(args.threads ?? physicalCoreCount());
const gen = (await ensureBenchModel('smollm-135m')).path;
const dir = await writeModelsDir([{ id: 'gen', object: llamaModelObject(gen, { ctx_len: 4096, n_parallel: 4, threads }) }]);
const modeld = await startModeld({ modelsDir: dir, threads, repoRoot: args['modeld-root'] });
const words = Array.from({ length: Number(args.words) }, (_, i) => `w${i % 97}`).join(' ');

async function once(n: number, users = 1): Promise<{ ms: number; promptTokens: number; shared?: number }> {
  const state = async () => ((await (await fetch(`${modeld.baseUrl}/v1/models/gen/state`)).json()) as { info?: { prompt_cache?: { shared_tokens?: number } } }).info?.prompt_cache;
  const before = await state();
  const t0 = performance.now();
  // A fresh first word: no sequence caches more than the template's first tokens.
  const fresh = randomUUID();
  const bodies = await Promise.all(Array.from({ length: users }, async (_, u) => {
    const messages = users === 1
      ? [{ role: 'user', content: `${fresh} ${words}` }]
      : [{ role: 'system', content: `${fresh} ${words}` }, { role: 'user', content: `question ${u}: ${randomUUID()}` }];
    const res = await fetch(`${modeld.baseUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gen', messages, max_tokens: Number(args.tokens), temperature: 0.8, n }),
    });
    const body = await res.json() as { usage?: { prompt_tokens: number }; error?: { message: string } };
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${body.error?.message}`);
    return body;
  }));
  const ms = performance.now() - t0;
  const after = await state();
  const shared = after?.shared_tokens === undefined ? undefined : after.shared_tokens - (before?.shared_tokens ?? 0);
  return { ms, promptTokens: bodies[0]!.usage!.prompt_tokens, shared };
}

try {
  await modeld.startModel('gen');
  await once(1);
  for (let r = 0; r < Number(args.repeats); r++) {
    for (const n of [1, 4]) {
      const { ms, promptTokens, shared } = await once(n);
      console.log(`n=${n}  ${promptTokens} prompt tokens  ${(ms / 1000).toFixed(2)} s${shared === undefined ? '' : `  shared ${shared}`}`);
    }
  }
  for (let r = 0; r < Number(args.repeats); r++) {
    for (const users of [1, 4]) {
      const { ms, promptTokens, shared } = await once(1, users);
      console.log(`${users} chat(s) at once, one system prompt  ${promptTokens} prompt tokens each  ${(ms / 1000).toFixed(2)} s${shared === undefined ? '' : `  shared ${shared}`}`);
    }
  }
} finally {
  await modeld.stopAndClean();
}
