import { stat } from 'node:fs/promises';
import Table from 'cli-table3';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.ts';
import { ModelRegistry, staticState, type ModelEntry } from '../registry/registry.ts';
import { toWireModel } from '../runtime/model-view.ts';
import type { Model } from '../schemas/models.ts';
import { ServerClient } from './server-client.ts';

/** A row of the table: the wire Model, as GET /v1/models answers it. */
export type TableRow = Model;

interface QueueView {
  running: number;
  waiting: number;
  concurrency: number;
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

const queueCell = (q: QueueView | undefined) => (q ? `${q.running}/${q.concurrency} +${q.waiting}` : '');

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
      queueCell(r.queue as QueueView | undefined),
    ]);
  }
  return table.toString();
}

/**
 * The wire Model of each model in the folder, built by the server's own view with the state a
 * server that runs nothing would report: `modeld ls` prints the same rows with or without one.
 */
export async function readFolderModels(modelsDir: string): Promise<TableRow[]> {
  // A listing must not create the folder it lists.
  const registry = new ModelRegistry({ modelsDir, createDir: false });
  await registry.scan();
  const idle = {
    manager: {
      state: (e: ModelEntry) => {
        const state = staticState(e);
        return state === 'error' ? { state, error: e.problem?.message } : { state };
      },
    },
    stateOverlays: [],
  } as unknown as FastifyInstance;
  return registry.list().map((e) => toWireModel(idle, e));
}

export async function listCommand(config: Config, opts: { json: boolean }): Promise<number> {
  const client = new ServerClient(config);
  let rows: TableRow[];
  let source: string;
  if (await client.reachable()) {
    try {
      rows = (await client.request<{ data: TableRow[] }>('GET', '/v1/models')).data;
    } catch (err) {
      // The server answered with an error (a missing API key): its message, no stack.
      console.error(`modeld: ls: ${(err as Error).message}`);
      return 1;
    }
    source = client.base;
  } else {
    const st = await stat(config.modelsDir).catch(() => undefined);
    if (!st?.isDirectory()) {
      console.error(`modeld: no server answers at ${client.base}, and the models folder ${config.modelsDir} ${st ? 'is not a folder' : 'does not exist'}`);
      return 1;
    }
    rows = await readFolderModels(config.modelsDir);
    source = config.modelsDir;
  }
  if (opts.json) console.log(JSON.stringify(rows, null, 2));
  else {
    console.log(renderTable(rows));
    console.log(`${rows.length} model${rows.length === 1 ? '' : 's'} from ${source}`);
  }
  return 0;
}
