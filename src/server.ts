import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import type { Config } from './config/config.ts';

/**
 * Builds the app and listens; closes gracefully on SIGINT/SIGTERM (models unloaded,
 * downloads paused with their part files kept, watcher stopped).
 */
export async function startServer(config: Config): Promise<FastifyInstance> {
  const app = await buildApp({ config });
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  await app.listen({ host: config.host, port: config.port });
  app.log.info({ modelsDir: config.modelsDir, models: app.registry.list().length, docs: `/docs` }, 'modeld ready');
  // After listen, so /health answers while the native backends load.
  for (const engine of app.engines.values()) {
    engine.prepare?.().then(
      ({ message, hint }) => {
        app.log.info({ engine: engine.name }, message);
        if (hint) app.log.info({ engine: engine.name }, hint);
      },
      (err) => app.log.warn({ engine: engine.name, err }, 'engine backend unavailable'),
    );
  }
  return app;
}
