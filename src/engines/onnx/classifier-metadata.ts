import { Value } from 'typebox/value';
import { ModelObjectError } from '../engine.ts';
import { Type, type Static, type TSchema } from '../../schemas/typebox.ts';

const positive = (description: string) => Type.Integer({ minimum: 1, description });

/**
 * `metadata.preprocess` of an ONNX classifier: how an image or a text becomes the model's
 * input tensor. Every key is optional; defaults come from the model's input shape.
 */
export const PreprocessSchema = Type.Object(
  {
    size: Type.Optional(
      Type.Union([positive('Width and height, pixels.'), Type.Array(positive('pixels'), { minItems: 2, maxItems: 2, description: '[width, height], pixels.' })], {
        description: 'Image size the model takes; defaults to the input shape (224 where it is dynamic).',
      }),
    ),
    resize: Type.Optional(
      Type.Union([Type.Literal('stretch'), Type.Literal('contain'), Type.Literal('cover'), Type.Literal('center_crop')], {
        description: 'stretch (default): scale to the size ignoring the aspect ratio; contain: fit inside and pad with `background`; cover: fill and crop the centre; center_crop: scale the shorter side to size/crop_pct, then crop the centre (torchvision style).',
      }),
    ),
    crop_pct: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Fraction kept by center_crop (default 0.875).' })),
    interpolation: Type.Optional(Type.Union([Type.Literal('nearest'), Type.Literal('linear'), Type.Literal('cubic'), Type.Literal('lanczos3')], { description: 'Resampling kernel (default linear).' })),
    background: Type.Optional(Type.Integer({ minimum: 0, maximum: 255, description: 'Grey level the contain mode pads with (default 0, black).' })),
    color: Type.Optional(Type.Union([Type.Literal('grayscale'), Type.Literal('rgb')], { description: 'Defaults to the channel count of the input shape (1 grayscale, 3 RGB).' })),
    channel_order: Type.Optional(Type.Union([Type.Literal('RGB'), Type.Literal('BGR')], { description: 'Default RGB.' })),
    layout: Type.Optional(Type.Union([Type.Literal('NCHW'), Type.Literal('NHWC')], { description: 'Defaults to what the input shape shows (channels first when ambiguous).' })),
    scale: Type.Optional(Type.Number({ description: 'Multiplies pixel values 0-255 before mean/std. Default 1, or 1/255 when mean and std are given in 0-1 units.' })),
    mean: Type.Optional(Type.Union([Type.Number(), Type.Array(Type.Number(), { minItems: 1, maxItems: 3 })], { description: 'Subtracted per channel after scale (default 0).' })),
    std: Type.Optional(
      Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 3 })], {
        description: 'Divides per channel after the mean (default 1).',
      }),
    ),
    invert: Type.Optional(Type.Boolean({ description: 'Use 255 - value (white-on-black models fed black-on-white images).' })),
    max_image_bytes: Type.Optional(positive('Largest decoded image file, bytes (default 20 MiB).')),
    max_image_pixels: Type.Optional(positive('Largest image, width x height pixels (default 40 megapixels).')),
    tokenizer: Type.Optional(Type.String({ description: 'Hugging Face tokenizer.json, relative to the model folder (default tokenizer.json).' })),
    max_length: Type.Optional(positive('Tokens per text, special tokens included. Defaults to the input shape, then the model\'s metadata_props max_length, then the tokenizer, then 512.')),
    truncation: Type.Optional(Type.Boolean({ description: 'Cut longer texts to max_length (default true); false answers 400 input_too_long.' })),
    padding: Type.Optional(
      Type.Union([Type.Literal('max_length'), Type.Literal('longest')], {
        description: 'max_length (default): every row padded to max_length, so a text scores the same in any batch; longest: pad to the longest text of the batch (faster).',
      }),
    ),
    max_chars: Type.Optional(positive('Longest text in characters (default 100000).')),
  },
  { additionalProperties: false },
);
export type Preprocess = Static<typeof PreprocessSchema>;

/** `metadata.output`: which output holds the scores and what they are. */
export const OutputSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Output tensor to read (default: the first float output of shape [batch, classes]).' })),
    activation: Type.Optional(
      Type.Union([Type.Literal('softmax'), Type.Literal('sigmoid'), Type.Literal('none')], {
        description: 'softmax: the output holds logits (default); sigmoid: independent logits (multi-label); none: already probabilities (default when the output name says prob).',
      }),
    ),
  },
  { additionalProperties: false },
);
export type OutputSpec = Static<typeof OutputSchema>;

export class MetadataError extends ModelObjectError {}

function check<T>(schema: TSchema, value: unknown, field: string): T {
  if (value === undefined) return {} as T;
  const e = [...Value.Errors(schema, value)][0];
  if (!e) return value as T;
  const key = e.instancePath.slice(1).replaceAll('/', '.');
  const extra = e.keyword === 'additionalProperties' ? `; known: ${Object.keys((schema as { properties: object }).properties).join(', ')}` : '';
  const at = key ? `${field}.${key}` : field;
  throw new MetadataError(`'${at}' ${e.message}${extra}`, at);
}

/** Validates `metadata.preprocess` and `metadata.output`; throws MetadataError naming the field. */
export function parseClassifierMetadata(metadata: Record<string, unknown>): { preprocess: Preprocess; output: OutputSpec } {
  return {
    preprocess: check<Preprocess>(PreprocessSchema, metadata.preprocess, 'metadata.preprocess'),
    output: check<OutputSpec>(OutputSchema, metadata.output, 'metadata.output'),
  };
}
