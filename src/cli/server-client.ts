import type { Config } from '../config/config.ts';

/** Talks HTTP to a running modeld, with the configured API key. */
export class ServerClient {
  readonly base: string;
  readonly #key: string | undefined;

  constructor(config: Config) {
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    this.base = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
    this.#key = config.apiKeys[0];
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = 0): Promise<T> {
    const res = await fetch(this.base + path, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.#key ? { authorization: `Bearer ${this.#key}` } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined,
    });
    const json = (await res.json().catch(() => ({}))) as T & { error?: { message: string } };
    if (!res.ok) throw new Error(json.error?.message ?? `${method} ${path}: HTTP ${res.status}`);
    return json;
  }

  /** True when a modeld answers /health quickly. */
  async reachable(): Promise<boolean> {
    try {
      await this.request('GET', '/health', undefined, 800);
      return true;
    } catch {
      return false;
    }
  }
}
