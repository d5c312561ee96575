import type { FastifyInstance, FastifyReply } from 'fastify';
import type { GenerateOptions, GenerationResult, LoadedModel, PromptPiece } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import type { ModelEntry } from '../../registry/registry.ts';
import { errorResponses } from '../../schemas/common.ts';
import {
  InfillRequestSchema, NativeCompletionRequestSchema, NativeCompletionResponseSchema,
  type InfillRequest, type NativeCompletionRequest, type NativeCompletionResponse,
} from '../../schemas/llama-server.ts';
import { clientSignal } from '../client-signal.ts';
import llamaServerRouterRoutes from './router.ts';
import { targetModel } from './target-model.ts';
import { countTokens, requestParams, sendEventStream } from '../openai/inference.ts';
import { postAt } from '../route-aliases.ts';

const tags = ['llama-server'];

type Body = NativeCompletionRequest | InfillRequest;

/** The request's sampling fields as run parameters; `n_predict` -1 is no limit, 0 reads the prompt only. */
function nativeParams(app: FastifyInstance, entry: ModelEntry, body: Body): Record<string, unknown> {
  const n = body.n_predict;
  return requestParams(app, entry, {
    ...body,
    seed: body.seed === -1 ? undefined : body.seed,
    max_tokens: n === undefined || n < 0 ? undefined : Math.max(1, n),
  }, (name) => (name === 'max_tokens' ? 'n_predict' : name));
}

/** Times one generation as llama-server's `timings` report it. */
class Timings {
  #start = performance.now();
  #first: number | undefined;
  #prompt = { tokens: 0, cachedTokens: 0 };

  started(prompt?: { tokens: number; cachedTokens: number }): void {
    this.#start = performance.now();
    if (prompt) this.#prompt = prompt;
  }

  output(): void {
    this.#first ??= performance.now();
  }

  /** Milliseconds since the first output (0 before it). */
  sinceFirst(): number {
    return this.#first === undefined ? 0 : performance.now() - this.#first;
  }

  of(r: GenerationResult, predicted: number) {
    const end = performance.now();
    const first = this.#first ?? end;
    const cached = r.usage.cachedPromptTokens ?? this.#prompt.cachedTokens;
    const read = r.usage.evaluatedPromptTokens ?? r.usage.promptTokens - cached;
    const promptMs = first - this.#start;
    const predictedMs = end - first;
    return {
      cache_n: cached, prompt_n: read, prompt_ms: promptMs, prompt_per_token_ms: read ? promptMs / read : 0, prompt_per_second: promptMs > 0 ? (read * 1000) / promptMs : 0,
      predicted_n: predicted, predicted_ms: predictedMs, predicted_per_token_ms: predicted ? predictedMs / predicted : 0,
      predicted_per_second: predictedMs > 0 ? (predicted * 1000) / predictedMs : 0,
    };
  }
}

/**
 * llama-server's native completion routes (`/completion`, `/infill`) in llama-server's own
 * answer shape, over the same models and queue as the OpenAI routes: for editors' code
 * completion (llama.vim, llama.vscode) and scripts written against llama-server.
 */
