import client from 'prom-client';

/**
 * Prometheus metrics of one app instance (its own registry, so tests can build many apps).
 * Engines and routes count into these; /metrics serves the text format.
 */
export class Metrics {
  readonly registry = new client.Registry();
  readonly requests = new client.Counter({
    name: 'modeld_http_requests_total', help: 'HTTP requests by route and status.',
    labelNames: ['method', 'route', 'status'] as const, registers: [this.registry],
  });
  readonly latency = new client.Histogram({
    name: 'modeld_http_request_duration_seconds', help: 'HTTP request duration.',
    labelNames: ['method', 'route'] as const, registers: [this.registry],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
  });
  readonly tokens = new client.Counter({
    name: 'modeld_tokens_total', help: 'Tokens processed, by model and kind (prompt, completion, embedding; prompt_cached: prompt tokens reused from a KV cache, prompt_evaluated: prompt tokens evaluated).',
    labelNames: ['model', 'kind'] as const, registers: [this.registry],
  });
  readonly batchSize = new client.Histogram({
    name: 'modeld_batch_size', help: 'Rows (requests or sequences) per engine batch.',
    labelNames: ['model'] as const, registers: [this.registry], buckets: [1, 2, 4, 8, 16, 32, 64],
  });

  constructor(collectModels: () => Array<{ id: string; state: string; running?: number; waiting?: number }>) {
    const registry = this.registry;
    new client.Gauge({
      name: 'modeld_model_state', help: '1 for the state each model is in.',
      labelNames: ['model', 'state'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const m of collectModels()) this.set({ model: m.id, state: m.state }, 1);
      },
    });
    new client.Gauge({
      name: 'modeld_queue_depth', help: 'Requests running and waiting per running model.',
      labelNames: ['model', 'kind'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const m of collectModels()) {
          if (m.running === undefined) continue;
          this.set({ model: m.id, kind: 'running' }, m.running);
          this.set({ model: m.id, kind: 'waiting' }, m.waiting ?? 0);
        }
      },
    });
    client.collectDefaultMetrics({ register: registry, prefix: 'modeld_' });
  }
}
