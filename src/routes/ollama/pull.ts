import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import PQueue from 'p-queue';
import type { DownloadJob, DownloadProgress } from '../../downloads/download-manager.ts';
import { createModels } from '../../downloads/importers/create-models.ts';
import { ApiError, isApiError } from '../../errors.ts';
import { importDeps } from '../../plugins/downloads.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { metadataOf } from '../../runtime/model-view.ts';
import { errorResponses } from '../../schemas/common.ts';
import { OllamaDeleteRequestSchema, OllamaPullRequestSchema, OllamaPullStatusSchema, type OllamaDeleteRequest, type OllamaPullRequest } from '../../schemas/ollama.ts';
import { Type } from '../../schemas/typebox.ts';
import { clientSignal } from '../client-signal.ts';
import { deleteModel } from '../models/delete-model.ts';
import { sendEventStream } from '../openai/inference.ts';
import { hubName, quantizationOf, repositoryModel, repositoryModels, resolveOllamaName } from './ollama-names.ts';

const tags = ['ollama'];

/**
 * The model a pull of an Ollama name downloads: a model the server has, or a hub repository's
 * quantization. A tag's quantization gets its model object created when the server lacks it;
 * no tag (Ollama's `latest`) lists the repository and creates the objects missing (as `modeld
 * pull` does), then takes the default quantization, falling back to the objects the server
 * has when the hub is out of reach.
 */
async function pullTarget(app: FastifyInstance, name: string, log: FastifyBaseLogger, imports: PQueue): Promise<ModelEntry> {
  const hub = hubName(name);
  if (!hub) {
    try {
      return resolveOllamaName(app, name);
    } catch (err) {
      if (!isApiError(err) || err.code !== 'model_not_found') throw err;
      throw new ApiError(
        'source_not_found',
        `'${name}' is no model on this server and no Hugging Face repository: pull a GGUF repository as hf.co/<org>/<repo>[:<quantization>] (Ollama's own library is not served from here)`,
        { param: 'model', cause: err },
      );
    }
  }
  // Imports one after another: two pulls of one name at once would both create its objects, the second a 409.
  return (await imports.add(() => repositoryPull(app, hub, log)))!;
}

/** The hub part of {@link pullTarget}: the repository's model objects, created as needed, and the one to pull. */
async function repositoryPull(app: FastifyInstance, hub: { repo: string; quant?: string }, log: FastifyBaseLogger): Promise<ModelEntry> {
  const known = repositoryModels(app, hub.repo);
  const have = hub.quant ? repositoryModel(known, hub.quant, false) : undefined;
  if (have) return have;
  const created = await createModels({
    source_url: `${app.config.hfEndpoint.replace(/\/+$/, '')}/${hub.repo}`,
    ...(known.length > 0 ? { id: known[0]!.folderName, skip_existing: true } : {}),
    ...(hub.quant ? { quantization: hub.quant } : {}),
  }, importDeps(app, log)).then(({ entries }) => entries, (err: unknown) => {
    if (!hub.quant && known.length > 0) {
      log.warn({ err, repository: hub.repo }, 'could not list the repository; pulling from the model objects the server has');
      return [];
    }
    // The importer names its own fields (source_url, quantization); here the name is all the client sent.
    throw isApiError(err) ? new ApiError(err.code, err.message, { param: 'model', cause: err }) : err;
  });
  if (created.length > 0) log.info({ repository: hub.repo, created: created.map((e) => e.id) }, 'model objects created for an Ollama pull');
  const models = [...known, ...created];
  const chosen = repositoryModel(models, hub.quant, false);
  if (!chosen) throw new ApiError('source_not_found', `'${hub.repo}' has no ${hub.quant} quantization; it has ${models.map(quantizationOf).join(', ')}`, { param: 'model' });
  return chosen;
}

