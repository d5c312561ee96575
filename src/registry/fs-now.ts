/**
 * The registry's file-system calls, made synchronously behind fs/promises' signatures.
 *
 * modeld keeps libuv's pool at one thread, which also runs every decode (docs/cpu-batching.md
 * §4): an fs/promises call waits for the decode in progress, and a scan or a DELETE makes
 * dozens of them one after another. Beside 4 generating streams a DELETE took 7.5–13 s
 * (`benchmarks/download-beside-generation.ts`'s setup). These calls touch metadata and small
 * JSON files and take microseconds on a local disk, far less than one decode step, so they
 * block the event loop instead. Binaries' contents are still read through the pool
 * (regular-file.ts), and a sync open never meets a FIFO: those are refused before any open.
 */
import * as fs from 'node:fs';

export async function stat(p: string): Promise<fs.Stats> {
  return fs.statSync(p);
}

export async function lstat(p: string): Promise<fs.Stats> {
  return fs.lstatSync(p);
}

export function readdir(p: string): Promise<string[]>;
export function readdir(p: string, options: { withFileTypes: true }): Promise<fs.Dirent[]>;
export async function readdir(p: string, options?: { withFileTypes: true }): Promise<string[] | fs.Dirent[]> {
  return options ? fs.readdirSync(p, options) : fs.readdirSync(p);
}

export async function readlink(p: string): Promise<string> {
  return fs.readlinkSync(p);
}

/** The system's realpath, as fs/promises' is (not Node's JavaScript walk). */
export async function realpath(p: string): Promise<string> {
  return fs.realpathSync.native(p);
}

export async function mkdir(p: string, options?: fs.MakeDirectoryOptions): Promise<void> {
  fs.mkdirSync(p, options);
}

export async function rm(p: string, options?: fs.RmOptions): Promise<void> {
  fs.rmSync(p, options);
}

export async function rmdir(p: string): Promise<void> {
  fs.rmdirSync(p);
}

export async function unlink(p: string): Promise<void> {
  fs.unlinkSync(p);
}

export async function rename(from: string, to: string): Promise<void> {
  fs.renameSync(from, to);
}

export async function link(existing: string, created: string): Promise<void> {
  fs.linkSync(existing, created);
}

export async function writeFile(p: string, data: string, options?: fs.WriteFileOptions): Promise<void> {
  fs.writeFileSync(p, data, options);
}
