import type { FastifyInstance } from 'fastify';
import type { GenerationResult } from '../../engines/engine.ts';
import { OPENAPI_INFO } from '../../plugins/swagger.ts';
import type { ModelEntry } from '../../registry/registry.ts';

const FORMATS: Record<string, string[]> = { llamacpp: ['gguf'], onnx: ['onnx'], api: [] };

/**
 * Times one answer for LM Studio's `stats`: from the request to its first piece of text or
 * thought (an answer of tool calls alone has none: its end counts), then to the end.
 */
export class AnswerClock {
  readonly #start = performance.now();
  #first: number | undefined;

  /** Marks the first piece of text or thought; later calls change nothing. */
  readonly piece = (): void => {
    this.#first ??= performance.now();
  };

  /**
   * LM Studio's `stats`, `model_info` and `runtime` for an answer of these results (one per
   * choice): tokens per second over the time after the first token, as LM Studio reports it.
   */
  figures(app: FastifyInstance, entry: ModelEntry, results: Array<Pick<GenerationResult, 'usage' | 'stopSequence'> & { finishReason: string }>) {
    const end = performance.now();
    const first = this.#first ?? end;
    const generation = (end - first) / 1000;
    const tokens = results.reduce((n, r) => n + r.usage.completionTokens, 0);
    const r = results[0]!;
    const h = entry.header;
    const info = app.manager.state(entry).info ?? {};
    const ctxLen = typeof info.ctx_len === 'number' ? info.ctx_len : undefined;
    // A `length` end with the sequence full is the context's doing, not max_tokens' (LM Studio tells them apart).
    const full = ctxLen !== undefined && r.usage.promptTokens + r.usage.completionTokens >= ctxLen;
    const stop = r.finishReason === 'length' ? (full ? 'contextLengthReached' as const : 'maxPredictedTokensReached' as const)
      : r.finishReason === 'tool_calls' ? 'toolCalls' as const
        : r.stopSequence !== undefined ? 'stopStringFound' as const : 'eosFound' as const;
    const engine = entry.engine ?? 'llamacpp';
    return {
      stats: {
        tokens_per_second: generation > 0 ? tokens / generation : 0,
        time_to_first_token: (first - this.#start) / 1000,
        generation_time: generation,
        stop_reason: stop,
      },
      model_info: {
        arch: typeof h.architecture === 'string' ? h.architecture : engine,
        quant: typeof h.quantization === 'string' ? h.quantization : 'unknown',
        format: typeof h.format === 'string' ? h.format : engine,
        context_length: ctxLen ?? (typeof h.context_length === 'number' ? h.context_length : 0),
      },
      runtime: { name: `modeld-${engine}`, version: OPENAPI_INFO.version, supported_formats: FORMATS[engine] ?? [] },
    };
  }
}
