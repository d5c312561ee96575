import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { ApiError } from '../../errors.ts';
import { readOnnxHeader } from '../../registry/headers/onnx-header.ts';
import type {
  Capability, ClassificationInput, ClassificationItem, ClassificationResult, ClassifyOptions, LoadedModel, LoadSpec, RankResult,
} from '../engine.ts';
import { MetadataError, parseClassifierMetadata } from './classifier-metadata.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import { imageSettings, imageToRow, type ImageSettings } from './image-input.ts';
import { resolveLabels } from './labels.ts';
import {
  batchDim, inferTask, planInputs, planOutput, UnmappableModelError,
  type BatchDim, type InputPlan, type OutputPlan, type TensorMeta,
} from './model-io.ts';
import { cudaInstalled, type Ort } from './ort.ts';
import { activate, labelOf, toItem } from './scores.ts';
import { checkRawText, DEFAULT_MAX_CHARS, TextEncoder, type Encoded } from './text-input.ts';

type Row = Float32Array | Uint8Array | Encoded | string;
/** A row's class scores after the output's activation, and its raw output for reranking. */
type RowOutput = { scores: number[]; raw: number[] } | { label: string };

/** Load parameters of the onnx engine after precedence and validation. */
export interface OnnxLoadParams {
  intra_op_threads: number;
  inter_op_threads: number;
  graph_optimization: 'disabled' | 'basic' | 'extended' | 'all';
  max_batch_size: number;
  max_batch_delay_ms: number;
  batch_invariant: boolean;
  execution_provider: 'auto' | 'cpu' | 'cuda';
}

function toMeta(m: InferenceSession.ValueMetadata): TensorMeta {
  return m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name, type: 'non-tensor', shape: [] };
}

interface Mapping {
  input: InputPlan;
  output: OutputPlan;
  image?: ImageSettings;
  text?: TextEncoder;
  maxChars: number;
}

/**
 * An ONNX classifier: one onnxruntime session, the input mapping worked out from its
 * inputs and `metadata.preprocess`, and a dynamic batcher in front of `session.run`.
 */
export class OnnxClassifier implements LoadedModel {
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(['classification', 'rerank']);
  readonly concurrency: number;
  readonly #ort: Ort;
  readonly #session: InferenceSession;
  readonly #spec: LoadSpec;
  readonly #params: OnnxLoadParams;
  readonly #provider: 'cpu' | 'cuda';
  readonly #mapping: Mapping | undefined;
  readonly #unmappable: string | undefined;
  readonly #labels: string[] | undefined;
  readonly #labelSource: string;
  readonly #batch: BatchDim;
  readonly #batcher: DynamicBatcher<Row, RowOutput>;
  /** Lone rows run as a batch of two, so that batched and unbatched rows round alike. */
  readonly #padLoneRows: boolean;
  /** `metadata.output.activation` as the model object sets it, if it does (rank's defaults differ from classify's). */
  readonly #relevanceActivation: OutputPlan['activation'] | undefined;
  #disposed: Promise<void> | undefined;