export default async function llamaServerRoutes(app: FastifyInstance) {
  await app.register(llamaServerRouterRoutes);
  /** One generation answered in llama-server's shape, whole or as server-sent events. */
  async function answer(reply: FastifyReply, entry: ModelEntry, body: Body, generate: (loaded: LoadedModel, options: GenerateOptions) => Promise<GenerationResult>) {
    const params = nativeParams(app, entry, body);
    // n_predict 0 reads the prompt (a cache warm-up) and answers nothing; one token is decoded and dropped.
    const silent = body.n_predict === 0;
    const timings = new Timings();
    let ctx = 0;
    const run = { capability: 'completion' as const, signal: clientSignal(reply), keepAlive: body.keep_alive };
    const last = (r: GenerationResult, content: string): NativeCompletionResponse => {
      const predicted = silent ? 0 : r.usage.completionTokens;
      return {
        index: 0, content, tokens: [], id_slot: 0, stop: true, model: entry.id,
        tokens_predicted: predicted, tokens_evaluated: r.usage.promptTokens, tokens_cached: r.usage.promptTokens + predicted,
        has_new_line: !silent && r.text.includes('\n'),
        // llama-server's meaning: the prompt and the answer filled the context.
        truncated: ctx > 0 && r.usage.promptTokens + r.usage.completionTokens >= ctx,
        stop_type: r.finishReason === 'length' ? 'limit' : r.stopSequence !== undefined ? 'word' : 'eos',
        stopping_word: r.stopSequence ?? '',
        generation_settings: { n_ctx: ctx, n_predict: body.n_predict ?? -1, model: entry.id },
        timings: timings.of(r, predicted),
      };
    };
    // t_max_predict_ms: llama-server ends an editor's completion once the time is up and a line is complete.
    const limitMs = body.t_max_predict_ms ?? 0;
    let newLine = false;
    const limitWhen = limitMs > 0 ? () => newLine && timings.sinceFirst() > limitMs : undefined;
    const once = (loaded: LoadedModel, options: Pick<GenerateOptions, 'signal' | 'onText'>) => {
      ctx = Number(loaded.info?.ctx_len ?? 0);
      return generate(loaded, {
        params, ...options, ...(limitWhen ? { limitWhen } : {}),
        onStart: (prompt) => timings.started(prompt),
        onText: (text) => {
          timings.output();
          if (text.includes('\n')) newLine = true;
          if (!silent) options.onText?.(text);
        },
      });
    };
    if (!body.stream) {
      const r = await app.manager.run(entry, run, (loaded, signal) => once(loaded, { signal }));
      countTokens(app, entry.id, r.usage);
      return last(r, silent ? '' : r.text);
    }
    return sendEventStream(reply, async (emit) => {
      const r = await app.manager.run(entry, run, (loaded, signal) => once(loaded, {
        signal,
        onText: (text) => {
          if (text) emit({ index: 0, content: text, tokens: [], stop: false, id_slot: -1 });
        },
      }));
      countTokens(app, entry.id, r.usage);
      emit(last(r, ''));
    }, { done: false });
  }

  postAt(app, '/completion', ['/completions'], {
    schema: {
      tags, summary: 'Complete a prompt (llama-server)',
      description:
        'llama-server\'s native completion: `prompt` (text, or token ids and texts mixed), `n_predict`, the sampling fields; the answer in llama-server\'s shape (`content`, `stop`, `stop_type`, `tokens_predicted`, `tokens_evaluated`, `timings`). ' +
        '`stream: true` sends `data: {content, stop: false}` events, then the whole answer with `stop: true`, no `[DONE]`. `model` may be left out while exactly one model runs.',
      body: NativeCompletionRequestSchema,
      response: { 200: NativeCompletionResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as NativeCompletionRequest;
    const entry = targetModel(app, body.model);
    return answer(reply, entry, body, (loaded, options) => loaded.complete!(body.prompt as string | PromptPiece[], options));
  });

  app.post('/infill', {
    schema: {
      tags, summary: 'Fill in the middle (llama-server)',
      description:
        'llama-server\'s /infill for editors\' code completion (llama.vim, llama.vscode): `input_prefix`, `input_suffix`, `input_extra` (other files, before the prefix, with the model\'s `<|repo_name|>`/`<|file_sep|>` tokens when it has them), `prompt` (typed so far, after the prefix). ' +
        'Long inputs are cut as llama-server cuts them (the prefix\'s last ¾ batch, the suffix\'s first ¼, the extra files\' last tokens in what the context leaves) instead of being refused. A model without fill-in-the-middle tokens is a 400 model_not_capable. Answers as /completion does.',
      body: InfillRequestSchema,
      response: { 200: NativeCompletionResponseSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as InfillRequest;
    const entry = targetModel(app, body.model);
    const extra = body.input_extra?.map((f) => ({ filename: f.filename ?? 'tmp', text: f.text }));
    // The engine names its completion's fields; here the prefix is what it calls the prompt.
    const renamed: Record<string, string> = { suffix: 'input_suffix', prompt: 'input_prefix' };
    return answer(reply, entry, body, (loaded, options) => loaded.complete!(body.input_prefix ?? '', {
      ...options,
      suffix: body.input_suffix ?? '',
      infill: { fit: true, ...(body.prompt ? { prompt: body.prompt } : {}), ...(extra?.length ? { extra } : {}) },
    }).catch((err: unknown) => {
      if (!(err instanceof ApiError) || !err.param || !renamed[err.param]) throw err;
      const field = renamed[err.param]!;
      throw new ApiError(err.code, err.message.replaceAll(`'${err.param}'`, `'${field}'`), { param: field, cause: err.cause });
    }));
  });
}
