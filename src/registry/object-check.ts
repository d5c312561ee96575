import { Value } from 'typebox/value';
import { ApiError } from '../errors.ts';
import { COMMON_DESCRIPTORS } from '../engines/common-descriptors.ts';
import { checkParam } from '../engines/descriptors.ts';
import type { EngineName, ParamDescriptor } from '../engines/engine.ts';
import { LLAMACPP_DESCRIPTORS } from '../engines/llamacpp/descriptors.ts';
import { onnxDescriptors } from '../engines/onnx/onnx-descriptors.ts';
import { ModelObjectFileSchema, type ModelObjectFile } from './model-object-schema.ts';

/** One field of a model object that fails the schema, as a user reads it. */
export interface FieldProblem {
  /** Dotted path, e.g. `metadata.engine`; `''` for the object itself. */
  field: string;
  /** `must be one of "llamacpp", "onnx", "api", "tensorrt", got "foo"` */
  message: string;
  kind: 'type' | 'value';
}

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

function valueAt(obj: unknown, pointer: string): unknown {
  let v = obj;
  for (const seg of pointer.split('/').slice(1)) v = (v as Record<string, unknown> | undefined)?.[seg];
  return v;
}

/**
 * The schema problems of a model object, one per field (a union's alternatives folded into
 * one sentence: an enum names its allowed values rather than "must be equal to constant").
 */
export function schemaProblems(obj: unknown): FieldProblem[] {
  const byPath = new Map<string, SchemaError[]>();
  for (const e of Value.Errors(ModelObjectFileSchema, obj) as Iterable<SchemaError>) {
    byPath.set(e.instancePath, [...(byPath.get(e.instancePath) ?? []), e]);
  }
  const out: FieldProblem[] = [];
  for (const [pointer, errors] of byPath) {
    // A deeper problem says more than "must match a schema in anyOf" on its parent.
    const own = errors.filter((e) => e.keyword !== 'anyOf');
    const got = `, got ${show(valueAt(obj, pointer))}`;
    const allowed = own.filter((e) => e.keyword === 'const').map((e) => show(e.params.allowedValue));
    let message: string;
    if (allowed.length > 0) message = `must be one of ${allowed.join(', ')}${got}`;
    else message = `${[...new Set(own.map((e) => e.message))].join(' or ') || 'is not valid'}${got}`;
    out.push({
      field: pointer.split('/').slice(1).map((s, i) => (/^\d+$/.test(s) && i > 0 ? `[${s}]` : `${i > 0 ? '.' : ''}${s}`)).join(''),
      message,
      kind: own.every((e) => e.keyword === 'type') ? 'type' : 'value',
    });
  }
  return out;
}

/**
 * What a model object that fails its schema still shows: every invalid value dropped (an
 * invalid array item drops the whole array), so the wire Model stays schema-valid and the
 * list and the single-model route agree. The model's `error` already says what was wrong.
 */
export function withoutInvalidFields(raw: Record<string, unknown>): ModelObjectFile {
  const obj = structuredClone(raw);
  for (let round = 0; round < 8; round++) {
    const errors = [...Value.Errors(ModelObjectFileSchema, obj)] as SchemaError[];
    if (errors.length === 0) break;
    for (const pointer of new Set(errors.map((e) => e.instancePath))) {
      const segs = pointer.split('/').slice(1);
      if (segs.length === 0) return {};
      let parent: unknown = obj;
      for (const s of segs.slice(0, -1)) parent = (parent as Record<string, unknown> | undefined)?.[s];
      if (Array.isArray(parent)) {
        // Dropping one item would renumber the rest: drop the array.
        const holder = valueAt(obj, `/${segs.slice(0, -2).join('/')}`.replace(/\/$/, '')) as Record<string, unknown> | undefined;
        if (holder && typeof holder === 'object') delete holder[segs[segs.length - 2]!];
      } else if (parent && typeof parent === 'object') {
        delete (parent as Record<string, unknown>)[segs[segs.length - 1]!];
      }
    }
  }
  return obj as ModelObjectFile;
}

/** The run-parameter descriptors a model object's `parameters` are checked against when it is created. */
function descriptorsOf(engine: EngineName): readonly ParamDescriptor[] {
  switch (engine) {
    case 'llamacpp':
      return [...LLAMACPP_DESCRIPTORS, ...COMMON_DESCRIPTORS];
    case 'onnx':
      // Only the bounds matter here; the thread default is the engine's business.
      return [...onnxDescriptors(1), ...COMMON_DESCRIPTORS];
    default:
      return COMMON_DESCRIPTORS;
  }
}

/**
 * Checks a model object about to be written: its schema (a 400 naming the first bad field,
 * e.g. `metadata.engine` with the allowed engines) and the `parameters` its engine knows
 * (bounds and types, as a load would check them). Names no engine knows are kept: model
 * files carry Jan's own keys.
 */
export function checkNewModelObject(obj: ModelObjectFile, engine: EngineName): void {
  const [first] = schemaProblems(obj);
  if (first) {
    throw new ApiError(first.kind === 'type' ? 'invalid_type' : 'invalid_value', `'${first.field}' ${first.message}`, { param: first.field || null });
  }
  const params = obj.parameters ?? {};
  for (const d of descriptorsOf(engine)) {
    const v = params[d.name];
    if (v === undefined || v === null) continue;
    try {
      checkParam(d, v, 'parameters');
    } catch (err) {
      if (err instanceof ApiError) throw new ApiError(err.code, err.message.replace(`'${d.name}' in parameters`, `'parameters.${d.name}'`), { param: `parameters.${d.name}` });
      throw err;
    }
  }
}
