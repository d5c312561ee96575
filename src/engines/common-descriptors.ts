import type { ParamDescriptor } from './engine.ts';

/** Run parameters the server itself reads for every engine. */
export const COMMON_DESCRIPTORS: readonly ParamDescriptor[] = [
  {
    name: 'keep_alive',
    type: 'duration',
    default: null,
    description:
      'How long the model stays loaded after its last request (Ollama semantics): seconds, or a duration like "5m"; 0 unloads at once, a negative value keeps it loaded. Defaults to the server setting (--keep-alive).',
    scope: 'load',
  },
  {
    name: 'max_waiting',
    type: 'integer',
    default: null,
    min_value: 0,
    max_value: 100000,
    increment: 1,
    description: 'Requests that may wait for this model beyond its parallelism before 503 queue_full. Defaults to the server setting.',
    scope: 'load',
  },
];
