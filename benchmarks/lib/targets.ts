/**
 * The performance targets of issues #6 and #7, each as a comparison of figure
 * medians from one run. Figure ids are the contract between sections and the
 * report: a section that does not produce them leaves the target "not
 * measured", never passed.
 */
import type { Figure } from './results.ts';
import { SHAPE_LABEL, type BenchShape } from './models.ts';
import { median } from './stats.ts';

export interface TargetDef {
  issue: string;
  text: string;
  /** `ratio`: num/den; `diff`: num − den; `value`: num alone. */
  kind: 'ratio' | 'diff' | 'value';
  num: string;
  den?: string;
  op: '>=' | '<=';
  threshold: number;
  /** Unit of a `diff` / `value` result (ratios print as ×). */
  unit?: string;
}

export interface TargetResult extends TargetDef {
  measured: number | undefined;
  pass: boolean | undefined;
  /** The medians the result came from, for the table. */
  inputs: string;
}

const SHAPES: BenchShape[] = ['smollm-135m', 'qwen2.5-0.5b'];

export function targetDefs(): TargetDef[] {
  const defs: TargetDef[] = [];
  for (const s of SHAPES) {
    const g = (who: string, what: string) => `generation.${s}.${who}.${what}`;
    const label = SHAPE_LABEL[s];
    defs.push(
      { issue: '#6', text: `${label}: single-stream decode ≥ 0.97× node-llama-cpp in-process`, kind: 'ratio', num: g('modeld', 'decode_tps'), den: g('inprocess', 'decode_tps'), op: '>=', threshold: 0.97 },
      { issue: '#6 #7', text: `${label}: single-stream decode (HTTP streaming) ≥ 0.95× llama-server`, kind: 'ratio', num: g('modeld', 'decode_tps'), den: g('llama-server', 'decode_tps'), op: '>=', threshold: 0.95 },
      { issue: '#6', text: `${label}: TTFT overhead ≤ 5 ms over in-process`, kind: 'diff', num: g('modeld', 'ttft_ms'), den: g('inprocess', 'ttft_ms'), op: '<=', threshold: 5, unit: 'ms' },
      { issue: '#6 #7', text: `${label}: aggregate tok/s at 4 streams ≥ 1.0× llama-server -np 4`, kind: 'ratio', num: g('modeld', 'c4.aggregate_tps'), den: g('llama-server', 'c4.aggregate_tps'), op: '>=', threshold: 1 },
      { issue: '#6 #7', text: `${label}: aggregate tok/s at 8 streams ≥ 1.0× llama-server -np 8`, kind: 'ratio', num: g('modeld', 'c8.aggregate_tps'), den: g('llama-server', 'c8.aggregate_tps'), op: '>=', threshold: 1 },
    );
  }
  defs.push(
    { issue: '#6', text: '`GET /v1/models` (200 models) requests/s ≥ 0.8× a bare Fastify route', kind: 'ratio', num: 'control.models.modeld.rps', den: 'control.models.bare.rps', op: '>=', threshold: 0.8 },
    { issue: '#6', text: 'classification at concurrency 32: dynamic batching ≥ 3× without', kind: 'ratio', num: 'classification.c32.batching.rps', den: 'classification.c32.nobatching.rps', op: '>=', threshold: 3 },
    { issue: '#6', text: 'classification at concurrency 32 with batching ≥ 0.7× raw onnxruntime at the same batch size', kind: 'ratio', num: 'classification.c32.batching.rps', den: 'classification.c32.raw.rps', op: '>=', threshold: 0.7 },
    { issue: '#7', text: 'second-turn TTFT of a 5-turn chat ≤ 0.25× the first turn\'s', kind: 'ratio', num: 'prefix.modeld.turn2.ttft_ms', den: 'prefix.modeld.turn1.ttft_ms', op: '<=', threshold: 0.25 },
  );
  return defs;
}

export function evaluateTargets(figures: ReadonlyMap<string, Figure>, defs = targetDefs()): TargetResult[] {
  return defs.map((d) => {
    const num = figures.get(d.num);
    const den = d.den ? figures.get(d.den) : undefined;
    if (!num || (d.den && !den)) return { ...d, measured: undefined, pass: undefined, inputs: `not measured (${[!num ? d.num : '', d.den && !den ? d.den : ''].filter(Boolean).join(', ')})` };
    const a = median(num.runs);
    const b = den ? median(den.runs) : 0;
    const measured = d.kind === 'ratio' ? (b === 0 ? undefined : a / b) : d.kind === 'diff' ? a - b : a;
    const pass = measured === undefined ? undefined : d.op === '>=' ? measured >= d.threshold : measured <= d.threshold;
    const fmt = (f: Figure, v: number) => `${v.toPrecision(4)} ${f.unit}`;
    return { ...d, measured, pass, inputs: den ? `${fmt(num, a)} vs ${fmt(den, b)}` : fmt(num, a) };
  });
}
