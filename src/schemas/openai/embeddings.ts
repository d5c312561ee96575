import { KeepAliveField } from '../common.ts';
import { Type, type Static } from '../typebox.ts';

export const EmbeddingRequestSchema = Type.Object(
  {
    model: Type.String({ description: 'Model id of a model that embeds (an embedding GGUF, or one started with `embedding: true`).' }),
    input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], { description: 'Text or texts to embed (token arrays are not supported).' }),
    encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')], {
      description: '`float` (default): arrays of numbers; `base64`: little-endian float32 bytes, as the OpenAI SDKs request by default.',
    })),
    dimensions: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'Keep the first n values of each vector, made unit length again (Matryoshka shortening); more than the model gives is a 400.' })),
    user: Type.Optional(Type.String()),
    ...KeepAliveField,
  },
  { additionalProperties: true },
);
export type EmbeddingRequest = Static<typeof EmbeddingRequestSchema>;

export const EmbeddingListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Object({
    object: Type.Literal('embedding'),
    index: Type.Integer(),
    embedding: Type.Union([Type.Array(Type.Number()), Type.String()], { description: 'Unit length (L2-normalised).' }),
  })),
  model: Type.String(),
  usage: Type.Object({
    prompt_tokens: Type.Integer({ description: 'Tokens evaluated, special tokens included.' }),
    total_tokens: Type.Integer(),
  }),
}, { description: 'OpenAI embedding list.' });
export type EmbeddingList = Static<typeof EmbeddingListSchema>;
