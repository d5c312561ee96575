/**
 * Where an api model's server is: `metadata.api.base_url`, else the object's `source_url`
 * (Jan's remote models name it there), and what is wrong with it, if anything. The model
 * object is checked by it when it is created and again when it loads.
 */
export function apiServer(api: unknown, sourceUrl: string | undefined): { url?: string; field: 'metadata.api.base_url' | 'source_url'; problem?: string } {
  const baseUrl = (api as { base_url?: unknown } | undefined)?.base_url;
  const field = typeof baseUrl === 'string' && baseUrl !== '' ? 'metadata.api.base_url' : 'source_url';
  const url = field === 'source_url' ? sourceUrl : (baseUrl as string);
  if (!url) return { field: 'metadata.api.base_url', problem: `needs metadata.api.base_url, the upstream's OpenAI base URL (e.g. http://127.0.0.1:8080/v1)` };
  return { url, field, ...(isHttpUrl(url) ? {} : { problem: `${field} '${url}' is not an http(s) URL` }) };
}

export function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}
