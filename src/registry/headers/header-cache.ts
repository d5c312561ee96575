import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { openRegularFile } from '../regular-file.ts';
import { readGgufHeaderFrom } from './gguf-header.ts';
import { readOnnxHeaderFrom } from './onnx-header.ts';

export type HeaderResult = { ok: true; header: Record<string, unknown> } | { ok: false; error: string };

/**
 * Header reads cached by inode + size + mtime, so listing and rescans stay fast and an edited
 * or replaced binary is read again.
 */
export class HeaderCache {
  readonly #cache = new Map<string, { key: string; result: Promise<HeaderResult> }>();

  /**
   * Answers `ok: false` for a file whose header does not parse; throws when the file cannot be
   * opened (ENOENT, EACCES, ...) or is not a regular file (NotRegularFileError).
   */
  async read(file: string): Promise<HeaderResult> {
    // The stat that keys the cache and the read both go through one handle of a checked
    // regular file: a FIFO swapped in for the binary between them cannot block the read.
    const { handle, stats } = await openRegularFile(file);
    try {
      const key = `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
      const hit = this.#cache.get(file);
      if (hit && hit.key === key) return await hit.result;
      const result = readHeader(handle, file, stats).then(
        (header): HeaderResult => ({ ok: true, header: { ...header, size: stats.size } }),
        (err): HeaderResult => ({ ok: false, error: (err as Error).message }),
      );
      this.#cache.set(file, { key, result });
      return await result;
    } finally {
      await handle.close();
    }
  }
}

function readHeader(handle: FileHandle, file: string, stats: Stats): Promise<Record<string, unknown>> {
  if (/\.gguf$/i.test(file)) return readGgufHeaderFrom(handle, stats.size);
  if (/\.onnx$/i.test(file)) return readOnnxHeaderFrom(handle);
  return Promise.resolve({});
}
