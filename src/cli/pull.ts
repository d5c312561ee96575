import { existsSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { expandHome, type Config } from '../config/config.ts';
import { formatBytes } from '../downloads/disk-space.ts';
import { defaultQuantization, sameQuantization } from '../downloads/importers/quantization-choice.ts';
import { modelPath, ServerClient, ServerError } from './server-client.ts';

export interface PullOptions {
  /** Quantization to pull from a repository with several (e.g. Q4_K_M). */
  quant?: string;
  /** Pull every quantization of a repository. */
  all?: boolean;
}

interface WireModel {
  id: string;
  state: string;
  source_url: string;
  metadata: Record<string, unknown>;
}

function fail(message: string): number {
  console.error(`modeld: ${message}`);
  return 1;
}

/**
 * `modeld pull <id|url|path|org/repo[:QUANT]>`: finds or creates the model object on the
 * running server, starts its download there and follows the server's progress (bar with
 * bytes, speed and ETA). Ctrl-C cancels the download, keeping the part for a resume.
 */
export async function pullCommand(config: Config, target: string, opts: PullOptions): Promise<number> {
  // '' would resolve to the current folder and import whatever lies there.
  if (!target.trim()) return fail('pull needs a model: an id, a URL, a local path or org/repo[:QUANT]');
  const client = new ServerClient(config);
  if (!(await client.reachable())) return fail(`no modeld server answers at ${client.base}; start one with \`modeld serve\``);
  let ids: string[];
  try {
    ids = await resolveTarget(client, config, target, opts);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  for (const id of ids) {
    const code = await download(client, id);
    if (code !== 0) return code;
  }
  return 0;
}

async function resolveTarget(client: ServerClient, config: Config, rawTarget: string, opts: PullOptions): Promise<string[]> {
  let target = rawTarget;
  let quant = opts.quant;
  const colon = /^([^:/]+\/[^:/]+):([\w.-]+)$/.exec(target);
  if (colon) [, target, quant] = colon as unknown as [string, string, string];

  const existing = await client.request<WireModel>('GET', modelPath(target)).catch((err: unknown) => {
    if (err instanceof ServerError && (err.status === 404 || err.status === 400)) return undefined;
    throw err;
  });
  if (existing) return [existing.id];

  const local = path.resolve(expandHome(target));
  const source = !/^https?:\/\//i.test(target) && existsSync(local) ? local : target;
  const all = (await client.request<{ data: WireModel[] }>('GET', '/v1/models')).data;
  const repo = repoOf(source);
  let models = all.filter((m) =>
    repo ? m.metadata.repository === repo : m.source_url === source || m.source_url === source.replace('/blob/', '/resolve/'),
  );
  const quantOf = (m: WireModel) => String(m.metadata.quantization ?? '');
  const isQuant = (q: string | undefined) => q !== undefined && sameQuantization(q, quant!);
  if (models.length === 0) {
    const created = await client.request<{ data: WireModel[] }>('POST', '/v1/models', { source_url: source }).catch((err: unknown) => {
      // `folder/model` is both a local id and a hub `org/repo`: a mistyped local id fails at the
      // hub, so the hub's answer alone would hide that the server has a model of that folder.
      const near = err instanceof ServerError && repo && source === target ? nearIds(target, all) : [];
      if (near.length === 0) throw err;
      throw new Error(`${(err as Error).message}; no model '${target}' is on the server either (it has ${near.slice(0, 5).join(', ')}${near.length > 5 ? ', …' : ''})`);
    });
    models = created.data;
    console.log(`created ${models.map((m) => m.id).join(', ')}`);
  } else if (repo && (opts.all || (quant && !models.some((m) => isQuant(quantOf(m)))))) {
    // Objects deleted from a repository's folder: the server creates the missing ones (all, or
    // the one asked for) beside those it has, as the first import made them.
    const body = { source_url: source, id: models[0]!.id.split('/')[0]!, skip_existing: true, ...(opts.all ? {} : { quantization: quant }) };
    const created = await client.request<{ data: WireModel[] }>('POST', '/v1/models', body).catch((err: unknown) => {
      if (!opts.all) throw err;
      // --all with the hub out of reach still pulls what the server already knows of.
      console.error(`modeld: ${(err as Error).message}; pulling only the ${models.length} object${models.length > 1 ? 's' : ''} the server has`);
      return { data: [] };
    });
    if (created.data.length > 0) console.log(`created ${created.data.map((m) => m.id).join(', ')}`);
    models = [...models, ...created.data].sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  if (opts.all) return models.map((m) => m.id);
  if (quant) {
    const chosen = models.find((m) => isQuant(quantOf(m)));
    if (!chosen) throw new Error(`${target} has no ${quant} quantization; it has ${models.map(quantOf).join(', ')}`);
    return [chosen.id];
  }
  if (models.length === 1) return [models[0]!.id];
  const chosen = defaultQuantization(models, quantOf, (m) => Number(m.metadata.size ?? 0))!;
  // `URL:QUANT` is no URL, so only an `org/repo` target is offered the suffix.
  const choose = source === repo ? `--quant or ${target}:<QUANT>, or --all` : '--quant <QUANT> or --all';
  console.log(`${target} has ${models.length} quantizations (${models.map(quantOf).join(', ')}); pulling ${quantOf(chosen)} — choose with ${choose}`);
  return [chosen.id];
}

/** The server's models in the folder a mistyped `folder/model` id names. */
function nearIds(target: string, all: WireModel[]): string[] {
  const folder = target.split('/')[0]!.toLowerCase();
  return all.map((m) => m.id).filter((id) => id.split('/')[0]!.toLowerCase() === folder);
}

/** A file a model object can point at directly (`https://host/models/tiny.gguf` is no `org/repo`). */
const MODEL_FILE = /\.(gguf|onnx|bin|safetensors)$/i;

/** `org/repo` for a Hugging Face repository reference, else undefined. */
function repoOf(source: string): string | undefined {
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(source) && !MODEL_FILE.test(source)) return source;
  const m = /^https?:\/\/[^/]+\/([^/]+\/[^/]+)\/?(?:tree\/[^/]+\/?)?$/.exec(source);
  return m && !MODEL_FILE.test(m[1]!) ? m[1] : undefined;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

interface Progress {
  downloaded_bytes: number;
  total_bytes: number | null;
  bytes_per_second: number;
}

/** Renders progress: a cli-progress bar on a terminal, a line per 10% otherwise (logs, CI). */
function progressView(id: string) {
  const tty = process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: `${id} [{bar}] {percentage}% | {done}/{all}{rate}`, hideCursor: true, barsize: 30, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let started = false;
  let lastStep = -1;
  let last: Progress | undefined;
  // Where this run began: a resumed download starts at the part's size, not at 0.
  let first: { t: number; bytes: number } | undefined;

  /** `rate`: speed and ETA, or the average at the end, or '' while no speed is known. */
  const render = (p: Progress, rate: string) => {
    const total = p.total_bytes ?? 0;
    const payload = { done: formatBytes(p.downloaded_bytes), all: total ? formatBytes(total) : '?', rate: rate && ` | ${rate}` };
    if (bar) {
      if (!started) bar.start(total || 1, p.downloaded_bytes, payload);
      else {
        bar.setTotal(total || 1);
        bar.update(p.downloaded_bytes, payload);
      }
      started = true;
      return;
    }
    const percent = total ? `${Math.floor((p.downloaded_bytes / total) * 100)}%` : '?%';
    console.error(`${id}: ${percent} ${payload.done}/${payload.all}${rate && ` ${rate}`}`);
  };

  return {
    /**
     * The last line: the bar full (the last progress event may predate the last bytes) and the
     * average speed of the whole run, since the server's meter reads 0 when a download ends
     * before it has two samples.
     */
    finish() {
      if (!last) return this.stop();
      const done = { ...last, downloaded_bytes: last.total_bytes ?? last.downloaded_bytes };
      const secs = first ? (performance.now() - first.t) / 1000 : 0;
      const moved = done.downloaded_bytes - (first?.bytes ?? 0);
      const average = secs > 0 && moved > 0 ? moved / secs : last.bytes_per_second;
      render(done, average > 0 ? `${formatBytes(average)}/s average` : '');
      this.stop();
    },
    update(p: Progress) {
      last = p;
      first ??= { t: performance.now(), bytes: p.downloaded_bytes };
      const total = p.total_bytes ?? 0;
      const step = total ? Math.floor((p.downloaded_bytes / total) * 10) : 0;
      // Without a terminal, 100% is finish()'s line, with the average speed.
      if (!bar && (step === lastStep || (total && p.downloaded_bytes >= total))) return;
      lastStep = step;
      // The server's meter reads 0 until it has two samples: no speed yet, rather than 0 B/s.
      if (p.bytes_per_second <= 0) return render(p, '');
      const eta = total ? (total - p.downloaded_bytes) / p.bytes_per_second : Number.NaN;
      render(p, `${formatBytes(p.bytes_per_second)}/s ETA ${duration(eta)}`);
    },
    stop() {
      if (started) bar?.stop();
    },
  };
}

async function download(client: ServerClient, id: string): Promise<number> {
  const view = progressView(id);
  const ac = new AbortController();
  let cancelled = false;
  const onSigint = () => {
    cancelled = true;
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  const t0 = performance.now();
  let moved = false;
  try {
    for await (const { event, data } of client.events('POST', modelPath(id, '/download'), ac.signal)) {
      if (event === 'progress' && data.progress) {
        moved = true;
        view.update(data.progress as Progress);
      } else if (event === 'done' || (event === 'json' && data.state !== 'downloading')) {
        view.finish();
        if (!moved) {
          console.log(`${id}: already downloaded (${String(data.state)})`);
          return 0;
        }
        const size = (await client.request<WireModel>('GET', modelPath(id))).metadata.size;
        const secs = (performance.now() - t0) / 1000;
        console.log(`${id}: downloaded${typeof size === 'number' ? ` ${formatBytes(size)}` : ''} in ${secs.toFixed(1)}s, verified`);
        return 0;
      } else if (event === 'error') {
        view.stop();
        return fail(`download of ${id} failed: ${String(data.error)}`);
      } else if (event === 'cancelled') {
        view.stop();
        return fail(`the download of ${id} was cancelled on the server`);
      }
    }
    view.stop();
    return fail(`lost the connection to the server while downloading ${id}; run \`modeld pull ${id}\` again to resume`);
  } catch (err) {
    view.stop();
    if (cancelled) {
      const state = await client.request<{ progress?: Progress }>('DELETE', modelPath(id, '/download')).catch(() => undefined);
      const kept = state?.progress ? ` (${formatBytes(state.progress.downloaded_bytes)} kept)` : '';
      console.error(`modeld: cancelled the download of ${id}${kept}; run \`modeld pull ${id}\` again to resume`);
      return 130;
    }
    return fail(err instanceof Error ? err.message : String(err));
  } finally {
    process.off('SIGINT', onSigint);
  }
}
