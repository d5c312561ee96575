import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What a restarted server needs to resume a partial download: where the bytes came from and
 * the validator to send with `If-Range`. Kept in a hidden sidecar beside the part file so the
 * registry (which skips dot files and `*.part`) never sees either.
 */
export interface PartRecord {
  url: string;
  /** Strong ETag of the response the part was started from. */
  etag?: string;
  last_modified?: string;
  /** Bytes of the whole file, when the server or the model object said so. */
  total_bytes?: number;
  /** The checksum the finished file must have, when known. */
  sha256?: string;
}

export function partPathOf(dest: string): string {
  return `${dest}.part`;
}

export function sidecarPathOf(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.part.json`);
}

export async function readPartRecord(dest: string): Promise<PartRecord | undefined> {
  try {
    const raw = JSON.parse(await readFile(sidecarPathOf(dest), 'utf8')) as PartRecord;
    return typeof raw?.url === 'string' ? raw : undefined;
  } catch {
    return undefined;
  }
}

let tmpCounter = 0;

/** A temp name no other write uses: the pid tells processes apart, the counter writes within one. */
function tmpPathOf(file: string): string {
  return `${file}.tmp-${process.pid}-${++tmpCounter}`;
}

export async function writePartRecord(dest: string, record: PartRecord): Promise<void> {
  const file = sidecarPathOf(dest);
  const tmp = tmpPathOf(file);
  try {
    await writeFile(tmp, JSON.stringify(record) + '\n');
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Removes the part file and its sidecar. */
export async function discardPart(dest: string): Promise<void> {
  await rm(partPathOf(dest), { force: true });
  await rm(sidecarPathOf(dest), { force: true });
}

/**
 * Synchronous look at a partial download (for the model view, which is synchronous): bytes
 * on disk and the expected total from the sidecar. Undefined when there is no part file.
 */
export function peekPart(dest: string): { bytes: number; total?: number } | undefined {
  const part = partPathOf(dest);
  let bytes: number;
  try {
    bytes = statSync(part).size;
  } catch {
    return undefined;
  }
  let total: number | undefined;
  const sidecar = sidecarPathOf(dest);
  if (existsSync(sidecar)) {
    try {
      const t = (JSON.parse(readFileSync(sidecar, 'utf8')) as PartRecord).total_bytes;
      if (typeof t === 'number') total = t;
    } catch {
      // A torn sidecar only loses the total; the bytes are still counted.
    }
  }
  return { bytes, total };
}
