import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, HTTPMethods } from 'fastify';
import type { ModelEntry } from '../../registry/registry.ts';
import { ModelIdParamsSchema } from '../../schemas/common.ts';

export interface ModelRouteOptions {
  /** The path the id follows; default `/v1/models`. */
  prefix?: string;
  method: HTTPMethods | HTTPMethods[];
  /** Path after the id, e.g. "/state" or "" for the model itself. */
  suffix: string;
  schema: FastifySchema;
  handler: (entry: ModelEntry, request: FastifyRequest, reply: FastifyReply) => unknown;
}

/**
 * Registers a per-model route twice: `<prefix>/:id<suffix>` (documented; the id may carry
 * a percent-encoded slash, as the SDKs send it, or be a folder alias) and
 * `<prefix>/:folder/:file<suffix>` (the raw slash form, hidden from the document); the prefix
 * is `/v1/models` unless another API's model routes say otherwise.
 */
export function modelRoute(app: FastifyInstance, opts: ModelRouteOptions): void {
  const resolve = (request: FastifyRequest) => {
    const p = request.params as { id?: string; folder?: string; file?: string };
    return app.registry.resolve(p.id ?? `${p.folder}/${p.file}`);
  };
  app.route({
    method: opts.method,
    url: `${opts.prefix ?? '/v1/models'}/:id${opts.suffix}`,
    schema: { ...opts.schema, params: ModelIdParamsSchema },
    handler: (request, reply) => opts.handler(resolve(request), request, reply),
  });
  app.route({
    method: opts.method,
    url: `${opts.prefix ?? '/v1/models'}/:folder/:file${opts.suffix}`,
    schema: { ...opts.schema, hide: true },
    handler: (request, reply) => {
      // `smol%2Fmodel/start` reaches here as folder 'smol/model', file 'start': an encoded id
      // and a segment that no route of this method has — a 404 or 405 like any other.
      if ((request.params as { folder: string }).folder.includes('/')) return reply.callNotFound();
      return opts.handler(resolve(request), request, reply);
    },
  });
}
