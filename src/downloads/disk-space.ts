import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../errors.ts';

/** Bytes kept free beyond what a download needs, so the disk never fills to the last block. */
export const DISK_HEADROOM_BYTES = 64 * 1024 * 1024;

/** Free bytes available to this user on the file system that holds `dir` (or its nearest existing parent). */
export async function freeBytes(dir: string): Promise<number> {
  let p = path.resolve(dir);
  for (;;) {
    try {
      const s = await statfs(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch (err) {
      const parent = path.dirname(p);
      if (parent === p || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      p = parent;
    }
  }
}

/** Throws 507 insufficient_storage naming the need and the free space when `needed` bytes will not fit in `dir`. */
export async function ensureFreeSpace(dir: string, needed: number, what: string, verb = 'download', param = 'model'): Promise<void> {
  if (needed <= 0) return;
  const free = await freeBytes(dir);
  if (free < needed + DISK_HEADROOM_BYTES) {
    throw new ApiError(
      'insufficient_storage',
      `not enough disk space to ${verb} ${what}: it needs ${formatBytes(needed)} and ${dir} has ${formatBytes(free)} free`,
      { param },
    );
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
