import type { ParamDescriptor } from '../engine.ts';

export const GRAPH_OPTIMIZATIONS = ['disabled', 'basic', 'extended', 'all'] as const;
export const EXECUTION_PROVIDERS = ['auto', 'cpu', 'cuda'] as const;

/** The onnx engine's run parameters; `defaultThreads` is the machine's physical cores. */
export function onnxDescriptors(defaultThreads: number): ParamDescriptor[] {
  return [
    {
      name: 'intra_op_threads',
      type: 'integer',
      default: defaultThreads,
      min_value: 1,
      max_value: 256,
      increment: 1,
      description: 'Threads one operator uses (onnxruntime intraOpNumThreads). Defaults to the physical cores (--threads when set).',
      scope: 'load',
    },
    {
      name: 'inter_op_threads',
      type: 'integer',
      default: 1,
      min_value: 1,
      max_value: 64,
      increment: 1,
      description: 'Threads running independent operators at once (interOpNumThreads); above 1 the session runs in parallel execution mode.',
      scope: 'load',
    },
    {
      name: 'graph_optimization',
      type: 'string',
      default: 'all',
      special_type: 'dropdown',
      options: [...GRAPH_OPTIMIZATIONS],
      description: 'Graph optimisation level applied when the session is created.',
      scope: 'load',
    },
    {
      name: 'max_batch_size',
      type: 'integer',
      default: 32,
      min_value: 1,
      max_value: 1024,
      increment: 1,
      description:
        'Most rows (images or texts) one session run takes; concurrent requests are gathered into one run when the model\'s batch dimension is dynamic. 1 turns dynamic batching off. Also the requests admitted to run at once (batch slots).',
      scope: 'load',
    },
    {
      name: 'max_batch_delay_ms',
      type: 'number',
      default: 2,
      min_value: 0,
      max_value: 1000,
      increment: 1,
      description: 'How long the oldest waiting row waits for others to join its batch, ms, while another batch runs or rows already wait; a request that finds the model idle runs at once. 0 batches only what arrives together.',
      scope: 'load',
    },
    {
      name: 'batch_invariant',
      type: 'boolean',
      default: true,
      description:
        'Runs a lone row of a dynamic-batch model as a batch of two (with a copy) when max_batch_size > 1, so a row scores exactly the same alone or batched: onnxruntime special-cases a batch of 1 in some kernels (ReduceSum), which changes float rounding. false saves that compute.',
      scope: 'load',
    },
    {
      name: 'execution_provider',
      type: 'string',
      default: 'auto',
      special_type: 'dropdown',
      options: [...EXECUTION_PROVIDERS],
      description: 'auto: CUDA when its onnxruntime binaries are installed, else CPU.',
      scope: 'load',
    },
  ];
}
