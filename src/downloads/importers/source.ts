import { existsSync } from 'node:fs';
import path from 'node:path';
import { expandHome } from '../../config/config.ts';
import { ApiError } from '../../errors.ts';
import { toResolveUrl } from '../../registry/binaries.ts';

/** What a `source_url` given to `POST /v1/models` points at. */
export type ModelSource =
  | { kind: 'local'; path: string }
  | { kind: 'url'; url: string }
  | { kind: 'hf-file'; repo: string; revision: string; file: string }
  | { kind: 'hf-repo'; repo: string; revision: string };

const HUB_HOSTS = new Set(['huggingface.co', 'www.huggingface.co', 'hf.co']);
const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Classifies a source: a Hugging Face URL (on the configured hub or the public one) is a
 * repository (`/org/repo`, `/org/repo/tree/<rev>`) or a file (`/blob/` or `/resolve/`); other
 * http(s) URLs download directly; `org/repo` is a hub repository unless a local file of that
 * name exists; anything else is a local path (`~` expanded, relative to `cwd`).
 */
export function classifySource(source: string, { hubUrl, cwd = process.cwd() }: { hubUrl: string; cwd?: string }): ModelSource {
  const s = source.trim();
  if (/^https?:\/\//i.test(s)) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new ApiError('invalid_value', `source_url '${s}' is not a valid URL`, { param: 'source_url' });
    }
    const hub = new URL(hubUrl);
    const onHub = u.origin === hub.origin || HUB_HOSTS.has(u.hostname);
    const base = onHub && u.origin === hub.origin ? hub.pathname.replace(/\/+$/, '') : '';
    const segs = u.pathname.slice(base.length).split('/').filter(Boolean).map(decodeURIComponent);
    if (onHub && segs.length >= 2 && segs[0] !== 'api' && segs[0] !== 'datasets' && segs[0] !== 'spaces') {
      const repo = `${segs[0]}/${segs[1]}`;
      if (segs.length === 2) return { kind: 'hf-repo', repo, revision: 'main' };
      if (segs[2] === 'tree' && segs.length >= 4) return { kind: 'hf-repo', repo, revision: segs[3]! };
      if ((segs[2] === 'blob' || segs[2] === 'resolve') && segs.length >= 5) {
        return { kind: 'hf-file', repo, revision: segs[3]!, file: segs.slice(4).join('/') };
      }
    }
    return { kind: 'url', url: toResolveUrl(s) };
  }
  const local = path.resolve(cwd, expandHome(s));
  if (REPO_ID.test(s) && !existsSync(local)) return { kind: 'hf-repo', repo: s, revision: 'main' };
  return { kind: 'local', path: local };
}

/** `https://hub/org/repo/resolve/<rev>/<file>`: the URL that serves a repository file. */
export function resolveUrl(hubUrl: string, repo: string, revision: string, file: string): string {
  const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/');
  return `${hubUrl.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${enc(file)}`;
}

/** A name safe as a model folder or file: letters, digits, `.`, `_`, `-`; never starting with a dot. */
export function slug(name: string): string {
  const s = name.replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '').replace(/-+$/, '');
  return s || 'model';
}
