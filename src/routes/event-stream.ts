import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/**
 * Takes the response over for Server-Sent Events: frames are then written straight to the
 * socket's response, without Fastify's send path or a stream piped into it per frame. The
 * headers hooks have set so far (CORS) go out with the event-stream headers; a hijacked reply
 * would drop them. Write errors after the client left are ignored: the request's AbortSignal
 * (client-signal.ts) ends the work.
 */
export function openEventStream(reply: FastifyReply, contentType = 'text/event-stream; charset=utf-8'): ServerResponse {
  reply.hijack();
  const raw = reply.raw;
  raw.on('error', () => undefined);
  raw.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    'content-type': contentType,
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  return raw;
}
