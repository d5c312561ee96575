import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { COMMON_DESCRIPTORS } from '../../engines/common-descriptors.ts';
import { ENGINE_NAMES } from '../../engines/engine.ts';
import { errorResponses } from '../../schemas/common.ts';
import { EngineListSchema, HealthSchema, StatusSchema, StatusUpdateSchema } from '../../schemas/system.ts';

const tags = ['system'];

const systemRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const health = { tags, summary: 'Liveness', description: 'Answers once the server listens; needs no API key. Also on /v1/health, as llama-server answers it.', security: [], response: { 200: HealthSchema } };
  const ok = async () => ({ status: 'ok' as const });
  app.get('/health', { schema: health }, ok);
  app.get('/v1/health', { schema: { ...health, hide: true } }, ok);

  const status = () => ({
    status: app.manager.activeRequests > 0 ? ('active' as const) : ('sleeping' as const),
    dev_mode: app.manager.maintenance,
    models_running: app.manager.runningIds(),
    uptime_s: Math.round((Date.now() - app.startedAt) / 100) / 10,
  });

  app.get('/v1/status', { schema: { tags, summary: 'Server status', response: { 200: StatusSchema, ...errorResponses } } }, async () => status());

  app.put('/v1/status', {
    schema: {
      tags, summary: 'Set maintenance mode',
      description: '`{dev_mode: true}` pauses inference (503 maintenance with retry-after); model control still works.',
      body: StatusUpdateSchema, response: { 200: StatusSchema, ...errorResponses },
    },
  }, async (request) => {
    app.manager.maintenance = request.body.dev_mode;
    request.log.info({ dev_mode: app.manager.maintenance }, 'maintenance mode changed');
    return status();
  });

  app.get('/v1/engines', {
    schema: {
      tags, summary: 'Engines and their run parameters',
      description: 'Each engine with `available` and its run-parameter descriptors (`{name, default, min_value, max_value, increment, special_type, options, description}`), which validate model object parameters and per-request overrides.',
      response: { 200: EngineListSchema, ...errorResponses },
    },
  }, async () => ({
    object: 'list' as const,
    data: await Promise.all(
      ENGINE_NAMES.map(async (name) => {
        const engine = app.engines.get(name);
        if (!engine) return { name, object: 'engine' as const, available: false, reason: 'not built into this server', parameters: [] };
        const st = await engine.status();
        return { name, object: 'engine' as const, ...st, parameters: [...engine.descriptors, ...COMMON_DESCRIPTORS] };
      }),
    ),
  }));
};
export default systemRoutes;
