import Table from 'cli-table3';
import type { Config } from '../config/config.ts';
import { ModelRegistry, staticState } from '../registry/registry.ts';
import { metadataOf } from '../runtime/model-view.ts';
import { ServerClient } from './server-client.ts';

export interface TableRow {
  id: string;
  name?: string;
  state: string;
  metadata: Record<string, unknown>;
  queue?: { running: number; waiting: number; concurrency: number };
}

function bytes(n: unknown): string {
  if (typeof n !== 'number') return typeof n === 'string' ? n : '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

/** The model table as the CLI prints it; the same registry data as GET /v1/models. */
export function renderTable(rows: TableRow[]): string {
  const table = new Table({
    head: ['id', 'name', 'engine', 'task', 'state', 'size', 'quant', 'arch', 'context', 'queue'],
    style: { head: [], border: [] },
  });
  for (const r of rows) {
    const m = r.metadata;
    table.push([
      r.id, r.name ?? '', String(m.engine ?? ''), String(m.task ?? ''), r.state, bytes(m.size),
      String(m.quantization ?? ''), String(m.architecture ?? ''), String(m.context_length ?? ''),
      r.queue ? `${r.queue.running}/${r.queue.concurrency} +${r.queue.waiting}` : '',
    ]);
  }
  return table.toString();
}

export async function listCommand(config: Config, opts: { json: boolean }): Promise<number> {
  const client = new ServerClient(config);
  let rows: TableRow[];
  let source: string;
  if (await client.reachable()) {
    const res = await client.request<{ data: TableRow[] }>('GET', '/v1/models');
    rows = res.data;
    source = client.base;
  } else {
    const registry = new ModelRegistry({ modelsDir: config.modelsDir });
    await registry.scan();
    rows = registry.list().map((e) => ({ id: e.id, name: e.object.name, state: staticState(e), metadata: metadataOf(e) }));
    source = config.modelsDir;
  }
  if (opts.json) console.log(JSON.stringify(rows, null, 2));
  else {
    console.log(renderTable(rows));
    console.log(`${rows.length} model${rows.length === 1 ? '' : 's'} from ${source}`);
  }
  return 0;
}
