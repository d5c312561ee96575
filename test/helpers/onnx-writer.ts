/**
 * ONNX model writer for test fixtures: a tiny graph builder over onnx-proto's
 * protobufjs classes, plus presets with known weights and pure-JS reference
 * implementations so tests can assert exact scores from onnxruntime-node.
 */
import { writeFileSync, readFileSync, truncateSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { mulberry32 } from './gguf-writer.ts';

const { onnx } = onnxProto;

// ---------------------------------------------------------------------------
// Generic builder
// ---------------------------------------------------------------------------

/** Element types the builder knows (ONNX TensorProto.DataType names in lower case). */
export type OnnxElemType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'bool' | 'string';

const DATA_TYPE: Record<OnnxElemType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float64: 11,
};

/** A dimension: a fixed size, or a symbolic name such as `'batch'`. */
export type OnnxDim = number | string;

export type OnnxTensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | number[] | bigint[] | boolean[] | string[];

export interface OnnxTensorInit {
  type: OnnxElemType;
  dims: number[];
  data: OnnxTensorData;
}

export type OnnxAttr =
  | { int: number }
  | { float: number }
  | { string: string }
  | { ints: number[] }
  | { floats: number[] }
  | { strings: string[] }
  | { tensor: OnnxTensorInit };

const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');

function toRawBytes(type: OnnxElemType, data: OnnxTensorData): Uint8Array {
  const view = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (type) {
    case 'float32':
      return view(data instanceof Float32Array ? data : Float32Array.from(data as number[]));
    case 'float64':
      return view(data instanceof Float64Array ? data : Float64Array.from(data as number[]));
    case 'int32':
      return view(data instanceof Int32Array ? data : Int32Array.from(data as number[]));
    case 'int64':
      return view(data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number | bigint>, (v) => BigInt(v))));
    case 'uint8':
      return view(data instanceof Uint8Array ? data : Uint8Array.from(data as number[]));
    case 'bool':
      return Uint8Array.from(Array.from(data as ArrayLike<boolean | number>, (v) => (v ? 1 : 0)));
    case 'string':
      throw new Error('string tensors are not raw');
  }
}

export function tensorProto(name: string, init: OnnxTensorInit): onnxProto.onnx.ITensorProto {
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (init.data.length !== expected) {
    throw new Error(`${name}: ${init.data.length} values for dims [${init.dims}] (expected ${expected})`);
  }
  const base = { name, dims: init.dims, dataType: DATA_TYPE[init.type] };
  // ONNX stores strings only in string_data; everything else goes in little-endian raw_data.
  if (init.type === 'string') return { ...base, stringData: (init.data as string[]).map(utf8) };
  return { ...base, rawData: toRawBytes(init.type, init.data) };
}

function attributeProto(name: string, a: OnnxAttr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in a) return { name, type: T.INT, i: a.int };
  if ('float' in a) return { name, type: T.FLOAT, f: a.float };
  if ('string' in a) return { name, type: T.STRING, s: utf8(a.string) };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: T.FLOATS, floats: a.floats };
  if ('strings' in a) return { name, type: T.STRINGS, strings: a.strings.map(utf8) };
  return { name, type: T.TENSOR, t: tensorProto(name, a.tensor) };
}

