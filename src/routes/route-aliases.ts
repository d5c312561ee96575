import type { FastifyInstance, RouteHandlerMethod, RouteShorthandOptions } from 'fastify';

/**
 * Registers a POST route at `url` and at the other paths clients call it on (llama-server
 * answers its OpenAI routes with and without `/v1`), the aliases hidden from the document.
 */
export function postAt(app: FastifyInstance, url: string, aliases: readonly string[], opts: RouteShorthandOptions, handler: RouteHandlerMethod): void {
  app.post(url, opts, handler);
  for (const alias of aliases) app.post(alias, { ...opts, schema: { ...opts.schema, hide: true } }, handler);
}
