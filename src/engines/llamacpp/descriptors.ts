import type { ParamDescriptor } from '../engine.ts';

/**
 * Run parameters of the llamacpp engine in the descriptor form of the parameter-definition
 * seed. `load` parameters shape the context when the model starts; `request` parameters may
 * change per request (OpenAI fields of the same name map onto them).
 */
export const LLAMACPP_DESCRIPTORS: readonly ParamDescriptor[] = [
  // load
  {
    name: 'ctx_len', type: 'integer', default: null, min_value: 16, max_value: 1_048_576, increment: 256, scope: 'load',
    description: 'Context length per parallel sequence, in tokens (prompt + completion). Defaults to the model\'s training context capped at 4096.',
  },
  {
    name: 'ngl', type: 'integer_or_string', default: 'auto', min_value: 0, max_value: 10_000, increment: 1, options: ['auto', 'max'], scope: 'load',
    description: 'Layers offloaded to the GPU: 0 runs on the CPU, a number offloads that many, "max" offloads all, "auto" fits what the GPU memory allows. Ignored without a GPU.',
  },
  {
    name: 'n_parallel', type: 'integer', default: 4, min_value: 1, max_value: 64, increment: 1, scope: 'load',
    description: 'Parallel sequences in the model\'s context: requests that decode at once, in shared batches. Each adds ctx_len tokens of KV cache.',
  },
  {
    name: 'threads', type: 'integer', default: 0, min_value: 0, max_value: 1024, increment: 1, scope: 'load',
    description: 'CPU threads for decoding; 0 = the server setting (the machine\'s physical cores). More threads than physical cores slows decoding down.',
  },
  {
    name: 'n_batch', type: 'integer', default: 512, min_value: 1, max_value: 65_536, increment: 64, scope: 'load',
    description: 'Tokens evaluated in one native decode call (prompt processing chunk, shared by all sequences).',
  },
  {
    name: 'embedding', type: 'boolean', default: null, scope: 'load',
    description: 'Serve /v1/embeddings from this model (a separate embedding context). Defaults to on for embedding models (a GGUF pooling type, or metadata.task "embedding"), off otherwise.',
  },
  {
    name: 'flash_attn', type: 'boolean', default: null, scope: 'load',
    description: 'Flash attention; unset = on where the model and backend support it.',
  },
  {
    name: 'use_mmap', type: 'boolean', default: true, scope: 'load',
    description: 'Memory-map the model file instead of reading it into memory.',
  },
  {
    name: 'pre_prompt', type: 'string', default: '', scope: 'load',
    description: 'System message used when a chat request has none (Jan\'s pre_prompt; Ollama\'s SYSTEM, which /api/create stores here).',
  },
  {
    name: 'system_prompt', type: 'string', default: 'SYSTEM: ', scope: 'load',
    description: 'For models without a chat template: text before each system message (Jan / nitro).',
  },
  {
    name: 'user_prompt', type: 'string', default: 'USER: ', scope: 'load',
    description: 'For models without a chat template: text before each user message; generation also stops where the model writes it (Jan / nitro).',
  },
  {
    name: 'ai_prompt', type: 'string', default: 'ASSISTANT: ', scope: 'load',
    description: 'For models without a chat template: text before each assistant message and before the answer (Jan / nitro).',
  },
  {
    name: 'prompt_template', type: 'string', default: null, scope: 'load',
    description: 'Jan\'s one-line template, e.g. "{system_message}\\n### Instruction: {prompt}\\n### Response:"; when set, it defines system_prompt, user_prompt and ai_prompt for models without a chat template.',
  },
  {
    name: 'lora', type: 'string_array', default: null, special_type: 'path', scope: 'load',
    description: 'LoRA adapter GGUFs laid over the model for chat and completions (llama-server\'s --lora, Ollama\'s ADAPTER): file names in the model folder, or absolute paths; each must be an adapter for the model\'s architecture. Embeddings use the model alone (node-llama-cpp applies adapters to its generation context only).',
  },
  {
    name: 'lora_scale', type: 'number', default: 1, min_value: -10, max_value: 10, increment: 0.05, scope: 'load',
    description: 'How strongly the lora adapters apply: 1 as trained, 0 not at all (llama-server\'s --lora-scaled).',
  },
  // request
  {
    name: 'max_tokens', type: 'integer', default: null, min_value: 1, max_value: 1_048_576, increment: 1, scope: 'request',
    description: 'Most tokens to generate; unset = until the sequence\'s context is full. OpenAI max_completion_tokens maps here too.',
  },
  {
    name: 'temperature', type: 'number', default: 0.8, min_value: 0, max_value: 2, increment: 0.05, scope: 'request',
    description: 'Sampling temperature; 0 is greedy (deterministic).',
  },
  {
    name: 'top_p', type: 'number', default: 0.95, min_value: 0, max_value: 1, increment: 0.01, scope: 'request',
    description: 'Nucleus sampling: keep the smallest set of tokens whose probabilities add up to top_p; 1 disables.',
  },
  {
    name: 'top_k', type: 'integer', default: 40, min_value: 0, max_value: 1_000_000, increment: 1, scope: 'request',
    description: 'Keep only the k most likely tokens; 0 disables.',
  },
  {
    name: 'min_p', type: 'number', default: 0.05, min_value: 0, max_value: 1, increment: 0.01, scope: 'request',
    description: 'Drop tokens less likely than min_p times the most likely one; 0 disables.',
  },
  {
    name: 'seed', type: 'integer', default: null, min_value: -1, max_value: 4_294_967_295, increment: 1, scope: 'request',
    description: 'Sampling seed: the same seed and request give the same text; unset or -1 = random.',
  },
  {
    name: 'stop', type: 'string_array', default: null, scope: 'request',
    description: 'Up to 4 strings that end the generation; they are not part of the output.',
  },
  {
    name: 'presence_penalty', type: 'number', default: 0, min_value: -2, max_value: 2, increment: 0.1, scope: 'request',
    description: 'Lowers the likelihood of every token already present in the last repeat_last_n tokens (OpenAI semantics).',
  },
  {
    name: 'frequency_penalty', type: 'number', default: 0, min_value: -2, max_value: 2, increment: 0.1, scope: 'request',
    description: 'Lowers the likelihood of a token by how often it appeared in the last repeat_last_n tokens (OpenAI semantics).',
  },
  {
    name: 'repeat_penalty', type: 'number', default: 1, min_value: 0.01, max_value: 10, increment: 0.05, scope: 'request',
    // Not 0: llama.cpp would divide logits by zero, and NaN logits let a grammar's banned tokens through.
    description: 'llama.cpp repetition penalty on the last repeat_last_n tokens; 1 disables, 0.01 at least.',
  },
  {
    name: 'ignore_eos', type: 'boolean', default: false, scope: 'request',
    description: 'Never sample end-of-generation tokens: the answer runs to max_tokens or a stop string (llama-server\'s ignore_eos; for benchmarks).',
  },
  {
    name: 'repeat_last_n', type: 'integer', default: 64, min_value: 0, max_value: 1_048_576, increment: 1, scope: 'request',
    description: 'Tokens the repetition penalties look back over.',
  },
];
