import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';
import {
  ApplyTemplateRequestSchema, ApplyTemplateResponseSchema, DetokenizeRequestSchema, DetokenizeResponseSchema, TokenizeRequestSchema, TokenizeResponseSchema,
  type ApplyTemplateRequest, type DetokenizeRequest, type TokenizeRequest,
} from '../../schemas/tokenizer.ts';
import { toChatMessages, toToolOptions } from '../openai/chat-request.ts';

/** Bytes that are whole UTF-8 read as text; part of a character stays bytes, as llama-server shows it. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function piece(bytes: number[]): string | number[] {
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return bytes;
  }
}

/**
 * llama-server's tokenizer routes (`/tokenize`, `/detokenize`, `/apply-template`), for
 * clients that count tokens or inspect prompts. They read the model's tokenizer beside its
 * requests, without a turn in its queue; a stopped model is loaded first.
 */
export default async function tokenizerRoutes(app: FastifyInstance) {
  const tags = ['tokenizer'];
  app.post('/tokenize', {
    schema: {
      tags, summary: 'Tokenize a text',
      description: 'The text\'s token ids in the model\'s vocabulary (llama-server\'s /tokenize). A model without a tokenizer of its own (ONNX, api) is a 400 model_not_capable.',
      body: TokenizeRequestSchema,
      response: { 200: TokenizeResponseSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as TokenizeRequest;
    const entry = app.registry.resolve(body.model);
    return app.manager.use(entry, { capability: 'tokenize', keepAlive: body.keep_alive }, (loaded) => {
      const ids = loaded.tokenize!(body.content, { addSpecial: body.add_special === true, parseSpecial: body.parse_special !== false });
      if (body.with_pieces !== true) return { tokens: ids };
      const pieces = loaded.tokenPieces!(ids, 'tokens');
      return { tokens: ids.map((id, i) => ({ id, piece: piece(pieces[i]!.bytes) })) };
    });
  });

  app.post('/detokenize', {
    schema: {
      tags, summary: 'Detokenize token ids',
      description: 'The text of token ids (llama-server\'s /detokenize), special tokens written out; an id outside the vocabulary is a 400 naming it.',
      body: DetokenizeRequestSchema,
      response: { 200: DetokenizeResponseSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as DetokenizeRequest;
    const entry = app.registry.resolve(body.model);
    return app.manager.use(entry, { capability: 'tokenize', keepAlive: body.keep_alive }, (loaded) => ({ content: loaded.detokenize!(body.tokens, 'tokens') }));
  });

  app.post('/apply-template', {
    schema: {
      tags, summary: 'Render the chat template',
      description: 'The prompt a chat completion would give the model for these messages and tools (llama-server\'s /apply-template), and its length in tokens.',
      body: ApplyTemplateRequestSchema,
      response: { 200: ApplyTemplateResponseSchema, ...errorResponses },
    },
  }, async (request) => {
    const body = request.body as ApplyTemplateRequest;
    const entry = app.registry.resolve(body.model);
    const messages = toChatMessages(body.messages);
    const tools = toToolOptions(body);
    return app.manager.use(entry, { capability: 'chat', keepAlive: body.keep_alive }, (loaded) => {
      if (!loaded.renderChat) throw new ApiError('model_not_capable', `the model '${entry.id}' chats through a server whose template this server cannot read (engine ${entry.engine})`, { param: 'model' });
      return loaded.renderChat(messages, tools);
    });
  });
}
