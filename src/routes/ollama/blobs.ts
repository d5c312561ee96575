import type { FastifyInstance } from 'fastify';
import { Readable } from 'node:stream';
import { BlobStore, parseDigest } from '../../registry/blob-store.ts';
import { errorResponses } from '../../schemas/common.ts';
import { Type } from '../../schemas/typebox.ts';

const tags = ['ollama'];
const DigestParams = Type.Object({ digest: Type.String({ description: '`sha256:<64 hex digits>`: the sha256 of the file.' }) });

/**
 * Ollama's `/api/blobs/:digest`, the upload `ollama create` makes of a Modelfile's
 * `FROM ./model.gguf` before it names the file in `/api/create`'s `files`. The body is the
 * file itself, streamed to disk (never buffered, whatever its size or Content-Type: Ollama's
 * client labels it JSON), and kept only when its sha256 is the digest.
 */
export default async function ollamaBlobRoutes(app: FastifyInstance) {
  const blobs = new BlobStore(app.registry.modelsDir);
  // A server that died mid-upload left a temporary file; the next start clears it.
  void blobs.sweep().catch((err: unknown) => app.log.warn({ err }, 'could not clear interrupted blob uploads'));
  // In this plugin's scope only: every body is the raw stream, so the upload is not held to the JSON body limit.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.head('/api/blobs/:digest', {
    schema: {
      tags, summary: 'Is a blob uploaded (Ollama)', params: DigestParams,
      description: '200 when a file with this sha256 was uploaded and not yet made into a model, else 404 (no body either way).',
      response: { 200: Type.Null({ description: 'Present.' }), 404: Type.Null({ description: 'Absent.' }), 400: Type.Ref('Error') },
    },
  }, async (request, reply) => {
    const hex = parseDigest((request.params as { digest: string }).digest, 'digest');
    return reply.code((await blobs.has(hex)) ? 200 : 404).send();
  });

  app.post('/api/blobs/:digest', {
    schema: {
      tags, summary: 'Upload a blob (Ollama)', params: DigestParams,
      description: 'Stores the body (a GGUF file, any Content-Type) under its sha256 for `/api/create`\'s `files`. 201 once stored (200 when it already was); a body whose sha256 differs is a 400 and leaves nothing.',
      response: { 201: Type.Null({ description: 'Stored.' }), 200: Type.Null({ description: 'Already stored.' }), ...errorResponses },
    },
  }, async (request, reply) => {
    const hex = parseDigest((request.params as { digest: string }).digest, 'digest');
    // No body at all is an empty file (Fastify parses nothing then).
    const body = request.body instanceof Readable ? request.body : Readable.from([]);
    const length = Number(request.headers['content-length']);
    const { existed } = await blobs.put(hex, body, 'digest', Number.isSafeInteger(length) && length > 0 ? length : undefined);
    return reply.code(existed ? 200 : 201).send();
  });
}