function valueInfo(name: string, type: OnnxElemType, dims: OnnxDim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface OnnxModelOptions {
  /** `producer_name`; default `'modeld-test-fixtures'`. */
  producerName?: string;
  /** `producer_version`; default `'1.0.0'`. */
  producerVersion?: string;
  /** `ir_version`; default 8 (ONNX 1.10, the schema onnx-proto 8 encodes). */
  irVersion?: number;
  /** Opsets by domain (`''` = ai.onnx); default `{'': 13}` plus whatever domains the nodes use. */
  opsets?: Record<string, number>;
  /** `metadata_props` key/values, e.g. `{labels: '["cat","dog"]'}`. */
  metadata?: Record<string, string>;
  /** `model_version`; default 1. */
  modelVersion?: number;
  docString?: string;
  /** `domain` of the model itself; default none. */
  domain?: string;
}

/** Default opset per domain when a node uses it and the caller did not say. */
const DEFAULT_OPSETS: Record<string, number> = { '': 13, 'ai.onnx.ml': 2 };

/** Collects inputs, outputs, initializers and nodes, then encodes a ModelProto. */
export class OnnxGraphBuilder {
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly domains = new Set<string>(['']);

  constructor(readonly name = 'graph') {}

  input(name: string, type: OnnxElemType, dims: OnnxDim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: OnnxElemType, dims: OnnxDim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  initializer(name: string, type: OnnxElemType, dims: number[], data: OnnxTensorData): string {
    this.initializers.push(tensorProto(name, { type, dims, data }));
    return name;
  }

  /** Adds a node; returns its output names so calls can be chained. */
  node(
    opType: string,
    inputs: string[],
    outputs: string[],
    attributes: Record<string, OnnxAttr> = {},
    domain = '',
  ): string[] {
    this.domains.add(domain);
    this.nodes.push({
      opType,
      domain,
      name: `${opType}_${this.nodes.length}`,
      input: inputs,
      output: outputs,
      attribute: Object.entries(attributes).map(([k, v]) => attributeProto(k, v)),
    });
    return outputs;
  }

  toModelProto(opts: OnnxModelOptions = {}): onnxProto.onnx.IModelProto {
    const opsets = { ...opts.opsets };
    for (const d of this.domains) opsets[d] ??= DEFAULT_OPSETS[d] ?? 1;
    return {
      irVersion: opts.irVersion ?? 8,
      producerName: opts.producerName ?? 'modeld-test-fixtures',
      producerVersion: opts.producerVersion ?? '1.0.0',
      domain: opts.domain,
      modelVersion: opts.modelVersion ?? 1,
      docString: opts.docString,
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  encode(opts: OnnxModelOptions = {}): Uint8Array {
    return onnx.ModelProto.encode(onnx.ModelProto.create(this.toModelProto(opts))).finish();
  }

  write(path: string, opts: OnnxModelOptions = {}): number {
    const bytes = this.encode(opts);
    writeFileSync(path, bytes);
    return bytes.length;
  }
}

/** Decodes a model file (handy for asserting what was written). */
export function readOnnxModel(path: string): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(readFileSync(path));
}

function seededArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng() * 2 - 1) * scale;
  return out;
}

/** Float32 dot-product accumulation, matching what a float32 kernel can reach within ~1e-6. */
function linear(x: Float32Array, w: Float32Array, b: Float32Array, inDim: number, outDim: number): Float32Array {
  const out = new Float32Array(outDim);
  for (let j = 0; j < outDim; j++) {
    let acc = 0;
    for (let i = 0; i < inDim; i++) acc += x[i] * w[i * outDim + j];
    out[j] = Math.fround(acc) + b[j];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Image classifier
// ---------------------------------------------------------------------------

export interface ImageClassifierOptions {
  /** Height and width in pixels; default 8. */
  size?: number;
  /** Colour channels; default 1. */
  channels?: number;
  /** Number of classes; default 3. */
  classes?: number;
  /** Symbolic batch dim `batch` (default true); false fixes the batch at 1. */
  dynamicBatch?: boolean;
  /**
   * Known weights: `matrix` is row-major [channels*size*size, classes] and
   * `bias` is [classes]. Default: seeded random in [-0.1, 0.1].
   */
  weights?: { matrix: Float32Array; bias: Float32Array };
  /** Seed for the default weights; default 7. */
  seed?: number;
  /** Class names, written to metadata_props `labels` as a JSON array; default `class_0`... */
  labels?: string[];
  /** Extra model options (producer, opsets, metadata, ...). */
  model?: OnnxModelOptions;
}

export interface ImageClassifierFixture {
  path: string;
  bytes: number;
  inputName: 'image';
  outputName: 'logits';
  /** Input dims with `1` for a static batch or `'batch'` for a dynamic one. */
  inputDims: OnnxDim[];
  size: number;
  channels: number;
  classes: number;
  labels: string[];
  matrix: Float32Array;
  bias: Float32Array;
  /** Expected logits, [batch*classes], for NCHW pixels [batch*C*H*W]. */
  reference(images: Float32Array): Float32Array;
}

/** Pure-JS logits for the image classifier: flatten, then `x·W + b` per image. */
export function imageClassifierReference(
  images: Float32Array,
  matrix: Float32Array,
  bias: Float32Array,
  classes: number,
): Float32Array {
  const inDim = matrix.length / classes;
  if (images.length % inDim !== 0) throw new Error(`image data (${images.length}) is not a multiple of ${inDim}`);
  const batch = images.length / inDim;
  const out = new Float32Array(batch * classes);
  for (let n = 0; n < batch; n++) {
    out.set(linear(images.subarray(n * inDim, (n + 1) * inDim), matrix, bias, inDim, classes), n * classes);
  }
  return out;
}

/** `image` float32 [N,C,H,W] → Flatten → MatMul → Add → `logits` [N,classes]. */
export function writeImageClassifierOnnx(path: string, opts: ImageClassifierOptions = {}): ImageClassifierFixture {
  const size = opts.size ?? 8;
  const channels = opts.channels ?? 1;
  const classes = opts.classes ?? 3;
  const inDim = channels * size * size;
  const seed = opts.seed ?? 7;
  const matrix = opts.weights?.matrix ?? seededArray(inDim * classes, seed, 0.1);
  const bias = opts.weights?.bias ?? seededArray(classes, seed + 1, 0.1);
  if (matrix.length !== inDim * classes || bias.length !== classes) throw new Error('weights do not match the shape');
  const labels = opts.labels ?? Array.from({ length: classes }, (_, i) => `class_${i}`);
  const batch: OnnxDim = opts.dynamicBatch === false ? 1 : 'batch';

  const g = new OnnxGraphBuilder('image_classifier');
  const inputDims: OnnxDim[] = [batch, channels, size, size];
  g.input('image', 'float32', inputDims);
  g.output('logits', 'float32', [batch, classes]);
  g.initializer('W', 'float32', [inDim, classes], matrix);
  g.initializer('B', 'float32', [classes], bias);
  g.node('Flatten', ['image'], ['flat'], { axis: { int: 1 } });
  g.node('MatMul', ['flat', 'W'], ['mm']);
  g.node('Add', ['mm', 'B'], ['logits']);
  const bytes = g.write(path, {
    ...opts.model,
    metadata: { labels: JSON.stringify(labels), ...opts.model?.metadata },
  });
  return {
    path,
    bytes,
    inputName: 'image',
    outputName: 'logits',
    inputDims,
    size,
    channels,
    classes,
    labels,
    matrix,
    bias,
    reference: (images) => imageClassifierReference(images, matrix, bias, classes),
  };
}

// ---------------------------------------------------------------------------
// Text classifier + tokenizer.json
// ---------------------------------------------------------------------------

/** BERT-style special tokens first, then a few words and WordPiece continuations. */
export const DEFAULT_TEXT_VOCAB: readonly string[] = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'the',
  'a',
  'this',
  'it',
  'is',
  'was',
  'i',
  'movie',
  'film',
  'hello',
  'world',
  'good',
  'great',
  'love',
  'bad',
  'terrible',
  'hate',
  'not',
  'very',
  'play',
  '##s',
  '##ing',
  '##ed',
  '.',
  ',',
  '!',
  '?',
];

export interface TextClassifierOptions {
  /** Embedding rows; default the length of {@link DEFAULT_TEXT_VOCAB} (32). */
  vocabSize?: number;
  /** Sequence length L; default 16. Fixed unless `dynamicSequence`. */
  maxLen?: number;
  /** Number of classes; default 2. */
  classes?: number;
  /** Symbolic batch dim `batch` (default true); false fixes N=1. */
  dynamicBatch?: boolean;
  /** Symbolic sequence dim `sequence` instead of `maxLen`; default false. */
  dynamicSequence?: boolean;
  /** Adds a `token_type_ids` int64 [N,L] input with a 2-row type embedding; default false. */
  tokenTypeIds?: boolean;
  /** Embedding width; default 8. */
  hiddenSize?: number;
  /** Seed for all weights; default 11. */
  seed?: number;
  /** Class names for metadata_props `labels`; default `['negative','positive']` for 2 classes, else `class_i`. */
  labels?: string[];
  model?: OnnxModelOptions;
}

export interface TextClassifierWeights {
  vocabSize: number;
  hiddenSize: number;
  classes: number;
  /** [vocabSize, hiddenSize] row-major. */
  embedding: Float32Array;
  /** [2, hiddenSize], present when `tokenTypeIds`. */
  typeEmbedding?: Float32Array;
  /** [hiddenSize, classes] row-major. */
  matrix: Float32Array;
  bias: Float32Array;
}

export interface TextClassifierFixture extends TextClassifierWeights {
  path: string;
  bytes: number;
  inputNames: string[];
  outputName: 'logits';
  maxLen: number;
  labels: string[];
  /** Expected logits [N*classes] for flattened [N*L] ids/mask (and type ids); `seqLen` defaults to `maxLen`. */
  reference(
    inputIds: ArrayLike<number | bigint>,
    attentionMask: ArrayLike<number | bigint>,
    tokenTypeIds?: ArrayLike<number | bigint>,
    seqLen?: number,
  ): Float32Array;
}

/** Pure-JS logits: embedding lookup (+type embedding), masked mean over L, then linear. */
export function textClassifierReference(
  w: TextClassifierWeights,
  seqLen: number,
  inputIds: ArrayLike<number | bigint>,
  attentionMask: ArrayLike<number | bigint>,
  tokenTypeIds?: ArrayLike<number | bigint>,
): Float32Array {
  const { hiddenSize: D, classes } = w;
  if (inputIds.length !== attentionMask.length || inputIds.length % seqLen !== 0) {
    throw new Error(`input_ids/attention_mask must both be [N, ${seqLen}]`);
  }
  const batch = inputIds.length / seqLen;
  const out = new Float32Array(batch * classes);
  for (let n = 0; n < batch; n++) {
    const sum = new Float32Array(D);
    let count = 0;
    for (let l = 0; l < seqLen; l++) {
      const idx = n * seqLen + l;
      const m = Number(attentionMask[idx]);
      count += m;
      const id = Number(inputIds[idx]);
      if (id < 0 || id >= w.vocabSize) throw new Error(`token id ${id} out of range`);
      for (let d = 0; d < D; d++) {
        let e = w.embedding[id * D + d];
        if (w.typeEmbedding && tokenTypeIds) e = Math.fround(e + w.typeEmbedding[Number(tokenTypeIds[idx]) * D + d]);
        sum[d] += Math.fround(e * m);
      }
    }
    const pooled = sum.map((s) => Math.fround(s / Math.max(count, 1)));
    out.set(linear(pooled, w.matrix, w.bias, D, classes), n * classes);
  }
  return out;
}

/**
 * `input_ids`, `attention_mask` (and optionally `token_type_ids`) int64 [N,L]
 * → Gather → masked mean → MatMul → Add → `logits` [N,classes].
 */
export function writeTextClassifierOnnx(path: string, opts: TextClassifierOptions = {}): TextClassifierFixture {
  const vocabSize = opts.vocabSize ?? DEFAULT_TEXT_VOCAB.length;
  const maxLen = opts.maxLen ?? 16;
  const classes = opts.classes ?? 2;
  const D = opts.hiddenSize ?? 8;
  const seed = opts.seed ?? 11;
  const labels = opts.labels ?? (classes === 2 ? ['negative', 'positive'] : Array.from({ length: classes }, (_, i) => `class_${i}`));
  const N: OnnxDim = opts.dynamicBatch === false ? 1 : 'batch';
  const L: OnnxDim = opts.dynamicSequence ? 'sequence' : maxLen;

  const weights: TextClassifierWeights = {
    vocabSize,
    hiddenSize: D,
    classes,
    embedding: seededArray(vocabSize * D, seed, 1),
    typeEmbedding: opts.tokenTypeIds ? seededArray(2 * D, seed + 1, 0.5) : undefined,
    matrix: seededArray(D * classes, seed + 2, 1),
    bias: seededArray(classes, seed + 3, 0.1),
  };

  const g = new OnnxGraphBuilder('text_classifier');
  const inputNames = ['input_ids', 'attention_mask'];
  g.input('input_ids', 'int64', [N, L]);
  g.input('attention_mask', 'int64', [N, L]);
  if (opts.tokenTypeIds) {
    g.input('token_type_ids', 'int64', [N, L]);
    inputNames.push('token_type_ids');
  }
  g.output('logits', 'float32', [N, classes]);
  g.initializer('embedding', 'float32', [vocabSize, D], weights.embedding);
  g.initializer('W', 'float32', [D, classes], weights.matrix);
  g.initializer('B', 'float32', [classes], weights.bias);
  g.initializer('axis_last', 'int64', [1], [2n]);
  g.initializer('axis_seq', 'int64', [1], [1n]);
  g.initializer('one', 'float32', [1], [1]);

  let emb = g.node('Gather', ['embedding', 'input_ids'], ['tok_emb'], { axis: { int: 0 } })[0];
  if (opts.tokenTypeIds) {
    g.initializer('type_embedding', 'float32', [2, D], weights.typeEmbedding!);
    g.node('Gather', ['type_embedding', 'token_type_ids'], ['type_emb'], { axis: { int: 0 } });
    emb = g.node('Add', [emb, 'type_emb'], ['emb'])[0];
  }
  g.node('Cast', ['attention_mask'], ['mask_f'], { to: { int: DATA_TYPE.float32 } });
  g.node('Unsqueeze', ['mask_f', 'axis_last'], ['mask_3d']);
  g.node('Mul', [emb, 'mask_3d'], ['masked']);
  g.node('ReduceSum', ['masked', 'axis_seq'], ['summed'], { keepdims: { int: 0 } });
  g.node('ReduceSum', ['mask_f', 'axis_seq'], ['count'], { keepdims: { int: 1 } });
  // Clamp so an all-padding row yields zeros rather than NaN.
  g.node('Max', ['count', 'one'], ['count_safe']);
  g.node('Div', ['summed', 'count_safe'], ['pooled']);
  g.node('MatMul', ['pooled', 'W'], ['mm']);
  g.node('Add', ['mm', 'B'], ['logits']);
  const bytes = g.write(path, {
    ...opts.model,
    metadata: { labels: JSON.stringify(labels), max_length: String(maxLen), ...opts.model?.metadata },
  });
  return {
    ...weights,
    path,
    bytes,
    inputNames,
    outputName: 'logits',
    maxLen,
    labels,
    reference: (ids, mask, types, seqLen = maxLen) => textClassifierReference(weights, seqLen, ids, mask, types),
  };
}

export interface TokenizerJsonOptions {
  /** Lower-case input (BertNormalizer); default true. */
  lowercase?: boolean;
  /** Also write a minimal `tokenizer_config.json` here; default none. */
  configPath?: string;
}

/**
 * A BERT-style WordPiece `tokenizer.json` (the Hugging Face `tokenizers`
 * format). Missing `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` are prepended, so ids
 * follow the returned vocab order.
 */
export function buildTokenizerJson(vocab: readonly string[] = DEFAULT_TEXT_VOCAB, opts: TokenizerJsonOptions = {}) {
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'];
  const full = [...specials.filter((s) => !vocab.includes(s)), ...vocab];
  const id = (t: string): number => full.indexOf(t);
  const special = (t: string): { SpecialToken: { id: string; type_id: number } } => ({ SpecialToken: { id: t, type_id: 0 } });
  const specialEntry = (t: string) => ({ id: t, ids: [id(t)], tokens: [t] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: full
      .map((content, i) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
      .filter((t) => /^\[[A-Z]+\]$/.test(t.content)),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: opts.lowercase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, special('[SEP]')],
      pair: [
        special('[CLS]'),
        { Sequence: { id: 'A', type_id: 0 } },
        special('[SEP]'),
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: { '[CLS]': specialEntry('[CLS]'), '[SEP]': specialEntry('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(full.map((t, i) => [t, i])),
    },
  };
}

/** The `tokenizer_config.json` companion @huggingface/tokenizers' constructor takes. */
export function buildTokenizerConfig(opts: TokenizerJsonOptions = {}) {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: opts.lowercase ?? true,
    model_max_length: 512,
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    mask_token: '[MASK]',
    clean_up_tokenization_spaces: true,
  };
}

/** Writes `tokenizer.json` (and optionally `tokenizer_config.json`); returns the JSON object. */
export function writeTokenizerJson(
  path: string,
  vocab: readonly string[] = DEFAULT_TEXT_VOCAB,
  opts: TokenizerJsonOptions = {},
): ReturnType<typeof buildTokenizerJson> {
  const json = buildTokenizerJson(vocab, opts);
  writeFileSync(path, JSON.stringify(json, null, 2));
  if (opts.configPath) writeFileSync(opts.configPath, JSON.stringify(buildTokenizerConfig(opts), null, 2));
  return json;
}

// ---------------------------------------------------------------------------
// String classifier (ai.onnx.ml)
// ---------------------------------------------------------------------------

export interface StringClassifierOptions {
  /** Class names; default `['negative', 'neutral', 'positive']`. */
  labels?: string[];
  /**
   * Known inputs and their class probabilities (length = labels). Any other
   * string gets a uniform distribution. Default: a few sentiment words.
   */
  table?: Record<string, number[]>;
  /** Symbolic batch dim `batch` (default true); false fixes N=1. */
  dynamicBatch?: boolean;
  model?: OnnxModelOptions;
}

export interface StringClassifierFixture {
  path: string;
  bytes: number;
  inputName: 'text';
  outputNames: ['label', 'probabilities'];
  labels: string[];
  table: Record<string, number[]>;
  reference(inputs: string[]): { label: string[]; probabilities: Float32Array };
}

const DEFAULT_STRING_TABLE: Record<string, number[]> = {
  good: [0.1, 0.2, 0.7],
  great: [0.05, 0.15, 0.8],
  bad: [0.7, 0.2, 0.1],
  terrible: [0.85, 0.1, 0.05],
  okay: [0.2, 0.6, 0.2],
};

export function stringClassifierReference(
  inputs: string[],
  labels: string[],
  table: Record<string, number[]>,
): { label: string[]; probabilities: Float32Array } {
  const k = labels.length;
  const probabilities = new Float32Array(inputs.length * k);
  const label = inputs.map((s, n) => {
    const row = Object.hasOwn(table, s) ? table[s] : new Array(k).fill(1 / k);
    probabilities.set(row, n * k);
    // ArgMax picks the first maximum on ties.
    let best = 0;
    for (let j = 1; j < k; j++) if (Math.fround(row[j]) > Math.fround(row[best])) best = j;
    return labels[best];
  });
  return { label, probabilities };
}

/**
 * `text` string [N] → LabelEncoder (string→row) → Gather (probability table)
 * → `probabilities` float [N,K]; ArgMax → LabelEncoder (row→name) → `label` string [N].
 * The same outputs a scikit-learn classifier exported with zipmap=False has.
 */
export function writeStringClassifierOnnx(path: string, opts: StringClassifierOptions = {}): StringClassifierFixture {
  const labels = opts.labels ?? ['negative', 'neutral', 'positive'];
  const table = opts.table ?? DEFAULT_STRING_TABLE;
  const k = labels.length;
  const keys = Object.keys(table);
  for (const key of keys) if (table[key].length !== k) throw new Error(`table[${key}] needs ${k} probabilities`);
  const N: OnnxDim = opts.dynamicBatch === false ? 1 : 'batch';

  // Last row is the uniform fallback for strings outside the table.
  const rows = new Float32Array((keys.length + 1) * k);
  keys.forEach((key, i) => rows.set(table[key], i * k));
  rows.fill(1 / k, keys.length * k);

  const g = new OnnxGraphBuilder('string_classifier');
  g.input('text', 'string', [N]);
  g.output('label', 'string', [N]);
  g.output('probabilities', 'float32', [N, k]);
  g.initializer('table', 'float32', [keys.length + 1, k], rows);
  g.node(
    'LabelEncoder',
    ['text'],
    ['row'],
    { keys_strings: { strings: keys }, values_int64s: { ints: keys.map((_, i) => i) }, default_int64: { int: keys.length } },
    'ai.onnx.ml',
  );
  g.node('Gather', ['table', 'row'], ['probabilities'], { axis: { int: 0 } });
  g.node('ArgMax', ['probabilities'], ['best'], { axis: { int: 1 }, keepdims: { int: 0 } });
  g.node(
    'LabelEncoder',
    ['best'],
    ['label'],
    { keys_int64s: { ints: labels.map((_, i) => i) }, values_strings: { strings: labels }, default_string: { string: '' } },
    'ai.onnx.ml',
  );
  const bytes = g.write(path, {
    ...opts.model,
    metadata: { labels: JSON.stringify(labels), ...opts.model?.metadata },
  });
  return {
    path,
    bytes,
    inputName: 'text',
    outputNames: ['label', 'probabilities'],
    labels,
    table,
    reference: (inputs) => stringClassifierReference(inputs, labels, table),
  };
}

// ---------------------------------------------------------------------------
// Corrupt files
// ---------------------------------------------------------------------------

/**
 * - `truncated`: a valid image classifier cut in half
 * - `garbage`: bytes that are not a protobuf ModelProto
 * - `empty`: zero bytes
 */
export type CorruptOnnxKind = 'truncated' | 'garbage' | 'empty';

/** Writes a broken ONNX file for error-path tests; default kind `'truncated'`. */
export function writeCorruptOnnx(path: string, kind: CorruptOnnxKind = 'truncated'): void {
  switch (kind) {
    case 'truncated': {
      const { bytes } = writeImageClassifierOnnx(path);
      truncateSync(path, Math.floor(bytes / 2));
      break;
    }
    case 'garbage':
      // 0xff starts an invalid varint tag, so every protobuf parser rejects it.
      writeFileSync(path, Buffer.concat([Buffer.alloc(16, 0xff), Buffer.from('this is not an onnx model\n')]));
      break;
    case 'empty':
      writeFileSync(path, Buffer.alloc(0));
      break;
  }
}
