/**
 * GGUF reranking over HTTP: one `/v1/rerank` request of a query and N documents, modeld
 * against llama-server `--reranking` on the same file (one slot, and four slots, which let
 * llama-server put several pairs in one batch). The model is a synthetic cross-encoder of
 * bge-reranker-base's shape (BERT, 12 layers, 768 wide, Q8_0 blocks) written by the test
 * suite's GGUF writer; the scores are compared as well as the speed.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeTinyBertRerankerGguf } from '../../test/helpers/gguf-writer.ts';
import { findLlamaBinaries, startLlamaServer } from '../lib/llama-server.ts';
import { startModeld, writeModelsDir } from '../lib/modeld-server.ts';
import { llamaBuild } from '../lib/machine.ts';
import { benchCacheDir, REPO_ROOT } from '../lib/paths.ts';
import { benchPrompt } from '../lib/prompts.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';

const args = sectionArgs('rerank');
const rec = new SectionRecorder('rerank', 'Reranking (GGUF cross-encoder)', args.quick);
const reps = args.quick ? 1 : 3;
const documents = args.quick ? 4 : 16;
const docWords = 60;
const ctx = 512;

async function rerankerModel(): Promise<string> {
  const file = path.join(benchCacheDir(), 'models', 'bert-reranker-base-shape-q8_0-v1.gguf');
  if (existsSync(file)) return file;
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeTinyBertRerankerGguf(tmp, { embeddingLength: 768, headCount: 12, feedForwardLength: 3072, layers: 12, contextLength: ctx, quant: 'Q8_0' });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return file;
}

const query = benchPrompt('query', 12);
const docs = Array.from({ length: documents }, (_, i) => benchPrompt(`document ${i}`, docWords));

interface Ranked { index: number; relevance_score: number }

/** One request; its wall time and the scores by document. */
async function rerank(baseUrl: string, model: string): Promise<{ ms: number; scores: number[]; tokens: number }> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/rerank`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, query, documents: docs, top_n: documents }) });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  const body = await res.json() as { results: Ranked[]; usage?: { prompt_tokens?: number } };
  const ms = performance.now() - started;
  const scores: number[] = [];
  for (const r of body.results) scores[r.index] = r.relevance_score;
  return { ms, scores, tokens: body.usage?.prompt_tokens ?? 0 };
}

async function measure(server: string, key: string, baseUrl: string, model: string): Promise<number[]> {
  const warm = await rerank(baseUrl, model);
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) ms.push((await rerank(baseUrl, model)).ms);
  rec.add({ id: `rerank.${key}.request_ms`, group: `one request of ${documents} documents`, label: `${server}: request time`, unit: 'ms', better: 'lower', runs: ms });
  rec.add({ id: `rerank.${key}.pairs_per_s`, group: `one request of ${documents} documents`, label: `${server}: pairs per second`, unit: 'pairs/s', better: 'higher', runs: ms.map((t) => documents / (t / 1000)) });
  rec.note(`${server}: ${warm.tokens} prompt tokens per request`);
  return warm.scores;
}

const model = await rerankerModel();
rec.setup(`synthetic BERT cross-encoder, bge-reranker-base shape (12 layers, 768 wide, 12 heads, FFN 3072, Q8_0 blocks), context ${ctx}, ${args.threads} threads`);
// `--only rerank` may run on another machine than the sections beside it in RESULTS.md: say which.
rec.setup(`measured on ${os.cpus()[0]?.model ?? 'an unknown CPU'}; modeld's llama.cpp: ${llamaBuild(args.modeldRoot ?? REPO_ROOT)}`);
rec.setup(`one /v1/rerank request: a ${12}-word query and ${documents} documents of ${docWords} words; ${reps} timed requests after one warm-up; raw logits compared (modeld with metadata.output.activation "none")`);

let reference: number[] | undefined;
const bins = findLlamaBinaries();
if ('missing' in bins) rec.note(`llama-server: ${bins.missing}`);
else {
  for (const parallel of [1, 4]) {
    const server = await startLlamaServer(bins.server, { model, threads: args.threads, parallel, ctxPerSlot: ctx, extraArgs: ['--reranking', '-ub', String(ctx), '-b', String(ctx * parallel)] });
    try {
      const scores = await measure(`llama-server -np ${parallel}`, `llama-server.np${parallel}`, server.baseUrl, 'bench');
      reference ??= scores;
    } finally {
      await server.stop();
    }
  }
}

const id = 'bench-reranker';
const modeld = await startModeld({
  modelsDir: await writeModelsDir([{ id, object: { source_url: model, metadata: { engine: 'llamacpp', output: { activation: 'none' } }, parameters: { ctx_len: ctx } } }]),
  threads: args.threads,
  repoRoot: args.modeldRoot,
});
try {
  await modeld.startModel(id);
  const scores = await measure('modeld', 'modeld', modeld.baseUrl, id);
  if (reference) {
    const diff = Math.max(...scores.map((s, i) => Math.abs(s - reference![i]!)));
    rec.note(`largest difference between modeld's and llama-server's raw score of a document: ${diff.toExponential(2)}`);
  }
} catch (err) {
  rec.note(`modeld: ${(err as Error).message.slice(0, 300)}`);
} finally {
  await modeld.stopAndClean();
}
await rec.write(args.out);
