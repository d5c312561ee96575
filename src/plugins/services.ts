import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/config.ts';
import type { Engine, EngineName } from '../engines/engine.ts';
import type { ModelEntry, ModelRegistry } from '../registry/registry.ts';
import { ModelManager, type ModelStateView } from '../runtime/model-manager.ts';

/** Adds to a model's state what another service knows (a download in progress, say). */
export type StateOverlay = (entry: ModelEntry, base: ModelStateView) => Partial<ModelStateView> & { progress?: unknown } | undefined;

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    registry: ModelRegistry;
    manager: ModelManager;
    engines: ReadonlyMap<EngineName, Engine>;
    stateOverlays: StateOverlay[];
    startedAt: number;
  }
}

export interface ServicesOptions {
  config: Config;
  registry: ModelRegistry;
  engines: ReadonlyMap<EngineName, Engine>;
}

/**
 * Owns the domain services for the app's lifetime: scans (and watches) the models folder on
 * start-up, and on close stops every model, disposes the engines and stops watching.
 */
export default fp(
  async function services(app: FastifyInstance, opts: ServicesOptions) {
    const { config, registry, engines } = opts;
    const manager = new ModelManager({ registry, engines, config, log: app.log });
    app.decorate('config', config);
    app.decorate('registry', registry);
    app.decorate('manager', manager);
    app.decorate('engines', engines);
    app.decorate('stateOverlays', [] as StateOverlay[]);
    app.decorate('startedAt', Date.now());
    await registry.scan();
    if (config.watch) await registry.watch();
    app.addHook('onClose', async () => {
      await registry.close();
      await manager.close();
      for (const engine of engines.values()) await engine.dispose().catch(() => undefined);
    });
  },
  { name: 'services' },
);
