import { HubApiError, listFiles, pathsInfo } from '@huggingface/hub';
import { parseGGUFQuantLabel, parseGgufShardFilename } from '@huggingface/gguf';
import path from 'node:path';
import { ApiError } from '../../errors.ts';
import { resolveUrl } from './source.ts';

export interface HubOptions {
  /** Hub base URL (config `hfEndpoint`, env HF_ENDPOINT). */
  hubUrl: string;
  /** Token for gated and private repositories (HF_TOKEN). */
  token?: string;
}

export interface HubFile {
  /** Path in the repository. */
  path: string;
  size: number;
  /** The LFS object id, which is the file's sha256; absent for files kept in git. */
  sha256?: string;
  url: string;
  /** File name in the model folder, when it cannot be the repository file's own name (two quantizations named alike). */
  local?: string;
}

/** One downloadable model in a repository: a quantization, possibly split into parts. */
export interface HubModel {
  /** Object file name: the GGUF name without `.gguf` and without the split suffix. */
  name: string;
  quantization?: string;
  /** In order; more than one for a split GGUF (`-00001-of-0000N`). */
  files: HubFile[];
  /** A vision projector (`mmproj*.gguf`) the repository ships beside the weights. */
  projector?: HubFile;
}

/**
 * The hub client with our token and base URL. The token goes in a header rather than the
 * client's `accessToken` option, which insists on the public hub's `hf_` prefix.
 */
function hubParams(o: HubOptions) {
  const token = o.token;
  return {
    hubUrl: o.hubUrl.replace(/\/+$/, ''),
    ...(token
      ? {
          fetch: (input: string | URL | Request, init?: RequestInit) => {
            const headers = new Headers(init?.headers);
            headers.set('authorization', `Bearer ${token}`);
            return fetch(input, { ...init, headers });
          },
        }
      : {}),
  };
}

/** Turns a hub failure into the error the user can act on (401/403 mention HF_TOKEN). */
export function hubError(err: unknown, repo: string, o: HubOptions): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof HubApiError) {
    // The hub answers 401 "Repository not found" for a repository it will not show an anonymous
    // caller, so a typo without HF_TOKEN reads like a gated repository unless the body is read.
    const missing = err.statusCode === 404 || (err.statusCode === 401 && /repository not found/i.test(err.message));
    if (missing) {
      const unseen = o.token ? 'or the token in HF_TOKEN cannot see it' : 'or it is private: set HF_TOKEN to a token that can see it';
      return new ApiError('source_not_found', `the Hugging Face repository '${repo}' (or the file asked for) does not exist at ${o.hubUrl} (${unseen})`, { param: 'source_url', cause: err });
    }
    if (err.statusCode === 401 || err.statusCode === 403) {
      const why = o.token ? 'the token in HF_TOKEN has no access to it (accept its licence on the hub page, or use another token)' : 'it is gated or private: set HF_TOKEN to a token with access';
      return new ApiError('source_access_denied', `the Hugging Face repository '${repo}' answered ${err.statusCode}: ${why}`, { param: 'source_url', cause: err });
    }
    return new ApiError('source_unreachable', `the Hugging Face hub at ${o.hubUrl} answered ${err.statusCode} for '${repo}': ${err.message}`, { param: 'source_url', cause: err });
  }
  // fetch's own failure is the network's; anything else is an answer the hub client could not read.
  if (err instanceof TypeError && err.message === 'fetch failed') {
    const why = err.cause instanceof Error ? err.cause.message : err.message;
    return new ApiError('source_unreachable', `cannot reach the Hugging Face hub at ${o.hubUrl}: ${why}`, { param: 'source_url', cause: err });
  }
  return new ApiError('source_unreachable', `the Hugging Face hub at ${o.hubUrl} answered what this server cannot read for '${repo}': ${(err as Error).message}`, { param: 'source_url', cause: err });
}

/** Every file of a repository revision, with size and LFS sha256. */
export async function listRepoFiles(repo: string, revision: string, o: HubOptions): Promise<HubFile[]> {
  const out: HubFile[] = [];
  try {
    for await (const f of listFiles({ repo: { type: 'model', name: repo }, revision, recursive: true, ...hubParams(o) })) {
      if (f.type !== 'file') continue;
      // A hub lists repository paths; one that climbs out of the repository (`..`) or starts at
      // the root would make its resolve URL another resource of the same host.
      if (typeof f.path === 'string' && f.path.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) continue;
      out.push({ path: f.path, size: f.lfs?.size ?? f.size, ...(f.lfs?.oid ? { sha256: f.lfs.oid } : {}), url: resolveUrl(o.hubUrl, repo, revision, f.path) });
    }
  } catch (err) {
    throw hubError(err, repo, o);
  }
  return out;
}

