import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A file the test server serves, and how it misbehaves. */
export interface ServedFile {
  body: Buffer;
  /** Strong ETag; default derived from the content; `false` sends none. */
  etag?: string | false;
  /** Bytes per second; unset streams as fast as the socket takes them. */
  throttle?: number;
  /** Offsets where the connection is destroyed mid-body; each fires once. */
  dropAt?: number[];
  /**
   * Awaited before a drop, once the bytes up to it are written to the socket; default a 20 ms
   * pause. A test that asserts where the client resumes waits here for the client to hold them,
   * since on a busy machine 20 ms may pass before the client reads a byte.
   */
  beforeDrop?: (at: number) => Promise<void>;
  /** Serves the content with one byte flipped in the middle (same length, wrong hash). */
  wrong?: boolean;
  /** Ignores Range requests and always answers 200 with the whole file. */
  noRange?: boolean;
  /** Stops streaming at this offset until `release(path)`; fires once. */
  holdAt?: number;
  /** Answers this status with no body instead of the file. */
  status?: number;
  /**
   * Announces a Content-Length this many bytes larger than the body it sends, then closes the
   * connection after the body (a source whose size does not match what it sends).
   */
  extraLength?: number;
}

export interface RequestLog {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
}

/** Answers a request itself (the hub API), or returns false to let the file table answer. */
export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface FileServer {
  readonly origin: string;
  readonly port: number;
  readonly files: Map<string, ServedFile>;
  readonly requests: RequestLog[];
  url(path: string): string;
  /** Resolves once a transfer of `path` is parked at its `holdAt` offset. */
  held(path: string): Promise<void>;
  /** Lets a parked transfer of `path` go on. */
  release(path: string): void;
  /** Closes the listener and destroys every connection (a server crash). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function etagOf(f: ServedFile): string | undefined {
  if (f.etag === false) return undefined;
  return f.etag ?? `"${createHash('sha256').update(f.body).digest('hex').slice(0, 20)}"`;
}

/**
 * A local HTTP file server on 127.0.0.1 for download tests: Range (206 with Content-Range,
 * 416), ETag + If-Range, HEAD, throttling, connection drops mid-body, wrong bytes and a hold
 * point for deterministic mid-download states.
 */
export async function startFileServer(opts: { files?: Record<string, ServedFile>; route?: RouteHandler } = {}): Promise<FileServer> {
  const files = new Map(Object.entries(opts.files ?? {}));
  const requests: RequestLog[] = [];
  const sockets = new Set<Socket>();
  const holds = new Map<string, { reached: Deferred; go: Deferred }>();
  const holdFor = (p: string) => {
    let h = holds.get(p);
    if (!h) {
      h = { reached: deferred(), go: deferred() };
      holds.set(p, h);
    }
    return h;
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      requests.push({
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        ...(req.headers.range ? { range: req.headers.range } : {}),
        ...(req.headers['if-range'] ? { ifRange: String(req.headers['if-range']) } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      });
      if (opts.route && (await opts.route(req, res, url))) return;
      const file = files.get(decodeURIComponent(url.pathname));
      if (!file) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      await serveFile(req, res, file, decodeURIComponent(url.pathname));
    })().catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function serveFile(req: http.IncomingMessage, res: http.ServerResponse, f: ServedFile, key: string): Promise<void> {
    if (f.status) {
      res.writeHead(f.status).end();
      return;
    }
    let body = f.body;
    if (f.wrong) {
      body = Buffer.from(f.body);
      body[Math.floor(body.length / 2)] ^= 0xff;
    }
    const etag = etagOf(f);
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': f.noRange ? 'none' : 'bytes' };
    if (etag) headers.etag = etag;
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = req.headers.range?.match(/^bytes=(\d+)-(\d*)$/);
    const ifRange = req.headers['if-range'];
    if (range && !f.noRange && (!ifRange || ifRange === etag)) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(Number(range[2]), body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
    }
    headers['content-length'] = end - start + 1 + (f.extraLength ?? 0);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const chunk = 16 * 1024;
    let pos = start;
    while (pos <= end) {
      let next = Math.min(pos + chunk, end + 1);
      const drop = f.dropAt?.find((d) => d > pos && d <= next);
      const hold = f.holdAt !== undefined && f.holdAt >= pos && f.holdAt < next ? f.holdAt : undefined;
      if (drop !== undefined) next = drop;
      if (hold !== undefined && hold > pos) next = hold;
      if (next > pos && !res.write(body.subarray(pos, next))) await new Promise((r) => res.once('drain', r));
      pos = next;
      if (drop !== undefined && pos === drop) {
        f.dropAt = f.dropAt!.filter((d) => d !== drop);
        // Let the bytes reach the client before the connection dies mid-body.
        await (f.beforeDrop ? f.beforeDrop(drop).catch(() => undefined) : sleep(20));
        res.socket?.destroy();
        return;
      }
      if (hold !== undefined && pos === hold) {
        f.holdAt = undefined;
        const h = holdFor(key);
        h.reached.resolve();
        await h.go.promise;
        holds.delete(key);
        if (res.destroyed) return;
      }
      if (f.throttle) await sleep(((next - pos || chunk) / f.throttle) * 1000);
    }
    if (f.extraLength) {
      // The announced bytes never come: the connection closes short of them.
      await sleep(20);
      res.socket?.destroy();
      return;
    }
    res.end();
  }

  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;

  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    origin,
    port,
    files,
    requests,
    url: (p) => `${origin}${p.startsWith('/') ? p : `/${p}`}`,
    held: (p) => holdFor(p).reached.promise,
    release: (p) => holdFor(p).go.resolve(),
    stop,
    start: () => listen(port),
    close: async () => {
      for (const h of holds.values()) h.go.resolve();
      if (server.listening) await stop();
    },
  };
}
