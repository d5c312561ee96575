import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/config.ts';
import { DownloadManager } from '../downloads/download-manager.ts';
import type { CreateModelsDeps } from '../downloads/importers/create-models.ts';

declare module 'fastify' {
  interface FastifyInstance {
    downloads: DownloadManager;
  }
}

/** Headers for a download or header read: the hub token, sent to the configured hub only. */
export function hubHeadersFor(config: Config): (url: string) => Record<string, string> | undefined {
  const origin = new URL(config.hfEndpoint).origin;
  return (url) => (config.hfToken && new URL(url).origin === origin ? { authorization: `Bearer ${config.hfToken}` } : undefined);
}

/** What `createModels` needs from the server: the registry, the hub and its token, a logger. */
export function importDeps(app: FastifyInstance, log: CreateModelsDeps['log']): CreateModelsDeps {
  return {
    registry: app.registry,
    hub: { hubUrl: app.config.hfEndpoint, ...(app.config.hfToken ? { token: app.config.hfToken } : {}) },
    headersFor: hubHeadersFor(app.config),
    ...(log ? { log } : {}),
  };
}

/**
 * Owns the download manager: shows downloads in the model state (`downloading` + progress,
 * partial progress and the last failure of a model not yet downloaded) and pauses every
 * download on close, keeping the part files for a resume.
 */
export default fp(
  async function downloads(app: FastifyInstance) {
    const manager = new DownloadManager({
      registry: app.registry,
      maxConcurrent: app.config.maxConcurrentDownloads,
      headersFor: hubHeadersFor(app.config),
      log: app.log,
    });
    app.decorate('downloads', manager);
    app.stateOverlays.push((entry) => manager.view(entry));
    app.addHook('onClose', () => manager.close());
  },
  { name: 'downloads', dependencies: ['services'] },
);
