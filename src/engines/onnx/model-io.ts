import type { OutputSpec, Preprocess } from './classifier-metadata.ts';

/** An input or output as a session or the header reader describes it. */
export interface TensorMeta {
  name: string;
  type: string;
  /** A positive number for a fixed dimension; anything else (a name, null, -1) is dynamic. */
  shape: ReadonlyArray<number | string | null>;
}

export type BatchDim = { dynamic: true } | { dynamic: false; size: number };

export interface ImagePlan {
  kind: 'image';
  input: TensorMeta;
  dtype: 'float32' | 'uint8';
  layout: 'NCHW' | 'NHWC';
  channels: 1 | 3;
  width: number;
  height: number;
}

export interface TokenIdsPlan {
  kind: 'token-ids';
  ids: TensorMeta;
  mask?: TensorMeta;
  typeIds?: TensorMeta;
  /** Fixed sequence length of the inputs, when the shape says one. */
  seqLen?: number;
}

export interface StringPlan {
  kind: 'string';
  input: TensorMeta;
  /** [batch] or [batch, 1]. */
  rank: 1 | 2;
}

export type InputPlan = ImagePlan | TokenIdsPlan | StringPlan;

export interface OutputPlan {
  name: string;
  /** scores: [batch, classes] numbers; label: [batch] class indices or names. */
  kind: 'scores' | 'label';
  classes?: number;
  activation: 'softmax' | 'sigmoid' | 'none';
}

/** A model modeld cannot feed or read: says which tensor and why. */
export class UnmappableModelError extends Error {}

const fixed = (d: number | string | null | undefined): d is number => typeof d === 'number' && d > 0;
const describe = (t: TensorMeta) => `'${t.name}' ${t.type}[${t.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' && d ? d : '?')).join(', ')}]`;
const INT_TYPES = new Set(['int64', 'int32']);
const IMAGE_TYPES = new Set(['float32', 'uint8']);

/** What the model's inputs say it classifies, for `metadata.task` autofill; undefined when unclear. */
export function inferTask(inputs: readonly TensorMeta[]): 'image-classification' | 'text-classification' | undefined {
  if (inputs.some((i) => i.type === 'string') || inputs.some((i) => i.name === 'input_ids')) return 'text-classification';
  if (inputs.length === 1 && IMAGE_TYPES.has(inputs[0]!.type) && (inputs[0]!.shape.length === 3 || inputs[0]!.shape.length === 4)) {
    return 'image-classification';
  }
  return undefined;
}

/** The batch dimension shared by the inputs: dynamic if any input leaves it open. */
export function batchDim(inputs: readonly TensorMeta[]): BatchDim {
  const dims = inputs.map((i) => i.shape[0]);
  if (dims.some((d) => !fixed(d))) return { dynamic: true };
  return { dynamic: false, size: Math.max(...(dims as number[])) };
}

function sizeOf(p: Preprocess): { width?: number; height?: number } {
  if (p.size === undefined) return {};
  return Array.isArray(p.size) ? { width: p.size[0], height: p.size[1] } : { width: p.size, height: p.size };
}

function planImage(input: TensorMeta, p: Preprocess): ImagePlan {
  if (!IMAGE_TYPES.has(input.type)) {
    throw new UnmappableModelError(`image input ${describe(input)} has element type ${input.type}; modeld feeds float32 or uint8 images`);
  }
  const s = input.shape;
  let layout: 'NCHW' | 'NHWC';
  let c: number | string | null | undefined;
  let h: number | string | null | undefined;
  let w: number | string | null | undefined;
  if (s.length === 3) {
    // [batch, height, width]: one grey channel without a channel axis (same memory as NCHW, C = 1).
    layout = 'NCHW';
    [c, h, w] = [1, s[1], s[2]];
  } else {
    const first = s[1];
    const last = s[3];
    const isC = (d: typeof first) => d === 1 || d === 3;
    layout = p.layout ?? (isC(last) && !isC(first) ? 'NHWC' : 'NCHW');
    [c, h, w] = layout === 'NCHW' ? [s[1], s[2], s[3]] : [s[3], s[1], s[2]];
  }
  const want = p.color === 'grayscale' ? 1 : p.color === 'rgb' ? 3 : undefined;
  let channels: 1 | 3;
  if (fixed(c)) {
    if (c !== 1 && c !== 3) throw new UnmappableModelError(`image input ${describe(input)} has ${c} channels in ${layout} layout; modeld feeds 1 (grayscale) or 3 (RGB)`);
    if (want !== undefined && want !== c) throw new UnmappableModelError(`metadata.preprocess.color is '${p.color}' but image input ${describe(input)} takes ${c} channel(s)`);
    channels = c;
  } else {
    channels = want ?? 3;
  }
  const size = sizeOf(p);
  for (const [dim, v, name] of [[h, size.height, 'height'], [w, size.width, 'width']] as const) {
    if (fixed(dim) && v !== undefined && v !== dim) {
      throw new UnmappableModelError(`metadata.preprocess.size gives ${name} ${v} but image input ${describe(input)} takes ${dim}`);
    }
  }
  const width = fixed(w) ? w : (size.width ?? 224);
  const height = fixed(h) ? h : (size.height ?? 224);
  checkRunSize(input, channels * width * height);
  return { kind: 'image', input, dtype: input.type as 'float32' | 'uint8', layout, channels, width, height };
}

