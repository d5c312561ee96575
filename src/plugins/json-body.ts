import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors.ts';

/**
 * Refuses the keys that poison prototypes once a body is merged into other objects, as
 * Fastify's own parser (secure-json-parse) does; JSON.parse keeps `__proto__` as a plain key.
 */
function reviver(key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value)) {
    throw new ApiError('invalid_request', `the body has a "${key === '__proto__' ? '__proto__' : 'constructor.prototype'}" key, which the server refuses (prototype poisoning)`, { param: key });
  }
  return value;
}

/**
 * The one body parser: JSON. Fastify's default answers every syntax error with the same sentence;
 * this one says where the JSON breaks (V8's message: the position, the token), so a client
 * hand-writing curl bodies can mend them.
 */
export default fp(
  async function jsonBody(app: FastifyInstance) {
    // JSON bodies only: a text/plain body is a 415 like any other type, not a string to validate.
    app.removeContentTypeParser('text/plain');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      const text = body as string;
      // No body at all, as many clients send on DELETE or a bodiless POST with the header set
      // anyway: the route sees none (one that needs a body then says so, naming it).
      if (text.trim().length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse(text, reviver));
      } catch (err) {
        done(err instanceof ApiError ? err : new ApiError('invalid_json', `the body is not valid JSON: ${(err as Error).message}`), undefined);
      }
    });
  },
  { name: 'json-body' },
);
