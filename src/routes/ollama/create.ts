import type { FastifyInstance } from 'fastify';
import path from 'node:path';
import { checkParam } from '../../engines/descriptors.ts';
import { LLAMACPP_DESCRIPTORS } from '../../engines/llamacpp/descriptors.ts';
import { ApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import type { ModelObjectFile } from '../../registry/model-object-schema.ts';
import { BlobStore, parseDigest } from '../../registry/blob-store.ts';
import { errorResponses } from '../../schemas/common.ts';
import {
  OllamaCopyRequestSchema, OllamaCreateRequestSchema, OllamaStatusSchema, type OllamaCopyRequest, type OllamaCreateRequest,
} from '../../schemas/ollama.ts';
import { Type } from '../../schemas/typebox.ts';
import { sendEventStream } from '../openai/inference.ts';
import { hubName, resolveOllamaName } from './ollama-names.ts';

const tags = ['ollama'];

/**
 * The id a new Ollama name gets: `<name>` is `<name>/model` (as `POST /v1/models` names a bare
 * id, so the name itself finds it), `<folder>/<file>` is itself; Ollama's `:latest` is dropped.
 * Hub names are the pulled repositories' and cannot be taken.
 */
function newModelId(name: string, param: string): string {
  if (hubName(name)) {
    throw new ApiError('invalid_model_id', `'${name}' names a Hugging Face repository; choose a name of your own for the new model`, { param });
  }
  const bare = name.trim().replace(/:latest$/i, '');
  return bare.includes('/') ? bare : `${bare}/model`;
}

/** A model Ollama's model management may copy: a GGUF, whose file holds everything it needs. */
function copyableSource(app: FastifyInstance, name: string, param: string): ModelEntry {
  const entry = resolveOllamaName(app, name);
  if ((entry.engine ?? 'llamacpp') !== 'llamacpp') {
    throw new ApiError('model_not_capable', `the model '${entry.id}' is not a GGUF model (engine ${entry.engine}); Ollama's API copies GGUF models`, { param });
  }
  return entry;
}

/** Ollama's parameter names and modeld's run parameters they are stored as. */
const PARAMETER_NAMES: Record<string, string> = {
  num_ctx: 'ctx_len', num_gpu: 'ngl', num_thread: 'threads', num_batch: 'n_batch', use_mmap: 'use_mmap',
  num_predict: 'max_tokens', temperature: 'temperature', top_k: 'top_k', top_p: 'top_p', min_p: 'min_p', seed: 'seed',
  stop: 'stop', repeat_penalty: 'repeat_penalty', repeat_last_n: 'repeat_last_n',
  presence_penalty: 'presence_penalty', frequency_penalty: 'frequency_penalty',
};

/** `parameters` under modeld's names, each checked against the engine's descriptors; errors name `parameters.<Ollama name>`. */
function runParameters(app: FastifyInstance, source: ModelEntry | undefined, given: Record<string, unknown>): Record<string, unknown> {
  const descriptors = source ? app.manager.engine(source).descriptors : LLAMACPP_DESCRIPTORS;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) {
    const param = `parameters.${name}`;
    const jan = PARAMETER_NAMES[name];
    if (!jan) {
      throw new ApiError('unknown_parameter', `${param} is not a parameter this server runs; it takes ${Object.keys(PARAMETER_NAMES).join(', ')}`, { param });
    }
    // Ollama's Modelfile gives one stop per line; its API takes a string or a list.
    const v = name === 'stop' && typeof value === 'string' ? [value] : value;
    // -1 (and -2) mean no limit in Ollama: no max_tokens at all here.
    if (name === 'num_predict' && typeof v === 'number' && v < 0) continue;
    const d = descriptors.find((x) => x.name === jan);
    if (!d) continue;
    try {
      out[jan] = checkParam(d, v, 'parameters');
    } catch (err) {
      if (err instanceof ApiError) throw new ApiError(err.code, err.message.replace(`'${jan}' in parameters`, `'${param}'`), { param });
      throw err;
    }
  }
  return out;
}

/** A present, non-empty value of a field this server does not act on is a 400 naming it. */
function refuseUnsupported(body: OllamaCreateRequest): void {
  const why: Array<[keyof OllamaCreateRequest, string]> = [
    ['adapters', 'LoRA adapters are not applied by this server'],
    ['template', 'Go templates are not run here; the model answers through its GGUF\'s own chat template'],
    ['messages', 'a model with a stored conversation is not supported; send the messages with each chat'],
    ['quantize', 'models are not re-quantized here; pull the quantization you want (hf.co/<org>/<repo>:<quantization>)'],
  ];
  for (const [field, reason] of why) {
    const v = body[field];
    const empty = v === undefined || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);
    if (!empty) throw new ApiError('unsupported_feature', `'${field}': ${reason}`, { param: field });
  }
}

/**
 * Ollama's `/api/copy` and `/api/create` over the model folder: a new model object beside the
 * others whose binaries are hard links of the source's (no extra disk, and deleting either
 * model leaves the other whole).
 */
