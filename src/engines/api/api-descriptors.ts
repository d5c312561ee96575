import type { ParamDescriptor } from '../engine.ts';

/**
 * Run parameters of the api engine. Request parameters default to unset: only what the
 * request or the model object sets is sent upstream, so an upstream that rejects a field it
 * does not know (OpenAI rejects `top_k`) never sees one the client did not ask for.
 */
export const API_DESCRIPTORS: readonly ParamDescriptor[] = [
  // load
  {
    name: 'n_parallel', type: 'integer', default: 4, min_value: 1, max_value: 256, increment: 1, scope: 'load',
    description: 'Requests sent upstream at once; more wait in the model\'s queue.',
  },
  {
    name: 'timeout_s', type: 'integer', default: 600, min_value: 1, max_value: 86_400, increment: 1, scope: 'load',
    description: 'Seconds an upstream request may take before it fails with 504 request_timeout.',
  },
  // request
  {
    name: 'max_tokens', type: 'integer', default: null, min_value: 1, max_value: 1_048_576, increment: 1, scope: 'request',
    description: 'Most tokens to generate (sent as max_tokens).',
  },
  { name: 'temperature', type: 'number', default: null, min_value: 0, max_value: 2, increment: 0.05, scope: 'request', description: 'Sampling temperature.' },
  { name: 'top_p', type: 'number', default: null, min_value: 0, max_value: 1, increment: 0.01, scope: 'request', description: 'Nucleus sampling.' },
  { name: 'seed', type: 'integer', default: null, min_value: -1, max_value: 4_294_967_295, increment: 1, scope: 'request', description: 'Sampling seed, where the upstream honours one.' },
  { name: 'stop', type: 'string_array', default: null, scope: 'request', description: 'Strings that end the generation.' },
  { name: 'presence_penalty', type: 'number', default: null, min_value: -2, max_value: 2, increment: 0.1, scope: 'request', description: 'OpenAI presence penalty.' },
  { name: 'frequency_penalty', type: 'number', default: null, min_value: -2, max_value: 2, increment: 0.1, scope: 'request', description: 'OpenAI frequency penalty.' },
  { name: 'top_k', type: 'integer', default: null, min_value: 0, max_value: 1_000_000, increment: 1, scope: 'request', description: 'For llama-server, Ollama and kin; OpenAI itself rejects it.' },
  { name: 'min_p', type: 'number', default: null, min_value: 0, max_value: 1, increment: 0.01, scope: 'request', description: 'For llama-server, Ollama and kin; OpenAI itself rejects it.' },
  { name: 'repeat_penalty', type: 'number', default: null, min_value: 0, max_value: 10, increment: 0.05, scope: 'request', description: 'For llama-server, Ollama and kin; OpenAI itself rejects it.' },
];

/** The request parameters among `params` (a load's merged parameters hold both scopes). */
export const API_REQUEST_PARAMS = API_DESCRIPTORS.filter((d) => d.scope === 'request').map((d) => d.name);
