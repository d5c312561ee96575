import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ChatResult, GenerateOptions, LoadedModel } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import { OPENAPI_INFO } from '../../plugins/swagger.ts';
import { GGUF_POOLING_RANK } from '../../registry/headers/gguf-header.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { metadataOf } from '../../runtime/model-view.ts';
import { errorResponses } from '../../schemas/common.ts';
import { Type } from '../../schemas/typebox.ts';
import {
  OllamaChatRequestSchema, OllamaChatResponseSchema, OllamaEmbeddingsRequestSchema, OllamaEmbeddingsResponseSchema, OllamaEmbedRequestSchema,
  OllamaEmbedResponseSchema, OllamaGenerateRequestSchema,
  OllamaGenerateResponseSchema, OllamaPsSchema, OllamaShowRequestSchema, OllamaShowSchema, OllamaTagsSchema, OllamaVersionSchema,
  type OllamaChatRequest, type OllamaEmbeddingsRequest, type OllamaEmbedRequest, type OllamaGenerateRequest, type OllamaShowRequest,
} from '../../schemas/ollama.ts';
import { clientSignal } from '../client-signal.ts';
import { buildToolOptions } from '../openai/chat-request.ts';
import { shortened } from '../openai/embeddings.ts';
import { countTokens, sendEventStream } from '../openai/inference.ts';
import { resolveOllamaName } from './ollama-names.ts';
import { ollamaParams, toOllamaFormat, toOllamaMessages } from './ollama-request.ts';
import ollamaBlobRoutes from './blobs.ts';
import ollamaCreateRoutes, { modelfileOf } from './create.ts';
import ollamaPullRoutes from './pull.ts';

const tags = ['ollama'];

/** "135M", "1.5B": Ollama's parameter_size. */
function parameterSize(count: unknown): string {
  if (typeof count !== 'number' || !(count > 0)) return '';
  return count >= 1e9 ? `${(count / 1e9).toFixed(1).replace(/\.0$/, '')}B` : `${Math.round(count / 1e6)}M`;
}

/** What Ollama's model lists say of a model, from the header facts in its metadata. */
function details(entry: ModelEntry) {
  const meta = metadataOf(entry);
  const family = typeof meta.architecture === 'string' ? meta.architecture : '';
  return {
    size: typeof meta.size === 'number' ? meta.size : 0,
    details: {
      format: 'gguf', family, families: family ? [family] : [],
      parameter_size: parameterSize(meta.parameter_count), quantization_level: typeof meta.quantization === 'string' ? meta.quantization : '',
    },
  };
}

/**
 * Times an answer as Ollama reports it, in nanoseconds: the whole request, the prompt (from
 * the generation's start to its first output) and the rest.
 */
class Timer {
  readonly #t0 = process.hrtime.bigint();
  #start: bigint | undefined;
  #first: bigint | undefined;

  started(): void {
    this.#start ??= process.hrtime.bigint();
  }

  output(): void {
    this.#first ??= process.hrtime.bigint();
  }

