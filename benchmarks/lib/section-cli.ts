/** Command line shared by every section script: `--quick`, `--out <file>`, `--threads <n>`, `--shapes a,b`. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { physicalCoreCount } from '../../src/engines/llamacpp/llama-runtime.ts';
import type { BenchShape } from './models.ts';
import { RESULTS_DIR } from './paths.ts';

export interface SectionArgs {
  quick: boolean;
  out: string;
  /** llama.cpp threads for every engine; default the physical cores. */
  threads: number;
  /** Model shapes to run; quick mode defaults to the 135M shape only. */
  shapes: BenchShape[];
  /** Checkout whose `bin/modeld.cjs` is benchmarked; default this one. */
  modeldRoot: string | undefined;
}

export function sectionArgs(section: string): SectionArgs {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      threads: { type: 'string' },
      shapes: { type: 'string' },
      'modeld-root': { type: 'string' },
    },
    strict: false,
  });
  const quick = values.quick === true;
  const shapes = (typeof values.shapes === 'string' ? values.shapes.split(',') : quick ? ['smollm-135m'] : ['smollm-135m', 'qwen2.5-0.5b']) as BenchShape[];
  return {
    quick,
    out: typeof values.out === 'string' ? values.out : path.join(RESULTS_DIR, `${section}.json`),
    threads: typeof values.threads === 'string' ? Number(values.threads) : physicalCoreCount(),
    shapes,
    modeldRoot: typeof values['modeld-root'] === 'string' ? path.resolve(values['modeld-root']) : undefined,
  };
}
