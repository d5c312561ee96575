/**
 * `npm run bench [-- --quick] [--only a,b] [--threads n] [--shapes s1,s2] [--modeld-root dir] [--report-only]`
 *
 * Runs every benchmark section in order, each in its own child process (one
 * llama backend per process; servers under test are further child processes),
 * collects their JSON and writes the report with plots. A full run writes
 * `benchmarks/results/*.json` and `benchmarks/RESULTS.md` (committed); `--quick`
 * (smoke test, the 135M shape, short runs) writes `benchmarks/quick/` instead,
 * which git ignores, so a quick run never overwrites the reference figures.
 * `--only` re-runs some sections and rebuilds the report from all JSON there.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { machineInfo, type MachineInfo } from './lib/machine.ts';
import { BENCH_DIR, REPO_ROOT } from './lib/paths.ts';
import { writeReport } from './lib/report.ts';
import { readSectionResult, type SectionResult } from './lib/results.ts';

interface SectionDef {
  name: string;
  script: string;
  what: string;
}

/** In report order. A section script takes `--quick --out <json>` plus the shared flags. */
const SECTIONS: SectionDef[] = [
  { name: 'control-plane', script: 'sections/control-plane.ts', what: 'GET /v1/models and /health vs bare Fastify (autocannon)' },
  { name: 'lifecycle', script: 'sections/lifecycle.ts', what: 'model start time and RSS vs node-llama-cpp direct' },
  { name: 'generation', script: 'sections/generation.ts', what: 'decode and TTFT, 1/2/4/8 streams: modeld vs llama-server vs in-process vs llama-bench' },
  { name: 'classification', script: 'sections/classification.ts', what: 'classification req/s and p50/p99 at concurrency 1/8/32, batching on/off, vs raw onnxruntime' },
  { name: 'prefix-reuse', script: 'sections/prefix-reuse.ts', what: '5-turn chat TTFT per turn: modeld vs llama-server cache_prompt' },
  { name: 'rerank', script: 'sections/rerank.ts', what: 'GGUF reranking: one /v1/rerank request, modeld vs llama-server --reranking (1 and 4 slots), scores compared' },
];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    threads: { type: 'string' },
    shapes: { type: 'string' },
    'modeld-root': { type: 'string' },
    'report-only': { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    'omp-wait-policy': { type: 'string' },
  },
});

if (values.list) {
  for (const s of SECTIONS) console.log(`${s.name.padEnd(16)} ${s.what}`);
  process.exit(0);
}

// OpenMP's default active wait makes llama.cpp collapse when anything else
// wants the cores (llama-bench tg16 measured 0.6 tok/s active vs 19 passive at
// load average 10 on 2 cores). On a shared machine pass `--omp-wait-policy
// passive`; it is inherited by every server and baseline alike.
const ompWaitPolicy = values['omp-wait-policy'];
if (ompWaitPolicy !== undefined) {
  if (!['active', 'passive'].includes(ompWaitPolicy)) throw new Error(`--omp-wait-policy must be active or passive (got ${ompWaitPolicy})`);
  process.env.OMP_WAIT_POLICY = ompWaitPolicy.toUpperCase();
}
const quick = values.quick === true;
const outDir = quick ? path.join(BENCH_DIR, 'quick') : BENCH_DIR;
const resultsDir = path.join(outDir, 'results');
const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!SECTIONS.some((s) => s.name === name)) throw new Error(`unknown section '${name}'; sections: ${SECTIONS.map((s) => s.name).join(', ')}`);
}
const selected = SECTIONS.filter((s) => !only || only.includes(s.name));

function runSection(def: SectionDef, out: string): Promise<number | null> {
  const args = ['--import', 'tsx', path.join(BENCH_DIR, def.script), '--out', out];
  if (quick) args.push('--quick');
  if (values.threads) args.push('--threads', values.threads);
  if (values.shapes) args.push('--shapes', values.shapes);
  if (values['modeld-root']) args.push('--modeld-root', values['modeld-root']);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code));
  });
}

const started = performance.now();
await mkdir(resultsDir, { recursive: true });
let machine: MachineInfo | undefined;
const machineFile = path.join(resultsDir, 'machine.json');
if (!values['report-only']) {
  machine = await machineInfo(REPO_ROOT);
  await writeFile(machineFile, JSON.stringify(machine, null, 2) + '\n');
  console.error(`[bench] ${machine.cpu}, ${machine.physicalCores} cores, load ${machine.loadAverage}; ${machine.llamaBuild}`);
  for (const def of selected) {
    const t0 = performance.now();
    console.error(`[bench] ${def.name}: ${def.what}`);
    const out = path.join(resultsDir, `${def.name}.json`);
    const code = existsSync(path.join(BENCH_DIR, def.script)) ? await runSection(def, out) : 'missing';
    if (code !== 0) {
      // Keep the report whole: a failed section is shown as not measured, with the reason.
      const failed: SectionResult = {
        section: def.name, title: def.name, quick, startedAt: new Date().toISOString(), durationS: 0,
        setup: [], figures: [], notes: [],
        skipped: code === 'missing' ? `benchmarks/${def.script} does not exist yet` : `the section exited with code ${code}; see the console output of the run`,
      };
      await writeFile(out, JSON.stringify(failed, null, 2) + '\n');
    }
    console.error(`[bench] ${def.name} done in ${((performance.now() - t0) / 1000).toFixed(0)} s (exit ${code})`);
  }
} else {
  machine = JSON.parse(await readFile(machineFile, 'utf8')) as MachineInfo;
}

const sections: SectionResult[] = [];
for (const def of SECTIONS) {
  const r = await readSectionResult(path.join(resultsDir, `${def.name}.json`));
  if (r) sections.push(r);
}
const report = await writeReport({
  machine,
  sections,
  quick,
  outDir,
  command: `npm run bench${quick ? ' -- --quick' : ''}`,
  analysisFile: path.join(BENCH_DIR, 'analysis.md'),
});
console.error(`[bench] wrote ${path.relative(REPO_ROOT, report)} in ${((performance.now() - started) / 1000).toFixed(0)} s total`);
