import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How long a model's chat template may take to render a short chat before it is set aside. */
export const TEMPLATE_RENDER_LIMIT_MS = 3000;
/** The heap a trial render may use: a real template needs a few MiB, a runaway one would take the process's. */
const TEMPLATE_RENDER_HEAP_MB = 256;

// Runs in the worker (CommonJS, so no loader is needed there). Only a render that never ends or
// eats the heap is a finding: a template that fails to parse or raises is node-llama-cpp's
// business (it falls back to another chat format).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Template } = require(workerData.jinja);
let template;
try { template = new Template(workerData.template); } catch { template = undefined; }
if (template) for (const vars of workerData.samples) { try { template.render(vars); } catch {} }
parentPort.postMessage('done');
`;

/**
 * The chats a trial render uses: what node-llama-cpp renders at load to recognise a template
 * (system, user and assistant turns, a tool), so a template that loops or grows without bound
 * on these shows here, not on the event loop.
 */
function samples(bos: string, eos: string): Array<Record<string, unknown>> {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Hello' },
    { role: 'assistant', content: 'Hi! How can I help?' },
    { role: 'user', content: 'What is 2 + 2?' },
  ];
  const tools = [{ type: 'function', function: { name: 'add', description: 'Adds two numbers', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } } }];
  const common = { bos_token: bos, eos_token: eos, add_generation_prompt: true };
  return [{ ...common, messages }, { ...common, messages, tools }];
}

/** Where node-llama-cpp's own JS Jinja renderer lives, so the trial runs the same code. */
function jinjaModule(): string {
  const fromLlama = createRequire(createRequire(import.meta.url).resolve('node-llama-cpp'));
  return fromLlama.resolve('@huggingface/jinja');
}

/**
 * Renders a model's Jinja chat template on sample chats in a worker thread with a time and heap
 * limit. node-llama-cpp renders it synchronously on the event loop at load (dozens of times, to
 * match it to a known chat format) and per request: a template that loops 10^8 times froze the
 * whole server, and one that builds a 10^8-item range crashed it out of memory. Resolves with
 * what is wrong, or undefined when the template renders (or fails) in time.
 */
export async function chatTemplateProblem(template: string, opts: { bos?: string; eos?: string; limitMs?: number } = {}): Promise<string | undefined> {
  const limitMs = opts.limitMs ?? TEMPLATE_RENDER_LIMIT_MS;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { jinja: jinjaModule(), template, samples: samples(opts.bos ?? '', opts.eos ?? '') },
    resourceLimits: { maxOldGenerationSizeMb: TEMPLATE_RENDER_HEAP_MB, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    stdout: true,
    stderr: true,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string | undefined>((resolve) => {
      timer = setTimeout(() => resolve(`it did not finish rendering a four-message chat within ${limitMs / 1000} s`), limitMs);
      worker.once('message', () => resolve(undefined));
      // Any other failure of the trial itself says nothing about the template.
      worker.once('error', (err: NodeJS.ErrnoException) => {
        resolve(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `rendering a four-message chat took more than ${TEMPLATE_RENDER_HEAP_MB} MiB of memory` : undefined);
      });
      worker.once('exit', () => resolve(undefined));
    });
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
}
