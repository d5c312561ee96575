import { EventEmitter } from 'node:events';
import { mkdir, readdir, readFile, rm, rmdir, stat, writeFile, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Value } from 'typebox/value';
import { ApiError } from '../errors.ts';
import type { EngineName } from '../engines/engine.ts';
import { isBinaryName, isInside, isRemote, resolveBinaries, type BinaryRef } from './binaries.ts';
import { HeaderCache } from './headers/header-cache.ts';
import { parseModelId } from './ids.ts';
import { ModelObjectFileSchema, type ModelObjectFile } from './model-object-schema.ts';

/** A problem that puts a model in the `error` state, naming the file and the field. */
export interface ModelProblem {
  message: string;
  file: string;
  field?: string;
}

export interface ModelEntry {
  id: string;
  folderName: string;
  /** Absolute path of the model folder. */
  folder: string;
  /** Absolute path of the model object file. */
  file: string;
  /** Unix seconds the model object file was created. */
  created: number;
  object: ModelObjectFile;
  engine?: EngineName;
  binaries: BinaryRef[];
  ownedBy: string;
  /** What was read from the primary binary's header. */
  header: Record<string, unknown>;
  problem?: ModelProblem;
}

export type StaticState = 'not-downloaded' | 'stopped' | 'error';

/** JSON files that sit beside models (Hugging Face tokenizers, configs) and are not model objects. */
const NOT_MODEL_OBJECTS = new Set([
  'tokenizer.json', 'tokenizer_config.json', 'config.json', 'special_tokens_map.json', 'vocab.json',
  'labels.json', 'preprocessor_config.json', 'generation_config.json', 'added_tokens.json', 'schema.json',
]);

const LOCAL_USER = (() => {
  try {
    return os.userInfo().username;
  } catch {
    return 'local';
  }
})();

export function ownerOf(sourceUrl: string | undefined): string {
  if (!isRemote(sourceUrl)) return LOCAL_USER;
  const u = new URL(sourceUrl);
  const first = u.pathname.split('/').filter(Boolean)[0];
  return /huggingface\.co$|github\.com$/.test(u.hostname) || (u.pathname.includes('/resolve/') && first) ? (first ?? u.hostname) : u.hostname;
}

export function staticState(e: ModelEntry): StaticState {
  if (e.problem) return 'error';
  if (e.binaries.length === 0 && e.engine !== 'api') return 'not-downloaded';
  return e.binaries.every((b) => b.present) ? 'stopped' : 'not-downloaded';
}

export interface RegistryOptions {
  modelsDir: string;
  log?: { warn(obj: unknown, msg?: string): void; debug?(obj: unknown, msg?: string): void };
}

/**
 * The model table: scans `<modelsDir>/<folder>/<file>.json`, resolves binaries, reads headers
 * (cached), and keeps the result in memory. A broken file becomes that model's `error`; it
 * never stops the scan. Emits `change` after every rescan.
 */
export class ModelRegistry extends EventEmitter {
  readonly modelsDir: string;
  readonly #headers = new HeaderCache();
  #entries = new Map<string, ModelEntry>();
  #sorted: ModelEntry[] | undefined;
  #aliases = new Map<string, string>();
  #scanning: Promise<void> | undefined;
  #rescan: Promise<void> | undefined;
  #watcher: { close(): Promise<void> } | undefined;
  #debounce: NodeJS.Timeout | undefined;
  readonly #log: RegistryOptions['log'];

  constructor(options: RegistryOptions) {
    super();
    this.modelsDir = path.resolve(options.modelsDir);
    this.#log = options.log;
  }

  /** Every model, sorted by id; the array is rebuilt by each scan, so callers must not mutate it. */
  list(): readonly ModelEntry[] {
    this.#sorted ??= [...this.#entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return this.#sorted;
  }

