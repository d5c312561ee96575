import type { FastifyReply } from 'fastify';

/**
 * An AbortSignal that fires when the client goes away before the reply is sent, so a
 * waiting request leaves its model's queue. `done()` removes the listener.
 */
export function requestSignal(reply: FastifyReply): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) ac.abort();
  };
  reply.raw.on('close', onClose);
  return { signal: ac.signal, done: () => reply.raw.off('close', onClose) };
}
