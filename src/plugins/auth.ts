import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors.ts';
import { sendApiError } from './error-handler.ts';

export interface AuthOptions {
  /** Accepted bearer keys; none means authentication is off. */
  keys: readonly string[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Routes a browser must reach without a key: the health probes (Ollama's `/` included), and Swagger UI with its
 * document (it describes the API, not the models, and its Authorize button then sends the key).
 */
function isPublic(url: string): boolean {
  const p = url.split('?')[0]!;
  return p === '/' || p === '/health' || p === '/v1/health' || p === '/openapi.json' || p === '/docs' || p.startsWith('/docs/');
}

/**
 * Bearer-key authentication for every route but the public ones and CORS preflights (which
 * carry no credentials by design). Keys are compared as SHA-256 digests with timingSafeEqual,
 * so neither content nor length leaks through timing.
 */
export default fp(
  async function auth(app: FastifyInstance, opts: AuthOptions) {
    if (opts.keys.length === 0) return;
    const digests = opts.keys.map(digest);
    app.addHook('onRequest', async (request, reply) => {
      if (request.method === 'OPTIONS' || isPublic(request.url)) return;
      const header = request.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(header);
      const token = m?.[1]?.trim() ?? (request.headers['x-api-key'] as string | undefined);
      if (token) {
        const d = digest(token);
        let ok = false;
        for (const k of digests) ok = timingSafeEqual(d, k) || ok;
        if (ok) return;
      }
      return sendApiError(
        reply,
        new ApiError('invalid_api_key', token ? 'invalid API key' : 'missing API key: send Authorization: Bearer <key>'),
      );
    });
  },
  { name: 'auth' },
);
