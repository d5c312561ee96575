import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config/config.ts';
import type { Engine, EngineName } from './engines/engine.ts';
import { ModelRegistry } from './registry/registry.ts';
import authPlugin from './plugins/auth.ts';
import downloadsPlugin from './plugins/downloads.ts';
import errorHandler from './plugins/error-handler.ts';
import metricsPlugin from './plugins/metrics.ts';
import servicesPlugin from './plugins/services.ts';
import swaggerPlugin from './plugins/swagger.ts';
import classificationRoutes from './routes/classification/index.ts';
import downloadRoutes from './routes/downloads/index.ts';
import modelRoutes from './routes/models/index.ts';
import systemRoutes from './routes/system/index.ts';
import chatRoutes from './routes/openai/chat.ts';
import completionRoutes from './routes/openai/completions.ts';
import embeddingRoutes from './routes/openai/embeddings.ts';

export interface BuildAppOptions {
  config: Config;
  /** Engines to serve with; tests pass a fake one. Defaults to every engine built in. */
  engines?: Engine[];
  /** Pino logger options or false; defaults to the config's level. */
  logger?: boolean | Record<string, unknown>;
}

/**
 * Builds the whole server as a Fastify instance without listening: plugins in an explicit
 * order, then the route groups. `main` listens; tests `inject`.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    // Ids up to 1,000 characters, percent-encoded (3 bytes per character at worst).
    routerOptions: { maxParamLength: 4000 },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    forceCloseConnections: true,
    // Two info lines per request cost more than serving /v1/models itself; one line at debug
    // (below) keeps the trail for those who ask, failures are logged by the error handler.
    disableRequestLogging: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('onResponse', async (request, reply) => {
    if (app.log.level === 'debug' || app.log.level === 'trace') {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    }
  });

  const engines = options.engines ?? (await (await import('./engines/index.ts')).createEngines(config));
  const engineMap = new Map<EngineName, Engine>(engines.map((e) => [e.name, e]));

  await app.register(errorHandler);
  await app.register(authPlugin, { keys: config.apiKeys });
  if (config.corsOrigins.length > 0) {
    await app.register(cors, { origin: config.corsOrigins.includes('*') ? true : [...config.corsOrigins] });
  }
  await app.register(swaggerPlugin);
  await app.register(servicesPlugin, { config, registry: new ModelRegistry({ modelsDir: config.modelsDir, log: app.log }), engines: engineMap });
  await app.register(downloadsPlugin);
  await app.register(metricsPlugin);
  await app.register(systemRoutes);
  await app.register(modelRoutes);
  await app.register(downloadRoutes);
  await app.register(chatRoutes);
  await app.register(completionRoutes);
  await app.register(embeddingRoutes);
  await app.register(classificationRoutes);
  return app as unknown as FastifyInstance;
}
