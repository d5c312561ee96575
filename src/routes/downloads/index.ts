import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DownloadJob } from '../../downloads/download-manager.ts';
import { createModels } from '../../downloads/importers/create-models.ts';
import { importDeps } from '../../plugins/downloads.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { toWireModel, toWireState } from '../../runtime/model-view.ts';
import { errorResponses } from '../../schemas/common.ts';
import { CreateModelBodySchema, CreatedModelsSchema, DownloadQuerySchema, type CreateModelBody } from '../../schemas/downloads.ts';
import { Type } from '../../schemas/typebox.ts';
import { openEventStream } from '../event-stream.ts';
import { modelRoute } from '../models/model-route.ts';

const tags = ['models'];

/** Seconds between SSE comments that keep proxies from closing a quiet stream (a download waiting its turn). */
const SSE_HEARTBEAT_MS = 15_000;

/** Model downloads (start, join, progress stream, cancel) and model object creation from a source. */
export default async function downloadRoutes(app: FastifyInstance) {
  const current = (entry: ModelEntry) => app.registry.get(entry.id) ?? entry;

  modelRoute(app, {
    method: 'POST', suffix: '/download',
    schema: {
      tags, summary: 'Download a model',
      description:
        'Starts (or joins) the download of every missing binary of the model: resumable (HTTP Range + If-Range), retried with back-off, size- and sha256-checked, renamed into place only when verified. ' +
        '202 with the state while it runs; 200 when every binary is already there. With `Accept: text/event-stream` the answer is a stream of Server-Sent Events: `progress` (the state with `progress`), ' +
        'then one of `done`, `error` (with `error` and `code`) or `cancelled`. 507 insufficient_storage when the files do not fit on the disk (nothing written); 409 model_not_downloadable when a missing binary has no URL.',
      response: { 200: Type.Ref('ModelState'), 202: Type.Ref('ModelState'), ...errorResponses },
    },
    handler: async (entry, request, reply) => {
      const job = await app.downloads.start(entry);
      if ((request.headers.accept ?? '').includes('text/event-stream')) return streamProgress(app, current(entry), job, reply);
      return reply.code(job ? 202 : 200).send(toWireState(app, current(entry)));
    },
  });

  modelRoute(app, {
    method: 'DELETE', suffix: '/download',
    schema: {
      tags, summary: 'Cancel a download',
      description: 'Stops the download; the partial files stay for a later resume unless `?discard=true`. Answers the state (`not-downloaded`, with the partial progress kept).',
      querystring: DownloadQuerySchema,
      response: { 200: Type.Ref('ModelState'), ...errorResponses },
    },
    handler: async (entry, request) => {
      const { discard } = request.query as { discard?: string };
      await app.downloads.cancel(entry, { discard: discard === 'true' || discard === '1' });
      return toWireState(app, current(entry));
    },
  });

  app.post('/v1/models', {
    schema: {
      tags, summary: 'Create a model object',
      description:
        'Creates model objects from `source_url`: a local path, a direct URL, a Hugging Face file URL, or a Hugging Face repository (one object per GGUF quantization in one folder, `owned_by` the organisation, split parts grouped into one object with `metadata.binaries`). ' +
        'For remote GGUF files the header is read with range requests first, so architecture, quantization, context length and size show before the download. ' +
        'Answers 201 with the list of created models; 409 model_exists when an id is taken; 403 source_access_denied when the hub refuses (set HF_TOKEN for gated repositories).',
      body: CreateModelBodySchema,
      response: { 201: CreatedModelsSchema, 403: Type.Ref('Error'), 502: Type.Ref('Error'), ...errorResponses },
    },
    handler: async (request, reply) => {
      const { entries } = await createModels(request.body as CreateModelBody, importDeps(app, request.log));
      return reply.code(201).send({ object: 'list' as const, data: entries.map((e) => toWireModel(app, e)) });
    },
  });
}

/** Streams a download's progress as Server-Sent Events until it ends (or the client leaves). */
function streamProgress(app: FastifyInstance, entry: ModelEntry, job: DownloadJob | undefined, reply: FastifyReply) {
  const raw = openEventStream(reply);
  const send = (event: string, data: unknown) => raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  if (!job) {
    send('done', toWireState(app, entry));
    raw.end();
    return;
  }
  send('progress', toWireState(app, entry));
  const onProgress = (id: string, progress: unknown) => {
    if (id === entry.id) send('progress', { id, state: 'downloading', progress });
  };
  const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS);
  const cleanup = () => {
    clearInterval(heartbeat);
    app.downloads.off('progress', onProgress);
  };
  app.downloads.on('progress', onProgress);
  raw.on('close', cleanup);
  void job.promise.then((end) => {
    cleanup();
    if (raw.writableEnded || raw.destroyed) return;
    const state = toWireState(app, app.registry.get(entry.id) ?? entry);
    if (end.phase === 'done') send('done', state);
    else if (end.phase === 'failed') send('error', { ...state, error: end.error?.message, code: end.error?.code });
    else send('cancelled', state);
    raw.end();
  });
}
