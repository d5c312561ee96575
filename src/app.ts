import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from './config/config.ts';
import type { Engine, EngineName } from './engines/engine.ts';
import { ModelRegistry } from './registry/registry.ts';
import authPlugin from './plugins/auth.ts';
import downloadsPlugin from './plugins/downloads.ts';
import errorHandler, { clientErrorResponse, frameworkError } from './plugins/error-handler.ts';
import jsonBody from './plugins/json-body.ts';
import metricsPlugin from './plugins/metrics.ts';
import servicesPlugin from './plugins/services.ts';
import swaggerPlugin from './plugins/swagger.ts';
import classificationRoutes from './routes/classification/index.ts';
import rerankRoutes from './routes/rerank/index.ts';
import downloadRoutes from './routes/downloads/index.ts';
import modelRoutes from './routes/models/index.ts';
import systemRoutes from './routes/system/index.ts';
import chatRoutes from './routes/openai/chat.ts';
import responseRoutes from './routes/openai/responses.ts';
import llamaServerRoutes from './routes/llama-server/index.ts';
import lmStudioRoutes from './routes/lmstudio/index.ts';
import tokenizerRoutes from './routes/tokenizer/index.ts';
import anthropicRoutes from './routes/anthropic/messages.ts';
import ollamaRoutes from './routes/ollama/index.ts';
import completionRoutes from './routes/openai/completions.ts';
import embeddingRoutes from './routes/openai/embeddings.ts';

/**
 * Fastify's two info lines per request cost more than serving /v1/models itself; they move to
 * debug, where `--log-level debug` brings them back. Failures are logged by the error handler.
 */
class DebugRequestLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, _request: FastifyRequest, reply: FastifyReply): void {
    reply.log.debug({ res: reply, err: error ?? undefined, responseTime: reply.elapsedTime }, 'request completed');
  }
}

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
    logController: new DebugRequestLog(),
    frameworkErrors: frameworkError,
    clientErrorHandler: (err, socket) => {
      if (socket.writable) socket.end(clientErrorResponse(err));
      else socket.destroy(err);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const engines = options.engines ?? (await (await import('./engines/index.ts')).createEngines(config));
  const engineMap = new Map<EngineName, Engine>(engines.map((e) => [e.name, e]));

  await app.register(errorHandler);
  await app.register(jsonBody);
  // CORS before auth: a preflight carries no key, and a 401 must still be readable by the page.
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? true : [...config.corsOrigins],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      // An OPTIONS without preflight headers gets the same 204, not a text/plain 400.
      strictPreflight: false,
    });
  }
  await app.register(authPlugin, { keys: config.apiKeys });
  await app.register(swaggerPlugin);
  await app.register(servicesPlugin, { config, registry: new ModelRegistry({ modelsDir: config.modelsDir, log: app.log }), engines: engineMap });
  await app.register(downloadsPlugin);
  await app.register(metricsPlugin);
  await app.register(systemRoutes);
  await app.register(modelRoutes);
  await app.register(downloadRoutes);
  await app.register(chatRoutes);
  await app.register(responseRoutes);
  await app.register(completionRoutes);
  await app.register(embeddingRoutes);
  await app.register(classificationRoutes);
  await app.register(rerankRoutes);
  await app.register(tokenizerRoutes);
  await app.register(llamaServerRoutes);
  await app.register(anthropicRoutes);
  await app.register(ollamaRoutes);
  await app.register(lmStudioRoutes);
  return app as unknown as FastifyInstance;
}
