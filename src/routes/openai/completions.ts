import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationResult, LoadedModel, PromptPiece, TokenLogprob } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';
import { CompletionRequestSchema, CompletionSchema, type Completion, type CompletionRequest } from '../../schemas/openai/completions.ts';
import { mapWithLimit } from '../../scheduler/map-with-limit.ts';
import { clientSignal } from '../client-signal.ts';
import { randomId } from '../ids.ts';
import { toResponseFormat } from './chat-request.ts';
import { answerSignal, answerUsage, countTokens, requestParams, sendEventStream, unixNow, wireUsage } from './inference.ts';
import { completionLogprobs } from './logprobs.ts';
import { AnswerClock } from '../lmstudio/figures.ts';
import { LmStudioFiguresSchema } from '../../schemas/lmstudio.ts';
import { Type } from '../../schemas/typebox.ts';

function rejectUnsupported(body: CompletionRequest): void {
  if (body.echo === true && body.logprobs != null) {
    throw new ApiError('unsupported_feature', `'echo' with 'logprobs' is not supported by this server (the prompt's own log-probabilities are not computed)`, { param: 'echo' });
  }
  if (body.best_of != null && body.best_of !== 1) throw new ApiError('unsupported_feature', `'best_of' must be 1`, { param: 'best_of' });
}

/** The prompt as `echo` shows it and logprobs' `text_offset` counts it. */
function promptText(loaded: LoadedModel, prompt: string | readonly PromptPiece[]): string {
  if (typeof prompt === 'string') return prompt;
  if (!loaded.promptText) throw new ApiError('unsupported_feature', `this model's engine takes text prompts only`, { param: 'prompt' });
  return loaded.promptText(prompt);
}

