import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { regularFileStats, withRegularFile } from '../regular-file.ts';
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
    // Keyed without the pool (see fs-now.ts): a rescan beside a generation reads no binary again.
    const key = keyOf(regularFileStats(file));
    const hit = this.#cache.get(file);
    if (hit && hit.key === key) return hit.result;
    // The read goes through one handle of a checked regular file: a FIFO swapped in for the
    // binary since the stat cannot block it. What it read is remembered under its own key.
    const entry = { key, result: undefined as unknown as Promise<HeaderResult> };
    const result = withRegularFile(file, (handle, st) => {
      entry.key = keyOf(st);
      return readHeader(handle, file, st).then(
        (header): HeaderResult => ({ ok: true, header: { ...header, size: st.size } }),
        (err): HeaderResult => ({ ok: false, error: (err as Error).message }),
      );
    });
    entry.result = result;
    this.#cache.set(file, entry);
    // A file that could not be opened after all is not remembered.
    result.catch(() => {
      if (this.#cache.get(file)?.result === result) this.#cache.delete(file);
    });
    return result;
  }
}

function keyOf(stats: Stats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

function readHeader(handle: FileHandle, file: string, stats: Stats): Promise<Record<string, unknown>> {
  if (/\.gguf$/i.test(file)) return readGgufHeaderFrom(handle, stats.size);
  if (/\.onnx$/i.test(file)) return readOnnxHeaderFrom(handle);
  return Promise.resolve({});
}
