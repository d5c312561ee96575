import type { FileHandle } from 'node:fs/promises';
import { ApiError } from '../errors.ts';

/**
 * Bytes gathered before one write to a part file (and read at once when re-hashing one).
 * File I/O runs on libuv's pool, which modeld keeps at one thread that also runs every decode
 * (docs/cpu-batching.md §4): each I/O waits for the decode in progress. Written a network chunk
 * (~16 KB) at a time, a download ran at 1.4 MB/s beside 4 generating streams against 100 MB/s
 * idle; a few MiB per write makes that wait negligible.
 */
export const FILE_IO_BYTES = 8 * 1024 * 1024;
/** How long received bytes may wait in memory for more before they are written anyway. */
const HELD_MS = 200;

/**
 * Appends a download's bytes to its part file in batches: chunks wait until FILE_IO_BYTES have
 * come, or the oldest of them has waited HELD_MS (so a stalled connection still leaves what
 * came on disk, and a crash loses at most that), then go out in one `writev`. Writes run one
 * after another; after a failed one nothing more is written, since a later batch would leave
 * a gap in the part. Failures are ApiErrors: insufficient_storage or download_failed.
 */
export class PartWriter {
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #heldSince = 0;
  #writing = Promise.resolve();
  #error: unknown;
  readonly #quiet: NodeJS.Timeout;

  constructor(
    private readonly fh: FileHandle,
    private readonly name: string,
  ) {
    this.#quiet = setInterval(() => {
      if (this.#heldBytes > 0 && performance.now() - this.#heldSince >= HELD_MS) this.flush().catch(() => undefined);
    }, HELD_MS);
  }

  /** Takes a chunk; writes the batch once it is full. Throws an earlier write's failure. */
  async add(chunk: Uint8Array): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (this.#heldBytes === 0) this.#heldSince = performance.now();
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= FILE_IO_BYTES) await this.flush();
  }

  /** Writes what is held; resolves when every write so far is done, or throws the first failure. */
  flush(): Promise<void> {
    if (this.#heldBytes > 0 && this.#error === undefined) {
      const chunks = this.#held;
      this.#held = [];
      this.#heldBytes = 0;
      this.#writing = this.#writing
        .then(() => (this.#error === undefined ? this.#write(chunks) : undefined))
        .catch((err: unknown) => {
          this.#error ??= err;
        });
    }
    return this.#writing.then(() => {
      if (this.#error !== undefined) throw this.#error;
    });
  }

  /** Stops the timer and waits for a write in flight (the handle may be closed after); never throws. */
  async close(): Promise<void> {
    clearInterval(this.#quiet);
    await this.#writing;
  }

  async #write(chunks: Uint8Array[]): Promise<void> {
    const want = chunks.reduce((n, c) => n + c.length, 0);
    let written: number;
    try {
      ({ bytesWritten: written } = await this.fh.writev(chunks));
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === 'ENOSPC'
        ? new ApiError('insufficient_storage', `the disk filled up while writing ${this.name}`, { param: 'model' })
        : new ApiError('download_failed', `cannot write ${this.name}: ${(err as Error).message}`, { param: 'model' });
    }
    // A write cut short (the disk filled part way) reports how much it wrote, not an error.
    if (written !== want) {
      throw new ApiError('insufficient_storage', `the disk filled up while writing ${this.name} (${written} of ${want} bytes written)`, { param: 'model' });
    }
  }
}
