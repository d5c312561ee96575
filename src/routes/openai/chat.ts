import { Ajv } from 'ajv';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ChatMessage, GenerationResult, ResponseFormat, TokenLogprob } from '../../engines/engine.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';
import {
  ChatCompletionRequestSchema, ChatCompletionSchema, type ChatCompletion, type ChatCompletionRequest,
} from '../../schemas/openai/chat.ts';
import { mapWithLimit } from '../../scheduler/map-with-limit.ts';
import { clientSignal } from '../client-signal.ts';
import { answerSignal, answerUsage, countTokens, requestParams, sendEventStream, unixNow, wireUsage } from './inference.ts';
import { chatLogprobs } from './logprobs.ts';

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

/** OpenAI messages to the engine's: text only, a clear 400 for what the server cannot read. */
export function toChatMessages(messages: ChatCompletionRequest['messages']): ChatMessage[] {
  return messages.map((m, i) => {
    const role = ROLES[m.role];
    if (!role) {
      throw new ApiError('invalid_value', `messages[${i}].role '${m.role}' is not supported; use system, developer, user or assistant`, { param: `messages[${i}].role` });
    }
    if (m.content === null) return { role, content: '' };
    if (typeof m.content === 'string') return { role, content: m.content };
    const texts = m.content.map((part, j) => {
      if (part.type === 'text' && typeof part.text !== 'string') {
        throw new ApiError('missing_required_parameter', `messages[${i}].content[${j}] is a text part without its 'text' string`, {
          param: `messages[${i}].content[${j}].text`,
        });
      }
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw new ApiError('unsupported_feature', `messages[${i}].content[${j}] is '${part.type}' content; this server reads text parts only (no images or audio)`, {
          param: `messages[${i}].content[${j}].type`,
        });
      }
      return part.text;
    });
    return { role, content: texts.join('\n') };
  });
}

/** Only checks schemas (`validateSchema`); never compiles or runs one. */
const schemaChecker = new Ajv({ strict: false, validateFormats: false });

export function toResponseFormat(rf: ChatCompletionRequest['response_format']): ResponseFormat | undefined {
  if (!rf || rf.type === 'text') return undefined;
  if (rf.type === 'json_object') return { type: 'json_object' };
  const schema = rf.json_schema?.schema;
  if (!schema) throw new ApiError('missing_required_parameter', `response_format.json_schema.schema is required for type 'json_schema'`, { param: 'response_format.json_schema.schema' });
  // Checked against JSON Schema's meta-schema: node-llama-cpp's grammar builder takes
  // `{"type": "foo"}` without a word and the answer is then nonsense.
  // Its own `$schema` (2020-12, say) would send ajv looking for a meta-schema it lacks; the draft-07 one checks what matters.
  const { $schema: _dialect, ...body } = schema as Record<string, unknown>;
  if (!schemaChecker.validateSchema(body)) {
    throw new ApiError('invalid_value', `response_format.json_schema.schema is not a valid JSON Schema: ${schemaChecker.errorsText(schemaChecker.errors, { dataVar: 'schema' })}`, {
      param: 'response_format.json_schema.schema',
    });
  }
  return { type: 'json_schema', schema };
}

function rejectUnsupported(body: Record<string, unknown>): void {
  if (Array.isArray(body.tools) && body.tools.length > 0) throw new ApiError('unsupported_feature', `'tools' are not supported by this server`, { param: 'tools' });
  if (body.functions != null) throw new ApiError('unsupported_feature', `'functions' are not supported by this server`, { param: 'functions' });
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new ApiError('invalid_value', `'top_logprobs' needs 'logprobs': true`, { param: 'top_logprobs' });
  }
  if (body.audio != null) throw new ApiError('unsupported_feature', `audio output is not supported by this server`, { param: 'audio' });
}