  figures(r: ChatResult) {
    const end = process.hrtime.bigint();
    const start = this.#start ?? this.#t0;
    const first = this.#first ?? end;
    return {
      total_duration: Number(end - this.#t0),
      load_duration: 0,
      prompt_eval_count: r.usage.promptTokens,
      prompt_eval_duration: Number(first - start),
      eval_count: r.usage.completionTokens,
      eval_duration: Number(end - first),
    };
  }
}

/** What a route's generation gets from the shared answer loop: the signal and the timing and streaming hooks. */
type Hooks = Pick<GenerateOptions, 'signal' | 'onStart' | 'onText' | 'onReasoning'>;

/** One of /api/chat's and /api/generate's answers, as the shared loop runs it. */
interface Answer {
  capability: 'chat' | 'completion';
  stream: boolean;
  keepAlive: unknown;
  generate: (loaded: LoadedModel, hooks: Hooks) => Promise<ChatResult>;
  /** A stream line for a piece of new text. */
  chunk: (text: { content?: string; thinking?: string }) => Record<string, unknown>;
  /** The last line (or the whole answer), with the counts and durations. */
  last: (r: ChatResult, timings: ReturnType<Timer['figures']>) => Record<string, unknown>;
}

/**
 * Ollama's `expires_at`: when the model unloads for idleness. A model kept loaded gets a far
 * date a Go client still parses: now + the longest Go duration, ~292 years.
 */
const FOREVER_MS = 9_223_372_036_854;
const expiresAt = (at: Date | null | undefined) => (at ?? new Date(Date.now() + FOREVER_MS)).toISOString();

/**
 * What Ollama's lists give as `digest` (its manifest's sha256, `ollama list`'s ID): here the
 * sha256 of the model object and its binaries' names, sizes and checksums, so it changes when
 * the model does and two copies of one model differ.
 */
const digestOf = (e: ModelEntry) => createHash('sha256').update(JSON.stringify([e.id, e.object, e.binaries.map((b) => [path.basename(b.path), b.size, b.sha256])])).digest('hex');

const doneReason = (r: ChatResult) => (r.finishReason === 'length' ? 'length' : 'stop');
const wireCalls = (r: ChatResult) => r.toolCalls?.map((c) => ({ function: { name: c.name, arguments: JSON.parse(c.arguments) as Record<string, unknown> } }));

/**
 * Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`,
 * `/api/tags`, `/api/ps`, `/api/show`, `/api/version`; `/api/pull` and `/api/delete` in
 * pull.ts) over the same models, queue and engines, for clients that speak only Ollama.
 * Streams are newline-delimited JSON, on by default as in Ollama.
 */
export default async function ollamaRoutes(app: FastifyInstance) {
  await app.register(ollamaPullRoutes);
  await app.register(ollamaCreateRoutes);
  await app.register(ollamaBlobRoutes);

  /** One generation, plain or streamed: `chunk` makes a stream line of new text, `last` the final line. */
  async function answer(reply: Parameters<typeof clientSignal>[0], entry: ModelEntry, a: Answer) {
    const { stream, generate, chunk, last } = a;
    const timer = new Timer();
    const run = { capability: a.capability, signal: clientSignal(reply), keepAlive: a.keepAlive };
    if (!stream) {
      const r = await app.manager.run(entry, run, (loaded, sig) => generate(loaded, {
        signal: sig, onStart: () => timer.started(), onText: () => timer.output(), onReasoning: () => timer.output(),
      }));
      countTokens(app, entry.id, r.usage);
      return last(r, timer.figures(r));
    }
    return sendEventStream(reply, async (emit) => {
      const r = await app.manager.run(entry, run, (loaded, sig) => generate(loaded, {
        signal: sig,
        onStart: () => timer.started(),
        onText: (text) => {
          timer.output();
          if (text) emit(chunk({ content: text }));
        },
        onReasoning: (text) => {
          timer.output();
          if (text) emit(chunk({ thinking: text }));
        },
      }));
      countTokens(app, entry.id, r.usage);
      emit(last(r, timer.figures(r)));
    }, { ndjson: true });
  }

  /** /api/embed's and /api/embeddings' vectors, counted in the token metric. */
  async function embed(reply: Parameters<typeof clientSignal>[0], entry: ModelEntry, inputs: string[], keepAlive: unknown) {
    const r = await app.manager.run(entry, { capability: 'embedding', signal: clientSignal(reply), keepAlive }, (loaded, sig) => loaded.embed!(inputs, sig));
    app.metrics.tokens.inc({ model: entry.id, kind: 'embedding' }, r.promptTokens);
    return r;
  }

  app.post('/api/chat', {
    schema: {
      tags, summary: 'Chat (Ollama)',
      description: 'Ollama\'s /api/chat: the model\'s chat template, `tools` (calls come back as `message.tool_calls` with `arguments` objects; `tool` messages answer them in order), `format` (`json` or a schema), `options` (sampling, `num_predict`), a thought as `message.thinking`. Streams newline-delimited JSON unless `stream: false`. Errors keep the OpenAI envelope.',
      body: OllamaChatRequestSchema,
      response: { 200: OllamaChatResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaChatRequest;
    const entry = resolveOllamaName(app, body.model);
    const messages = toOllamaMessages(body.messages);
    const params = ollamaParams(app, entry, body.options);
    const responseFormat = toOllamaFormat(body.format);
    const tools = buildToolOptions((body.tools ?? []).map((t, i) => ({ ...t.function, param: `tools[${i}].function` })), 'auto', true, responseFormat ? 'format' : undefined);
    const head = () => ({ model: entry.id, created_at: new Date().toISOString() });
    return answer(reply, entry, {
      capability: 'chat', stream: body.stream !== false, keepAlive: body.keep_alive,
      generate: (loaded, hooks) => loaded.chat!(messages, { ...hooks, params, responseFormat, tools }),
      chunk: (text) => ({ ...head(), message: { role: 'assistant', content: text.content ?? '', ...(text.thinking ? { thinking: text.thinking } : {}) }, done: false }),
      last: (r, timings) => ({
        ...head(),
        message: {
          role: 'assistant',
          // A stream sent the text already; its last line carries only the calls.
          content: body.stream !== false ? '' : r.text,
          ...(body.stream === false && r.reasoning ? { thinking: r.reasoning } : {}),
          ...(r.toolCalls ? { tool_calls: wireCalls(r) } : {}),
        },
        done: true, done_reason: doneReason(r), ...timings,
      }),
    });
  });

  app.post('/api/generate', {
    schema: {
      tags, summary: 'Generate (Ollama)',
      description: 'Ollama\'s /api/generate: `prompt` (with `system`) through the chat template, or as it is with `raw`. An empty prompt loads the model, or unloads it with `keep_alive: 0`. Streams newline-delimited JSON unless `stream: false`.',
      body: OllamaGenerateRequestSchema,
      response: { 200: OllamaGenerateResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaGenerateRequest;
    const entry = resolveOllamaName(app, body.model);
    if (body.images?.length) throw new ApiError('unsupported_feature', `'images': this server reads text only`, { param: 'images' });
    const head = () => ({ model: entry.id, created_at: new Date().toISOString() });
    if (!body.prompt) {
      // Ollama's load and unload requests.
      if (body.keep_alive === 0 || body.keep_alive === '0') {
        await app.manager.stop(entry.id);
        return { ...head(), response: '', done: true, done_reason: 'unload' };
      }
      await app.manager.use(entry, { capability: body.raw ? 'completion' : 'chat', keepAlive: body.keep_alive }, () => undefined);
      return { ...head(), response: '', done: true, done_reason: 'load' };
    }
    const prompt = body.prompt;
    const params = ollamaParams(app, entry, body.options);
    const responseFormat = toOllamaFormat(body.format);
    const messages = [...(body.system ? [{ role: 'system' as const, content: body.system }] : []), { role: 'user' as const, content: prompt }];
    return answer(reply, entry, {
      // A suffix asks for the middle between prompt and suffix, without the chat template (as Ollama's code models answer it).
      capability: body.raw || body.suffix ? 'completion' : 'chat', stream: body.stream !== false, keepAlive: body.keep_alive,
      generate: (loaded, hooks) => (body.raw || body.suffix
        ? loaded.complete!(prompt, { ...hooks, params, responseFormat, ...(body.suffix ? { suffix: body.suffix } : {}) })
        : loaded.chat!(messages, { ...hooks, params, responseFormat })),
      chunk: (text) => ({ ...head(), response: text.content ?? '', ...(text.thinking ? { thinking: text.thinking } : {}), done: false }),
      last: (r, timings) => ({
        ...head(), response: body.stream !== false ? '' : r.text,
        ...(body.stream === false && r.reasoning ? { thinking: r.reasoning } : {}),
        done: true, done_reason: doneReason(r), ...timings,
      }),
    });
  });

  app.post('/api/embed', {
    schema: {
      tags, summary: 'Embed (Ollama)',
      description: 'Ollama\'s /api/embed: one unit-length vector per input, as POST /v1/embeddings gives them.',
      body: OllamaEmbedRequestSchema,
      response: { 200: OllamaEmbedResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaEmbedRequest;
    const entry = resolveOllamaName(app, body.model);
    const r = await embed(reply, entry, typeof body.input === 'string' ? [body.input] : body.input, body.keep_alive);
    return { model: entry.id, embeddings: shortened(r.vectors, body.dimensions, 'dimensions'), prompt_eval_count: r.promptTokens };
  });

  app.post('/api/embeddings', {
    schema: {
      tags, summary: 'Embed one text (Ollama, legacy)',
      description: 'Ollama\'s older /api/embeddings: one `prompt`, one `embedding`. The vector is unit-length, as /api/embed gives it.',
      body: OllamaEmbeddingsRequestSchema,
      response: { 200: OllamaEmbeddingsResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as OllamaEmbeddingsRequest;
    const entry = resolveOllamaName(app, body.model);
    if (body.prompt === '') return { embedding: [] };
    return { embedding: (await embed(reply, entry, [body.prompt], body.keep_alive)).vectors[0]! };
  });

  app.get('/api/tags', {
    schema: {
      tags, summary: 'List local models (Ollama)',
      description: 'The GGUF models that are downloaded, as Ollama lists its own (the digest is the sha256 of the model object and its binaries\' names, sizes and checksums).',
      response: { 200: OllamaTagsSchema },
    },
  }, async () => ({
    models: app.registry.list()
      .filter((e) => (e.engine ?? 'llamacpp') === 'llamacpp' && app.manager.state(e).state !== 'not-downloaded' && !e.problem)
      .map((e) => ({ name: e.id, model: e.id, modified_at: new Date(e.created * 1000).toISOString(), digest: digestOf(e), ...details(e) })),
  }));

  app.get('/api/ps', {
    schema: {
      tags, summary: 'List running models (Ollama)',
      response: { 200: OllamaPsSchema },
    },
  }, async () => ({
    models: app.registry.list()
      .filter((e) => (e.engine ?? 'llamacpp') === 'llamacpp' && app.manager.state(e).state === 'running')
      .map((e) => ({ name: e.id, model: e.id, digest: digestOf(e), size_vram: 0, expires_at: expiresAt(app.manager.unloadTime(e.id)), ...details(e) })),
  }));

  app.post('/api/show', {
    schema: {
      tags, summary: 'Show a model (Ollama)',
      description: 'What Ollama\'s /api/show says of a model, from its model object and GGUF header: details, header facts under GGUF key names (clients read `<arch>.context_length`), run parameters, capabilities.',
      body: OllamaShowRequestSchema,
      response: { 200: OllamaShowSchema, ...errorResponses },
    },
  }, async (request) => {
    const entry = resolveOllamaName(app, (request.body as OllamaShowRequest).model);
    if ((entry.engine ?? 'llamacpp') !== 'llamacpp') {
      throw new ApiError('model_not_capable', `the model '${entry.id}' is not a GGUF model (engine ${entry.engine}); Ollama's API shows GGUF models`, { param: 'model' });
    }
    const h = entry.header;
    const arch = typeof h.architecture === 'string' ? h.architecture : undefined;
    const params = (entry.object.parameters ?? {}) as Record<string, unknown>;
    const metadata = (entry.object.metadata ?? {}) as Record<string, unknown>;
    const embedding = h.pooling_type !== undefined || metadata.task === 'embedding' || params.embedding === true;
    const info: Record<string, unknown> = { 'general.architecture': arch, 'general.parameter_count': h.parameter_count };
    if (arch) for (const k of ['context_length', 'embedding_length', 'block_count']) if (h[k] !== undefined) info[`${arch}.${k}`] = h[k];
    return {
      modelfile: modelfileOf(entry.id, params, metadata.license),
      parameters: Object.entries({ ...(params.ctx_len !== undefined ? { num_ctx: params.ctx_len } : {}), ...params }).map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n'),
      template: '',
      ...(typeof params.pre_prompt === 'string' && params.pre_prompt !== '' ? { system: params.pre_prompt } : {}),
      ...(typeof metadata.license === 'string' ? { license: metadata.license } : {}),
      details: details(entry).details,
      model_info: Object.fromEntries(Object.entries(info).filter(([, v]) => v !== undefined)),
      // A reranker (pooling type rank) does none of Ollama's things; /v1/rerank serves it.
      capabilities: h.pooling_type === GGUF_POOLING_RANK ? [] : embedding ? ['embedding'] : ['completion', 'tools'],
      modified_at: new Date(entry.created * 1000).toISOString(),
    };
  });

  // Some clients find an Ollama-compatible server by this exact text; Ollama's Go client sends its heartbeat as HEAD /.
  app.get('/', {
    schema: {
      tags, summary: 'Ollama\'s heartbeat', security: [],
      description: '`Ollama is running` as text/plain, as Ollama answers: some clients detect an Ollama-compatible server by that exact text, and Ollama\'s Go client (its CLI) sends its heartbeat as HEAD /. Needs no API key.',
      response: { 200: Type.String() },
    },
  }, async (_request, reply) => reply.type('text/plain; charset=utf-8').send('Ollama is running'));

  app.get('/api/version', {
    schema: { tags, summary: 'Server version (Ollama)', response: { 200: OllamaVersionSchema } },
  }, async () => ({ version: OPENAPI_INFO.version }));
}
