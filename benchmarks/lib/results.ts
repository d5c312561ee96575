/**
 * The JSON every section writes to `benchmarks/results/<section>.json`, and
 * the recorder sections use to build it. Figures keep their raw runs; the
 * report derives medians, ranges and target ratios from them, so the JSON is
 * the source of truth and RESULTS.md can be regenerated from it.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { summarize, type Summary } from './stats.ts';

export interface Figure {
  /** Stable id targets refer to, e.g. `generation.smollm-135m.llama-server.c1.decode_tps`. */
  id: string;
  /** Table the figure appears in within its section. */
  group: string;
  /** Row label. */
  label: string;
  unit: string;
  /** Which direction is better, for the reader. */
  better: 'higher' | 'lower';
  /** One value per repeated run. */
  runs: number[];
  summary: Summary;
  /** Where the figure goes in a plot, if anywhere. */
  plot?: { chart: string; series: string; x: number };
}

export interface SectionResult {
  section: string;
  title: string;
  quick: boolean;
  startedAt: string;
  durationS: number;
  /** What was measured and how (models, threads, tokens, tools), one line each. */
  setup: string[];
  figures: Figure[];
  /** Observations worth reading next to the figures (skips, EOS checks, anomalies). */
  notes: string[];
  /** Set when the section could not run at all; the report shows it instead of figures. */
  skipped?: string;
  /** Extra facts for the report header (e.g. the llama.cpp build a section used). */
  facts?: Record<string, string>;
}

export class SectionRecorder {
  readonly #result: SectionResult;
  readonly #started = performance.now();

  constructor(section: string, title: string, quick: boolean) {
    this.#result = { section, title, quick, startedAt: new Date().toISOString(), durationS: 0, setup: [], figures: [], notes: [] };
    this.#loadAtStart = os.loadavg()[0]!;
  }

  readonly #loadAtStart: number;

  setup(line: string): void {
    this.#result.setup.push(line);
  }

  note(line: string): void {
    console.error(`[${this.#result.section}] ${line}`);
    this.#result.notes.push(line);
  }

  fact(key: string, value: string): void {
    (this.#result.facts ??= {})[key] = value;
  }

  skip(reason: string): void {
    this.#result.skipped = reason;
    console.error(`[${this.#result.section}] skipped: ${reason}`);
  }

  /** Adds (or extends, when the id exists) a figure; samples that are not finite are dropped. */
  add(fig: Omit<Figure, 'summary' | 'runs'> & { runs: number[] }): void {
    const runs = fig.runs.filter((v) => Number.isFinite(v));
    if (runs.length === 0) {
      this.note(`${fig.id}: no valid samples`);
      return;
    }
    const existing = this.#result.figures.find((f) => f.id === fig.id);
    if (existing) {
      existing.runs.push(...runs);
      existing.summary = summarize(existing.runs);
      return;
    }
    this.#result.figures.push({ ...fig, runs, summary: summarize(runs) });
    const s = summarize(runs);
    console.error(`[${this.#result.section}] ${fig.group} | ${fig.label}: ${s.median.toPrecision(4)} ${fig.unit} (${s.min.toPrecision(4)}–${s.max.toPrecision(4)}, n=${s.n})`);
  }

  async write(file: string): Promise<SectionResult> {
    this.#result.durationS = Math.round((performance.now() - this.#started) / 100) / 10;
    // Other work on the machine skews everything, OpenMP spin-waits most of all: keep the evidence.
    this.fact(`${this.#result.section}: load average (1 min) at start / end`, `${this.#loadAtStart.toFixed(2)} / ${os.loadavg()[0]!.toFixed(2)}`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(this.#result, null, 2) + '\n');
    return this.#result;
  }
}

export async function readSectionResult(file: string): Promise<SectionResult | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as SectionResult;
  } catch {
    return undefined;
  }
}
