import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from '../errors.ts';
import { ensureFreeSpace } from './disk-space.ts';
import { discardPart, partPathOf, readPartRecord, sidecarPathOf, writePartRecord, type PartRecord } from './part-files.ts';
import { FILE_IO_BYTES, PartWriter } from './part-writer.ts';

export interface FileDownloadOptions {
  /** Where the bytes come from (http or https; redirects are followed). */
  url: string;
  /** Final absolute path. Bytes go to `<dest>.part` and are renamed into place once verified. */
  dest: string;
  /** Expected sha256 (hex); the file is never renamed into place when it differs. */
  sha256?: string;
  /** Expected size, bytes; checked against the server's answer before writing and after. */
  size?: number;
  /** Extra request headers (an Authorization for the hub, say). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Called after each write with the bytes in the part file and the expected total, when known. */
  onProgress?: (bytes: number, total: number | undefined) => void;
  /**
   * Failed attempts in a row before giving up; an attempt that got further into the file than any
   * before it resets the count (fetching again bytes already held once does not). Default 5.
   */
  retries?: number;
  /** First back-off delay, ms; doubled after each failure, capped at 30 s. Default 500. */
  backoffMs?: number;
}

export interface FileDownloadResult {
  bytes: number;
  sha256: string;
}

/** A failure that a retry cannot mend: it ends the download at once. */
class Fatal extends Error {
  /** @param discard the part holds wrong bytes and must go (a mismatch), rather than wait for a resume. */
  constructor(readonly error: ApiError, readonly discard = false) {
    super(error.message);
  }
}

interface ContentRange {
  start: number;
  total?: number;
}

function parseContentRange(v: string | null): ContentRange | undefined {
  const m = v?.match(/^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i);
  if (!m) return undefined;
  return { start: Number(m[1]), ...(m[3] !== '*' ? { total: Number(m[3]) } : {}) };
}

/** The complete length a 416 names (`Content-Range: bytes *\/N`), when it does. */
function unsatisfiedTotal(v: string | null): number | undefined {
  const m = v?.match(/^bytes\s+\*\/(\d+)$/i);
  return m ? Number(m[1]) : undefined;
}

/**
 * Destinations being written by a `downloadFile` call in this process. Two writers of one part
 * file would mix their bytes (each hashes its own stream, not the file), so a second call for
 * the same destination is refused; callers share one transfer per file (the download manager does).
 */
const inFlight = new Set<string>();

/** The validator for `If-Range`: a strong ETag, else Last-Modified (weak ETags are not allowed there). */
function validatorOf(record: PartRecord | undefined): string | undefined {
  if (record?.etag && !record.etag.startsWith('W/')) return record.etag;
  return record?.last_modified;
}

async function hashExisting(file: string, signal?: AbortSignal): Promise<{ hash: Hash; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(file, { signal, highWaterMark: FILE_IO_BYTES })) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { hash, bytes };
}

function httpFailure(res: Response, url: string): Fatal | Error {
  const what = `GET ${url} answered HTTP ${res.status}`;
  if (res.status === 404 || res.status === 410) return new Fatal(new ApiError('source_not_found', `${what}: the file does not exist there`, { param: 'source_url' }));
  if (res.status === 401 || res.status === 403) {
    return new Fatal(new ApiError('source_access_denied', `${what}: access denied (a gated or private repository needs HF_TOKEN with access to it)`, { param: 'source_url' }));
  }
  if (res.status === 408 || res.status === 429 || res.status >= 500) return new Error(what);
  return new Fatal(new ApiError('download_failed', what, { param: 'source_url' }));
}

/**
 * Downloads one file so that no byte is lost and no half file ever looks complete: streamed to
 * `<dest>.part` with the sha256 computed while writing, resumed with `Range` + `If-Range`
 * (after a dropped connection, or after a restart from what the part file and its sidecar
 * hold — re-hashing the part first), retried with exponential back-off on network errors and
 * 5xx, then size- and hash-checked and renamed into place. A mismatch deletes the part.
 */