export default async function ollamaCreateRoutes(app: FastifyInstance) {
  const blobs = new BlobStore(app.registry.modelsDir);

  /** `files` (name → digest of an uploaded blob) as the binaries of a new model object; only GGUF files are taken. */
  async function fromBlobs(files: Record<string, string>): Promise<{ object: ModelObjectFile; files: Array<{ from: string; rel: string }>; digests: string[] }> {
    const placed: Array<{ from: string; rel: string }> = [];
    const binaries: Array<{ path: string; sha256: string }> = [];
    for (const [name, digest] of Object.entries(files)) {
      const param = `files.${name}`;
      const rel = path.basename(name);
      if (!/\.gguf$/i.test(rel) || rel.startsWith('.')) {
        throw new ApiError('unsupported_feature', `'${param}': only GGUF files are taken (safetensors are not converted here)`, { param });
      }
      const hex = parseDigest(digest, param);
      if (!(await blobs.has(hex))) {
        throw new ApiError('invalid_value', `'${param}' names sha256:${hex}, which was not uploaded; POST the file to /api/blobs/sha256:${hex} first`, { param });
      }
      placed.push({ from: blobs.pathOf(hex), rel });
      binaries.push({ path: `./${rel}`, sha256: hex });
    }
    if (new Set(placed.map((p) => p.rel)).size !== placed.length) throw new ApiError('invalid_value', `'files' names one file twice`, { param: 'files' });
    return { object: { metadata: { binaries } } as ModelObjectFile, files: placed, digests: binaries.map((b) => b.sha256) };
  }
  app.post('/api/copy', {
    schema: {
      tags, summary: 'Copy a model (Ollama)',
      description:
        'A new model object `destination` (`<name>` is the id `<name>/model`) with the source\'s object and its downloaded binaries hard-linked into the new folder (copied where links are impossible). ' +
        'An existing destination is a 409 model_exists (Ollama would overwrite it). Answers 200 with no body.',
      body: OllamaCopyRequestSchema,
      response: { 200: Type.Null({ description: 'Copied.' }), ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaCopyRequest;
    const source = copyableSource(app, body.source, 'source');
    await app.registry.copy(source, newModelId(body.destination, 'destination'), 'destination', (o) => ({ ...o, name: body.destination }));
    return reply.code(200).send();
  });

  app.post('/api/create', {
    schema: {
      tags, summary: 'Create a model from another (Ollama)',
      description:
        'A new model `model`, as `ollama create` makes one from a Modelfile\'s FROM, SYSTEM, PARAMETER and LICENSE: built `from` an existing model (its object, binaries hard-linked as /api/copy does), or from GGUF `files` uploaded to /api/blobs (hard-linked into the new folder, then dropped from the upload area). ' +
        '`system` becomes its `pre_prompt` (the system message when a chat has none) and `parameters` (Ollama\'s names) its run parameters. `adapters`, `template`, `messages` and `quantize` are a 400 unsupported_feature naming the field. Streams `reading model metadata`, `creating model object`, `success` as NDJSON unless `stream: false`.',
      body: OllamaCreateRequestSchema,
      response: { 200: OllamaStatusSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaCreateRequest;
    const name = body.model ?? body.name;
    if (!name) throw new ApiError('missing_required_parameter', `'model' is required: the new model's name`, { param: 'model' });
    refuseUnsupported(body);
    const hasFiles = body.files !== undefined && Object.keys(body.files).length > 0;
    if (hasFiles && body.from) throw new ApiError('invalid_value', `'from' and 'files' are two sources; send one`, { param: 'from' });
    if (!hasFiles && !body.from) throw new ApiError('missing_required_parameter', `'from' (a model to build on) or 'files' (uploaded GGUF blobs) is required`, { param: 'from' });
    const id = newModelId(name, 'model');
    const source = body.from ? copyableSource(app, body.from, 'from') : undefined;
    const params = runParameters(app, source, body.parameters ?? {});
    const edit = (o: ModelObjectFile): ModelObjectFile => ({
      ...o,
      name,
      parameters: { ...o.parameters, ...params, ...(body.system !== undefined ? { pre_prompt: body.system } : {}) },
      ...(body.license !== undefined
        ? { metadata: { ...o.metadata, license: Array.isArray(body.license) ? body.license.join('\n\n') : body.license } as ModelObjectFile['metadata'] }
        : {}),
    });
    // Made before the answer starts (links take milliseconds), so a refusal keeps its status code.
    if (source) {
      await app.registry.copy(source, id, 'model', edit);
    } else {
      const made = await fromBlobs(body.files!);
      await app.registry.place(id, 'model', edit(made.object), made.files);
      // The model's hard link holds the bytes now; the upload area keeps no second name for them.
      for (const hex of made.digests) await blobs.remove(hex);
    }
    if (body.stream === false) return { status: 'success' };
    return sendEventStream(reply, async (emit) => {
      for (const status of ['reading model metadata', 'creating model object', 'success']) emit({ status });
    }, { ndjson: true });
  });
}