  private constructor(init: {
    ort: Ort; session: InferenceSession; spec: LoadSpec; params: OnnxLoadParams; provider: 'cpu' | 'cuda';
    mapping?: Mapping; unmappable?: string; labels?: string[]; labelSource: string; activation?: OutputPlan['activation'];
  }) {
    this.#relevanceActivation = init.activation;
    this.#ort = init.ort;
    this.#session = init.session;
    this.#spec = init.spec;
    this.#params = init.params;
    this.#provider = init.provider;
    this.#mapping = init.mapping;
    this.#unmappable = init.unmappable;
    this.#labels = init.labels;
    this.#labelSource = init.labelSource;
    this.#batch = batchDim(this.#session.inputMetadata.map(toMeta));
    // A fixed batch dimension takes exactly that many rows per run (1 for most exported models).
    const rowsPerRun = this.#batch.dynamic ? init.params.max_batch_size : this.#batch.size;
    this.concurrency = this.#batch.dynamic ? init.params.max_batch_size : 1;
    // With max_batch_size 1 every row runs alone, so there is nothing to stay invariant to.
    this.#padLoneRows = this.#batch.dynamic && init.params.batch_invariant && rowsPerRun > 1;
    this.#batcher = new DynamicBatcher<Row, RowOutput>({
      maxRows: rowsPerRun,
      delayMs: this.#batch.dynamic && rowsPerRun > 1 ? init.params.max_batch_delay_ms : 0,
      run: (rows) => this.#run(rows),
      onBatch: init.spec.onBatch,
    });
  }

  /** Creates the session and works out the input mapping; honours `signal` during the load. */
  static async load(ort: Ort, spec: LoadSpec, params: OnnxLoadParams, signal: AbortSignal): Promise<OnnxClassifier> {
    const file = spec.files[0];
    if (!file) throw new Error(`model '${spec.id}' has no .onnx file`);
    const { preprocess, output } = parseClassifierMetadata(spec.metadata);
    const cuda = cudaInstalled();
    if (params.execution_provider === 'cuda' && !cuda) {
      throw new Error(`'execution_provider' is cuda but onnxruntime-node's CUDA binaries are not installed (npm install onnxruntime-node --onnxruntime-node-install=cuda12)`);
    }
    const provider = params.execution_provider === 'cpu' || !cuda ? 'cpu' : 'cuda';
    const header = spec.header?.format === 'onnx' ? spec.header : await readOnnxHeader(file);
    const props = header.metadata_props as Record<string, string> | undefined;
    const propsMax = Number(props?.max_length);
    const labelInfo = await resolveLabels(spec.metadata.classes, spec.folder, props);
    signal.throwIfAborted();
    const session = await ort.InferenceSession.create(file, {
      executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      intraOpNumThreads: params.intra_op_threads,
      interOpNumThreads: params.inter_op_threads,
      executionMode: params.inter_op_threads > 1 ? 'parallel' : 'sequential',
      graphOptimizationLevel: params.graph_optimization,
      // Between runs the intra-op threads would spin for work, burning the cores that decode
      // the next requests' images and run the event loop: measured on 2 cores with 2 threads,
      // 3 ms of CPU per run at concurrency 1, and runs themselves got slower, not faster.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    try {
      signal.throwIfAborted();
      let mapping: Mapping | undefined;
      let unmappable: string | undefined;
      try {
        const input = planInputs(session.inputMetadata.map(toMeta), preprocess);
        const out = planOutput(session.outputMetadata.map(toMeta), output);
        const labels = labelInfo.labels;
        if (out.classes !== undefined && labels && labels.length !== out.classes) {
          // The model folder is wrong, not the server: a 422 naming where the labels came from.
          throw new MetadataError(`${labelInfo.source} has ${labels.length} labels but output '${out.name}' has ${out.classes} classes`, labelInfo.source);
        }
        mapping = {
          input,
          output: out,
          maxChars: preprocess.max_chars ?? DEFAULT_MAX_CHARS,
          ...(input.kind === 'image' ? { image: imageSettings(input, preprocess) } : {}),
          ...(input.kind === 'token-ids'
            ? { text: await TextEncoder.load(spec.folder, preprocess, input.seqLen, Number.isInteger(propsMax) && propsMax > 0 ? propsMax : undefined) }
            : {}),
        };
      } catch (err) {
        if (!(err instanceof UnmappableModelError)) throw err;
        unmappable = err.message;
      }
      signal.throwIfAborted();
      return new OnnxClassifier({ ort, session, spec, params, provider, mapping, unmappable, labels: labelInfo.labels, labelSource: labelInfo.source, activation: output.activation });
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
  }

  get info(): Record<string, unknown> {
    const m = this.#mapping;
    return {
      task: m ? (m.input.kind === 'image' ? 'image-classification' : 'text-classification') : inferTask(this.#session.inputMetadata.map(toMeta)),
      ...(this.#unmappable ? { unsupported: this.#unmappable } : {}),
      input: m?.input.kind,
      inputs: this.#session.inputMetadata.map(toMeta),
      output: m ? { name: m.output.name, kind: m.output.kind, activation: m.output.activation, classes: m.output.classes ?? this.#labels?.length } : undefined,
      labels_from: this.#labelSource,
      batch: this.#batch.dynamic ? 'dynamic' : this.#batch.size,
      rows_per_run: this.#batch.dynamic ? this.#params.max_batch_size : this.#batch.size,
      batch_invariant: this.#padLoneRows,
      execution_provider: this.#provider,
      ...(m?.image ? { preprocess: m.image } : {}),
      ...(m?.text ? { preprocess: m.text.settings } : {}),
      runs: this.#batcher.runs,
      rows: this.#batcher.rows,
      delayed_runs: this.#batcher.delayed,
    };
  }

  async classify(inputs: ClassificationInput[], options: ClassifyOptions, signal: AbortSignal): Promise<ClassificationResult> {
    if (this.#disposed) throw new ApiError('model_stopped', `the model '${this.#spec.id}' was stopped`);
    const m = this.#mapping;
    if (!m) {
      throw new ApiError('unsupported_model_inputs', `the model '${this.#spec.id}' cannot be fed by modeld: ${this.#unmappable}`, { param: 'model' });
    }
    const wants = m.input.kind === 'image' ? 'image' : 'text';
    const multi = inputs.length > 1;
    const paramOf = (i: number) => (multi ? `input[${i}]` : 'input') + (wants === 'image' ? '.image' : '');
    inputs.forEach((item, i) => {
      if (item.type !== wants) {
        const p = multi ? `input[${i}]` : 'input';
        throw new ApiError(
          'wrong_input_kind',
          wants === 'image'
            ? `'${p}' is text, but the model '${this.#spec.id}' classifies images; send {"image": "<base64 or data URL>"}`
            : `'${p}' is an image, but the model '${this.#spec.id}' classifies text; send a string`,
          { param: p },
        );
      }
    });
    let rows: Row[];
    let tokens: number | undefined;
    if (m.image) {
      const s = m.image;
      rows = await Promise.all(inputs.map((item, i) => imageToRow((item as { image: string }).image, paramOf(i), s)));
    } else if (m.text) {
      const enc = m.text;
      const encoded = inputs.map((item, i) => enc.encode((item as { text: string }).text, paramOf(i)));
      tokens = encoded.reduce((a, e) => a + e.ids.length, 0);
      rows = encoded;
    } else {
      rows = inputs.map((item, i) => checkRawText((item as { text: string }).text, paramOf(i), m.maxChars));
    }
    signal.throwIfAborted();
    const outputs = await this.#batcher.add(rows, signal);
    const data: ClassificationItem[] = outputs.map((o, index) => {
      if ('scores' in o) return toItem(index, o.scores, this.#labels, options);
      const item: ClassificationItem = { index, label: o.label, score: 1 };
      if (options.topK !== undefined || options.scores) item.scores = [{ label: o.label, score: 1 }];
      return item;
    });
    return { data, usage: { items: inputs.length, ...(tokens !== undefined ? { prompt_tokens: tokens, total_tokens: tokens } : {}) } };
  }

  /**
   * Relevance of each document to the query, for a text classifier that reads sentence pairs
   * (a cross-encoder): one output column is a logit, its sigmoid the relevance (the 0–1
   * mapping bge-reranker's model card and sentence-transformers give); two columns are (irrelevant, relevant),
   * the second's softmax probability. `metadata.output.activation`, when set, replaces either
   * default (`none` gives the raw logit, as llama-server's /rerank does).
   */
  async rank(query: string, documents: string[], signal: AbortSignal): Promise<RankResult> {
    if (this.#disposed) throw new ApiError('model_stopped', `the model '${this.#spec.id}' was stopped`);
    const m = this.#mapping;
    const classes = m?.output.kind === 'scores' ? (m.output.classes ?? 1) : undefined;
    if (!m?.text || classes === undefined || classes > 2) {
      const what = !m ? `cannot be fed by modeld (${this.#unmappable})` : !m.text ? `does not read token ids (${m.input.kind} input)` : classes === undefined ? 'answers labels, not scores' : `scores ${classes} classes`;
      throw new ApiError('model_not_capable', `the model '${this.#spec.id}' is not a reranker: it ${what}; a cross-encoder takes input_ids (a query and a document as a pair) and scores one or two classes`, { param: 'model' });
    }
    const enc = m.text;
    const rows = documents.map((d, i) => enc.encodePair(query, d, `documents[${i}]`));
    signal.throwIfAborted();
    const outputs = await this.#batcher.add(rows, signal);
    const scores = outputs.map((o) => {
      const raw = (o as { raw: number[] }).raw;
      // An output whose class count the shape leaves open shows it only now.
      if (raw.length > 2) throw new ApiError('model_not_capable', `the model '${this.#spec.id}' is not a reranker: it scores ${raw.length} classes; a cross-encoder scores one or two`, { param: 'model' });
      return raw.length === 1 ? activate(raw, this.#relevanceActivation ?? 'sigmoid')[0]! : activate(raw, this.#relevanceActivation ?? 'softmax')[1]!;
    });
    return { scores, usage: { prompt_tokens: rows.reduce((a, r) => a + r.ids.length, 0) } };
  }

  /** Builds the feeds of one batch, runs the session once and splits the output by row. */
  async #run(rows: Row[]): Promise<RowOutput[]> {
    const m = this.#mapping!;
    const n = this.#batch.dynamic ? Math.max(rows.length, this.#padLoneRows ? 2 : 1) : this.#batch.size;
    // A fixed batch larger than the rows at hand, or a lone row kept off onnxruntime's
    // batch-of-1 kernel paths, is filled with copies of the last row.
    const padded = rows.length === n ? rows : [...rows, ...new Array<Row>(n - rows.length).fill(rows[rows.length - 1]!)];
    const feeds = this.#feeds(m, padded);
    let result: InferenceSession.ReturnType;
    try {
      result = await this.#session.run(feeds, [m.output.name]);
    } catch (err) {
      throw new ApiError('inference_failed', `onnxruntime failed to run the model '${this.#spec.id}': ${(err as Error).message}`, { cause: err });
    }
    const out = result[m.output.name] as OrtTensor;
    const values = out.data as ArrayLike<number | bigint | string>;
    const outputs: RowOutput[] = [];
    if (m.output.kind === 'label') {
      for (let i = 0; i < rows.length; i++) {
        const v = values[i]!;
        outputs.push({ label: typeof v === 'string' ? v : labelOf(this.#labels, Number(v)) });
      }
      return outputs;
    }
    const classes = out.dims[1] ?? 1;
    for (let i = 0; i < rows.length; i++) {
      const row = Array.from({ length: classes }, (_, j) => Number(values[i * classes + j]));
      outputs.push({ scores: activate(row, m.output.activation), raw: row });
    }
    return outputs;
  }

  #feeds(m: Mapping, rows: Row[]): Record<string, OrtTensor> {
    const { Tensor } = this.#ort;
    const n = rows.length;
    const plan = m.input;
    if (plan.kind === 'image') {
      const s = m.image!;
      const size = s.channels * s.width * s.height;
      const data = s.dtype === 'float32' ? new Float32Array(n * size) : new Uint8Array(n * size);
      rows.forEach((r, i) => data.set(r as Float32Array | Uint8Array, i * size));
      const dims =
        plan.input.shape.length === 3 ? [n, s.height, s.width]
        : s.layout === 'NCHW' ? [n, s.channels, s.height, s.width]
        : [n, s.height, s.width, s.channels];
      return { [plan.input.name]: new Tensor(s.dtype, data, dims) };
    }
    if (plan.kind === 'string') {
      return { [plan.input.name]: new Tensor('string', rows as string[], plan.rank === 1 ? [n] : [n, 1]) };
    }
    const text = m.text!.settings;
    const encoded = rows as Encoded[];
    const len = text.padding === 'max_length' ? text.max_length : Math.max(...encoded.map((e) => e.ids.length));
    const make = (t: TensorMeta, value: (e: Encoded, j: number) => number) => {
      const data = t.type === 'int64' ? new BigInt64Array(n * len) : new Int32Array(n * len);
      encoded.forEach((e, i) => {
        for (let j = 0; j < len; j++) {
          const v = value(e, j);
          if (data instanceof BigInt64Array) data[i * len + j] = BigInt(v);
          else data[i * len + j] = v;
        }
      });
      return new Tensor(t.type as 'int64' | 'int32', data, [n, len]);
    };
    const feeds: Record<string, OrtTensor> = {
      [plan.ids.name]: make(plan.ids, (e, j) => (j < e.ids.length ? e.ids[j]! : text.pad_id)),
    };
    if (plan.mask) feeds[plan.mask.name] = make(plan.mask, (e, j) => (j < e.ids.length ? 1 : 0));
    if (plan.typeIds) feeds[plan.typeIds.name] = make(plan.typeIds, (e, j) => (j < e.typeIds.length ? e.typeIds[j]! : 0));
    return feeds;
  }

  /** Rejects waiting rows, waits for the running batch, then releases the session. Idempotent. */
  dispose(): Promise<void> {
    this.#disposed ??= (async () => {
      await this.#batcher.close(new ApiError('model_stopped', `the model '${this.#spec.id}' was stopped`));
      await this.#session.release();
    })();
    return this.#disposed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