/** POST /v1/completions: raw prompt continuation, one choice per prompt. */
export default async function completionRoutes(app: FastifyInstance) {
  const completionSchema = {
    tags: ['openai'], summary: 'Create a completion',
    description: 'Continues each prompt as is (no chat template). Several prompts, and `n` choices of each, run as parallel requests on the model\'s sequences and decode in shared batches; each is a choice with its index (prompt × n + j). `stream: true` answers with server-sent events ending `data: [DONE]`.',
    body: CompletionRequestSchema,
    response: { 200: CompletionSchema, ...errorResponses },
  };
  /** The completion; `lmStudio` adds LM Studio's `stats`, `model_info` and `runtime` to an answer that is not streamed. */
  const completion = (lmStudio: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as CompletionRequest;
    const entry = app.registry.resolve(body.model);
    rejectUnsupported(body);
    // An array with a number at its top level is one prompt (token ids, or ids and texts mixed,
    // llama-server's rule); any other array is several prompts.
    const several = Array.isArray(body.prompt) && !body.prompt.some((x) => typeof x === 'number');
    const prompts = (several ? body.prompt : [body.prompt]) as Array<string | PromptPiece[]>;
    // OpenAI `n`: choice index = prompt index × n + j.
    const n = body.n ?? 1;
    const jobs = prompts.flatMap((prompt, p) => Array.from({ length: n }, (_, choice) => ({ prompt, p, choice })));
    const totalUsage = (results: GenerationResult[]) => wireUsage(answerUsage(results.map((r) => r.usage), n));
    const params = requestParams(app, entry, body);
    const responseFormat = toResponseFormat(body.response_format);
    // One prompt failing ends the answer, so it also stops the other generations.
    const { signal, fail: stopOthers } = answerSignal(clientSignal(reply), jobs.length);
    // With several prompts, an error about one of them names it (`prompt[1]`, `prompt[1][2]`),
    // once: the up-front check's error comes back through the generation's catch.
    const named = new WeakSet<ApiError>();
    const namePrompt = (err: unknown, index: number): unknown => {
      if (!several || !(err instanceof ApiError) || !err.param?.startsWith('prompt') || named.has(err)) return err;
      const renamed = new ApiError(err.code, `prompt[${index}]: ${err.message}`, { param: `prompt[${index}]${err.param.slice('prompt'.length)}`, retryAfter: err.retryAfter, cause: err.cause });
      named.add(renamed);
      return renamed;
    };
    // Prompts run as parallel requests, at most the model's sequences at once (read as it loads).
    const parallel = () => app.manager.state(entry).queue?.concurrency ?? 1;
    const id = randomId('cmpl-');
    const created = unixNow();
    const run = { capability: 'completion' as const, signal, keepAlive: body.keep_alive };
    const logprobs = body.logprobs ?? undefined;
    const echo = body.echo === true;
    // Fill in the middle; an empty suffix leaves nothing after the gap, which is a plain completion.
    const fim = body.suffix ? { suffix: body.suffix } : {};
    // The prompt's text where the answer shows it (echo, text_offset), else ''. With several
    // prompts the first call checks them all (ids in the vocabulary, not empty, within the
    // context), so a bad prompt[3] is a 400 even when prompt[0] would have started the stream;
    // its failure is kept for every later call, so a generation that begins meanwhile cannot
    // start the stream either. One prompt needs no such check: `complete` refuses it before
    // the stream starts, and checking first would tokenize it twice.
    let checked: { error?: unknown } | undefined = prompts.length === 1 ? {} : undefined;
    const shown = (loaded: LoadedModel, prompt: string | PromptPiece[]) => {
      if (!checked) {
        checked = {};
        prompts.forEach((p, i) => {
          if (checked!.error !== undefined) return;
          try {
            if (loaded.checkPrompt) loaded.checkPrompt(p);
            else if (typeof p !== 'string') promptText(loaded, p);
          } catch (err) {
            checked!.error = namePrompt(err, i);
          }
        });
      }
      if (checked.error !== undefined) throw checked.error;
      return echo || logprobs !== undefined ? promptText(loaded, prompt) : '';
    };

    if (!body.stream) {
      const clock = lmStudio ? new AnswerClock() : undefined;
      const piece = clock ? { onText: clock.piece } : {};
      const results = await mapWithLimit(jobs, parallel, ({ prompt, p, choice }, _index, started) =>
        app.manager.run(entry, run, async (loaded, sig) => {
          const promptShown = shown(loaded, prompt);
          return { ...(await loaded.complete!(prompt, { ...fim, params, responseFormat, logprobs, choice, signal: sig, onStart: started, ...piece })), prompt: promptShown };
        }).catch((err: unknown) => stopOthers(namePrompt(err, p))));
      for (const r of results) countTokens(app, entry.id, r.usage);
      const answer: Completion = {
        id, object: 'text_completion', created, model: entry.id, system_fingerprint: null,
        choices: results.map((r, index) => ({
          text: echo ? r.prompt + r.text : r.text, index, logprobs: r.logprobs ? completionLogprobs(r.prompt)(r.logprobs) : null, finish_reason: r.finishReason,
        })),
        usage: totalUsage(results),
      };
      return clock ? { ...answer, ...clock.figures(app, entry, results) } : answer;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const base = { id, object: 'text_completion', created, model: entry.id, system_fingerprint: null };
    const usageNull = includeUsage ? { usage: null } : {};
    const chunk = (index: number, text: string, finish: string | null = null, lps: ReturnType<ReturnType<typeof completionLogprobs>> | null = null) => ({
      ...base, choices: [{ text, index, logprobs: lps, finish_reason: finish }], ...usageNull,
    });
    return sendEventStream(reply, async (emit) => {
      const results = await mapWithLimit(jobs, parallel, async ({ prompt, p, choice }, index, started) => {
        let wire = completionLogprobs('');
        let sent = 0;
        const take = (lps: TokenLogprob[] | undefined) => {
          sent += lps?.length ?? 0;
          return lps ? wire(lps) : null;
        };
        const r = await app.manager.run(entry, run, (loaded, sig) => {
          const promptShown = shown(loaded, prompt);
          wire = completionLogprobs(promptShown);
          return loaded.complete!(prompt, {
            ...fim, params, responseFormat, logprobs, choice, signal: sig,
            // The first frame starts the HTTP answer (with echo, the prompt); a request refused before it keeps its status.
            onStart: () => {
              emit(chunk(index, echo ? promptShown : ''));
              started();
            },
            onText: (text, lps) => {
              if (text) emit(chunk(index, text, null, take(lps)));
            },
          });
        }).catch((err: unknown) => stopOthers(namePrompt(err, p)));
        countTokens(app, entry.id, r.usage);
        // Tokens whose text never streamed close the list.
        emit(chunk(index, '', r.finishReason, take(r.logprobs?.slice(sent))));
        return r;
      });
      if (includeUsage) emit({ ...base, choices: [], usage: totalUsage(results) });
    });
  };
  app.post('/v1/completions', { schema: completionSchema }, completion(false));
  app.post('/api/v0/completions', {
    schema: {
      ...completionSchema, tags: ['lmstudio'], summary: 'Create a completion (LM Studio)',
      description: 'As POST /v1/completions, with LM Studio\'s REST API v0 figures beside the answer when it is not streamed: `stats`, `model_info` and `runtime`.',
      response: { 200: Type.Object({ ...CompletionSchema.properties, ...LmStudioFiguresSchema.properties }), ...errorResponses },
    },
  }, completion(true));
}
