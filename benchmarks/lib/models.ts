/**
 * Benchmark models. Nothing can be downloaded, so GGUFs of real model shapes
 * are synthesised with random Q8_0 weights by the test suite's writer, with a
 * real tokenizer copied from the vocab GGUFs llama.cpp keeps in `models/` of
 * the source node-llama-cpp ships (`llama/gitRelease.bundle`). Random weights
 * cost exactly what trained ones do per token, which is all a speed benchmark
 * needs; the real vocabulary keeps the output-layer and sampling cost honest.
 *
 * Both the bundle clone and the models are cached under `benchCacheDir()`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CHATML_TEMPLATE, LLAMA_SHAPES, readGgufMetadata, writeTinyLlamaGguf, type LlamaShapeName } from '../../test/helpers/gguf-writer.ts';
import { llamaCppBundleCommit, llamaCppBundlePath } from '../../scripts/lib/llama-source.ts';
import { benchCacheDir, SHARED_MODELS_DIR } from './paths.ts';

export type BenchShape = Extract<LlamaShapeName, 'smollm-135m' | 'qwen2.5-0.5b'>;

/** Vocab GGUF (`models/ggml-vocab-<name>.gguf`) of the real model family each shape comes from. */
const SHAPE_VOCAB: Record<BenchShape, string> = {
  // SmolLM's 49152-token BPE vocabulary is StarCoder's.
  'smollm-135m': 'starcoder',
  'qwen2.5-0.5b': 'qwen2',
};

/** Short labels for tables and plots. */
export const SHAPE_LABEL: Record<BenchShape, string> = {
  'smollm-135m': '135M (SmolLM shape)',
  'qwen2.5-0.5b': '0.5B (Qwen2.5 shape)',
};

/** Bumped when the synthesis changes, so stale cached files are not reused. */
const SYNTH_VERSION = 1;

export interface BenchModel {
  shape: BenchShape;
  path: string;
  bytes: number;
  vocab: string;
  parameters: number;
}

/**
 * A bare clone of the bundle (no checkout: only a few small vocab files are
 * read from it), made once.
 */
function ensureBundleClone(): { gitDir: string; commit: string } {
  const bundle = llamaCppBundlePath();
  const commit = llamaCppBundleCommit(bundle);
  const gitDir = path.join(benchCacheDir(), 'llama.cpp.git');
  if (!existsSync(path.join(gitDir, 'HEAD'))) {
    execFileSync('git', ['clone', '--quiet', '--bare', bundle, gitDir], { stdio: 'inherit' });
  }
  return { gitDir, commit };
}

/** Extracts `models/ggml-vocab-<name>.gguf` at the bundle's commit into the cache; returns its path. */
export async function ensureVocab(name: string): Promise<string> {
  const bundleCommit = llamaCppBundleCommit();
  const file = path.join(benchCacheDir(), 'vocab', `${bundleCommit.slice(0, 12)}-ggml-vocab-${name}.gguf`);
  if (existsSync(file)) return file;
  const { gitDir, commit } = ensureBundleClone();
  const data = execFileSync('git', ['--git-dir', gitDir, 'show', `${commit}:models/ggml-vocab-${name}.gguf`], { maxBuffer: 256 * 1024 * 1024 });
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.tmp`, data);
  await rename(`${file}.tmp`, file);
  return file;
}

/** Returns the cached synthetic model of `shape`, writing it first if needed (≈10 s for 135M, ≈1 min for 0.5B). */
/**
 * `chatTemplate: 'chatml'` writes ChatML as the GGUF's own chat template, so a chat benchmark
 * gives every server the same prompt tokens (llama-server `--chat-template chatml` renders the same).
 */
export async function ensureBenchModel(shape: BenchShape, opts: { chatTemplate?: 'chatml' } = {}): Promise<BenchModel> {
  const vocabName = SHAPE_VOCAB[shape];
  const file = path.join(benchCacheDir(), 'models', `${shape}-q8_0-${vocabName}${opts.chatTemplate ? `-${opts.chatTemplate}` : ''}-v${SYNTH_VERSION}.gguf`);
  const vocab = await ensureVocab(vocabName);
  if (!existsSync(file)) {
    await mkdir(path.dirname(file), { recursive: true });
    const started = performance.now();
    console.error(`[models] synthesising ${shape} (Q8_0, ${vocabName} vocab) -> ${file}`);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeTinyLlamaGguf(tmp, { shape, quant: 'Q8_0', vocabFrom: vocab, seed: 1, name: `${shape}-bench`, ...(opts.chatTemplate ? { chatTemplate: CHATML_TEMPLATE } : {}) });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    console.error(`[models] ${shape} written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return { shape, path: file, bytes: statSync(file).size, vocab: vocabName, parameters: parameterCount(shape, vocab) };
}

function parameterCount(shape: BenchShape, vocabFile: string): number {
  const s = LLAMA_SHAPES[shape];
  const vocabSize = vocabSizeOf(vocabFile);
  const headDim = s.embeddingLength / s.headCount;
  const kv = headDim * s.headCountKv;
  const perLayer = 2 * s.embeddingLength * s.embeddingLength + 2 * s.embeddingLength * kv + 3 * s.embeddingLength * s.feedForwardLength + 2 * s.embeddingLength;
  return vocabSize * s.embeddingLength * (s.tieEmbeddings ? 1 : 2) + s.layers * perLayer + s.embeddingLength;
}

function vocabSizeOf(vocabFile: string): number {
  const tokens = readGgufMetadata(vocabFile).find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
  return tokens?.type === 'array' ? tokens.value.length : 0;
}

/** A shared third-party model (`stories260K`, `mnist`, ...) when the team's models folder is present. */
export function sharedModel(folder: string, file: string): string | undefined {
  const p = path.join(SHARED_MODELS_DIR, folder, file);
  return existsSync(p) ? p : undefined;
}