/** How a download ended, as an error when it did not complete. */
async function completed(entry: ModelEntry, job: DownloadJob | undefined): Promise<void> {
  const end = await job?.promise;
  if (!end || end.phase === 'done') return;
  if (end.phase === 'failed' && end.error) throw end.error;
  throw new ApiError('download_failed', `the download of '${entry.id}' ${end.phase === 'failed' ? 'failed' : 'was cancelled'}`, { param: 'model' });
}

/**
 * Ollama's model management (`/api/pull`, `/api/delete`, and the model lookup the other
 * routes share) over the server's downloads and model folder.
 */
export default async function ollamaPullRoutes(app: FastifyInstance) {
  const imports = new PQueue({ concurrency: 1 });
  app.post('/api/pull', {
    schema: {
      tags, summary: 'Pull a model (Ollama)',
      description:
        'Downloads a model: one the server has (its id), or a Hugging Face GGUF repository named as Ollama names them, `hf.co/<org>/<repo>[:<quantization>]` (no tag or `latest`: Q4_K_M, else the first of Q4_K_S, Q5_K_M, Q4_0, Q8_0, else the smallest). ' +
        'The repository\'s model objects are created first when the server has none. Streams newline-delimited JSON statuses unless `stream: false`: `pulling manifest`, progress lines with `total` and `completed` bytes, then `success`. ' +
        'A client that leaves stops the download it started; the part file stays for a resume.',
      body: OllamaPullRequestSchema,
      response: { 200: OllamaPullStatusSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaPullRequest;
    const name = body.model ?? body.name;
    if (!name) throw new ApiError('missing_required_parameter', `'model' is required: the model to pull`, { param: 'model' });
    const entry = await pullTarget(app, name, request.log, imports);
    const joined = app.downloads.job(entry.id) !== undefined;
    const job = await app.downloads.start(entry);
    // Leaving stops the pull this request started; one it only joined is another client's.
    if (job && !joined) {
      clientSignal(reply).addEventListener('abort', () => {
        app.downloads.cancel(entry).catch((err: unknown) => request.log.warn({ err, model: entry.id }, 'could not cancel the download'));
      }, { once: true });
    }
    if (body.stream === false) {
      await completed(entry, job);
      return { status: 'success' };
    }
    const sha = entry.binaries.find((b) => b.sha256)?.sha256;
    const line = (p: Pick<DownloadProgress, 'downloaded_bytes' | 'total_bytes'>) => ({
      status: `pulling ${entry.id}`, digest: sha ? `sha256:${sha}` : '', total: p.total_bytes ?? p.downloaded_bytes, completed: p.downloaded_bytes,
    });
    return sendEventStream(reply, async (emit) => {
      emit({ status: 'pulling manifest' });
      if (job) {
        emit(line(job.progress()));
        const onProgress = (id: string, p: DownloadProgress) => {
          if (id === entry.id) emit(line(p));
        };
        app.downloads.on('progress', onProgress);
        try {
          await completed(entry, job);
        } finally {
          app.downloads.off('progress', onProgress);
        }
      }
      const size = Number(metadataOf(app.registry.get(entry.id) ?? entry).size ?? 0);
      emit(line({ downloaded_bytes: size, total_bytes: size }));
      if (sha) emit({ status: 'verifying sha256 digest' });
      emit({ status: 'success' });
    }, { ndjson: true });
  });

  app.delete('/api/delete', {
    schema: {
      tags, summary: 'Delete a model (Ollama)',
      description: 'As DELETE /v1/models/{id}: stops the model, removes the binaries the server downloaded into its folder and its model object. Answers 200 with no body.',
      body: OllamaDeleteRequestSchema,
      response: { 200: Type.Null({ description: 'Deleted.' }), ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaDeleteRequest;
    const name = body.model ?? body.name;
    if (!name) throw new ApiError('missing_required_parameter', `'model' is required: the model to delete`, { param: 'model' });
    await deleteModel(app, resolveOllamaName(app, name), request.log);
    return reply.code(200).send();
  });
}
