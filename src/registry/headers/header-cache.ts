import { stat } from 'node:fs/promises';
import { readGgufHeader } from './gguf-header.ts';
import { readOnnxHeader } from './onnx-header.ts';

export type HeaderResult = { ok: true; header: Record<string, unknown> } | { ok: false; error: string };

/**
 * Header reads cached by path + size + mtime, so listing and rescans stay fast and an edited
 * or replaced binary is read again.
 */
export class HeaderCache {
  readonly #cache = new Map<string, { key: string; result: Promise<HeaderResult> }>();

  async read(file: string): Promise<HeaderResult> {
    const st = await stat(file);
    // A FIFO or device named *.gguf would block the reader (and the libuv pool thread) forever.
    if (!st.isFile()) return { ok: false, error: 'not a regular file' };
    const key = `${st.size}:${st.mtimeMs}`;
    const hit = this.#cache.get(file);
    if (hit && hit.key === key) return hit.result;
    const result = readHeader(file).then(
      (header): HeaderResult => ({ ok: true, header: { ...header, size: st.size } }),
      (err): HeaderResult => ({ ok: false, error: (err as Error).message }),
    );
    this.#cache.set(file, { key, result });
    return result;
  }
}

function readHeader(file: string): Promise<Record<string, unknown>> {
  if (/\.gguf$/i.test(file)) return readGgufHeader(file);
  if (/\.onnx$/i.test(file)) return readOnnxHeader(file);
  return Promise.resolve({});
}
