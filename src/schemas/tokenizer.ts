import { KeepAliveField } from './common.ts';
import { ChatMessageSchema, ToolChoiceSchema, ToolSchema } from './openai/chat.ts';
import { Type, type Static } from './typebox.ts';

// llama-server's tokenizer routes, with the `model` they need on a server of many models.

const model = Type.String({ description: 'Model id; a stopped model is loaded first (just-in-time).' });

export const TokenizeRequestSchema = Type.Object({
  model,
  content: Type.String({ description: 'The text to tokenize.' }),
  add_special: Type.Optional(Type.Boolean({ default: false, description: 'Put the model\'s BOS token first, as a prompt gets it.' })),
  parse_special: Type.Optional(Type.Boolean({ default: true, description: 'Read special-token text (`<|im_start|>`) as those tokens; false tokenizes it as plain text.' })),
  with_pieces: Type.Optional(Type.Boolean({ default: false, description: 'Each token as `{id, piece}`: its text, or its bytes when they are not whole UTF-8 (part of a character).' })),
  ...KeepAliveField,
}, { description: 'As llama-server\'s /tokenize, with the model named.' });
export type TokenizeRequest = Static<typeof TokenizeRequestSchema>;

export const TokenizeResponseSchema = Type.Object({
  tokens: Type.Array(Type.Union([
    Type.Integer(),
    Type.Object({ id: Type.Integer(), piece: Type.Union([Type.String(), Type.Array(Type.Integer())]) }),
  ]), { description: 'Token ids, or `{id, piece}` with `with_pieces`.' }),
});

export const DetokenizeRequestSchema = Type.Object({
  model,
  tokens: Type.Array(Type.Integer(), { description: 'Token ids of the model\'s vocabulary.' }),
  ...KeepAliveField,
}, { description: 'As llama-server\'s /detokenize, with the model named.' });
export type DetokenizeRequest = Static<typeof DetokenizeRequestSchema>;

export const DetokenizeResponseSchema = Type.Object({
  content: Type.String({ description: 'The tokens\' text, special tokens written out.' }),
});

export const ApplyTemplateRequestSchema = Type.Object({
  model,
  messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
  tools: Type.Optional(Type.Union([Type.Array(ToolSchema, { maxItems: 128 }), Type.Null()])),
  tool_choice: Type.Optional(Type.Union([ToolChoiceSchema, Type.Null()])),
  ...KeepAliveField,
}, { description: 'As llama-server\'s /apply-template, with the model named: what POST /v1/chat/completions would give the model for these messages and tools.' });
export type ApplyTemplateRequest = Static<typeof ApplyTemplateRequestSchema>;

export const ApplyTemplateResponseSchema = Type.Object({
  prompt: Type.String({ description: 'The prompt as the model reads it, special tokens written out, ending where the answer begins (a thought the template opens included).' }),
  tokens: Type.Integer({ description: 'Its length in tokens (chat usage\'s prompt_tokens).' }),
});