/**
 * Values one run may feed an input: 2^28 (1 GiB of float32), far beyond any classifier's. A
 * model whose fixed shape asks for more (a 60000x60000 image, a fixed batch of a million) would
 * have the server allocate it for every request; one such image input took the process down
 * (a double free in the resize) before this check.
 */
const MAX_RUN_VALUES = 2 ** 28;

function checkRunSize(input: TensorMeta, perRow: number): void {
  const rows = fixed(input.shape[0]) ? input.shape[0] : 1;
  if (rows * perRow > MAX_RUN_VALUES) {
    throw new UnmappableModelError(`input ${describe(input)} would take ${rows} row(s) of ${perRow} values per run; modeld feeds at most ${MAX_RUN_VALUES} values to one input`);
  }
}

function planTokenIds(inputs: readonly TensorMeta[]): TokenIdsPlan {
  const byName = new Map(inputs.map((i) => [i.name, i]));
  const ids = byName.get('input_ids')!;
  const mask = byName.get('attention_mask');
  const typeIds = byName.get('token_type_ids');
  const unknown = inputs.filter((i) => i !== ids && i !== mask && i !== typeIds);
  if (unknown.length > 0) {
    throw new UnmappableModelError(`text model input(s) ${unknown.map(describe).join(', ')} are not input_ids, attention_mask or token_type_ids`);
  }
  for (const t of [ids, mask, typeIds]) {
    if (!t) continue;
    if (!INT_TYPES.has(t.type)) throw new UnmappableModelError(`text model input ${describe(t)} must be int64 or int32`);
    if (t.shape.length !== 2) throw new UnmappableModelError(`text model input ${describe(t)} must have shape [batch, sequence]`);
  }
  const seq = [ids, mask, typeIds].map((t) => t?.shape[1]).find(fixed);
  checkRunSize(ids, seq ?? 1);
  return { kind: 'token-ids', ids, ...(mask ? { mask } : {}), ...(typeIds ? { typeIds } : {}), ...(seq ? { seqLen: seq } : {}) };
}

/** Works out how to feed the model from its inputs; throws UnmappableModelError saying why not. */
export function planInputs(inputs: readonly TensorMeta[], preprocess: Preprocess): InputPlan {
  const list = inputs.map(describe).join(', ') || 'none';
  if (inputs.length === 0) throw new UnmappableModelError('the model has no inputs');
  // A fixed 0 holds no values, and onnxruntime refuses any other size there: it failed every run.
  const empty = inputs.find((i) => i.shape.some((d) => d === 0));
  if (empty) throw new UnmappableModelError(`input ${describe(empty)} has a dimension fixed at 0, so it takes no values; no request can be fed to it`);
  if (inputs.some((i) => i.name === 'input_ids')) return planTokenIds(inputs);
  if (inputs.length !== 1) {
    throw new UnmappableModelError(`the model's inputs (${list}) are neither one image tensor, one string tensor nor input_ids/attention_mask/token_type_ids`);
  }
  const input = inputs[0]!;
  if (input.type === 'string') {
    const rank = input.shape.length;
    if (rank === 1 || (rank === 2 && (input.shape[1] === 1 || !fixed(input.shape[1])))) {
      checkRunSize(input, 1);
      return { kind: 'string', input, rank: rank as 1 | 2 };
    }
    throw new UnmappableModelError(`string input ${describe(input)} must have shape [batch] or [batch, 1]`);
  }
  if (input.shape.length === 3 || input.shape.length === 4) return planImage(input, preprocess);
  throw new UnmappableModelError(`input ${describe(input)} is not an image ([batch, channels, height, width], [batch, height, width, channels] or [batch, height, width]), a string tensor, or input_ids`);
}

/** Picks the output that holds the class scores (or labels) and how to turn it into probabilities. */
export function planOutput(outputs: readonly TensorMeta[], spec: OutputSpec): OutputPlan {
  const isFloat = (t: TensorMeta) => t.type === 'float32' || t.type === 'float64';
  const tensors = outputs.filter((o) => o.type !== 'non-tensor' && o.type !== undefined);
  let out: TensorMeta | undefined;
  if (spec.name !== undefined) {
    out = outputs.find((o) => o.name === spec.name);
    if (!out) throw new UnmappableModelError(`metadata.output.name '${spec.name}' is not an output of the model (outputs: ${outputs.map(describe).join(', ')})`);
  } else {
    out =
      tensors.find((o) => isFloat(o) && o.shape.length === 2) ??
      tensors.find((o) => (INT_TYPES.has(o.type) || o.type === 'string') && o.shape.length <= 2);
    if (!out) {
      throw new UnmappableModelError(`no output holds class scores [batch, classes] or labels [batch] (outputs: ${outputs.map(describe).join(', ') || 'none'})`);
    }
  }
  if (isFloat(out) && out.shape.length === 2) {
    const classes = out.shape[1];
    return {
      name: out.name,
      kind: 'scores',
      ...(fixed(classes) ? { classes } : {}),
      activation: spec.activation ?? (/prob|softmax/i.test(out.name) ? 'none' : 'softmax'),
    };
  }
  if ((INT_TYPES.has(out.type) || out.type === 'string') && (out.shape.length === 1 || (out.shape.length === 2 && out.shape[1] === 1))) {
    return { name: out.name, kind: 'label', activation: 'none' };
  }
  throw new UnmappableModelError(`output ${describe(out)} is neither class scores [batch, classes] nor labels [batch]`);
}