  /** Finds a model by id or single-object folder alias; throws 400 for a bad id, 404 for none. */
  resolve(rawId: string): ModelEntry {
    const { folder, file } = parseModelId(rawId);
    const id = file ? `${folder}/${file}` : this.#aliases.get(folder);
    const entry = id ? this.#entries.get(id) : undefined;
    if (!entry) {
      throw new ApiError('model_not_found', `The model '${rawId}' does not exist`, { param: 'model' });
    }
    return entry;
  }

  get(rawId: string): ModelEntry | undefined {
    try {
      return this.resolve(rawId);
    } catch {
      return undefined;
    }
  }

  /**
   * Rescans the folder. A call during a scan resolves after one more scan that starts when the
   * running one ends (so a caller that just wrote a file sees it); concurrent callers share it.
   */
  scan(): Promise<void> {
    if (!this.#scanning) {
      this.#scanning = this.#scan().finally(() => {
        this.#scanning = undefined;
      });
      return this.#scanning;
    }
    this.#rescan ??= this.#scanning.catch(() => undefined).then(() => {
      this.#rescan = undefined;
      return this.scan();
    });
    return this.#rescan;
  }

  async #scan(): Promise<void> {
    await mkdir(this.modelsDir, { recursive: true });
    const entries = new Map<string, ModelEntry>();
    const byFolder = new Map<string, string[]>();
    const dirents = await readdir(this.modelsDir, { withFileTypes: true });
    await Promise.all(
      dirents
        .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && !d.name.startsWith('.'))
        .map(async (d) => {
          const folder = path.join(this.modelsDir, d.name);
          const files = await readdir(folder).catch(() => [] as string[]);
          const binaries = files.filter(isBinaryName).map((f) => path.join(folder, f));
          const objects = files.filter((f) => f.endsWith('.json') && !f.startsWith('.') && !NOT_MODEL_OBJECTS.has(f));
          for (const f of objects) {
            // A model object deleted while the scan runs is simply gone, not a failed scan.
            const entry = await this.#load(d.name, folder, path.join(folder, f), binaries).catch((err: NodeJS.ErrnoException) => {
              if (err.code === 'ENOENT') return undefined;
              throw err;
            });
            if (!entry) continue;
            entries.set(entry.id, entry);
            byFolder.set(d.name, [...(byFolder.get(d.name) ?? []), entry.id]);
          }
        }),
    );
    this.#entries = entries;
    this.#sorted = undefined;
    this.#aliases = new Map([...byFolder].filter(([, ids]) => ids.length === 1).map(([f, ids]) => [f, ids[0]!]));
    this.emit('change');
  }

  async #load(folderName: string, folder: string, file: string, folderBinaries: string[]): Promise<ModelEntry> {
    const id = `${folderName}/${path.basename(file, '.json')}`;
    const st = await stat(file);
    const entry: ModelEntry = {
      id, folderName, folder, file,
      created: Math.floor((st.birthtimeMs || st.mtimeMs) / 1000),
      object: {}, binaries: [], ownedBy: LOCAL_USER, header: {},
    };
    let raw: unknown;
    try {
      const text = await readFile(file, 'utf8');
      raw = text.trim() === '' ? {} : JSON.parse(text);
    } catch (err) {
      entry.problem = { file, message: `${path.basename(file)} is not valid JSON: ${(err as Error).message}` };
      return entry;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      entry.problem = { file, message: `${path.basename(file)} must hold a JSON object` };
      return entry;
    }
    const errors = [...Value.Errors(ModelObjectFileSchema, raw)];
    if (errors.length > 0) {
      // Keep what parsed so the table still shows name and source, but mark the model broken.
      const e = errors[0]!;
      const field = e.instancePath.slice(1).replaceAll('/', '.') || undefined;
      entry.object = raw as ModelObjectFile;
      entry.problem = { file, field, message: `${path.basename(file)}: field '${field ?? '(root)'}' ${e.message}` };
      return entry;
    }
    const obj = raw as ModelObjectFile;
    entry.object = obj;
    entry.ownedBy = ownerOf(obj.source_url ?? obj.metadata?.binaries?.find((b) => b.url)?.url);
    try {
      entry.binaries = await resolveBinaries(folder, file, obj, folderBinaries);
    } catch (err) {
      entry.problem = { file, field: 'source_url', message: `${path.basename(file)}: cannot resolve binaries: ${(err as Error).message}` };
      return entry;
    }
    const primary = entry.binaries[0];
    entry.engine = obj.metadata?.engine ?? inferEngine(primary?.path ?? primary?.url);
    if (primary?.present) {
      const res = await this.#headers.read(primary.path).catch((err) => ({ ok: false as const, error: (err as Error).message }));
      if (res.ok) entry.header = res.header;
      else entry.problem = { file: primary.path, message: `${path.basename(primary.path)} is not a readable ${entry.engine === 'onnx' ? 'ONNX' : 'GGUF'} file: ${res.error}` };
    } else if (!primary && entry.engine !== 'api') {
      // Nothing to download and nothing on disk: an empty object in a folder without a binary.
      if (!obj.source_url && !obj.metadata?.binaries) {
        entry.problem = { file, field: 'source_url', message: `${path.basename(file)}: no binary in ${folderName}/ and no source_url to download one from` };
      }
    }
    return entry;
  }

  /** Writes a model object file atomically and rescans. */
  async write(id: string, obj: ModelObjectFile, { overwrite = false } = {}): Promise<ModelEntry> {
    const { folder, file } = parseModelId(id);
    if (!file) throw new ApiError('invalid_model_id', `a new model id needs <folder>/<file>: '${id}'`, { param: 'id' });
    const dir = path.join(this.modelsDir, folder);
    const target = path.join(dir, `${file}.json`);
    if (!overwrite && (await stat(target).then(() => true, () => false))) {
      throw new ApiError('model_exists', `The model '${id}' already exists`, { param: 'id' });
    }
    await mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.${file}.json.tmp-${process.pid}`);
    await writeFile(tmp, JSON.stringify(obj, null, 2) + '\n');
    await rename(tmp, target);
    await this.scan();
    return this.resolve(`${folder}/${file}`);
  }

  /**
   * Deletes a model object and the binaries the server manages inside its folder. Files
   * outside the models folder (a local `source_url` elsewhere) are never touched, and a
   * binary another model object still uses stays.
   */
  async remove(entry: ModelEntry): Promise<void> {
    const others = this.list().filter((e) => e.id !== entry.id);
    const stillUsed = new Set(others.flatMap((e) => e.binaries.map((b) => b.path)));
    for (const b of entry.binaries) {
      if (!b.managed || stillUsed.has(b.path) || !isInside(this.modelsDir, b.path)) continue;
      await rm(b.path, { force: true });
      await rm(`${b.path}.part`, { force: true });
      await rm(path.join(path.dirname(b.path), `.${path.basename(b.path)}.part.json`), { force: true });
    }
    await rm(entry.file, { force: true });
    await rmdir(entry.folder).catch(() => undefined); // only when empty
    await this.scan();
  }

  /** Watches the folder: added, edited and removed model objects and binaries show up. */
  async watch(): Promise<void> {
    const { watch } = await import('chokidar');
    const w = watch(this.modelsDir, {
      depth: 1,
      ignoreInitial: true,
      ignored: (p: string) => path.basename(p).startsWith('.') || p.endsWith('.part'),
      awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 },
    });
    const kick = () => {
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => void this.scan().catch((err) => this.#log?.warn({ err }, 'model folder rescan failed')), 50);
    };
    w.on('all', kick);
    w.on('error', (err) => this.#log?.warn({ err }, 'model folder watch error'));
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    this.#watcher = w;
  }

  async close(): Promise<void> {
    clearTimeout(this.#debounce);
    await this.#watcher?.close();
    this.#watcher = undefined;
    await this.#rescan?.catch(() => undefined);
    await this.#scanning?.catch(() => undefined);
  }
}

export function inferEngine(file: string | undefined): EngineName {
  return file && /\.onnx(\?|$)/i.test(file) ? 'onnx' : 'llamacpp';
}
