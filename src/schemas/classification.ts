import { KeepAliveField } from './common.ts';
import { Type, type Static } from './typebox.ts';

/** Most items one request may classify. */
export const MAX_CLASSIFICATION_ITEMS = 2048;

export const ImageInputSchema = Type.Object(
  {
    // No minLength: ajv checks it by counting the code points of the whole (large) string;
    // an empty image is refused as invalid_image when decoded.
    image: Type.String({
      description: 'A PNG, JPEG or WebP image, base64-encoded or as a data URL (`data:image/png;base64,...`).',
    }),
  },
  { additionalProperties: false, description: 'One image for an image classifier.' },
);

export const ClassificationInputSchema = Type.Union(
  [
    Type.String({ description: 'One text (a data URL string counts as an image).' }),
    Type.Array(Type.String(), { minItems: 1, maxItems: MAX_CLASSIFICATION_ITEMS, description: 'Texts, classified together.' }),
    ImageInputSchema,
    Type.Array(ImageInputSchema, { minItems: 1, maxItems: MAX_CLASSIFICATION_ITEMS, description: 'Images, classified together.' }),
  ],
  { description: 'Texts for a text classifier; `{image}` objects for an image classifier. The wrong kind for the model answers 400 wrong_input_kind.' },
);

export const ClassificationRequestSchema = Type.Object(
  {
    model: Type.String({ maxLength: 1000, description: 'Id of an onnx classifier model.' }),
    input: ClassificationInputSchema,
    top_k: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100000, description: 'Return the k best classes of each item in `scores`, best first.' }),
    ),
    scores: Type.Optional(
      Type.Boolean({ description: 'Return every class score of each item in `scores`, in class index order (`top_k` takes precedence).' }),
    ),
    user: Type.Optional(Type.String({ description: 'Accepted for OpenAI compatibility; ignored.' })),
    ...KeepAliveField,
  },
  { additionalProperties: false, $id: 'ClassificationRequest' },
);
export type ClassificationRequest = Static<typeof ClassificationRequestSchema>;

export const LabelScoreSchema = Type.Object({
  label: Type.String({ description: 'Class name from metadata.classes or the model, else the class index.' }),
  score: Type.Number({ description: 'Probability (after softmax or sigmoid per metadata.output), or the raw output when metadata.output.activation is none.' }),
});

export const ClassificationSchema = Type.Object({
  index: Type.Integer({ description: 'Position of the item in `input`.' }),
  label: Type.String({ description: 'The best class.' }),
  score: Type.Number({ description: 'Score of the best class.' }),
  scores: Type.Optional(Type.Array(LabelScoreSchema, { description: 'With `top_k`: the k best, best first. With `scores: true`: every class in index order.' })),
});

export const ClassificationUsageSchema = Type.Object({
  items: Type.Integer({ description: 'Items classified.' }),
  prompt_tokens: Type.Optional(Type.Integer({ description: 'Tokens fed to a token-id text model, special tokens included, padding excluded.' })),
  total_tokens: Type.Optional(Type.Integer()),
});

export const ClassificationResponseSchema = Type.Object(
  {
    object: Type.Literal('list'),
    model: Type.String(),
    data: Type.Array(ClassificationSchema),
    usage: ClassificationUsageSchema,
  },
  { $id: 'ClassificationResponse' },
);
export type ClassificationResponse = Static<typeof ClassificationResponseSchema>;
