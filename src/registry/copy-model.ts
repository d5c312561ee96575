import { constants } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../errors.ts';
import { isRemote, type BinaryRef } from './binaries.ts';
import { link, rename, rm, stat } from './fs-now.ts';
import type { ModelObjectFile } from './model-object-schema.ts';
import { NO_HARD_LINKS, tempName } from './temp-files.ts';

/** What a copy of a model object needs: the new object, and the source's files to place in the new folder. */
export interface CopyPlan {
  object: ModelObjectFile;
  /** Binaries the server keeps in the source folder, by absolute path, and where they go under the new folder. */
  files: Array<{ from: string; rel: string }>;
}

/**
 * Plans a copy of a model object into another folder: files the source keeps in its own folder
 * are placed at the same relative paths in the new one (so a deleted source leaves the copy
 * whole), files outside it stay shared and are named by absolute path, and remote URLs stay as
 * they are (a copy of a model not yet downloaded downloads into its own folder).
 */
export function planCopy(source: { folder: string; object: ModelObjectFile; binaries: readonly BinaryRef[] }): CopyPlan {
  const object: ModelObjectFile = structuredClone(source.object);
  const files = source.binaries.filter((b) => b.managed && b.present).map((b) => ({ from: b.path, rel: path.relative(source.folder, b.path) }));
  const where = (b: BinaryRef) => (b.managed ? `./${path.relative(source.folder, b.path).split(path.sep).join('/')}` : b.path);
  const listed = object.metadata?.binaries;
  if (listed && listed.length > 0) {
    listed.forEach((entry, i) => {
      const b = source.binaries[i];
      if (b && entry.path) entry.path = where(b);
    });
  } else if (!isRemote(object.source_url) && source.binaries[0]) {
    // A local path, or the binary the folder holds: named explicitly, as the new folder may hold others.
    object.source_url = where(source.binaries[0]);
  }
  // The copy is a model of its own: a hub name (`hf.co/<org>/<repo>`) keeps meaning the pulled one.
  if (object.metadata && 'repository' in object.metadata) delete (object.metadata as Record<string, unknown>).repository;
  return { object, files };
}

/**
 * Puts `from` at `to` as a hard link (instant, no extra disk; deleting either name leaves the
 * other), or, where links are not possible, as a copy written under a temporary name first, so
 * a copy cut short never looks complete. Resolves false when `to` already is that same file.
 */
export async function placeFile(from: string, to: string, param: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') {
      const [a, b] = await Promise.all([stat(from), stat(to)]);
      if (a.ino === b.ino && a.dev === b.dev) return false;
      throw new ApiError('model_exists', `${to} already exists and is another file; choose another name`, { param });
    }
    if (!NO_HARD_LINKS.has(code)) throw err;
  }
  const tmp = tempName(path.dirname(to), path.basename(to));
  try {
    await copyFile(from, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    await stat(to).then(
      () => { throw new ApiError('model_exists', `${to} already exists; choose another name`, { param }); },
      () => undefined,
    );
    await rename(tmp, to);
    return true;
  } finally {
    await rm(tmp, { force: true });
  }
}
