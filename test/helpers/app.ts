import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import type { Engine } from '../../src/engines/engine.ts';

/** Real third-party models, when present (../shared/models by default). */
export const SHARED_MODELS = path.resolve(process.env.MODELD_SHARED_MODELS ?? path.join(import.meta.dirname, '../../../shared/models'));

export async function tempDir(prefix = 'modeld-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A temporary models folder removed when the test ends. */
export async function modelsFolder(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await tempDir();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` (a string as is, anything else as JSON) to `dir/rel`, creating folders. */
export async function putFile(dir: string, rel: string, content: unknown): Promise<void> {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), typeof content === 'string' ? content : JSON.stringify(content));
}

/** A fresh temporary HOME for the rest of the test (`~` paths), the old one back at its end. */
export async function temporaryHome(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const home = await tempDir('modeld-home-');
  const prevHome = process.env.HOME;
  process.env.HOME = home;
  t.teardown(() => {
    process.env.HOME = prevHome;
  });
  return home;
}

/** GET /v1/models/{id}/state through `inject`, as JSON. */
export async function modelState(app: FastifyInstance, id: string): Promise<any> {
  return (await app.inject({ url: `/v1/models/${id}/state` })).json();
}

/**
 * Polls `fn` every 20 ms, for up to 10 s, until `ok` holds for its value; a poll that rejects
 * counts as not yet (a server still starting). The error names the last value or rejection.
 */
export async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 500; i++) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`condition not reached; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
}

export interface TestAppOptions {
  config?: Partial<Config>;
  engines?: Engine[];
  /** Models folder; a fresh temporary one when absent. */
  modelsDir?: string;
}

/**
 * Builds the app on a temporary models folder without listening. `t.teardown` closes it and
 * removes the folder. Environment variables never leak into tests.
 */
export async function buildTestApp(
  t: { teardown(fn: () => unknown): void },
  opts: TestAppOptions = {},
): Promise<{ app: FastifyInstance; modelsDir: string; config: Config }> {
  const modelsDir = opts.modelsDir ?? (await tempDir());
  const config = loadConfig({ modelsDir, logLevel: 'silent', watch: false, ...opts.config }, {});
  const app = await buildApp({ config, engines: opts.engines, logger: false });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    if (!opts.modelsDir) await rm(modelsDir, { recursive: true, force: true });
  });
  return { app, modelsDir, config };
}
