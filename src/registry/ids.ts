import { ApiError } from '../errors.ts';

/** Hugging Face style ids can be long; the contract allows anything under 1,000 characters. */
export const MAX_ID_LENGTH = 999;

/**
 * Validates a model id as received (already percent-decoded): `<folder>/<file>` or a
 * folder alias. Anything that could escape the models folder is a 400, never a file access.
 */
export function parseModelId(raw: string): { folder: string; file?: string } {
  const bad = (why: string) => new ApiError('invalid_model_id', `invalid model id ${JSON.stringify(raw.slice(0, 200))}: ${why}`, { param: 'model' });
  if (typeof raw !== 'string' || raw.length === 0) throw bad('empty');
  if (raw.length > MAX_ID_LENGTH) throw bad(`longer than ${MAX_ID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) throw bad('control characters and backslashes are not allowed');
  if (raw.startsWith('/') || /^[a-zA-Z]:/.test(raw)) throw bad('absolute paths are not allowed');
  const parts = raw.split('/');
  if (parts.length > 2) throw bad('an id is <folder>/<file>');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') throw bad(`'${p}' is not a valid path segment`);
    if (p.startsWith('.')) throw bad('segments may not start with a dot');
  }
  return parts.length === 2 ? { folder: parts[0]!, file: parts[1]! } : { folder: parts[0]! };
}