/** POST /v1/chat/completions: OpenAI chat, plain or streamed. */
export default async function chatRoutes(app: FastifyInstance) {
  app.post('/v1/chat/completions', {
    schema: {
      tags: ['openai'], summary: 'Create a chat completion',
      description: 'Answers through the model\'s own chat template (GGUF), or Jan\'s pre_prompt/user_prompt/ai_prompt for a model without one. A reasoning model\'s thought (its template\'s thought segment) comes as `reasoning_content`, apart from `content`. `stream: true` answers with server-sent events in the OpenAI chunk shape ending `data: [DONE]`. A stopped model is loaded first; a full queue is a 503 queue_full with retry-after; a client that disconnects frees its place within one token.',
      body: ChatCompletionRequestSchema,
      response: { 200: ChatCompletionSchema, ...errorResponses },
    },
  }, async (request, reply) => {
    const body = request.body as ChatCompletionRequest;
    const entry = app.registry.resolve(body.model);
    rejectUnsupported(body as Record<string, unknown>);
    const messages = toChatMessages(body.messages);
    const params = requestParams(app, entry, body);
    const responseFormat = toResponseFormat(body.response_format);
    // OpenAI `n`: that many choices, run in parallel on the model's sequences (at most its
    // concurrency at once, read as it loads); one failing stops the others.
    const n = body.n ?? 1;
    const choices = Array.from({ length: n }, (_, choice) => choice);
    const parallel = () => app.manager.state(entry).queue?.concurrency ?? 1;
    const { signal, fail } = answerSignal(clientSignal(reply), n);
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = unixNow();
    const run = { capability: 'chat' as const, signal, keepAlive: body.keep_alive };
    const logprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : undefined;
    const totalUsage = (results: GenerationResult[]) => wireUsage(answerUsage(results.map((r) => r.usage), n));

    if (!body.stream) {
      const results = await mapWithLimit(choices, parallel, (choice, _index, started) =>
        app.manager.run(entry, run, (loaded, sig) => loaded.chat!(messages, { params, responseFormat, logprobs, choice, signal: sig, onStart: started })).catch(fail));
      for (const r of results) countTokens(app, entry.id, r.usage);
      const answer: ChatCompletion = {
        id, object: 'chat.completion', created, model: entry.id, system_fingerprint: null,
        choices: results.map((r, index) => ({
          index,
          message: { role: 'assistant', content: r.text, ...(r.reasoning ? { reasoning_content: r.reasoning } : {}), refusal: null },
          logprobs: r.logprobs ? chatLogprobs(r.logprobs) : null,
          finish_reason: r.finishReason,
        })),
        usage: totalUsage(results),
      };
      return answer;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const base = { id, object: 'chat.completion.chunk', created, model: entry.id, system_fingerprint: null };
    const usageNull = includeUsage ? { usage: null } : {};
    const chunk = (index: number, delta: Record<string, unknown>, finish: string | null = null, lps?: TokenLogprob[]) =>
      ({ ...base, choices: [{ index, delta, logprobs: lps ? chatLogprobs(lps) : null, finish_reason: finish }], ...usageNull });
    return sendEventStream(reply, async (emit) => {
      const results = await mapWithLimit(choices, parallel, async (choice, index, started) => {
        let sent = 0;
        const frame = (delta: Record<string, unknown>, finish: string | null = null, lps?: TokenLogprob[]) => {
          sent += lps?.length ?? 0;
          emit(chunk(index, delta, finish, lps));
        };
        const r = await app.manager.run(entry, run, (loaded, sig) =>
          loaded.chat!(messages, {
            params, responseFormat, logprobs, choice, signal: sig,
            // The first frame starts the HTTP answer; a request refused before it keeps its status.
            onStart: () => {
              frame({ role: 'assistant', content: '' });
              started();
            },
            onText: (text, lps) => {
              if (text) frame({ content: text }, null, lps);
            },
            onReasoning: (text, lps) => {
              if (text) frame({ reasoning_content: text }, null, lps);
            },
          })).catch(fail);
        countTokens(app, entry.id, r.usage);
        // Tokens whose text never streamed (trailing whitespace held back, say) close the list.
        frame({}, r.finishReason, r.logprobs?.slice(sent));
        return r;
      });
      if (includeUsage) emit({ ...base, choices: [], usage: totalUsage(results) });
    });
  });
}
