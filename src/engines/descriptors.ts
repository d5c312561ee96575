import { parseDuration } from '../config/config.ts';
import { ApiError } from '../errors.ts';
import type { ParamDescriptor } from './engine.ts';

export interface ParamLayer {
  /** What the values came from, named in errors: a model file, "start request", "request". */
  source: string;
  values: Record<string, unknown> | undefined;
}

export class ParamValidationError extends ApiError {}

function bounds(d: ParamDescriptor): string {
  const lo = d.min_value ?? '-∞';
  const hi = d.max_value ?? '∞';
  return `[${lo}, ${hi}]`;
}

/** Checks one value against its descriptor; returns the normalised value or throws a 400. */
export function checkParam(d: ParamDescriptor, value: unknown, source: string): unknown {
  const where = source === 'request' ? `'${d.name}'` : `'${d.name}' in ${source}`;
  const fail = (msg: string, code: 'invalid_type' | 'parameter_out_of_range' | 'invalid_value') =>
    new ParamValidationError(code, `${where} ${msg}`, { param: d.name });
  let v = value;
  // Jan's own model files write numbers as strings ("temperature": "0.7").
  if ((d.type === 'number' || d.type === 'integer') && typeof v === 'string' && v.trim() !== '' && !isNaN(Number(v))) {
    v = Number(v);
  }
  switch (d.type) {
    case 'integer':
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw fail(`must be a number`, 'invalid_type');
      if (d.type === 'integer' && !Number.isInteger(v)) throw fail('must be an integer', 'invalid_type');
      if ((d.min_value != null && v < d.min_value) || (d.max_value != null && v > d.max_value)) {
        throw fail(`must be within ${bounds(d)}, got ${v}`, 'parameter_out_of_range');
      }
      return v;
    case 'integer_or_string':
      if (typeof v === 'number') {
        if (!Number.isInteger(v)) throw fail('must be an integer', 'invalid_type');
        if ((d.min_value != null && v < d.min_value) || (d.max_value != null && v > d.max_value)) {
          throw fail(`must be within ${bounds(d)} or one of ${JSON.stringify(d.options ?? [])}, got ${v}`, 'parameter_out_of_range');
        }
        return v;
      }
      if (typeof v === 'string' && (d.options ?? []).includes(v)) return v;
      throw fail(`must be an integer within ${bounds(d)} or one of ${JSON.stringify(d.options ?? [])}`, 'invalid_value');
    case 'duration':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      if (typeof v === 'string') {
        try {
          parseDuration(v);
          return v;
        } catch {
          /* falls through to the error below */
        }
      }
      throw fail('must be seconds or a duration like "5m", "1h30m", "0" or "-1"', 'invalid_value');
    case 'boolean':
      if (typeof v !== 'boolean') throw fail('must be a boolean', 'invalid_type');
      return v;
    case 'string':
      if (typeof v !== 'string') throw fail('must be a string', 'invalid_type');
      if (d.special_type === 'dropdown' && d.options && !d.options.includes(v)) {
        throw fail(`must be one of ${JSON.stringify(d.options)}, got ${JSON.stringify(v)}`, 'invalid_value');
      }
      return v;
    case 'string_array':
      if (typeof v === 'string') return [v];
      if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw fail('must be a string or an array of strings', 'invalid_type');
      return v;
  }
}

/**
 * Merges parameter layers by precedence (later layers win: engine default < model object
 * < start overrides < request) and validates every value against the engine's descriptors.
 * Only descriptors of the given scopes are returned; unknown names are kept out (model files
 * carry other engines' and Jan's own keys, which must not break a load).
 */
export function resolveParams(
  descriptors: readonly ParamDescriptor[],
  layers: ParamLayer[],
  scopes: ReadonlyArray<ParamDescriptor['scope']> = ['load', 'request'],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const d of descriptors) {
    if (!scopes.includes(d.scope)) continue;
    let value: unknown = d.default;
    for (const layer of layers) {
      const v = layer.values?.[d.name];
      if (v !== undefined && v !== null) value = checkParam(d, v, layer.source);
    }
    if (value !== undefined && value !== null) out[d.name] = value;
  }
  return out;
}

/** Rejects names no descriptor knows, for strict inputs such as a start request body. */
export function rejectUnknownParams(descriptors: readonly ParamDescriptor[], values: Record<string, unknown>, extra: string[] = []): void {
  const known = new Set([...descriptors.map((d) => d.name), ...extra]);
  for (const k of Object.keys(values)) {
    if (!known.has(k)) {
      throw new ApiError('unknown_parameter', `unknown parameter '${k}'; known: ${[...known].sort().join(', ')}`, { param: k });
    }
  }
}
