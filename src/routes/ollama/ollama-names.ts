import type { FastifyInstance } from 'fastify';
import { defaultQuantization, sameQuantization } from '../../downloads/importers/quantization-choice.ts';
import { ApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { staticState } from '../../registry/registry.ts';
import { metadataOf } from '../../runtime/model-view.ts';

// Ollama's model names in this server's terms. Ollama's clients add `:latest` to a name with
// no tag, and `ollama run hf.co/<org>/<repo>:<quant>` names a Hugging Face GGUF repository's
// quantization: both must reach the model a pull of that name made.

/** `hf.co/<org>/<repo>[:<tag>]` (or `huggingface.co/…`): a hub repository and the quantization its tag names (`latest` = the default). */
export function hubName(name: string): { repo: string; quant?: string } | undefined {
  const m = /^(?:hf\.co|huggingface\.co)\/([A-Za-z0-9][\w.-]*\/[\w.-]+?)(?::([\w.-]+))?$/i.exec(name.trim());
  if (!m) return undefined;
  const tag = m[2];
  return { repo: m[1]!, ...(tag && tag.toLowerCase() !== 'latest' ? { quant: tag } : {}) };
}

export const quantizationOf = (e: ModelEntry) => String(metadataOf(e).quantization ?? '');

/** The models the server made from a hub repository (`metadata.repository`, as the importer writes it). */
export function repositoryModels(app: FastifyInstance, repo: string): ModelEntry[] {
  const wanted = repo.toLowerCase();
  return app.registry.list().filter((e) => String(metadataOf(e).repository ?? '').toLowerCase() === wanted);
}

/**
 * Which of a repository's models a name means: the tag's quantization, else the default a pull
 * takes (Q4_K_M first), among the downloaded ones when `downloadedFirst` and there are some.
 */
export function repositoryModel(models: ModelEntry[], quant: string | undefined, downloadedFirst: boolean): ModelEntry | undefined {
  if (quant) return models.find((m) => sameQuantization(quantizationOf(m), quant));
  const size = (m: ModelEntry) => Number(metadataOf(m).size ?? 0);
  const downloaded = downloadedFirst ? models.filter((m) => staticState(m) !== 'not-downloaded') : [];
  return defaultQuantization(downloaded, quantizationOf, size) ?? defaultQuantization(models, quantizationOf, size);
}

/**
 * The model an Ollama name means: a model id (with Ollama's `:latest` dropped when the id has
 * no such tag), or a pulled hub repository's model. 404 model_not_found for anything else.
 */
export function resolveOllamaName(app: FastifyInstance, name: string): ModelEntry {
  const hub = hubName(name);
  if (hub) {
    const found = repositoryModel(repositoryModels(app, hub.repo), hub.quant, true);
    if (found) return found;
    throw new ApiError('model_not_found', `no model of the Hugging Face repository '${hub.repo}'${hub.quant ? ` in ${hub.quant}` : ''} is on this server; pull it first (POST /api/pull with "model": "${name}")`, { param: 'model' });
  }
  const untagged = name.replace(/:latest$/i, '');
  return app.registry.get(name) ?? app.registry.get(untagged) ?? app.registry.resolve(name);
}
