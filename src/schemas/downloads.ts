import { Type, type Static } from './typebox.ts';

export const CreateModelBodySchema = Type.Object(
  {
    id: Type.Optional(Type.String({
      minLength: 1, maxLength: 999,
      description: '`<folder>/<file>` for the new model object, or a folder name (`<folder>/model`). For a repository it is the folder that holds one object per quantization. Derived from the source when absent.',
    })),
    source_url: Type.Optional(Type.String({
      minLength: 1,
      description: 'Required except for an api model (`metadata.engine: "api"`, which has `metadata.api` instead). A local path (`~` expanded; referenced where it lies, never copied, moved or deleted), an http(s) URL of a .gguf/.onnx file, a Hugging Face `blob` or `resolve` URL (size and sha256 taken from the hub), or a Hugging Face repository URL or `org/repo` (one model object per GGUF quantization, split parts grouped).',
    })),
    quantization: Type.Optional(Type.String({ minLength: 1, description: 'For a repository: only the quantization of this name (e.g. Q4_K_M, case-insensitive); a 404 listing the repository\'s quantizations when it has none of that name.' })),
    skip_existing: Type.Optional(Type.Boolean({ description: 'Create only the objects whose ids are free and answer those (possibly none), instead of a 409 when one exists: to add quantizations deleted from a repository\'s folder.' })),
    name: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Default run parameters, validated at load against the engine descriptors.' })),
    metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Merged into the metadata the server fills in (header facts, quantization, size, binaries).' })),
  },
  { $id: 'CreateModelRequest', additionalProperties: false },
);
export type CreateModelBody = Static<typeof CreateModelBodySchema>;

export const CreatedModelsSchema = Type.Object(
  {
    object: Type.Literal('list'),
    data: Type.Array(Type.Ref('Model'), { description: 'The model objects created: one for a file, one per quantization for a repository.' }),
  },
  { $id: 'CreatedModels' },
);

export const DownloadQuerySchema = Type.Object({
  discard: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
    description: 'Also delete the partial files (no later resume).',
  })),
});
