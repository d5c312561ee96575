import { Type, type Static } from '../schemas/typebox.ts';
import { ENGINE_NAMES } from '../engines/engine.ts';
import { OutputSchema, PreprocessSchema } from '../engines/onnx/classifier-metadata.ts';

/**
 * The Jan model object as it lies on disk (`models/<folder>/<file>.json`). Every property is
 * optional, and unknown properties are kept: a model folder written by Jan or by a newer
 * modeld must still load. Published as `models/schema.json` for editors (`$schema`).
 */
export const BinarySchema = Type.Object(
  {
    path: Type.Optional(Type.String({ description: 'File name in the model folder, or a local path (`~` expanded, relative to the folder).' })),
    url: Type.Optional(Type.String({ description: 'Where to download it from (http/https, Hugging Face resolve/blob URLs).' })),
    sha256: Type.Optional(Type.String({ pattern: '^[a-fA-F0-9]{64}$', description: 'Checked after download.' })),
    size: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes; checked after download.' })),
    mime_type: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const PerformanceSchema = Type.Object({ name: Type.String(), value: Type.Unknown() }, { additionalProperties: true });

export const ModelMetadataFileSchema = Type.Object(
  {
    engine: Type.Optional(Type.Union(ENGINE_NAMES.map((e) => Type.Literal(e)), { description: 'Backend; inferred from the binary when absent (llamacpp for .gguf, onnx for .onnx).' })),
    task: Type.Optional(
      Type.Union(
        ['text-generation', 'embedding', 'image-classification', 'text-classification'].map((t) => Type.Literal(t)),
      ),
    ),
    quantization: Type.Optional(Type.String()),
    size: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.String()])),
    binaries: Type.Optional(Type.Array(BinarySchema)),
    classes: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String({ description: 'Path of a labels file, one label per line or a JSON array.' })])),
    preprocess: Type.Optional(PreprocessSchema),
    output: Type.Optional(OutputSchema),
    accuracy: Type.Optional(Type.Number()),
    accuracy_plot: Type.Optional(Type.String()),
    downloadable: Type.Optional(Type.Boolean()),
    created: Type.Optional(Type.Union([Type.String(), Type.Number()])),
    version: Type.Optional(Type.String()),
    architecture: Type.Optional(Type.String()),
    software_framework: Type.Optional(Type.Unknown()),
    intended_use: Type.Optional(Type.String()),
    limitations: Type.Optional(Type.String()),
    training: Type.Optional(Type.Array(Type.Unknown())),
    evaluations: Type.Optional(
      Type.Array(Type.Object({ name: Type.String(), performance: Type.Array(PerformanceSchema) }, { additionalProperties: true })),
    ),
    api: Type.Optional(
      Type.Object(
        {
          base_url: Type.Optional(Type.String()),
          model: Type.Optional(Type.String()),
          api_key_env: Type.Optional(Type.String({ description: 'Name of the environment variable holding the key; never the key itself.' })),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);

export const ModelObjectFileSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    id: Type.Optional(Type.String({ description: 'Ignored: the id is the file location.' })),
    object: Type.Optional(Type.Literal('model')),
    source_url: Type.Optional(Type.String({ description: 'Local path or http(s) URL of the binary; defaults to the model folder.' })),
    name: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    state: Type.Optional(Type.String({ description: 'Ignored: the server derives the state.' })),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    metadata: Type.Optional(ModelMetadataFileSchema),
  },
  { additionalProperties: true, title: 'Jan model object', $id: 'https://modeld.dev/schemas/model.json' },
);

export type ModelObjectFile = Static<typeof ModelObjectFileSchema>;
export type BinaryFile = Static<typeof BinarySchema>;
