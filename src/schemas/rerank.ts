import { KeepAliveField } from './common.ts';
import { Type, type Static } from './typebox.ts';

// Reranking as llama-server, Jina and Cohere offer it: a query, documents, and each document's
// relevance to the query from a cross-encoder.

export const RerankRequestSchema = Type.Object({
  model: Type.String({ description: 'A cross-encoder reranker: an ONNX text classifier that reads a sentence pair and scores one class (or two: irrelevant, relevant), or a GGUF reranker (pooling type rank).' }),
  query: Type.String({ description: 'The query the documents are ranked for.' }),
  documents: Type.Array(Type.Union([Type.String(), Type.Object({ text: Type.String() }, { additionalProperties: true })]), {
    minItems: 1, maxItems: 1024, description: 'Texts, or `{text}` objects (Cohere\'s form).',
  }),
  top_n: Type.Optional(Type.Integer({ minimum: 1, description: 'Return only the n most relevant; default all.' })),
  return_documents: Type.Optional(Type.Boolean({ default: true, description: 'Put each document\'s text in its result (`document.text`), as Jina does by default.' })),
  ...KeepAliveField,
}, { additionalProperties: true, description: 'As llama-server\'s and Jina\'s /v1/rerank (Cohere\'s fields too).' });
export type RerankRequest = Static<typeof RerankRequestSchema>;

export const RerankResponseSchema = Type.Object({
  object: Type.Literal('list'),
  model: Type.String(),
  results: Type.Array(Type.Object({
    index: Type.Integer({ description: 'The document\'s position in the request.' }),
    relevance_score: Type.Number({ description: 'The sigmoid of a one-logit cross-encoder (its relevant class\'s probability for two classes; Qwen3-Reranker\'s "yes" probability), unless the model object\'s metadata.output.activation says otherwise (`none`: the raw logit, as llama-server gives it).' }),
    document: Type.Optional(Type.Object({ text: Type.String() })),
  }), { description: 'Most relevant first.' }),
  usage: Type.Object({ prompt_tokens: Type.Integer(), total_tokens: Type.Integer() }),
});
