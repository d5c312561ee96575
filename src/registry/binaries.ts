import path from 'node:path';
import { expandHome } from '../config/config.ts';
import { readdir, stat } from './fs-now.ts';
import type { BinaryFile, ModelObjectFile } from './model-object-schema.ts';
import { fsReason } from './regular-file.ts';

export interface BinaryRef {
  /** Absolute local path where the file is or will be. */
  path: string;
  /** Remote source, when the file is (or was) downloaded. */
  url?: string;
  sha256?: string;
  size?: number;
  mime_type?: string;
  /** Inside the model folder, so the server may delete it with the model. */
  managed: boolean;
  present: boolean;
}

/** A binary the model object names that cannot be used, naming the field that names it. */
export class BinaryFieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export const BINARY_EXTENSIONS = ['.gguf', '.onnx'];

export function isRemote(url: string | undefined): url is string {
  return !!url && /^https?:\/\//i.test(url);
}

/** Hugging Face `blob` page URLs serve HTML; `resolve` serves the file. */
export function toResolveUrl(url: string): string {
  return url.replace(/^(https?:\/\/[^/]+\/[^/]+\/[^/]+)\/blob\//, '$1/resolve/');
}

function fileNameOfUrl(url: string): string {
  const u = new URL(url);
  return decodeURIComponent(path.posix.basename(u.pathname)) || 'model.bin';
}

/** True when `p` lies strictly inside `dir` (never the folder itself, never outside). */
export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function localPath(folder: string, p: string): string {
  return path.resolve(folder, expandHome(p));
}


/**
 * Works out the binaries a model object refers to: `metadata.binaries`, else `source_url`
 * (a URL downloads into the folder; a local path is used where it lies), else the binary in
 * the folder named like the object file, else the folder's only binary.
 */
export async function resolveBinaries(
  folder: string,
  objectFile: string,
  obj: ModelObjectFile,
  folderBinaries: string[],
): Promise<BinaryRef[]> {
  const make = async (b: BinaryFile, field: string): Promise<BinaryRef> => {
    const url = isRemote(b.url) ? toResolveUrl(b.url) : undefined;
    if (!b.path && !url) {
      throw new BinaryFieldError(field, b.url ? `needs a path or an http(s) url, got url ${JSON.stringify(b.url)}` : 'needs a path or an http(s) url');
    }
    const target = b.path ? localPath(folder, b.path) : path.join(folder, fileNameOfUrl(url!));
    // Only a regular file is a binary: a folder, a FIFO or a device would fail (or block) its reader.
    const st = await stat(target).catch((err: NodeJS.ErrnoException) => err);
    // Missing is "not downloaded"; unreachable (EACCES) is not: a download could not fix it.
    if (st instanceof Error && st.code !== 'ENOENT') throw new BinaryFieldError(field, `${target} cannot be read: ${fsReason(st)}`);
    if (!(st instanceof Error) && !st.isFile()) throw new BinaryFieldError(field, `${target} is not a regular file`);
    return {
      path: target,
      ...(url ? { url } : {}),
      ...(b.sha256 ? { sha256: b.sha256.toLowerCase() } : {}),
      ...(b.size !== undefined ? { size: b.size } : {}),
      ...(b.mime_type ? { mime_type: b.mime_type } : {}),
      managed: isInside(folder, target),
      present: !(st instanceof Error),
    };
  };
  const listed = obj.metadata?.binaries;
  if (listed && listed.length > 0) return Promise.all(listed.map((b, i) => make(b, `metadata.binaries[${i}]`)));
  const src = obj.source_url;
  if (isRemote(src)) return [await make({ url: src }, 'source_url')];
  if (src && src !== '.' && src !== './') {
    const p = localPath(folder, src);
    const st = await stat(p).catch(() => undefined);
    if (!st?.isDirectory()) return [await make({ path: p }, 'source_url')];
    const inDir = (await readdir(p, { withFileTypes: true })).filter((d) => !d.isDirectory() && isBinaryName(d.name)).map((d) => path.join(p, d.name));
    const chosen = pickBinary(objectFile, inDir);
    return chosen ? [await make({ path: chosen }, 'source_url')] : [];
  }
  // LoRA adapters the `lora` run parameter names lie beside the model; they are not its binary.
  const adapters = new Set(loraFiles(obj.parameters).map((n) => localPath(folder, n)));
  const chosen = pickBinary(objectFile, folderBinaries.filter((f) => !adapters.has(path.resolve(folder, f))));
  return chosen ? [await make({ path: chosen }, 'source_url')] : [];
}

/**
 * The adapter files a model object's `lora` run parameter names, as written (one name or a
 * list, as the descriptor's string_array takes them); not yet checked against the descriptors.
 */
export function loraFiles(parameters: Record<string, unknown> | undefined): string[] {
  const lora = parameters?.lora;
  return (Array.isArray(lora) ? lora : [lora]).filter((n): n is string => typeof n === 'string');
}

export function isBinaryName(name: string): boolean {
  return BINARY_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** The binary named like the object file, else the only one. */
function pickBinary(objectFile: string, binaries: string[]): string | undefined {
  const base = path.basename(objectFile, '.json');
  return binaries.find((f) => path.basename(f, path.extname(f)) === base) ?? (binaries.length === 1 ? binaries[0] : undefined);
}
