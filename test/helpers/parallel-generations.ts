/**
 * Child process for test/engines/llamacpp/pipelined-sampling.test.ts: loads a GGUF with
 * n_parallel 4 through the llamacpp engine and prints, as one JSON line, the greedy answers to
 * four prompts run one at a time and then all at once, plus whether the model pipelined its
 * sampling (it does when this process started with UV_THREADPOOL_SIZE=1).
 *
 *   node --import tsx test/helpers/parallel-generations.ts <file.gguf>
 */
import path from 'node:path';
import { resolveParams } from '../../src/engines/descriptors.ts';
import { LLAMACPP_DESCRIPTORS } from '../../src/engines/llamacpp/descriptors.ts';
import { LlamaCppEngine } from '../../src/engines/llamacpp/engine.ts';

const PROMPTS = ['hello world', 'the cat', 'once upon a time', 'a big red ball'];

const file = process.argv[2]!;
const never = new AbortController().signal;
const engine = new LlamaCppEngine({ gpu: 'false', threads: 2 });
const params = resolveParams(LLAMACPP_DESCRIPTORS, [{ source: 'test', values: { ctx_len: 256, n_parallel: 4 } }]);
const m = await engine.load({ id: 'p', files: [file], folder: path.dirname(file), params, metadata: {} }, never);
const run = async (prompt: string) => (await m.complete!(prompt, { params: { temperature: 0, max_tokens: 24 }, signal: never })).text;
const alone: string[] = [];
for (const p of PROMPTS) alone.push(await run(p));
const together = await Promise.all(PROMPTS.map(run));
console.log(JSON.stringify({ pipelined: m.info!.pipelined_sampling, batching: m.info!.batching, alone, together }));
await m.dispose();
process.exit(0);
