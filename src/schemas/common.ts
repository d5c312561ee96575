import { Type, type Static } from './typebox.ts';

/** Ollama's per-request `keep_alive`, on every inference request. */
export const KeepAliveField = {
  keep_alive: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()], {
    description: 'Not in OpenAI (Ollama): how long the model stays loaded after this request, seconds or a duration like "5m"; 0 unloads it when the request ends, a negative value keeps it. A request without it puts back the model\'s own value.',
  })),
};

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      message: Type.String({ description: 'A sentence naming the field, file or model.' }),
      type: Type.String({ description: 'invalid_request_error, authentication_error, not_found_error, server_error or service_unavailable.' }),
      param: Type.Union([Type.String(), Type.Null()]),
      code: Type.String({ description: 'Stable machine word, e.g. model_not_found, queue_full.' }),
    }),
  },
  { $id: 'Error', description: 'The OpenAI error envelope.' },
);
export type ErrorBody = Static<typeof ErrorSchema>;

/**
 * Error responses a route may answer (src/errors.ts has which code has which status);
 * referenced by id so the document stays small.
 */
export const errorResponses = {
  400: Type.Ref('Error'),
  401: Type.Ref('Error'),
  404: Type.Ref('Error'),
  409: Type.Ref('Error'),
  413: Type.Ref('Error'),
  415: Type.Ref('Error'),
  422: Type.Ref('Error'),
  500: Type.Ref('Error'),
  501: Type.Ref('Error'),
  503: Type.Ref('Error'),
  504: Type.Ref('Error'),
  507: Type.Ref('Error'),
};

export const ModelIdParamsSchema = Type.Object({
  id: Type.String({
    description: 'Model id `<folder>/<file>` or a single-object folder name. Slashes may be sent raw or percent-encoded (%2F).',
    maxLength: 1000,
  }),
});
export type ModelIdParams = Static<typeof ModelIdParamsSchema>;
