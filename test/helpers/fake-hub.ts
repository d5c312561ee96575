import { createHash } from 'node:crypto';
import type http from 'node:http';
import { startFileServer, type FileServer, type ServedFile } from './file-server.ts';

export interface FakeRepo {
  /** Repository path → content (and misbehaviour). Files over `lfsOver` bytes are LFS files. */
  files: Record<string, Buffer | ServedFile>;
  /** Only this bearer token may read it (a gated repository): 401 without a token, 403 with another. */
  token?: string;
}

export interface FakeHub extends FileServer {
  /** Listings and paths-info calls the client made. */
  apiCalls: string[];
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/**
 * A local stand-in for the Hugging Face hub on 127.0.0.1: the endpoints @huggingface/hub
 * calls (`GET /api/models/{repo}/tree/{rev}` with `recursive`, `POST
 * /api/models/{repo}/paths-info/{rev}`) answering LFS size and sha256 like the hub, and
 * `/{repo}/resolve/{rev}/{path}` serving the bytes through the test file server (Range,
 * ETag, drops). Gated repositories check the bearer token.
 */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const apiCalls: string[] = [];
  const entry = (p: string, f: ServedFile) => {
    const sha = createHash('sha256').update(f.body).digest('hex');
    return {
      type: 'file',
      path: p,
      size: f.body.length,
      oid: createHash('sha1').update(f.body).digest('hex'),
      lfs: { oid: sha, size: f.body.length, pointerSize: 134 },
    };
  };
  const served = (v: Buffer | ServedFile): ServedFile => (Buffer.isBuffer(v) ? { body: v } : v);
  const table = new Map(Object.entries(repos).map(([name, r]) => [name, new Map(Object.entries(r.files).map(([p, v]) => [p, served(v)]))]));

  // Like huggingface.co: a repository it does not show is 401 to an anonymous caller, 404 with a token.
  const unknownRepo = (req: http.IncomingMessage, res: http.ServerResponse) =>
    (json(res, req.headers.authorization ? 404 : 401, { error: 'Repository not found' }), true);

  const denied = (req: http.IncomingMessage, res: http.ServerResponse, repo: FakeRepo): boolean => {
    if (!repo.token) return false;
    const auth = req.headers.authorization;
    if (!auth) json(res, 401, { error: 'Access to this repository is restricted. You must be authenticated.' });
    else if (auth !== `Bearer ${repo.token}`) json(res, 403, { error: 'Access to this gated repository is restricted.' });
    else return false;
    return true;
  };

  const hub: FileServer = await startFileServer({
    route: async (req, res, url) => {
      const p = decodeURIComponent(url.pathname);
      let m = p.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/);
      if (m) {
        apiCalls.push(`tree ${m[1]}`);
        const repo = repos[m[1]!];
        if (!repo) return unknownRepo(req, res);
        if (denied(req, res, repo)) return true;
        const files = [...table.get(m[1]!)!].filter(([fp]) => !m![3] || fp.startsWith(`${m![3]}/`));
        json(res, 200, files.map(([fp, f]) => entry(fp, f)));
        return true;
      }
      m = p.match(/^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/);
      if (m && req.method === 'POST') {
        apiCalls.push(`paths-info ${m[1]}`);
        const repo = repos[m[1]!];
        if (!repo) return unknownRepo(req, res);
        if (denied(req, res, repo)) return true;
        let raw = '';
        for await (const c of req) raw += c;
        const { paths } = JSON.parse(raw) as { paths: string[] };
        const files = table.get(m[1]!)!;
        json(res, 200, paths.filter((fp) => files.has(fp)).map((fp) => entry(fp, files.get(fp)!)));
        return true;
      }
      m = p.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
      if (m) {
        const repo = repos[m[1]!];
        const file = table.get(m[1]!)?.get(m[3]!);
        if (!repo || !file) return (json(res, 404, { error: 'Entry not found' }), true);
        if (denied(req, res, repo)) return true;
        // Served by the file table under the same path, so drops and holds apply.
        if (!hub.files.has(p)) hub.files.set(p, file);
        return false;
      }
      return false;
    },
  });
  return Object.assign(hub, { apiCalls });
}
