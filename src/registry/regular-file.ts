import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** A path that names something other than a regular file (a FIFO, a device, a socket, a folder). */
export class NotRegularFileError extends Error {
  constructor(
    readonly file: string,
    readonly stats: Stats,
  ) {
    super(`${path.basename(file)} is a ${specialKind(stats)}, not a regular file`);
  }
}

/**
 * Opens `file` for reading only if it is a regular file, and answers the handle with its Stats.
 *
 * The open is non-blocking and the type is checked on the handle, not on the path: a file
 * swapped for a FIFO after any earlier stat cannot block the open (an ordinary open of a FIFO
 * waits for a writer, holding a libuv pool thread, and modeld runs with one), and what is read
 * is the inode that was checked. O_NONBLOCK changes nothing for reads of a regular file.
 * Throws NotRegularFileError, or the open's own error (ENOENT, EACCES, ...).
 */
export async function openRegularFile(file: string): Promise<{ handle: FileHandle; stats: Stats }> {
  const handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new NotRegularFileError(file, stats);
    return { handle, stats };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Runs `read` on `file` opened by openRegularFile, closing the handle after it settles. */
export async function withRegularFile<T>(file: string, read: (handle: FileHandle, stats: Stats) => Promise<T>): Promise<T> {
  const { handle, stats } = await openRegularFile(file);
  try {
    return await read(handle, stats);
  } finally {
    await handle.close();
  }
}

/**
 * openRegularFile's checks without the pool (see fs-now.ts for why): opened non-blocking, the
 * type checked on the descriptor, then `use` runs on it and the descriptor is closed.
 */
function withRegularFileNow<T>(file: string, use: (fd: number, stats: Stats) => T): T {
  const fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new NotRegularFileError(file, stats);
    return use(fd, stats);
  } finally {
    closeSync(fd);
  }
}

/** A regular file's Stats, checked as openRegularFile checks them, without the pool. */
export function regularFileStats(file: string): Stats {
  return withRegularFileNow(file, (_fd, stats) => stats);
}

/** A small regular file's text (a model object), read as openRegularFile reads, without the pool. */
export function readSmallRegularFile(file: string): string {
  return withRegularFileNow(file, (fd) => readFileSync(fd, 'utf8'));
}

export function specialKind(st: Stats): string {
  if (st.isFIFO()) return 'FIFO (named pipe)';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isDirectory()) return 'folder';
  return 'special file';
}

/**
 * Why a file operation failed, in words a user acts on ("permission denied (EACCES)"), without
 * the path and system call Node puts in the message: the problem names the file itself.
 */
export function fsReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const words = /^[A-Z0-9_]+: (.+?), [a-z_]+(?: '.*')?$/s.exec(e?.message ?? '')?.[1];
  if (words && e.code) return `${words} (${e.code})`;
  return e?.message ?? String(err);
}