/** Size and LFS sha256 of one repository file. */
export async function repoFileInfo(repo: string, revision: string, file: string, o: HubOptions): Promise<HubFile> {
  let info;
  try {
    info = await pathsInfo({ repo: { type: 'model', name: repo }, revision, paths: [file], ...hubParams(o) });
  } catch (err) {
    throw hubError(err, repo, o);
  }
  const f = info.find((i) => i.path === file && i.type === 'file');
  if (!f) throw new ApiError('source_not_found', `the file '${file}' does not exist in the Hugging Face repository '${repo}' (${revision})`, { param: 'source_url' });
  return { path: f.path, size: f.lfs?.size ?? f.size, ...(f.lfs?.oid ? { sha256: f.lfs.oid } : {}), url: resolveUrl(o.hubUrl, repo, revision, f.path) };
}

const isProjector = (p: string) => /(^|\/)mmproj[^/]*\.gguf$/i.test(p);

/**
 * Groups a repository's GGUF files into models: one per quantization, the parts of a split
 * GGUF together in order (an incomplete set is left out), a projector attached to each.
 */
export function groupGgufModels(files: HubFile[]): { models: HubModel[]; incomplete: string[] } {
  const ggufs = files.filter((f) => /\.gguf$/i.test(f.path));
  const projectors = ggufs.filter((f) => isProjector(f.path));
  const projector = projectors.find((p) => /f16/i.test(p.path)) ?? projectors[0];
  const singles: HubModel[] = [];
  const splits = new Map<string, { total: number; parts: Map<number, HubFile> }>();
  for (const f of ggufs) {
    if (isProjector(f.path)) continue;
    const base = path.posix.basename(f.path);
    const shard = parseGgufShardFilename(base);
    if (shard) {
      const key = `${path.posix.dirname(f.path)}/${shard.prefix}`;
      const g = splits.get(key) ?? { total: Number(shard.total), parts: new Map() };
      g.parts.set(Number(shard.shard), f);
      splits.set(key, g);
      continue;
    }
    const name = base.replace(/\.gguf$/i, '');
    singles.push({ name, ...quant(name), files: [f] });
  }
  const incomplete: string[] = [];
  const grouped: HubModel[] = [];
  for (const [key, g] of splits) {
    const name = path.posix.basename(key);
    const parts = Array.from({ length: g.total }, (_, i) => g.parts.get(i + 1));
    if (parts.some((p) => !p)) {
      incomplete.push(name);
      continue;
    }
    grouped.push({ name, ...quant(name), files: parts as HubFile[] });
  }
  const models = nameApart([...singles, ...grouped])
    .map((m) => (projector ? { ...m, projector } : m))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { models, incomplete };
}

/**
 * Quantizations kept in subfolders often share a file name (`Q4_K_M/model.gguf`,
 * `Q8_0/model.gguf`): a model whose quantization is only in its folder's name, or whose name
 * another model has, is named after its folder too (`model.Q4_K_M`, else `Q4_K_M-model`), and
 * its files get that name in the model folder, so that no two objects share an id or a
 * downloaded file (also when the quantizations are imported one file at a time).
 */
function nameApart(models: HubModel[]): HubModel[] {
  const count = new Map<string, number>();
  for (const m of models) count.set(m.name, (count.get(m.name) ?? 0) + 1);
  return models.map((m) => {
    const dir = path.posix.dirname(m.files[0]!.path);
    const q = m.quantization ?? quant(dir).quantization;
    if (dir === '.' || (count.get(m.name)! < 2 && (m.quantization || !q))) return m;
    const name = q && !m.name.includes(q) ? `${m.name}.${q}` : `${dir.replaceAll('/', '-')}-${m.name}`;
    const files = m.files.map((f) => {
      const base = path.posix.basename(f.path);
      return { ...f, local: base.startsWith(m.name) ? `${name}${base.slice(m.name.length)}` : `${name}-${base}` };
    });
    return { ...m, name, ...(q ? { quantization: q } : {}), files };
  });
}

function quant(name: string): { quantization?: string } {
  const q = parseGGUFQuantLabel(name);
  return q ? { quantization: q } : {};
}
