import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../../errors.ts';
import { apiServer, isHttpUrl } from '../../engines/api/api-server.ts';
import { isBinaryName } from '../../registry/binaries.ts';
import { readGgufHeader } from '../../registry/headers/gguf-header.ts';
import type { ModelObjectFile } from '../../registry/model-object-schema.ts';
import type { ModelEntry, ModelRegistry } from '../../registry/registry.ts';
import { mapWithLimit } from '../../scheduler/map-with-limit.ts';
import { groupGgufModels, listRepoFiles, repoFileInfo, type HubModel, type HubOptions } from './huggingface.ts';
import { classifySource, slug, type ModelSource } from './source.ts';

/** The body of `POST /v1/models`. */
export interface CreateModelRequest {
  /** `<folder>/<file>`, or a folder name (`<folder>/model`; for a repository, the folder of all its quantizations). */
  id?: string;
  /** Where the binary comes from; none for an api model (`metadata.engine: "api"`). */
  source_url?: string;
  /** For a repository: only this quantization. */
  quantization?: string;
  /** Create the objects whose ids are free instead of refusing all when one exists. */
  skip_existing?: boolean;
  name?: string;
  description?: string;
  parameters?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

export interface CreateModelsDeps {
  registry: ModelRegistry;
  hub: HubOptions;
  /** Headers for a remote URL (the hub token goes to the hub only). */
  headersFor?: (url: string) => Record<string, string> | undefined;
  /** Base for relative local paths. Default the process's working directory. */
  cwd?: string;
  log?: { warn(obj: unknown, msg?: string): void };
}

export interface CreatedModels {
  /** Absent for an api model. */
  source?: ModelSource;
  entries: ModelEntry[];
}

/** Header facts stored in a new model object, so the table shows them before any download. */
const HEADER_FACTS = ['architecture', 'context_length', 'parameter_count', 'embedding_length', 'block_count', 'has_chat_template'] as const;

/**
 * Creates model objects from a source: a local path (referenced where it lies, never copied),
 * a direct URL, a Hugging Face file (blob or resolve URL, with the hub's size and sha256) or a
 * Hugging Face repository (one object per GGUF quantization, in one folder; split parts
 * grouped). For remote GGUFs the header is read with range requests first. 409 model_exists
 * when an id is taken (nothing is written then).
 */
export async function createModels(req: CreateModelRequest, deps: CreateModelsDeps): Promise<CreatedModels> {
  if (req.metadata?.engine === 'api') return { entries: await deps.registry.create([apiModel(req)]) };
  if (req.source_url === undefined) {
    throw new ApiError('missing_required_parameter', `source_url is required, except for a model of the api engine (metadata.engine "api")`, { param: 'source_url' });
  }
  const source = classifySource(req.source_url, { hubUrl: deps.hub.hubUrl, cwd: deps.cwd });
  const common = (o: ModelObjectFile): ModelObjectFile => ({
    ...o,
    ...(req.name !== undefined ? { name: req.name } : {}),
    ...(req.description !== undefined ? { description: req.description } : {}),
    ...(req.parameters ? { parameters: req.parameters } : {}),
    metadata: { ...o.metadata, ...req.metadata } as ModelObjectFile['metadata'],
  });
  const planned: Array<{ id: string; object: ModelObjectFile }> = [];

  switch (source.kind) {
    case 'local': {
      const st = await stat(source.path).catch(() => undefined);
      if (!st) throw new ApiError('source_not_found', `no file or folder at ${source.path}`, { param: 'source_url' });
      if (st.isFile() && !isBinaryName(source.path)) {
        throw new ApiError('invalid_value', `${source.path} is not a .gguf or .onnx file`, { param: 'source_url' });
      }
      if (st.isDirectory()) {
        const models = await folderModels(source.path);
        if (models.length === 0) throw new ApiError('invalid_value', `${source.path} is a folder with no .gguf or .onnx file in it`, { param: 'source_url' });
        if (models.length > 1) {
          // Several models in one folder (quantizations, say): one object each, as for a repository.
          if (req.id?.includes('/')) throw new ApiError('invalid_value', `for a folder of several models, 'id' is the folder that holds one model object each; '${req.id}' has a slash`, { param: 'id' });
          const folder = slug(req.id ?? path.basename(source.path));
          for (const file of models) {
            const header = /\.gguf$/i.test(file) ? await readHeader(file, undefined, deps) : {};
            planned.push({ id: `${folder}/${slug(path.basename(file, path.extname(file)))}`, object: common({ source_url: file, metadata: { ...header } }) });
          }
          break;
        }
      }
      const base = st.isFile() ? path.basename(source.path, path.extname(source.path)) : path.basename(source.path);
      const header = st.isFile() && /\.gguf$/i.test(source.path) ? await readHeader(source.path, undefined, deps) : {};
      planned.push({ id: idFor(req.id, base), object: common({ source_url: source.path, metadata: { ...header } }) });
      break;
    }
    case 'url': {
      const url = new URL(source.url);
      const file = decodeURIComponent(path.posix.basename(url.pathname)) || 'model';
      const headers = deps.headersFor?.(source.url);
      const size = await remoteSize(source.url, headers);
      const header = /\.gguf$/i.test(file) ? await readHeader(source.url, headers, deps) : {};
      planned.push({
        id: idFor(req.id, file.replace(/\.(gguf|onnx)$/i, '')),
        object: common({ source_url: source.url, metadata: { ...header, ...(size !== undefined ? { size } : {}) } }),
      });
      break;
    }
    case 'hf-file': {
      const info = await repoFileInfo(source.repo, source.revision, source.file, deps.hub);
      let model: HubModel;
      if (/-\d{5}-of-\d{5}\.gguf$/i.test(info.path)) {
        // One part of a split model stands for the whole set.
        const all = await listRepoFiles(source.repo, source.revision, deps.hub);
        const { models } = groupGgufModels(all);
        const found = models.find((m) => m.files.some((f) => f.path === info.path));
        if (!found) throw new ApiError('source_not_found', `the parts of the split model '${info.path}' are not all in '${source.repo}'`, { param: 'source_url' });
        model = { ...found, projector: undefined };
      } else {
        model = { ...groupGgufModels([info]).models[0] ?? { name: path.posix.basename(info.path).replace(/\.\w+$/, ''), files: [info] }, projector: undefined };
      }
      const folder = slug(source.repo.split('/')[1]!);
      const obj = await hubObject(source.repo, model, deps);
      planned.push({ id: req.id ? idFor(req.id, model.name) : `${folder}/${slug(model.name)}`, object: common(obj) });
      break;
    }
    case 'hf-repo': {
      const files = await listRepoFiles(source.repo, source.revision, deps.hub);
      const { models, incomplete } = groupGgufModels(files);
      if (incomplete.length > 0) deps.log?.warn({ repo: source.repo, incomplete }, 'split models with missing parts left out');
      if (models.length === 0) {
        throw new ApiError('source_not_found', `the Hugging Face repository '${source.repo}' has no GGUF model files`, { param: 'source_url' });
      }
      if (req.id?.includes('/')) throw new ApiError('invalid_value', `for a repository, 'id' is the folder that holds one model object per quantization; '${req.id}' has a slash`, { param: 'id' });
      const folder = slug(req.id ?? source.repo.split('/')[1]!);
      const wanted = req.quantization?.toLowerCase();
      const picked = wanted ? models.filter((m) => (m.quantization ?? m.name).toLowerCase() === wanted) : models;
      if (picked.length === 0) {
        throw new ApiError('source_not_found', `the Hugging Face repository '${source.repo}' has no ${req.quantization} quantization; it has ${models.map((m) => m.quantization ?? m.name).join(', ')}`, { param: 'quantization' });
      }
      // Objects that exist are not fetched again (their headers) when they are to be skipped.
      const fresh = req.skip_existing ? picked.filter((m) => !deps.registry.get(`${folder}/${slug(m.name)}`)) : picked;
      const objects = await mapWithLimit(fresh, () => 4, (m) => hubObject(source.repo, m, deps));
      fresh.forEach((m, i) => planned.push({ id: `${folder}/${slug(m.name)}`, object: common(objects[i]!) }));
      break;
    }
  }

  if (req.quantization !== undefined && source.kind !== 'hf-repo') {
    throw new ApiError('invalid_value', `'quantization' picks one of a repository's models; this source_url is no repository`, { param: 'quantization' });
  }
  const taken = planned.filter((p) => deps.registry.get(p.id));
  if (taken.length > 0 && req.skip_existing) planned.splice(0, planned.length, ...planned.filter((p) => !taken.includes(p)));
  else if (taken.length > 0) {
    throw new ApiError('model_exists', `the model${taken.length > 1 ? 's' : ''} ${taken.map((p) => `'${p.id}'`).join(', ')} already exist${taken.length > 1 ? '' : 's'}; delete ${taken.length > 1 ? 'them' : 'it'} or choose another id`, { param: 'id' });
  }
  // All or nothing: a taken or repeated id, or a bad one, writes no object.
  return { source, entries: await deps.registry.create(planned) };
}

/**
 * The model files of a local folder: every .gguf or .onnx file, a split GGUF by its first part
 * (llama.cpp finds the others beside it), multimodal projectors (mmproj) left out.
 */
async function folderModels(dir: string): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile() && isBinaryName(d.name)).map((d) => d.name);
  return names
    .filter((n) => !/(^|[-_.])mmproj/i.test(n))
    .filter((n) => !/-\d{5}-of-\d{5}\.gguf$/i.test(n) || /-00001-of-\d{5}\.gguf$/i.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/**
 * An api model's object: it lives on another server (`metadata.api`), so it has no binary to
 * read or download; its id is the client's to choose.
 */
function apiModel(req: CreateModelRequest): { id: string; object: ModelObjectFile } {
  if (req.source_url !== undefined && !isHttpUrl(req.source_url)) {
    throw new ApiError('invalid_value', `an api model's source_url, when it has one, is its server: an http(s) URL, not '${req.source_url}'`, { param: 'source_url' });
  }
  if (req.id === undefined) throw new ApiError('missing_required_parameter', `an api model needs an 'id'`, { param: 'id' });
  const server = apiServer(req.metadata?.api, req.source_url);
  if (server.problem) throw new ApiError('invalid_value', `an api model ${server.problem}`, { param: server.field });
  if (req.quantization !== undefined) throw new ApiError('invalid_value', `'quantization' picks one of a repository's models; an api model has none`, { param: 'quantization' });
  const object: ModelObjectFile = {
    ...(req.source_url !== undefined ? { source_url: req.source_url } : {}),
    ...(req.name !== undefined ? { name: req.name } : {}),
    ...(req.description !== undefined ? { description: req.description } : {}),
    ...(req.parameters ? { parameters: req.parameters } : {}),
    metadata: req.metadata as ModelObjectFile['metadata'],
  };
  return { id: idFor(req.id, req.id), object };
}

function idFor(requested: string | undefined, base: string): string {
  if (!requested) return `${slug(base)}/model`;
  return requested.includes('/') ? requested : `${requested}/model`;
}

async function hubObject(repo: string, m: HubModel, deps: CreateModelsDeps): Promise<ModelObjectFile> {
  const [org, name] = repo.split('/') as [string, string];
  const first = m.files[0]!;
  const header = await readHeader(first.url, deps.headersFor?.(first.url), deps);
  const files = [...m.files, ...(m.projector ? [m.projector] : [])];
  const size = m.files.reduce((a, f) => a + f.size, 0);
  const object: Record<string, unknown> = {
    name: `${name} ${m.quantization ?? m.name}`,
    source_url: first.url,
    metadata: {
      author: org,
      repository: repo,
      ...header,
      ...(m.quantization ? { quantization: m.quantization } : {}),
      size,
      binaries: files.map((f) => ({
        path: f.local ?? path.posix.basename(f.path),
        url: f.url,
        ...(f.sha256 ? { sha256: f.sha256 } : {}),
        size: f.size,
        ...(f === m.projector ? { role: 'projector' } : {}),
      })),
    },
  };
  return object as ModelObjectFile;
}

/** GGUF header facts worth storing; an unreadable header is logged and skipped. */
async function readHeader(file: string, headers: Record<string, string> | undefined, deps: CreateModelsDeps): Promise<Record<string, unknown>> {
  try {
    const h = await readGgufHeader(file, headers);
    const out: Record<string, unknown> = {};
    for (const k of HEADER_FACTS) if (h[k] !== undefined) out[k] = h[k];
    if (h.quantization !== undefined) out.quantization = h.quantization;
    return out;
  } catch (err) {
    deps.log?.warn({ file, err: (err as Error).message }, 'could not read the GGUF header');
    return {};
  }
}

async function remoteSize(url: string, headers: Record<string, string> | undefined): Promise<number | undefined> {
  try {
    const res = await fetch(url, { method: 'HEAD', headers: { 'accept-encoding': 'identity', ...headers }, redirect: 'follow' });
    if (res.status === 404) throw new ApiError('source_not_found', `HEAD ${url} answered 404: the file does not exist there`, { param: 'source_url' });
    if (res.status === 401 || res.status === 403) throw new ApiError('source_access_denied', `HEAD ${url} answered ${res.status}: access denied`, { param: 'source_url' });
    const n = Number(res.headers.get('content-length'));
    return res.ok && Number.isFinite(n) && n > 0 ? n : undefined;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError('source_unreachable', `cannot reach ${url}: ${(err as Error).message}`, { param: 'source_url', cause: err });
  }
}
