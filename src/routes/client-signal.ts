import type { FastifyReply } from 'fastify';
import { ApiError } from '../errors.ts';

/**
 * An AbortSignal that fires when the client goes away before its answer is complete (a
 * closed socket, a cancelled stream), so the request leaves the queue or frees its sequence.
 */
export function clientSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) ac.abort(new ApiError('request_aborted', 'the client closed the connection'));
  };
  res.once('close', onClose);
  return ac.signal;
}
