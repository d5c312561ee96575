import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { ModelEntry } from '../../registry/registry.ts';

/**
 * Deletes a model as `DELETE /v1/models/{id}` and Ollama's `/api/delete` do: stops it, cancels
 * its download (dropping the part files), removes the binaries the server downloaded into the
 * model folder and the object. A model whose object lies outside the models folder is refused
 * before it is stopped; files outside that folder, or used by other models, are kept.
 */
export async function deleteModel(app: FastifyInstance, entry: ModelEntry, log: FastifyBaseLogger): Promise<void> {
  await app.registry.checkRemovable(entry);
  await app.manager.stop(entry.id);
  await app.downloads.cancel(entry, { discard: true });
  const { kept } = await app.registry.remove(entry);
  if (kept.length > 0) log.info({ model: entry.id, kept }, 'model deleted; files outside the models folder (or used by other models) kept');
  app.downloads.forget(entry.id);
}
