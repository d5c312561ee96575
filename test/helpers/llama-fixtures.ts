import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import type { Test } from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../src/config/config.ts';
import { getLlamaRuntime } from '../../src/engines/llamacpp/llama-runtime.ts';
import { buildTinyVocab, CHATML_TEMPLATE, QWEN_TOOLS_TEMPLATE, writeTinyLlamaGguf, type TinyLlamaOptions } from './gguf-writer.ts';
import { SHARED_MODELS } from './app.ts';

/** Config for tests on the real llama engine: CPU only, the machine's cores, no idle unload. */
export const LLAMA_TEST_CONFIG: Partial<Config> = { gpu: 'false', keepAlive: '-1' };

/** The process-wide backend the engine uses, for in-process reference runs. */
export async function testLlama() {
  return (await getLlamaRuntime({ gpu: false })).llama;
}

export const STORIES_GGUF = path.join(SHARED_MODELS, 'stories260K/stories260K.gguf');
export const hasStories = existsSync(STORIES_GGUF);

/** Writes a generated tiny llama GGUF and its model.json into `<modelsDir>/<folder>/`; returns the GGUF path. */
export async function writeFixtureModel(
  modelsDir: string,
  folder: string,
  opts: { gguf?: TinyLlamaOptions; parameters?: Record<string, unknown>; metadata?: Record<string, unknown> } = {},
): Promise<string> {
  const dir = path.join(modelsDir, folder);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${folder}.gguf`);
  writeTinyLlamaGguf(file, opts.gguf ?? {});
  await writeFile(path.join(dir, 'model.json'), JSON.stringify({ parameters: opts.parameters ?? {}, metadata: opts.metadata ?? {} }));
  return file;
}

/** A model.json that points at a shared third-party GGUF (never copied into the repo). */
export async function writeSharedModel(modelsDir: string, folder: string, gguf: string, parameters: Record<string, unknown> = {}): Promise<void> {
  const dir = path.join(modelsDir, folder);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.json'), JSON.stringify({ source_url: gguf, parameters }));
}

export { CHATML_TEMPLATE, QWEN_TOOLS_TEMPLATE };

/** ChatML whose answers open a thought (`<think>`), as Qwen3's template does. */
export const THINKING_TEMPLATE =
  "{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\\n' -}}" +
  "{%- if message['role'] == 'assistant' and message['reasoning_content'] -%}{{- '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' -}}{%- endif -%}" +
  "{{- message['content'] + '<|im_end|>\\n' -}}{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}";

/**
 * The models the request-shape tests (Responses, Anthropic) compare with chat: `chatml`,
 * `qwen` (Qwen's tool-call template, `<tool_call>` one token) and `thinker` (a thought opened
 * on every answer, `</think>` one token: {@link closeThought} makes it likely).
 */
export async function writeChatFixtures(dir: string): Promise<void> {
  await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE, contextLength: 1024 }, parameters: { ctx_len: 1024, n_parallel: 1 } });
  await writeFixtureModel(dir, 'qwen', { gguf: { chatTemplate: QWEN_TOOLS_TEMPLATE, contextLength: 2048, extraTokens: ['<tool_call>', '</tool_call>'] }, parameters: { ctx_len: 2048, n_parallel: 1 } });
  await writeFixtureModel(dir, 'thinker', { gguf: { chatTemplate: THINKING_TEMPLATE, contextLength: 1024, extraTokens: ['</think>'] }, parameters: { ctx_len: 1024, n_parallel: 1 } });
}

/** A logit_bias under which the `thinker` of {@link writeChatFixtures} closes its thought after a few tokens (seed 2: after 6). */
export const closeThought = (): Record<string, number> => ({ [buildTinyVocab().tokens.length]: 2 });

/**
 * Unloads a model of `app`, so its next request reads the prompt afresh: a seeded or greedy
 * answer repeats exactly only from the same cache state.
 */
export function unloader(app: { inject: (opts: { method: 'POST'; url: string }) => Promise<{ statusCode: number; body: string; json: () => { error?: { code?: string } } }> }) {
  return async (model: string) => {
    const res = await app.inject({ method: 'POST', url: `/v1/models/${model}/model/stop` });
    if (res.statusCode !== 200 && res.json().error?.code !== 'model_not_running') throw new Error(res.body);
  };
}

/** A generated tiny llama model on real node-llama-cpp (2 threads), removed after the test. */
export async function loadTinyModel(t: Test): Promise<LlamaModel> {
  const dir = mkdtempSync(path.join(tmpdir(), 'modeld-tiny-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelPath = path.join(dir, 'tiny.gguf');
  writeTinyLlamaGguf(modelPath);
  const llama = await getLlama({ gpu: false, maxThreads: 2, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath });
  t.teardown(() => model.dispose());
  return model;
}
