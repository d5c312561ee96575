import { EventEmitter } from 'node:events';
import type { Dirent } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiError } from '../errors.ts';
import { ENGINE_NAMES, type EngineName } from '../engines/engine.ts';
import { BinaryFieldError, isBinaryName, isInside, isRemote, resolveBinaries, type BinaryRef } from './binaries.ts';
import { link, lstat, mkdir, readdir, readlink, realpath, rename, rm, rmdir, stat, unlink, writeFile } from './fs-now.ts';
import { placeFile, planCopy } from './copy-model.ts';
import { NO_HARD_LINKS, tempName } from './temp-files.ts';
import { HeaderCache } from './headers/header-cache.ts';
import { parseModelId } from './ids.ts';
import type { ModelObjectFile } from './model-object-schema.ts';
import { checkNewModelObject, schemaProblems, withoutInvalidFields } from './object-check.ts';
import { fsReason, NotRegularFileError, readSmallRegularFile, specialKind } from './regular-file.ts';

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

/** What readdir of a models-folder entry answers when it is no folder to scan (gone, a file, a dangling link). */
const NOT_A_FOLDER = new Set(['ENOENT', 'ENOTDIR']);

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
  /**
   * Create the models folder when it is missing. Default true (the server); a read-only
   * listing (`modeld ls` without a server) passes false and sees an empty table instead.
   */
  createDir?: boolean;
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
  /** Entries of folders that cannot be read: nothing in them can be planned for deletion. */
  readonly #unreachable = new WeakSet<ModelEntry>();
  #entries = new Map<string, ModelEntry>();
  #sorted: ModelEntry[] | undefined;
  #aliases = new Map<string, string>();
  /** The place() in progress, which the next waits for. */
  #placing: Promise<unknown> = Promise.resolve();
  #scanning: Promise<void> | undefined;
  #rescan: Promise<void> | undefined;
  #watcher: { close(): Promise<void> } | undefined;
  #debounce: NodeJS.Timeout | undefined;
  readonly #log: RegistryOptions['log'];
  readonly #createDir: boolean;

  constructor(options: RegistryOptions) {
    super();
    this.modelsDir = path.resolve(options.modelsDir);
    this.#log = options.log;
    this.#createDir = options.createDir ?? true;
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
    if (this.#createDir) await mkdir(this.modelsDir, { recursive: true });
    const entries = new Map<string, ModelEntry>();
    const byFolder = new Map<string, string[]>();
    const add = (entry: ModelEntry) => {
      entries.set(entry.id, entry);
      byFolder.set(entry.folderName, [...(byFolder.get(entry.folderName) ?? []), entry.id]);
    };
    const dirents = await readdir(this.modelsDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (!this.#createDir && err.code === 'ENOENT') return [];
      throw err;
    });
    await Promise.all(
      dirents
        .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && !d.name.startsWith('.'))
        .map(async (d) => {
          const folder = path.join(this.modelsDir, d.name);
          let inside: Dirent[];
          try {
            inside = await readdir(folder, { withFileTypes: true });
          } catch (err) {
            // Gone during the scan, a link to a file or to nothing: no model folder. Any other
            // failure (a folder without read permission) hides its models: list it broken instead.
            if (!NOT_A_FOLDER.has((err as NodeJS.ErrnoException).code ?? '')) add(await this.#unreadableFolder(d.name, folder, err));
            return;
          }
          const binaries = (await regularFiles(folder, inside)).filter(isBinaryName).map((f) => path.join(folder, f));
          // Any kind of entry: a FIFO or a folder named model.json is listed broken (#load never opens it).
          const objects = inside
            .filter((f) => f.name.endsWith('.json') && !f.name.startsWith('.') && !NOT_MODEL_OBJECTS.has(f.name))
            .map((f) => f.name);
          for (const f of objects) {
            const file = path.join(folder, f);
            const entry = await this.#load(d.name, folder, file, binaries).catch(async (err: NodeJS.ErrnoException) => {
              // A model object deleted while the scan runs is simply gone, not a failed scan.
              if (err.code === 'ENOENT') return undefined;
              // Whatever else fails breaks this model only (EACCES where the folder lacks execute permission).
              const entry = await this.#emptyEntry(d.name, folder, file);
              entry.problem = { file, message: `${f} cannot be read: ${fsReason(err)}` };
              return entry;
            });
            if (entry) add(entry);
          }
        }),
    );
    this.#entries = entries;
    this.#sorted = undefined;
    this.#aliases = new Map([...byFolder].filter(([, ids]) => ids.length === 1).map(([f, ids]) => [f, ids[0]!]));
    this.emit('change');
  }

  /** An entry without object or binaries, created at the folder's time (its file's is unknown). */
  async #emptyEntry(folderName: string, folder: string, file: string): Promise<ModelEntry> {
    const times = await stat(folder).catch(() => undefined);
    return {
      id: `${folderName}/${path.basename(file, '.json')}`, folderName, folder, file,
      created: times ? Math.floor((times.birthtimeMs || times.mtimeMs) / 1000) : 0,
      object: {}, binaries: [], ownedBy: LOCAL_USER, header: {},
    };
  }

  /**
   * A folder whose entries cannot be listed: its model objects are unknown, so it stands as one
   * broken model under the default object name (its folder name resolves to it too).
   */
  async #unreadableFolder(folderName: string, folder: string, err: unknown): Promise<ModelEntry> {
    const entry = await this.#emptyEntry(folderName, folder, path.join(folder, 'model.json'));
    entry.problem = { file: folder, message: `the model folder ${folderName}/ cannot be read: ${fsReason(err)}` };
    this.#unreachable.add(entry);
    return entry;
  }

  async #load(folderName: string, folder: string, file: string, folderBinaries: string[]): Promise<ModelEntry | undefined> {
    const id = `${folderName}/${path.basename(file, '.json')}`;
    const own = await lstat(file);
    const st = own.isSymbolicLink() ? await stat(file).catch((err: NodeJS.ErrnoException) => err) : own;
    const times = st instanceof Error ? own : st;
    const entry: ModelEntry = {
      id, folderName, folder, file,
      created: Math.floor((times.birthtimeMs || times.mtimeMs) / 1000),
      object: {}, binaries: [], ownedBy: LOCAL_USER, header: {},
    };
    const name = path.basename(file);
    const notRegular = (what: string) => {
      entry.problem = { file, message: `${name} is ${what}, not a regular file; model objects are read only from regular files` };
      return entry;
    };
    const target = own.isSymbolicLink() ? await readlink(file).catch(() => '?') : undefined;
    if (st instanceof Error) {
      return notRegular(`a link to ${target}, which ${st.code === 'ENOENT' ? 'does not exist' : `cannot be followed (${fsReason(st)})`}`);
    }
    // Opening a FIFO (or a device) waits for a writer: say what it is, never open it.
    if (!st.isFile()) return notRegular(target === undefined ? `a ${specialKind(st)}` : `a link to ${target}, a ${specialKind(st)}`);
    let text: string;
    try {
      text = readSmallRegularFile(file);
    } catch (err) {
      if (err instanceof NotRegularFileError) return notRegular(`a ${specialKind(err.stats)}`);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
      entry.problem = { file, message: `${name} cannot be read: ${fsReason(err)}` };
      return entry;
    }
    let raw: unknown;
    try {
      raw = text.trim() === '' ? {} : JSON.parse(text);
    } catch (err) {
      entry.problem = { file, message: `${name} is not valid JSON: ${(err as Error).message}` };
      return entry;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      entry.problem = { file, message: `${name} must hold a JSON object` };
      return entry;
    }
    const problems = schemaProblems(raw);
    if (problems.length > 0) {
      // Keep the valid fields so the table still shows name and source; the invalid ones are
      // dropped (the wire Model must stay schema-valid) and the error names every one of them.
      entry.object = withoutInvalidFields(raw as Record<string, unknown>);
      entry.ownedBy = ownerOf(entry.object.source_url);
      entry.problem = {
        file,
        field: problems[0]!.field || undefined,
        message: `${path.basename(file)}: ${problems.map((p) => `field '${p.field || '(root)'}' ${p.message}`).join('; ')}`,
      };
      return entry;
    }
    const obj = raw as ModelObjectFile;
    entry.object = obj;
    entry.ownedBy = ownerOf(obj.source_url ?? obj.metadata?.binaries?.find((b) => b.url)?.url);
    try {
      // An api model's source_url is its server (Jan's remote models), not a file to fetch.
      entry.binaries = obj.metadata?.engine === 'api' ? [] : await resolveBinaries(folder, file, obj, folderBinaries);
    } catch (err) {
      entry.problem = err instanceof BinaryFieldError
        ? { file, field: err.field, message: `${path.basename(file)}: field '${err.field}' ${err.message}` }
        : { file, field: 'source_url', message: `${path.basename(file)}: cannot resolve binaries: ${(err as Error).message}` };
      return entry;
    }
    const primary = entry.binaries[0];
    entry.engine = obj.metadata?.engine ?? inferEngine(primary?.path ?? primary?.url);
    if (primary?.present) {
      const binary = path.basename(primary.path);
      const problem = await this.#headers.read(primary.path).then(
        (res) => {
          if (res.ok) entry.header = res.header;
          return res.ok ? undefined : `${binary} is not a readable ${entry.engine === 'onnx' ? 'ONNX' : 'GGUF'} file: ${res.error}`;
        },
        // Unreadable, or swapped for a FIFO since resolveBinaries' stat: not a format problem.
        (err) => (err instanceof NotRegularFileError ? err.message : `${binary} cannot be read: ${fsReason(err)}`),
      );
      if (problem) entry.problem = { file: primary.path, message: problem };
    } else if (!primary && entry.engine !== 'api') {
      // Nothing to download and nothing on disk: an empty object in a folder without a binary.
      if (!obj.source_url && !obj.metadata?.binaries) {
        entry.problem = { file, field: 'source_url', message: `${path.basename(file)}: no binary in ${folderName}/ and no source_url to download one from` };
      }
    }
    return entry;
  }

  /**
   * Writes one model object and rescans. Without `overwrite` it is `create` of one object:
   * exactly one of concurrent writers of an id wins, the others get 409 model_exists.
   */
  async write(id: string, obj: ModelObjectFile, { overwrite = false } = {}): Promise<ModelEntry> {
    if (!overwrite) return (await this.create([{ id, object: obj }]))[0]!;
    const { folder, file } = checkNewId(id);
    checkNewModelObject(obj, engineOf(obj));
    const dir = path.join(this.modelsDir, folder);
    await this.#ensureFolder(dir, id);
    const tmp = tempName(dir, `${file}.json`);
    try {
      await writeFile(tmp, serialize(obj), { flag: 'wx' });
      await rename(tmp, path.join(dir, `${file}.json`));
    } finally {
      await rm(tmp, { force: true });
    }
    await this.scan();
    return this.resolve(`${folder}/${file}`);
  }

  /**
   * Creates model objects, all or none: every id and object is checked first (400 naming
   * `id` or the field; nothing written), an id already taken, on disk or twice in the list,
   * is a 409 model_exists before anything is written, and each file is created exclusively
   * (a hard link of a fully written temporary file), so of concurrent creators of an id
   * exactly one wins; a loser removes whatever it had already created. Rescans once.
   */
  async create(planned: ReadonlyArray<{ id: string; object: ModelObjectFile }>): Promise<ModelEntry[]> {
    const items = planned.map((p) => {
      const { folder, file } = checkNewId(p.id);
      checkNewModelObject(p.object, engineOf(p.object));
      return { id: `${folder}/${file}`, folder, dir: path.join(this.modelsDir, folder), target: path.join(this.modelsDir, folder, `${file}.json`), object: p.object };
    });
    const twice = items.filter((it, i) => items.findIndex((o) => o.id === it.id) !== i).map((it) => it.id);
    if (twice.length > 0) {
      throw new ApiError('model_exists', `this source would create the model${twice.length > 1 ? 's' : ''} ${quoteList(twice)} more than once; nothing was written`, { param: 'id' });
    }
    const taken: string[] = [];
    for (const it of items) if (this.#entries.has(it.id) || (await lstat(it.target).catch(() => undefined))) taken.push(it.id);
    if (taken.length > 0) throw modelExists(taken);
    // The same order for every creator: the first id decides which of two racing creators wins.
    items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const createdDirs: string[] = [];
    const written: string[] = [];
    try {
      for (const dir of new Set(items.map((it) => it.dir))) {
        if (await this.#ensureFolder(dir, items.find((it) => it.dir === dir)!.id)) createdDirs.push(dir);
      }
      for (const it of items) {
        await createExclusive(it.target, serialize(it.object), it.id);
        written.push(it.target);
      }
    } catch (err) {
      for (const f of written) await rm(f, { force: true });
      for (const d of createdDirs) await rmdir(d).catch(() => undefined);
      if (written.length > 0 || createdDirs.length > 0) await this.scan().catch(() => undefined);
      throw err;
    }
    await this.scan();
    return planned.map((p) => this.resolve(p.id));
  }

  /**
   * Makes model `id` a copy of `source` (its object, changed by `edit`, in a folder of its
   * own; see planCopy): the source's binaries are hard-linked into the new folder (copied
   * where links are impossible). `param` names the request field errors point at.
   */
  async copy(source: ModelEntry, id: string, param: string, edit: (o: ModelObjectFile) => ModelObjectFile = (o) => o): Promise<ModelEntry> {
    const plan = planCopy(source);
    return this.place(id, param, edit(plan.object), plan.files);
  }

  /**
   * Makes model `id` from an object and files to put in its folder (`rel` paths under it,
   * hard-linked from `from`, or copied where links are impossible). All or nothing: a taken id
   * is a 409 before anything is made, a file of another name already at a binary's place is a
   * 409, and a failure removes what this call made.
   */
  place(id: string, param: string, object: ModelObjectFile, files: ReadonlyArray<{ from: string; rel: string }>): Promise<ModelEntry> {
    // One at a time: two places of one name would share the links the first made, and the
    // loser's clean-up would remove what the winner's object needs.
    const run = this.#placing.then(() => this.#place(id, param, object, files));
    this.#placing = run.catch(() => undefined);
    return run;
  }

  async #place(id: string, param: string, object: ModelObjectFile, files: ReadonlyArray<{ from: string; rel: string }>): Promise<ModelEntry> {
    let names: { folder: string; file: string };
    try {
      names = checkNewId(id);
    } catch (err) {
      if (err instanceof ApiError) throw new ApiError(err.code, err.message, { param });
      throw err;
    }
    const { folder, file } = names;
    checkNewModelObject(object, engineOf(object));
    const newId = `${folder}/${file}`;
    const dir = path.join(this.modelsDir, folder);
    const target = path.join(dir, `${file}.json`);
    // A taken id is the request's field that named it, not `id`.
    if (this.#entries.has(newId) || (await lstat(target).catch(() => undefined))) throw modelExists([newId], param);
    const placed: string[] = [];
    let createdDir = false;
    try {
      createdDir = await this.#ensureFolder(dir, newId);
      for (const f of files) {
        const to = path.join(dir, f.rel);
        if (!isInside(dir, to)) throw new ApiError('invalid_value', `'${f.rel}' would lie outside the model folder`, { param });
        await mkdir(path.dirname(to), { recursive: true });
        if (await placeFile(f.from, to, param)) placed.push(to);
      }
      await createExclusive(target, serialize(object), newId, param);
    } catch (err) {
      for (const f of placed) await rm(f, { force: true });
      if (createdDir) {
        // Only emptied folders go: another creator may have come to use this folder meanwhile.
        const subdirs = [...new Set(placed.map((f) => path.dirname(f)))].filter((d) => d !== dir).sort((a, b) => b.length - a.length);
        for (const d of [...subdirs, dir]) await rmdir(d).catch(() => undefined);
      }
      await this.scan().catch(() => undefined);
      throw err;
    }
    await this.scan();
    return this.resolve(newId);
  }

  /** Makes the model folder; true when this call created it. A file or a broken link in its place is a 400 naming `id`. */
  async #ensureFolder(dir: string, id: string): Promise<boolean> {
    await mkdir(this.modelsDir, { recursive: true });
    const name = path.basename(dir);
    try {
      await mkdir(dir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await stat(dir).catch(() => undefined);
    if (st?.isDirectory()) return false;
    if (!st) {
      const target = await readlink(dir).catch(() => undefined);
      throw new ApiError('invalid_model_id', `cannot create '${id}': '${name}' in the models folder is a link to ${target ?? 'a missing folder'}, which does not exist`, { param: 'id' });
    }
    throw new ApiError('invalid_model_id', `cannot create '${id}': '${name}' in the models folder is a file, not a folder`, { param: 'id' });
  }

  /**
   * Deletes a model object and the binaries the server manages inside its folder. Files
   * outside the models folder are never touched: a local `source_url` elsewhere, and the
   * files of a folder that is a link to elsewhere (links resolved) — for such a folder only
   * the link goes, when no other model object lives in it; a binary or object file another
   * model still uses stays. Answers the files it kept.
   * A model object that is an empty folder goes too; a link to a folder is only unlinked.
   * Throws 409 model_not_deletable, touching nothing, when the model cannot go without deleting
   * such files, when its object file is a folder with files in it, or when its files cannot be
   * reached (folder permissions); and, naming the file, when a removal fails part way.
   */
  async remove(entry: ModelEntry): Promise<{ kept: string[] }> {
    const plan = await this.#removal(entry);
    let current = '';
    try {
      for (const f of plan.files) {
        current = f;
        // A folder named like the object file is planned only when it was empty (see #removal).
        if (f === entry.file && (await lstat(f).catch(() => undefined))?.isDirectory()) await rmdir(f);
        else await rm(f, { force: true });
      }
      current = plan.unlink ?? '';
      if (plan.unlink) await unlink(plan.unlink);
    } catch (err) {
      // Permissions changed since the plan, or a file appeared in that folder: the table shows
      // what is left, and the answer says which file stayed and why rather than a bare 500.
      await this.scan().catch(() => undefined);
      throw new ApiError('model_not_deletable', `cannot delete '${entry.id}': ${current} cannot be removed: ${fsReason(err)}`, { param: 'model' });
    }
    if (!plan.unlink) await rmdir(entry.folder).catch(() => undefined); // only when empty
    await this.scan();
    return { kept: plan.kept };
  }

  /**
   * Throws the 409 `remove` would throw, touching nothing (call it before stopping the model).
   * `remove` works its plan out again rather than taking this one: the stop between them can
   * last the grace period, and a model created meanwhile may come to use these files.
   */
  async checkRemovable(entry: ModelEntry): Promise<void> {
    await this.#removal(entry);
  }

  async #removal(entry: ModelEntry): Promise<{ files: string[]; unlink?: string; kept: string[] }> {
    const refuse = (why: string) => new ApiError('model_not_deletable', `cannot delete '${entry.id}': ${why}`, { param: 'model' });
    if (this.#unreachable.has(entry)) {
      throw refuse(`${entry.problem?.message ?? 'its folder cannot be read'}; fix its permissions or remove the folder ${entry.folder} yourself`);
    }
    const own = await lstat(entry.file).catch((err: NodeJS.ErrnoException) => err);
    if (own instanceof Error && own.code !== 'ENOENT') {
      throw refuse(`${path.basename(entry.file)} cannot be reached: ${fsReason(own)}; fix the permissions of ${entry.folder} or remove its files yourself`);
    }
    // An empty folder goes like a file; one with files in it is never emptied: they are not
    // the server's, and nothing says what they are.
    if (!(own instanceof Error) && own.isDirectory()) {
      const inside = await readdir(entry.file).catch((err: NodeJS.ErrnoException) => err);
      if (inside instanceof Error || inside.length > 0) {
        const what = inside instanceof Error ? `a folder that cannot be read (${fsReason(inside)})` : 'a folder with files in it';
        throw refuse(`${path.basename(entry.file)} is ${what}, not a model object file, and modeld does not delete folders' contents; remove ${entry.file} yourself`);
      }
    }
    const root = await realpath(this.modelsDir);
    const others = this.list().filter((e) => e.id !== entry.id);
    // What other models use, by real location of the directory entry and of the file behind it.
    // Looked up all at once: each fs call waits for the decode on the single pool thread
    // (docs/cpu-batching.md §4), and one after another they cost seconds beside a generation.
    const used = new Set<string>();
    const locations = await Promise.all(others.flatMap((e) => [e.file, ...e.binaries.map((b) => b.path)]).map(async (p) =>
      [p, ...(await Promise.all([entryPath(p), realpath(p).catch(() => undefined)]))]));
    for (const names of locations) for (const n of names) if (n) used.add(n);
    const removable = async (p: string): Promise<boolean> => {
      const at = await entryPath(p);
      if (!isInside(root, at) || used.has(p) || used.has(at)) return false;
      // Unlinking a link never touches its target; a file itself goes only when no one else uses it.
      return (await isLink(p)) || !used.has(await realpath(p).catch(() => p));
    };
    const files: string[] = [];
    const kept: string[] = [];
    for (const b of entry.binaries) {
      if (b.managed && (await removable(b.path))) {
        files.push(b.path, `${b.path}.part`, path.join(path.dirname(b.path), `.${path.basename(b.path)}.part.json`));
      } else if (b.present) kept.push(b.path);
    }
    if (await removable(entry.file)) return { files: [...files, entry.file], kept };
    // The object file lies outside the models folder (the model folder is a link) or is shared:
    // the link in the models folder is what can go, unless other models live behind it too.
    kept.push(entry.file);
    const folderAt = await entryPath(entry.folder);
    const alone = !others.some((e) => e.folderName === entry.folderName);
    if ((await isLink(entry.folder)) && isInside(root, folderAt) && alone) return { files, unlink: entry.folder, kept };
    const real = await realpath(entry.file).catch(() => entry.file);
    const beside = others.filter((e) => e.folderName === entry.folderName).map((e) => e.id);
    const why = isInside(root, await entryPath(entry.file))
      ? `its model object ${real} is also another model's (a folder in the models folder links to its folder)`
      : `its model object lies in ${path.dirname(real)}, outside the models folder${beside.length > 0 ? `, beside ${quoteList(beside)}` : ''}, and modeld never deletes a file outside the models folder`;
    throw new ApiError('model_not_deletable', `cannot delete '${entry.id}': ${why}; remove the link ${entry.folder} or the files yourself`, { param: 'model' });
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

function checkNewId(id: string): { folder: string; file: string } {
  let parsed: { folder: string; file?: string };
  try {
    parsed = parseModelId(id);
  } catch (err) {
    if (err instanceof ApiError) throw new ApiError(err.code, err.message, { param: 'id' });
    throw err;
  }
  const { folder, file } = parsed;
  if (!file) throw new ApiError('invalid_model_id', `a new model id needs <folder>/<file>: '${id}'`, { param: 'id' });
  if (/\.json$/i.test(file)) {
    throw new ApiError('invalid_model_id', `invalid model id '${id}': an id names the model object file without '.json' ('${folder}/${file.slice(0, -5)}')`, { param: 'id' });
  }
  if (NOT_MODEL_OBJECTS.has(`${file}.json`)) {
    throw new ApiError('invalid_model_id', `invalid model id '${id}': ${file}.json is a tokenizer or config file name, which the models folder never reads as a model object; choose another name`, { param: 'id' });
  }
  for (const segment of [folder, file]) {
    const bytes = Buffer.byteLength(segment);
    if (bytes > MAX_NEW_SEGMENT_BYTES) {
      throw new ApiError('invalid_model_id', `invalid model id '${id.slice(0, 120)}…': '${segment.slice(0, 40)}…' is ${bytes} bytes; a new id's folder and file names may have at most ${MAX_NEW_SEGMENT_BYTES} (file systems allow 255, and the object's temporary and download files add to its name)`, { param: 'id' });
    }
  }
  return { folder, file };
}

/**
 * A new object's folder and file names, in UTF-8 bytes: 255 (ext4, APFS, NTFS) less what its
 * temporary write name (`.<file>.json.tmp-<pid>-<uuid>`, 55 more) and download files add.
 */
const MAX_NEW_SEGMENT_BYTES = 192;

const quoteList = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ');

function modelExists(ids: string[], param = 'id'): ApiError {
  const many = ids.length > 1;
  return new ApiError('model_exists', `the model${many ? 's' : ''} ${quoteList(ids)} already exist${many ? '' : 's'}; delete ${many ? 'them' : 'it'} or choose another id`, { param });
}

const serialize = (obj: ModelObjectFile) => JSON.stringify(obj, null, 2) + '\n';

/**
 * Creates `target` with `text`, failing with 409 when it exists. The text is written to a
 * temporary file first and hard-linked into place, so the object appears complete and at most
 * one creator succeeds; where links are not supported, an exclusive open ('wx') stands in.
 */
async function createExclusive(target: string, text: string, id: string, param = 'id'): Promise<void> {
  const tmp = tempName(path.dirname(target), path.basename(target));
  try {
    await writeFile(tmp, text, { flag: 'wx' });
    await link(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') throw modelExists([id], param);
    if (!NO_HARD_LINKS.has(code)) throw err;
    await writeFile(target, text, { flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EEXIST' ? modelExists([id], param) : e;
    });
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Names of the regular files among a folder's entries (a link counts when it leads to one). */
async function regularFiles(folder: string, dirents: Dirent[]): Promise<string[]> {
  const names = await Promise.all(
    dirents.map(async (d) => {
      if (d.isFile()) return d.name;
      if (!d.isSymbolicLink()) return undefined;
      const st = await stat(path.join(folder, d.name)).catch(() => undefined);
      return st?.isFile() ? d.name : undefined;
    }),
  );
  return names.filter((n): n is string => n !== undefined);
}

/**
 * Where the directory entry `p` really lies: its parent folder with every link resolved, plus
 * its own name (a link itself is not followed: unlinking it touches only that folder). A
 * missing parent is resolved through its nearest existing ancestor.
 */
async function entryPath(p: string): Promise<string> {
  const parent = path.dirname(p);
  const real = await realpath(parent).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT' || parent === path.dirname(parent)) return parent;
    return entryPath(parent);
  });
  return path.join(real, path.basename(p));
}

async function isLink(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isSymbolicLink() ?? false;
}

/** The engine a new object will run on, for checking its parameters. */
function engineOf(obj: ModelObjectFile): EngineName {
  const declared = obj.metadata?.engine;
  if (declared && (ENGINE_NAMES as readonly string[]).includes(declared)) return declared;
  const first = obj.metadata?.binaries?.[0];
  return inferEngine(first?.path ?? first?.url ?? obj.source_url);
}

export function inferEngine(file: string | undefined): EngineName {
  return file && /\.onnx(\?|$)/i.test(file) ? 'onnx' : 'llamacpp';
}
