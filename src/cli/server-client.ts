import type { Config } from '../config/config.ts';

/** An error answer from the server: the OpenAI envelope's message and code, and the HTTP status. */
export class ServerError extends Error {
  constructor(readonly status: number, readonly code: string | undefined, message: string) {
    super(message);
  }
}

/** One Server-Sent Event. */
export interface ServerEvent {
  event: string;
  data: Record<string, unknown>;
}

/** The path of a per-model route; the id's slash is sent encoded, as the SDKs do. */
export function modelPath(id: string, suffix = ''): string {
  return `/v1/models/${encodeURIComponent(id)}${suffix}`;
}

/** Talks HTTP to a running modeld, with the configured API key. */
export class ServerClient {
  readonly base: string;
  readonly #key: string | undefined;

  constructor(config: Config) {
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    this.base = `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
    this.#key = config.apiKeys[0];
  }

  #headers(body: unknown, extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(this.#key ? { authorization: `Bearer ${this.#key}` } : {}),
      ...extra,
    };
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs = 0): Promise<T> {
    const res = await fetch(this.base + path, {
      method,
      headers: this.#headers(body),
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined,
    });
    const json = (await res.json().catch(() => ({}))) as T & { error?: { message: string; code?: string } };
    if (!res.ok) throw new ServerError(res.status, json.error?.code, json.error?.message ?? `${method} ${path}: HTTP ${res.status}`);
    return json;
  }

  /**
   * Sends a request that answers Server-Sent Events and yields them until the stream ends. A
   * JSON answer (an error, or a 2xx without a stream) is thrown or yielded as one `json` event.
   */
  async *events(method: string, path: string, signal?: AbortSignal): AsyncGenerator<ServerEvent> {
    const res = await fetch(this.base + path, { method, headers: this.#headers(undefined, { accept: 'text/event-stream' }), signal });
    if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const json = (await res.json().catch(() => ({}))) as Record<string, unknown> & { error?: { message: string; code?: string } };
      if (!res.ok) throw new ServerError(res.status, json.error?.code, json.error?.message ?? `${method} ${path}: HTTP ${res.status}`);
      yield { event: 'json', data: json };
      return;
    }
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data !== undefined) yield { event, data: JSON.parse(data) as Record<string, unknown> };
      }
    }
  }

  /**
   * True when a modeld answers /health. No server at all is a refused connection, known at
   * once; the timeout only bounds a server that accepts and never answers, and is long enough
   * for a busy one (a 0.8 s limit missed a live server on a loaded 2-core machine).
   */
  async reachable(): Promise<boolean> {
    try {
      await this.request('GET', '/health', undefined, 5000);
      return true;
    } catch {
      return false;
    }
  }
}