export async function downloadFile(o: FileDownloadOptions): Promise<FileDownloadResult> {
  const key = path.resolve(o.dest);
  if (inFlight.has(key)) {
    throw new ApiError('download_failed', `${path.basename(o.dest)} is already being downloaded to ${o.dest}; one transfer per file at a time`, { param: 'metadata.binaries' });
  }
  inFlight.add(key);
  try {
    return await transfer(o);
  } finally {
    inFlight.delete(key);
  }
}

async function transfer(o: FileDownloadOptions): Promise<FileDownloadResult> {
  const name = path.basename(o.dest);
  const part = partPathOf(o.dest);
  const expectedSha = o.sha256?.toLowerCase();
  const retries = o.retries ?? 5;
  const backoffMs = o.backoffMs ?? 500;

  let record = await readPartRecord(o.dest);
  const partExists = await stat(part).then(() => true, () => false);
  const stale =
    !record ||
    record.url !== o.url ||
    (expectedSha !== undefined && record.sha256 !== undefined && record.sha256 !== expectedSha) ||
    (o.size !== undefined && record.total_bytes !== undefined && record.total_bytes !== o.size);
  if (partExists && stale) {
    // Bytes from another source (or of unknown origin) must not be mixed with these.
    await discardPart(o.dest);
    record = undefined;
  }
  let { hash, bytes } = await hashExisting(part, o.signal);
  let total = o.size ?? record?.total_bytes;
  let failures = 0;
  let lastError = '';
  // The furthest the part ever reached: only bytes past it are progress. Fetching again bytes
  // already held once (after a restart from zero) does not reset the failure count, or a source
  // that always fails at the same offset would be retried forever.
  let highWater = bytes;

  const restart = () => {
    hash = createHash('sha256');
    bytes = 0;
  };
  const fail = async (message: string) => {
    lastError = message;
    const madeProgress = bytes > highWater;
    highWater = Math.max(highWater, bytes);
    failures = madeProgress ? 1 : failures + 1;
    if (failures > retries) {
      throw new ApiError('download_failed', `downloading ${name} from ${o.url} failed after ${retries + 1} attempts: ${lastError}`, { param: 'source_url' });
    }
    await sleep(Math.min(backoffMs * 2 ** (failures - 1), 30_000), undefined, { signal: o.signal });
  };

  try {
    for (;;) {
      o.signal?.throwIfAborted();
      if (total !== undefined && bytes > total) restart();
      o.onProgress?.(bytes, total);
      if (total !== undefined && bytes === total && bytes > 0) break;

      const headers: Record<string, string> = { 'accept-encoding': 'identity', ...o.headers };
      if (bytes > 0) {
        headers.range = `bytes=${bytes}-`;
        const v = validatorOf(record);
        if (v) headers['if-range'] = v;
      }
      let res: Response;
      try {
        res = await fetch(o.url, { headers, signal: o.signal, redirect: 'follow' });
      } catch (err) {
        if (o.signal?.aborted) throw err;
        await fail(errorText(err));
        continue;
      }

      if (res.status === 416) {
        await res.body?.cancel().catch(() => undefined);
        // Nothing past our offset: either the part is whole (verify it) or it is not of this file.
        if (total !== undefined && bytes === total) break;
        const actualTotal = unsatisfiedTotal(res.headers.get('content-range'));
        if (actualTotal !== undefined && actualTotal === bytes && total !== undefined) {
          // We hold every byte the source has, yet it announced (or the model object says) more:
          // its size does not match what it sends. Retrying would fetch the same short file again.
          throw new Fatal(
            new ApiError(
              'checksum_mismatch',
              `size mismatch for ${name}: ${o.url} announced ${total} bytes but has ${actualTotal} (its Content-Length does not match what it sends); the partial file was deleted`,
              { param: 'metadata.binaries' },
            ),
            true,
          );
        }
        const at = bytes;
        restart();
        await fail(`HTTP 416 for a range from byte ${at}${actualTotal !== undefined ? ` (the file has ${actualTotal} bytes)` : ''}`);
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        const f = httpFailure(res, o.url);
        if (f instanceof Fatal) throw f;
        await fail(f.message);
        continue;
      }
      let announced: number | undefined;
      const length = res.headers.get('content-length');
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'));
        if (!cr || cr.start !== bytes) {
          await res.body?.cancel().catch(() => undefined);
          restart();
          await fail(`the server answered a range from byte ${cr?.start ?? '?'} to a request from byte ${bytes}`);
          continue;
        }
        announced = cr.total ?? (length !== null ? bytes + Number(length) : undefined);
      } else {
        // 200: the server ignored the range, or the file changed since the part was started.
        restart();
        announced = length !== null ? Number(length) : undefined;
      }
      if (o.size !== undefined && announced !== undefined && announced !== o.size) {
        await res.body?.cancel().catch(() => undefined);
        throw new Fatal(new ApiError('checksum_mismatch', `size mismatch for ${name}: the model object says ${o.size} bytes but ${o.url} serves ${announced}`, { param: 'metadata.binaries' }), true);
      }
      total = o.size ?? announced;
      record = {
        url: o.url,
        ...(res.headers.get('etag') ? { etag: res.headers.get('etag')! } : {}),
        ...(res.headers.get('last-modified') ? { last_modified: res.headers.get('last-modified')! } : {}),
        ...(total !== undefined ? { total_bytes: total } : {}),
        ...(expectedSha ? { sha256: expectedSha } : {}),
      };
      if (total !== undefined) {
        try {
          await ensureFreeSpace(path.dirname(o.dest), total - bytes, name);
        } catch (err) {
          await res.body?.cancel().catch(() => undefined);
          throw err;
        }
      }
      // A binary path may name a subfolder of the model folder (checked to stay inside it by the caller).
      await mkdir(path.dirname(o.dest), { recursive: true });
      await writePartRecord(o.dest, record);

      const fh = await open(part, bytes === 0 ? 'w' : 'a');
      let networkError: unknown;
      const reader = res.body!.getReader();
      const writer = new PartWriter(fh, name);
      try {
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (err) {
            networkError = err;
            break;
          }
          if (chunk.done) break;
          await writer.add(chunk.value);
          hash.update(chunk.value);
          bytes += chunk.value.length;
          if (total !== undefined && bytes > total) {
            await reader.cancel().catch(() => undefined);
            throw new Fatal(new ApiError('checksum_mismatch', `size mismatch for ${name}: ${o.url} sent more than the expected ${total} bytes; the partial file was deleted`, { param: 'metadata.binaries' }), true);
          }
          o.onProgress?.(bytes, total);
        }
        // What came before a dropped connection or an abort is kept: the next try resumes after it.
        await writer.flush();
        await fh.sync();
      } catch (err) {
        // A failed write (disk full) must not leave the response body and its socket open.
        await reader.cancel().catch(() => undefined);
        throw err;
      } finally {
        await writer.close();
        await fh.close();
      }
      if (o.signal?.aborted) throw o.signal.reason;
      if (networkError !== undefined) {
        await fail(`${errorText(networkError)} after ${bytes} of ${total ?? 'an unknown number of'} bytes`);
        continue;
      }
      if (total === undefined) {
        total = bytes;
        break;
      }
      if (bytes === total) break;
      // The body ended cleanly but short: the connection was closed early.
      await fail(`the connection closed after ${bytes} of ${total} bytes`);
    }
  } catch (err) {
    if (err instanceof Fatal) {
      if (err.discard) await discardPart(o.dest);
      throw err.error;
    }
    throw err;
  }

  const actual = hash.digest('hex');
  if (total !== undefined && bytes !== total) {
    await discardPart(o.dest);
    throw new ApiError('checksum_mismatch', `size mismatch for ${name}: expected ${total} bytes, got ${bytes}; the partial file was deleted`, { param: 'metadata.binaries' });
  }
  if (expectedSha && actual !== expectedSha) {
    await discardPart(o.dest);
    throw new ApiError('checksum_mismatch', `sha256 mismatch for ${name}: expected ${expectedSha}, got ${actual}; the partial file was deleted`, { param: 'metadata.binaries' });
  }
  await rename(part, o.dest);
  await rm(sidecarPathOf(o.dest), { force: true });
  o.onProgress?.(bytes, bytes);
  return { bytes, sha256: actual };
}

function errorText(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  const cause = e.cause ? `: ${e.cause.code ?? e.cause.message}` : '';
  return `${e.message}${cause}`;
}
