import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';

/**
 * The model a request names, or, when it names none, the one model that runs: llama-server
 * serves one model, so its clients (llama.vim, llama.vscode) may not name it.
 */
export function targetModel(app: FastifyInstance, model: string | undefined): ModelEntry {
  if (model !== undefined) return app.registry.resolve(model);
  const running = app.registry.list().filter((e) => app.manager.state(e).state === 'running');
  if (running.length === 1) return running[0]!;
  throw new ApiError('missing_required_parameter', running.length === 0
    ? `'model' is required: no model runs to take as the default`
    : `'model' is required while several models run (${running.map((e) => `'${e.id}'`).join(', ')})`, { param: 'model' });
}
