import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ensureFreeSpace } from '../downloads/disk-space.ts';
import { ApiError } from '../errors.ts';

/** `sha256:<hex>` (Ollama's form) or `sha256-<hex>` (its file names); the hex in lower case. */
export function parseDigest(digest: string, param: string): string {
  const m = /^sha256[:-]([0-9a-fA-F]{64})$/.exec(digest);
  if (!m) throw new ApiError('invalid_value', `'${digest.slice(0, 80)}' is not a digest: expected sha256:<64 hex digits>`, { param });
  return m[1]!.toLowerCase();
}

/**
 * Files uploaded by content digest (Ollama's `/api/blobs`), kept in `<models>/.blobs` (hidden
 * from the model scan) until a model is made of them. A blob is written under a temporary
 * name and renamed only once its bytes hash to the digest it was sent under, so a cut or
 * wrong upload never leaves a file that looks complete.
 */
export class BlobStore {
  readonly dir: string;

  constructor(modelsDir: string) {
    this.dir = path.join(modelsDir, '.blobs');
  }

  pathOf(hex: string): string {
    return path.join(this.dir, `sha256-${hex}`);
  }

  async has(hex: string): Promise<boolean> {
    return (await stat(this.pathOf(hex)).catch(() => undefined))?.isFile() ?? false;
  }

  /**
   * Streams `body` into the blob `hex`; a body whose sha256 differs is a 400 and leaves nothing.
   * A declared `length` the disk cannot hold is a 507 before a byte is written; a disk that
   * fills up meanwhile is one too.
   */
  async put(hex: string, body: Readable, param: string, length?: number): Promise<{ size: number; existed: boolean }> {
    await mkdir(this.dir, { recursive: true });
    if (length !== undefined) await ensureFreeSpace(this.dir, length, `sha256:${hex}`, 'store', param);
    const tmp = path.join(this.dir, `.upload-${randomUUID()}`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, tap, createWriteStream(tmp, { flags: 'wx' })).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOSPC' ? new ApiError('insufficient_storage', `the disk filled up while storing sha256:${hex} (${size} bytes written)`, { param }) : err;
      });
      const got = hash.digest('hex');
      if (got !== hex) {
        throw new ApiError('invalid_value', `the body's sha256 is ${got}, not the digest it was sent under (sha256:${hex}); nothing was kept`, { param });
      }
      const existed = await this.has(hex);
      if (!existed) await rename(tmp, this.pathOf(hex));
      return { size, existed };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Removes what uploads cut short by a crash left: temporary files not written to for
   * `idleMs` (an upload in progress, of this server or another on the same folder, keeps
   * writing to its own). Resolves with how many went.
   */
  async sweep(idleMs = 10 * 60_000): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names.filter((n) => n.startsWith('.upload-'))) {
      const file = path.join(this.dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > idleMs) {
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Forgets a blob once a model holds it (a hard link keeps the bytes). */
  async remove(hex: string): Promise<void> {
    await rm(this.pathOf(hex), { force: true });
  }
}
