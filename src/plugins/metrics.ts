import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Metrics } from '../runtime/metrics.ts';
import { stateOf } from '../runtime/model-view.ts';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

export default fp(
  async function metricsPlugin(app: FastifyInstance) {
    const metrics = new Metrics(() =>
      app.registry.list().map((e) => {
        const s = stateOf(app, e);
        return { id: e.id, state: s.state, running: s.queue?.running, waiting: s.queue?.waiting };
      }),
    );
    app.decorate('metrics', metrics);
    app.manager.on('batch', (id: string, rows: number) => metrics.batchSize.observe({ model: id }, rows));
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.requests.inc({ method: request.method, route, status: reply.statusCode });
      metrics.latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    });
    app.get('/metrics', {
      schema: {
        tags: ['system'], summary: 'Prometheus metrics', description: 'Requests, latency, tokens, batch sizes, queue depth, model states.',
        response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    }, async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  },
  { name: 'metrics', dependencies: ['services'] },
);
