/**
 * Concurrency-scaling plots as SVG, rendered by Vega-Lite/Vega in pure JS
 * (no browser, no canvas): one line per server and model, the median with a
 * min–max band, over the number of concurrent streams.
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Figure } from './results.ts';

export interface PlotDef {
  /** `Figure.plot.chart` the points come from. */
  chart: string;
  title: string;
  yTitle: string;
  /** Log-scale y (latencies spread over orders of magnitude). */
  logY?: boolean;
  xTitle?: string;
}

export const PLOTS: PlotDef[] = [
  { chart: 'aggregate', title: 'Aggregate decode throughput vs concurrent streams', yTitle: 'aggregate tokens/s (median, min–max band)' },
  { chart: 'classification', title: 'Classification requests/s vs concurrency (raw: batch size)', xTitle: 'concurrent requests (raw: batch size)', yTitle: 'requests/s (median, min–max band)' },
  { chart: 'ttft-p50', title: 'Per-stream time to first token (p50) vs concurrent streams', yTitle: 'TTFT p50, ms (median, min–max band)', logY: true },
];

/** Renders `def` from the figures that carry its chart; returns false when there are none. */
export async function renderPlot(def: PlotDef, figures: Figure[], file: string): Promise<boolean> {
  const rows = figures
    .filter((f) => f.plot?.chart === def.chart)
    .map((f) => ({ series: f.plot!.series, streams: f.plot!.x, median: f.summary.median, min: f.summary.min, max: f.summary.max }));
  if (rows.length === 0) return false;
  const x = { field: 'streams', type: 'quantitative' as const, title: def.xTitle ?? 'concurrent streams', scale: { type: 'log' as const, base: 2 }, axis: { values: [1, 2, 4, 8, 16, 32] } };
  const yScale = def.logY ? { type: 'log' as const } : { zero: true };
  const color = { field: 'series', type: 'nominal' as const, title: null, legend: { orient: 'bottom' as const, columns: 2, labelLimit: 400 } };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: def.title,
    width: 560,
    height: 320,
    data: { values: rows },
    layer: [
      { mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { field: 'min', type: 'quantitative', scale: yScale }, y2: { field: 'max' }, color } },
      {
        mark: { type: 'line', point: true },
        encoding: { x, y: { field: 'median', type: 'quantitative', title: def.yTitle, scale: yScale }, color, tooltip: [{ field: 'series' }, { field: 'streams' }, { field: 'median', format: '.1f' }] },
      },
    ],
    config: { font: 'sans-serif', background: 'white' },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  await writeFile(file, svg);
  return true;
}
