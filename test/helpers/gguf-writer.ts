/**
 * GGUF v3 writer for test fixtures.
 *
 * The suite generates its own models so that a fresh clone can exercise the
 * real llama.cpp engine (through node-llama-cpp) without downloading anything.
 * Tensor shapes follow GGUF/ggml order: `shape[0]` is the fastest-varying
 * dimension (the row length), so a llama `token_embd.weight` is
 * `[n_embd, n_vocab]` and its data is `n_vocab` rows of `n_embd` floats.
 */
import { closeSync, openSync, readSync, truncateSync, writeSync } from 'node:fs';

// ---------------------------------------------------------------------------
// Metadata values
// ---------------------------------------------------------------------------

/** Scalar GGUF metadata value types (names follow the GGUF spec). */
export type GgufScalarType =
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'float32'
  | 'bool'
  | 'string'
  | 'uint64'
  | 'int64'
  | 'float64';

export type GgufScalar = number | bigint | boolean | string;

/** A typed GGUF metadata value; the type is explicit because GGUF readers are strict about it. */
export type GgufValue =
  | { type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64'; value: number }
  | { type: 'uint64' | 'int64'; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarType; value: ReadonlyArray<GgufScalar> };

export type GgufMetadata = Array<[key: string, value: GgufValue]>;

const VALUE_TYPE_ID: Record<GgufScalarType | 'array', number> = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
};
const VALUE_TYPE_NAME = Object.fromEntries(Object.entries(VALUE_TYPE_ID).map(([k, v]) => [v, k])) as Record<
  number,
  GgufScalarType | 'array'
>;

/** Constructors for typed metadata values, e.g. `gv.u32(256)`, `gv.arr('string', tokens)`. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'uint8', value }),
  i8: (value: number): GgufValue => ({ type: 'int8', value }),
  u16: (value: number): GgufValue => ({ type: 'uint16', value }),
  i16: (value: number): GgufValue => ({ type: 'int16', value }),
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  u64: (value: bigint | number): GgufValue => ({ type: 'uint64', value }),
  i64: (value: bigint | number): GgufValue => ({ type: 'int64', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  f64: (value: number): GgufValue => ({ type: 'float64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  arr: (itemType: GgufScalarType, value: ReadonlyArray<GgufScalar>): GgufValue => ({ type: 'array', itemType, value }),
};

// ---------------------------------------------------------------------------
// Tensor types
// ---------------------------------------------------------------------------

/** Tensor storage types this writer can produce. */
export type GgufTensorType = 'F32' | 'F16' | 'Q8_0';

/** ggml_type ids from ggml.h. */
export const GGML_TYPE_ID: Record<GgufTensorType, number> = { F32: 0, F16: 1, Q8_0: 8 };

/** llama_ftype ids (`general.file_type`) from llama.h. */
export const LLAMA_FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, Q8_0: 7 };

const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

export interface GgufTensor {
  name: string;
  /** ggml order: shape[0] is the row length (fastest-varying). */
  shape: number[];
  type: GgufTensorType;
  /**
   * Values in row-major ggml order. A function is called once, at write time,
   * and may yield the values in chunks so huge tensors never sit in memory at
   * once; for Q8_0 each chunk's length must be a multiple of 32.
   */
  data: Float32Array | (() => Iterable<Float32Array>);
}

export interface WriteGgufOptions {
  metadata: GgufMetadata;
  tensors: GgufTensor[];
  /**
   * Data alignment in bytes (default 32, or `general.alignment` when present in
   * metadata). A non-default value is also written as `general.alignment`.
   */
  alignment?: number;
}

export interface WrittenGguf {
  path: string;
  /** Total file size in bytes. */
  bytes: number;
  tensorCount: number;
  /** Sum of tensor element counts. */
  parameterCount: number;
}

export function tensorByteSize(type: GgufTensorType, elements: number): number {
  switch (type) {
    case 'F32':
      return elements * 4;
    case 'F16':
      return elements * 2;
    case 'Q8_0':
      if (elements % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} elements, got ${elements}`);
      return (elements / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

// Shared scratch so conversion does not allocate per value.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE-754 binary16 bits for a float, round-to-nearest-even (Node 20 has no Float16Array). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Quantise to ggml's block_q8_0 layout: per 32 values, an f16 scale then 32 int8. */
export function quantizeQ8_0(values: Float32Array): Buffer {
  const blocks = tensorByteSize('Q8_0', values.length) / Q8_0_BLOCK_BYTES;
  const out = Buffer.allocUnsafe(blocks * Q8_0_BLOCK_BYTES);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const a = Math.abs(values[base + j]);
      if (a > amax) amax = a;
    }
    // Mirrors quantize_row_q8_0_ref: the f32 scale quantises, its f16 is stored.
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    out.writeUInt16LE(float32ToFloat16Bits(d), o);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = values[base + j] * id;
      // roundf rounds half away from zero; Math.round would bias negatives.
      out.writeInt8(x < 0 ? -Math.round(-x) : Math.round(x), o + 2 + j);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blocks = buf.length / Q8_0_BLOCK_BYTES;
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = float16BitsToFloat32(buf.readUInt16LE(o));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * buf.readInt8(o + 2 + j);
  }
  return out;
}

function encodeTensorChunk(type: GgufTensorType, values: Float32Array): Buffer {
  switch (type) {
    case 'F32':
      // A view suffices: writes are synchronous, so the caller may reuse its chunk afterwards.
      return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    case 'F16': {
      const out = Buffer.allocUnsafe(values.length * 2);
      for (let i = 0; i < values.length; i++) out.writeUInt16LE(float32ToFloat16Bits(values[i]), i * 2);
      return out;
    }
    case 'Q8_0':
      return quantizeQ8_0(values);
  }
}

// ---------------------------------------------------------------------------
// Header serialisation
// ---------------------------------------------------------------------------

class ByteSink {
  buf = Buffer.allocUnsafe(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.len);
    this.len += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: bigint | number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  i64(v: bigint | number): void {
    this.ensure(8);
    this.buf.writeBigInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.len);
    this.len += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.len);
    this.len += bytes.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function writeScalar(sink: ByteSink, type: GgufScalarType, v: GgufScalar, key: string): void {
  const num = (): number => {
    if (typeof v !== 'number') throw new TypeError(`${key}: expected a number for ${type}, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case 'uint8':
      return sink.u8(num());
    case 'int8':
      return sink.i8(num());
    case 'uint16':
      return sink.u16(num());
    case 'int16':
      return sink.i16(num());
    case 'uint32':
      return sink.u32(num());
    case 'int32':
      return sink.i32(num());
    case 'float32':
      return sink.f32(num());
    case 'float64':
      return sink.f64(num());
    case 'uint64':
    case 'int64':
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new TypeError(`${key}: expected an integer for ${type}`);
      return type === 'uint64' ? sink.u64(v) : sink.i64(v);
    case 'bool':
      if (typeof v !== 'boolean') throw new TypeError(`${key}: expected a boolean`);
      return sink.u8(v ? 1 : 0);
    case 'string':
      if (typeof v !== 'string') throw new TypeError(`${key}: expected a string`);
      return sink.str(v);
  }
}

function writeValue(sink: ByteSink, key: string, value: GgufValue): void {
  sink.u32(VALUE_TYPE_ID[value.type]);
  if (value.type === 'array') {
    sink.u32(VALUE_TYPE_ID[value.itemType]);
    sink.u64(value.value.length);
    for (const item of value.value) writeScalar(sink, value.itemType, item, key);
  } else {
    writeScalar(sink, value.type, value.value, key);
  }
}

const elementCount = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Writes a GGUF v3 file. Tensor data is streamed one tensor (or chunk) at a
 * time, so only the header is held in memory.
 */
export function writeGguf(path: string, options: WriteGgufOptions): WrittenGguf {
  const metadata = [...options.metadata];
  const declared = metadata.find(([k]) => k === 'general.alignment')?.[1];
  const alignment = options.alignment ?? (declared ? Number(declared.value) : 32);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    throw new Error(`alignment must be a positive multiple of 8, got ${alignment}`);
  }
  if (declared && Number(declared.value) !== alignment) {
    throw new Error(`general.alignment (${declared.value}) disagrees with options.alignment (${alignment})`);
  }
  if (!declared && alignment !== 32) metadata.push(['general.alignment', gv.u32(alignment)]);

  const seen = new Set<string>();
  for (const [key] of metadata) {
    if (seen.has(key)) throw new Error(`duplicate metadata key ${key}`);
    seen.add(key);
  }

  const sink = new ByteSink();
  sink.u32(0x46554747); // "GGUF" read as little-endian u32
  sink.u32(3);
  sink.u64(options.tensors.length);
  sink.u64(metadata.length);
  for (const [key, value] of metadata) {
    sink.str(key);
    writeValue(sink, key, value);
  }

  let offset = 0;
  const layout = options.tensors.map((t) => {
    if (t.shape.length < 1 || t.shape.length > 4) throw new Error(`${t.name}: ggml tensors have 1-4 dims`);
    if (t.type === 'Q8_0' && t.shape[0] % Q8_0_BLOCK !== 0) {
      throw new Error(`${t.name}: Q8_0 rows must be a multiple of ${Q8_0_BLOCK} (shape[0]=${t.shape[0]})`);
    }
    const elements = elementCount(t.shape);
    const size = tensorByteSize(t.type, elements);
    const entry = { tensor: t, elements, size, offset };
    offset += size + ((alignment - (size % alignment)) % alignment);
    return entry;
  });
  for (const { tensor, offset: tensorOffset } of layout) {
    sink.str(tensor.name);
    sink.u32(tensor.shape.length);
    for (const d of tensor.shape) sink.u64(d);
    sink.u32(GGML_TYPE_ID[tensor.type]);
    sink.u64(tensorOffset);
  }
  sink.pad(alignment);

  const fd = openSync(path, 'w');
  let bytes = 0;
  const put = (b: Uint8Array): void => {
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    bytes += b.length;
  };
  try {
    put(sink.bytes());
    for (const { tensor, elements, size } of layout) {
      let written = 0;
      let count = 0;
      const chunks = typeof tensor.data === 'function' ? tensor.data() : [tensor.data];
      for (const chunk of chunks) {
        count += chunk.length;
        if (count > elements) break;
        const encoded = encodeTensorChunk(tensor.type, chunk);
        put(encoded);
        written += encoded.length;
      }
      if (count !== elements || written !== size) {
        throw new Error(`${tensor.name}: expected ${elements} values for shape [${tensor.shape}], got ${count}`);
      }
      const padding = (alignment - (size % alignment)) % alignment;
      if (padding) put(Buffer.alloc(padding));
    }
  } finally {
    closeSync(fd);
  }
  const parameterCount = layout.reduce((a, l) => a + l.elements, 0);
  return { path, bytes, tensorCount: layout.length, parameterCount };
}

// ---------------------------------------------------------------------------
// Metadata reader (typed), used to borrow tokenizers from other GGUFs
// ---------------------------------------------------------------------------

class FileReader {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private filePos = 0;
  constructor(private readonly fd: number) {}
  private need(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    const rest = this.buf.subarray(this.pos);
    const next = Buffer.allocUnsafe(Math.max(n, 1 << 20));
    rest.copy(next);
    let have = rest.length;
    while (have < n) {
      const r = readSync(this.fd, next, have, next.length - have, this.filePos);
      if (r === 0) throw new Error('unexpected end of GGUF file');
      have += r;
      this.filePos += r;
    }
    this.buf = next.subarray(0, have);
    this.pos = 0;
  }
  take(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

function readScalar(r: FileReader, type: GgufScalarType): GgufScalar {
  switch (type) {
    case 'uint8':
      return r.take(1).readUInt8(0);
    case 'int8':
      return r.take(1).readInt8(0);
    case 'uint16':
      return r.take(2).readUInt16LE(0);
    case 'int16':
      return r.take(2).readInt16LE(0);
    case 'uint32':
      return r.take(4).readUInt32LE(0);
    case 'int32':
      return r.take(4).readInt32LE(0);
    case 'float32':
      return r.take(4).readFloatLE(0);
    case 'float64':
      return r.take(8).readDoubleLE(0);
    case 'uint64':
      return r.take(8).readBigUInt64LE(0);
    case 'int64':
      return r.take(8).readBigInt64LE(0);
    case 'bool':
      return r.take(1).readUInt8(0) !== 0;
    case 'string': {
      const len = Number(r.take(8).readBigUInt64LE(0));
      return r.take(len).toString('utf8');
    }
  }
}

function typeName(id: number): GgufScalarType | 'array' {
  const name = VALUE_TYPE_NAME[id];
  if (!name) throw new Error(`unknown GGUF value type ${id}`);
  return name;
}

/** Reads the metadata key/values of a GGUF file with their exact types (tensor infos are skipped). */
export function readGgufMetadata(path: string): GgufMetadata {
  const fd = openSync(path, 'r');
  try {
    const r = new FileReader(fd);
    if (r.take(4).toString('latin1') !== 'GGUF') throw new Error(`${path}: not a GGUF file`);
    const version = r.take(4).readUInt32LE(0);
    if (version !== 2 && version !== 3) throw new Error(`${path}: unsupported GGUF version ${version}`);
    r.take(8); // tensor count
    const kvCount = Number(r.take(8).readBigUInt64LE(0));
    const out: GgufMetadata = [];
    for (let i = 0; i < kvCount; i++) {
      const key = readScalar(r, 'string') as string;
      const type = typeName(r.take(4).readUInt32LE(0));
      if (type === 'array') {
        const itemType = typeName(r.take(4).readUInt32LE(0));
        if (itemType === 'array') throw new Error(`${key}: nested arrays are not supported`);
        const n = Number(r.take(8).readBigUInt64LE(0));
        const items: GgufScalar[] = new Array(n);
        for (let j = 0; j < n; j++) items[j] = readScalar(r, itemType);
        out.push([key, { type: 'array', itemType, value: items }]);
      } else {
        out.push([key, { type, value: readScalar(r, type) } as GgufValue]);
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/** mulberry32: tiny, fast, deterministic; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives independent stream seeds so each tensor is reproducible on its own. */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------
// Tiny SPM vocabulary
// ---------------------------------------------------------------------------

/** llama_token_type values. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** A ChatML jinja template (the Qwen/SmolLM style). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * Qwen2.5's jinja template, shortened (its default system text): ChatML that renders `tools`,
 * `tool_calls` as `<tool_call>` JSON and `tool` answers as `<tool_response>`.
 */
export const QWEN_TOOLS_TEMPLATE = `{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}`;

const WORDS = (
  'hello world the a an and or of to in on at for with from by is are was were be been it this that ' +
  'i you he she we they my your his her our their me him us them what which who when where why how ' +
  'not no yes do does did have has had can could will would should may might must say said tell told ' +
  'go went come came see saw look make made take took give gave get got know think want like love ' +
  'time day night year way man woman child boy girl people thing place home house water fire tree sun ' +
  'good bad big small little old new long short happy sad red blue green one two three four five ' +
  'once upon there lived cat dog bird fish ball park friend mom dad play played run ran jump help ' +
  'very so too just then now here all some many more most other only also back after before up down ' +
  'out over under again story model test assistant user system answer question please thank thanks'
).split(' ');

const SPIECE = '\u2581';

export interface TinyVocab {
  tokens: string[];
  scores: number[];
  tokenTypes: number[];
}

/**
 * Builds a small SentencePiece (`llama`) vocabulary llama.cpp accepts: `<unk>`,
 * `<s>`, `</s>` at ids 0-2, all 256 `<0xNN>` byte tokens (llama.cpp looks up
 * `<0x0A>` for the newline token and falls back to bytes for unknown text),
 * ChatML control tokens, printable ASCII characters, then `▁word` pieces.
 */
export function buildTinyVocab(): TinyVocab {
  const tokens: string[] = [];
  const types: number[] = [];
  const seen = new Set<string>();
  const add = (t: string, type: number): void => {
    if (seen.has(t)) return;
    seen.add(t);
    tokens.push(t);
    types.push(type);
  };
  add('<unk>', TOKEN_TYPE.UNKNOWN);
  add('<s>', TOKEN_TYPE.CONTROL);
  add('</s>', TOKEN_TYPE.CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TOKEN_TYPE.BYTE);
  add('<|im_start|>', TOKEN_TYPE.CONTROL);
  add('<|im_end|>', TOKEN_TYPE.CONTROL);
  add(SPIECE, TOKEN_TYPE.NORMAL);
  for (let c = 0x21; c < 0x7f; c++) add(String.fromCharCode(c), TOKEN_TYPE.NORMAL);
  // SPM only merges adjacent pieces whose concatenation is itself a token, so
  // every prefix of "▁word" must exist for the whole word to become one token.
  const capitalised = WORDS.map((w) => w[0].toUpperCase() + w.slice(1));
  for (const word of [...WORDS, ...capitalised]) {
    const piece = SPIECE + word;
    for (let n = 2; n <= piece.length; n++) add(piece.slice(0, n), TOKEN_TYPE.NORMAL);
  }
  // SentencePiece scores are log-probabilities; rank order is all llama.cpp uses.
  const scores = tokens.map((_, i) => (types[i] === TOKEN_TYPE.NORMAL ? -i : 0));
  return { tokens, scores, tokenTypes: types };
}

// ---------------------------------------------------------------------------
// Tiny llama preset
// ---------------------------------------------------------------------------

/** Named llama shapes for benchmarks; explicit options override them. */
export const LLAMA_SHAPES = {
  tiny: {
    embeddingLength: 64,
    layers: 2,
    headCount: 4,
    headCountKv: 4,
    feedForwardLength: 128,
    contextLength: 256,
    ropeFreqBase: 10000,
    rmsEpsilon: 1e-5,
    tieEmbeddings: false,
  },
  /** SmolLM-135M: pair with a 49152-token vocab (e.g. llama.cpp's ggml-vocab-starcoder.gguf). */
  'smollm-135m': {
    embeddingLength: 576,
    layers: 30,
    headCount: 9,
    headCountKv: 3,
    feedForwardLength: 1536,
    contextLength: 2048,
    ropeFreqBase: 10000,
    rmsEpsilon: 1e-5,
    tieEmbeddings: true,
  },
  /** Qwen2.5-0.5B as a plain llama graph (no qkv bias); pair with ggml-vocab-qwen2.gguf. */
  'qwen2.5-0.5b': {
    embeddingLength: 896,
    layers: 24,
    headCount: 14,
    headCountKv: 2,
    feedForwardLength: 4864,
    contextLength: 32768,
    ropeFreqBase: 1000000,
    rmsEpsilon: 1e-6,
    tieEmbeddings: true,
  },
} as const;

export type LlamaShapeName = keyof typeof LLAMA_SHAPES;

export interface TinyLlamaOptions {
  /** Shape preset; default `'tiny'`. The remaining numeric options override it. */
  shape?: LlamaShapeName;
  /** `general.name`; default `'tiny-llama'` (or the shape name). */
  name?: string;
  /** Training context length in tokens (`llama.context_length`); default 256 for `tiny`. */
  contextLength?: number;
  /** Hidden size (`llama.embedding_length`); default 64 for `tiny`. Must be a multiple of 32 for Q8_0. */
  embeddingLength?: number;
  /** Number of transformer blocks; default 2 for `tiny`. */
  layers?: number;
  /** Attention heads; default 4 for `tiny`. Must divide `embeddingLength`. */
  headCount?: number;
  /** KV heads (GQA); default = `headCount` for `tiny`. Must divide `headCount`. */
  headCountKv?: number;
  /** FFN hidden size; default 128 for `tiny`. Must be a multiple of 32 for Q8_0. */
  feedForwardLength?: number;
  /** RoPE base frequency; default 10000 (1e6 for the qwen shape). */
  ropeFreqBase?: number;
  /** RMSNorm epsilon; default 1e-5. */
  rmsEpsilon?: number;
  /**
   * Storage type of the 2-D weights; default `'F32'`. Norm vectors always stay
   * F32, as in llama.cpp's own quantised files. Large shapes should use Q8_0.
   */
  quant?: GgufTensorType;
  /** `tokenizer.ggml.add_bos_token` of the generated vocabulary; default true (Qwen-style files say false). */
  addBos?: boolean;
  /** PRNG seed for the weights; default 1. Same seed and options give identical bytes. */
  seed?: number;
  /** Standard deviation of the (uniform) random weights; default 0.02. */
  weightStd?: number;
  /** Omit `output.weight` so llama.cpp reuses `token_embd.weight`; default false for `tiny`, true for the big shapes. */
  tieEmbeddings?: boolean;
  /** Written as `tokenizer.chat_template` (see {@link CHATML_TEMPLATE}); default none. */
  chatTemplate?: string;
  /**
   * Tokens appended to the built-in vocabulary as user-defined tokens (ids from its size on),
   * matched whole in text as Qwen's `<tool_call>` is.
   */
  extraTokens?: string[];
  /**
   * Path of another GGUF whose `tokenizer.*` keys (vocab, merges, special ids,
   * template) are copied verbatim; the vocab size follows it. Default: the
   * built-in 1184-token SPM vocab (see {@link buildTinyVocab}).
   */
  vocabFrom?: string;
  /** Extra metadata appended last; a key the writer already writes takes this value instead. */
  extraMetadata?: GgufMetadata;
  /**
   * `general.architecture`; default `'llama'`. `'qwen3'` is the same graph plus Qwen3's per-head
   * RMS norms of queries and keys (`attn_q_norm`, `attn_k_norm`), as Qwen3-Reranker has.
   */
  architecture?: 'llama' | 'qwen3';
  /**
   * Makes a reranker as llama.cpp runs one: `<arch>.pooling_type` rank (4). With `labels`
   * (qwen3 only: llama.cpp's llama graph has no classifier head) it also writes
   * `<arch>.classifier.output_labels` and a seeded `cls.output.weight`, as convert_hf_to_gguf
   * does for Qwen3-Reranker (`["yes", "no"]`); `template` is `tokenizer.chat_template.rerank`
   * (`{query}`, `{document}`).
   */
  reranker?: { labels?: string[]; template?: string };
}

export interface WrittenTinyLlama extends WrittenGguf {
  vocabSize: number;
  embeddingLength: number;
  layers: number;
  contextLength: number;
  quant: GgufTensorType;
}

const CHUNK_ELEMENTS = 1 << 16;

function randomTensor(shape: number[], seed: number, std: number): () => Iterable<Float32Array> {
  const total = elementCount(shape);
  // Uniform(-a, a) has std a/sqrt(3); cheaper than Gaussian and just as useful here.
  const a = std * Math.sqrt(3);
  return function* () {
    const rng = mulberry32(seed);
    // Chunk size is a multiple of 32 so Q8_0 blocks never straddle chunks.
    const chunk = new Float32Array(CHUNK_ELEMENTS);
    for (let done = 0; done < total; done += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, total - done);
      for (let i = 0; i < n; i++) chunk[i] = (rng() * 2 - 1) * a;
      yield n === CHUNK_ELEMENTS ? chunk : chunk.subarray(0, n);
    }
  };
}

function constantTensor(n: number, value: number): Float32Array {
  return new Float32Array(n).fill(value);
}

/**
 * Writes a small but valid llama-architecture GGUF with seeded random weights
 * that node-llama-cpp/llama.cpp loads and generates from on CPU.
 */
export function writeTinyLlamaGguf(path: string, opts: TinyLlamaOptions = {}): WrittenTinyLlama {
  const shapeName = opts.shape ?? 'tiny';
  const base = LLAMA_SHAPES[shapeName];
  const nEmbd = opts.embeddingLength ?? base.embeddingLength;
  const nLayer = opts.layers ?? base.layers;
  const nHead = opts.headCount ?? base.headCount;
  const nHeadKv = opts.headCountKv ?? (opts.headCount !== undefined ? opts.headCount : base.headCountKv);
  const nFf = opts.feedForwardLength ?? base.feedForwardLength;
  const nCtx = opts.contextLength ?? base.contextLength;
  const quant = opts.quant ?? 'F32';
  const seed = opts.seed ?? 1;
  const std = opts.weightStd ?? 0.02;
  const tie = opts.tieEmbeddings ?? base.tieEmbeddings;

  if (nEmbd % nHead !== 0) throw new Error(`headCount ${nHead} must divide embeddingLength ${nEmbd}`);
  if (nHead % nHeadKv !== 0) throw new Error(`headCountKv ${nHeadKv} must divide headCount ${nHead}`);
  if (quant === 'Q8_0' && (nEmbd % 32 !== 0 || nFf % 32 !== 0)) {
    throw new Error('Q8_0 needs embeddingLength and feedForwardLength to be multiples of 32');
  }
  const headDim = nEmbd / nHead;
  const nEmbdKv = headDim * nHeadKv;

  let tokenizer: GgufMetadata;
  let vocabSize: number;
  if (opts.vocabFrom) {
    tokenizer = readGgufMetadata(opts.vocabFrom).filter(([k]) => k.startsWith('tokenizer.'));
    const tokens = tokenizer.find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
    if (!tokens || tokens.type !== 'array') throw new Error(`${opts.vocabFrom} has no tokenizer.ggml.tokens`);
    vocabSize = tokens.value.length;
    if (opts.chatTemplate !== undefined) tokenizer = tokenizer.filter(([k]) => k !== 'tokenizer.chat_template');
  } else {
    const vocab = buildTinyVocab();
    for (const token of opts.extraTokens ?? []) {
      vocab.tokens.push(token);
      vocab.scores.push(0);
      vocab.tokenTypes.push(TOKEN_TYPE.USER_DEFINED);
    }
    vocabSize = vocab.tokens.length;
    tokenizer = [
      ['tokenizer.ggml.model', gv.str('llama')],
      ['tokenizer.ggml.pre', gv.str('default')],
      ['tokenizer.ggml.tokens', gv.arr('string', vocab.tokens)],
      ['tokenizer.ggml.scores', gv.arr('float32', vocab.scores)],
      ['tokenizer.ggml.token_type', gv.arr('int32', vocab.tokenTypes)],
      ['tokenizer.ggml.unknown_token_id', gv.u32(0)],
      ['tokenizer.ggml.bos_token_id', gv.u32(1)],
      ['tokenizer.ggml.eos_token_id', gv.u32(2)],
      ['tokenizer.ggml.add_bos_token', gv.bool(opts.addBos ?? true)],
      ['tokenizer.ggml.add_eos_token', gv.bool(false)],
    ];
  }
  if (opts.chatTemplate !== undefined) tokenizer.push(['tokenizer.chat_template', gv.str(opts.chatTemplate)]);
  const arch = opts.architecture ?? 'llama';
  const rerank = opts.reranker;
  if (rerank?.labels && arch !== 'qwen3') throw new Error('a classifier head (reranker.labels) needs architecture qwen3');
  if (rerank?.template !== undefined) tokenizer.push(['tokenizer.chat_template.rerank', gv.str(rerank.template)]);

  const name = opts.name ?? (shapeName === 'tiny' ? 'tiny-llama' : `${shapeName}-shape`);
  const metadata: GgufMetadata = [
    ['general.architecture', gv.str(arch)],
    ['general.name', gv.str(name)],
    ['general.file_type', gv.u32(LLAMA_FILE_TYPE[quant])],
    ...(quant === 'Q8_0' ? ([['general.quantization_version', gv.u32(2)]] as GgufMetadata) : []),
    [`${arch}.vocab_size`, gv.u32(vocabSize)],
    [`${arch}.context_length`, gv.u32(nCtx)],
    [`${arch}.embedding_length`, gv.u32(nEmbd)],
    [`${arch}.block_count`, gv.u32(nLayer)],
    [`${arch}.feed_forward_length`, gv.u32(nFf)],
    [`${arch}.attention.head_count`, gv.u32(nHead)],
    [`${arch}.attention.head_count_kv`, gv.u32(nHeadKv)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(opts.rmsEpsilon ?? base.rmsEpsilon)],
    [`${arch}.rope.dimension_count`, gv.u32(headDim)],
    [`${arch}.rope.freq_base`, gv.f32(opts.ropeFreqBase ?? base.ropeFreqBase)],
    ...(rerank ? ([[`${arch}.pooling_type`, gv.u32(4)]] as GgufMetadata) : []),
    ...(rerank?.labels ? ([[`${arch}.classifier.output_labels`, gv.arr('string', rerank.labels)]] as GgufMetadata) : []),
    ...tokenizer,
  ];
  // An extra key already written replaces its value (to write broken files); a new one is appended.
  for (const [key, value] of opts.extraMetadata ?? []) {
    const at = metadata.findIndex(([k]) => k === key);
    if (at >= 0) metadata[at] = [key, value];
    else metadata.push([key, value]);
  }

  let stream = 0;
  const weight = (tensorName: string, shape: number[]): GgufTensor => ({
    name: tensorName,
    shape,
    type: quant,
    data: randomTensor(shape, deriveSeed(seed, stream++), std),
  });
  const norm = (tensorName: string, n = nEmbd): GgufTensor => ({
    name: tensorName,
    shape: [n],
    type: 'F32',
    data: constantTensor(n, 1),
  });

  const tensors: GgufTensor[] = [weight('token_embd.weight', [nEmbd, vocabSize]), norm('output_norm.weight')];
  if (!tie) tensors.push(weight('output.weight', [nEmbd, vocabSize]));
  // F32 whatever the quant: a head of 1–2 rows is no whole Q8_0 block wide.
  if (rerank?.labels) tensors.push({ name: 'cls.output.weight', shape: [nEmbd, rerank.labels.length], type: 'F32', data: randomTensor([nEmbd, rerank.labels.length], deriveSeed(seed, 999), 1) });
  for (let i = 0; i < nLayer; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      norm(`${p}attn_norm.weight`),
      weight(`${p}attn_q.weight`, [nEmbd, nEmbd]),
      weight(`${p}attn_k.weight`, [nEmbd, nEmbdKv]),
      weight(`${p}attn_v.weight`, [nEmbd, nEmbdKv]),
      weight(`${p}attn_output.weight`, [nEmbd, nEmbd]),
      ...(arch === 'qwen3' ? [norm(`${p}attn_q_norm.weight`, headDim), norm(`${p}attn_k_norm.weight`, headDim)] : []),
      norm(`${p}ffn_norm.weight`),
      weight(`${p}ffn_gate.weight`, [nEmbd, nFf]),
      weight(`${p}ffn_down.weight`, [nFf, nEmbd]),
      weight(`${p}ffn_up.weight`, [nEmbd, nFf]),
    );
  }
  const written = writeGguf(path, { metadata, tensors });
  return { ...written, vocabSize, embeddingLength: nEmbd, layers: nLayer, contextLength: nCtx, quant };
}

export interface TinyLoraOptions {
  /** The model it adapts, as written by writeTinyLlamaGguf: its architecture, width and layers. */
  base: Pick<WrittenTinyLlama, 'embeddingLength' | 'layers'> & { architecture?: string };
  /** Rank of each low-rank pair; default 4. */
  rank?: number;
  /** `adapter.lora.alpha`: llama.cpp scales the update by alpha / rank; default = rank (scale 1). */
  alpha?: number;
  seed?: number;
  /** Standard deviation of the pairs' random values; default 0.5 (a change greedy decoding shows). */
  std?: number;
  /** `general.type`; default "adapter" (anything else writes a file llama.cpp refuses as an adapter). */
  generalType?: string;
}

/**
 * Writes a LoRA adapter GGUF for a tiny llama as llama.cpp's convert_lora_to_gguf.py lays one
 * out: `general.type` adapter, `adapter.type` lora, `adapter.lora.alpha`, and for every layer's
 * attention query projection an F32 pair `….lora_a` (ggml shape [n_embd, rank]) and `….lora_b`
 * ([rank, n_embd]), which llama.cpp adds to the base weight as scale · alpha/rank · B·A.
 */
export function writeTinyLoraGguf(path: string, opts: TinyLoraOptions): WrittenGguf {
  const rank = opts.rank ?? 4;
  const nEmbd = opts.base.embeddingLength;
  const seed = opts.seed ?? 7;
  const std = opts.std ?? 0.5;
  let stream = 0;
  const tensors: GgufTensor[] = [];
  for (let i = 0; i < opts.base.layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_q.weight.lora_a`, shape: [nEmbd, rank], type: 'F32', data: randomTensor([nEmbd, rank], deriveSeed(seed, stream++), std) },
      { name: `blk.${i}.attn_q.weight.lora_b`, shape: [rank, nEmbd], type: 'F32', data: randomTensor([rank, nEmbd], deriveSeed(seed, stream++), std) },
    );
  }
  return writeGguf(path, {
    metadata: [
      ['general.architecture', gv.str(opts.base.architecture ?? 'llama')],
      ['general.type', gv.str(opts.generalType ?? 'adapter')],
      ['general.name', gv.str('tiny-lora')],
      ['adapter.type', gv.str('lora')],
      ['adapter.lora.alpha', gv.f32(opts.alpha ?? rank)],
    ],
    tensors,
  });
}

/**
 * Writes a tiny BERT-architecture cross-encoder (`<arch>.pooling_type` rank) as llama.cpp runs
 * bge-reranker and jina-reranker GGUFs: bidirectional attention, learned positions, token
 * types, a `cls` dense + tanh and a one-logit `cls.output` head. It keeps the tiny SPM
 * vocabulary but says to add EOS and SEP (`</s>`, and `<|im_end|>` as the separator), so the pair reads
 * `[BOS] query [EOS] [SEP] document [EOS]` as llama-server lays out a reranker's input.
 */
export function writeTinyBertRerankerGguf(
  path: string,
  opts: { seed?: number; contextLength?: number; layers?: number; embeddingLength?: number; headCount?: number; feedForwardLength?: number; quant?: GgufTensorType } = {},
): WrittenGguf & { sepToken: number } {
  const nEmbd = opts.embeddingLength ?? 64;
  const nHead = opts.headCount ?? 4;
  const nFf = opts.feedForwardLength ?? 128;
  const nLayer = opts.layers ?? 2;
  const nCtx = opts.contextLength ?? 256;
  const seed = opts.seed ?? 1;
  // The 2-D weights of the blocks take `quant` (benchmark shapes use Q8_0); embeddings, norms and the head stay F32.
  const quant = opts.quant ?? 'F32';
  const vocab = buildTinyVocab();
  // A control token of the vocabulary stands in for BERT's [SEP].
  const sepToken = vocab.tokens.indexOf('<|im_end|>');
  const metadata: GgufMetadata = [
    ['general.architecture', gv.str('bert')],
    ['general.name', gv.str('tiny-bert-reranker')],
    ['general.file_type', gv.u32(LLAMA_FILE_TYPE[quant])],
    ...(quant === 'Q8_0' ? ([['general.quantization_version', gv.u32(2)]] as GgufMetadata) : []),
    ['bert.context_length', gv.u32(nCtx)],
    ['bert.embedding_length', gv.u32(nEmbd)],
    ['bert.block_count', gv.u32(nLayer)],
    ['bert.feed_forward_length', gv.u32(nFf)],
    ['bert.attention.head_count', gv.u32(nHead)],
    ['bert.attention.layer_norm_epsilon', gv.f32(1e-12)],
    ['bert.attention.causal', gv.bool(false)],
    ['bert.pooling_type', gv.u32(4)],
    ['tokenizer.ggml.model', gv.str('llama')],
    ['tokenizer.ggml.pre', gv.str('default')],
    ['tokenizer.ggml.tokens', gv.arr('string', vocab.tokens)],
    ['tokenizer.ggml.scores', gv.arr('float32', vocab.scores)],
    ['tokenizer.ggml.token_type', gv.arr('int32', vocab.tokenTypes)],
    ['tokenizer.ggml.token_type_count', gv.u32(2)],
    ['tokenizer.ggml.unknown_token_id', gv.u32(0)],
    ['tokenizer.ggml.bos_token_id', gv.u32(1)],
    ['tokenizer.ggml.eos_token_id', gv.u32(2)],
    ['tokenizer.ggml.seperator_token_id', gv.u32(sepToken)],
    ['tokenizer.ggml.add_bos_token', gv.bool(true)],
    ['tokenizer.ggml.add_eos_token', gv.bool(true)],
    ['tokenizer.ggml.add_sep_token', gv.bool(true)],
  ];
  let stream = 0;
  const weight = (name: string, shape: number[], std = 0.05, type: GgufTensorType = 'F32'): GgufTensor => ({ name, shape, type, data: randomTensor(shape, deriveSeed(seed, stream++), std) });
  const constant = (name: string, n: number, value: number): GgufTensor => ({ name, shape: [n], type: 'F32', data: constantTensor(n, value) });
  const layerNorm = (prefix: string): GgufTensor[] => [constant(`${prefix}.weight`, nEmbd, 1), constant(`${prefix}.bias`, nEmbd, 0)];
  const tensors: GgufTensor[] = [
    weight('token_embd.weight', [nEmbd, vocab.tokens.length], 0.5),
    weight('token_types.weight', [nEmbd, 2], 0.5),
    weight('position_embd.weight', [nEmbd, nCtx], 0.1),
    ...layerNorm('token_embd_norm'),
    weight('cls.weight', [nEmbd, nEmbd], 0.3),
    constant('cls.bias', nEmbd, 0),
    weight('cls.output.weight', [nEmbd, 1], 0.5),
    constant('cls.output.bias', 1, 0),
  ];
  for (let i = 0; i < nLayer; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      weight(`${p}attn_q.weight`, [nEmbd, nEmbd], 0.05, quant),
      weight(`${p}attn_k.weight`, [nEmbd, nEmbd], 0.05, quant),
      weight(`${p}attn_v.weight`, [nEmbd, nEmbd], 0.05, quant),
      weight(`${p}attn_output.weight`, [nEmbd, nEmbd], 0.05, quant),
      ...layerNorm(`${p}attn_output_norm`),
      weight(`${p}ffn_up.weight`, [nEmbd, nFf], 0.05, quant),
      weight(`${p}ffn_down.weight`, [nFf, nEmbd], 0.05, quant),
      ...layerNorm(`${p}layer_output_norm`),
    );
  }
  return { ...writeGguf(path, { metadata, tensors }), sepToken };
}

// ---------------------------------------------------------------------------
// Corrupt files
// ---------------------------------------------------------------------------

/**
 * - `truncated`: valid header, tensor data cut short (parsers succeed, loaders fail)
 * - `truncated-header`: cut inside the metadata
 * - `bad-magic`: first four bytes are not "GGUF"
 * - `bad-version`: GGUF magic with version 99
 * - `empty`: zero bytes
 */
export type CorruptGgufKind = 'truncated' | 'truncated-header' | 'bad-magic' | 'bad-version' | 'empty';

/** Writes a broken GGUF for error-path tests; default kind `'truncated'`. */
export function writeCorruptGguf(path: string, kind: CorruptGgufKind = 'truncated'): void {
  const { bytes } = writeTinyLlamaGguf(path, { layers: 1, name: `corrupt-${kind}` });
  const patch = (offset: number, data: Buffer): void => {
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, data, 0, data.length, offset);
    } finally {
      closeSync(fd);
    }
  };
  switch (kind) {
    case 'truncated':
      truncateSync(path, Math.floor(bytes * 0.75));
      break;
    case 'truncated-header':
      truncateSync(path, 200);
      break;
    case 'bad-magic':
      patch(0, Buffer.from('GGUX', 'latin1'));
      break;
    case 'bad-version': {
      const v = Buffer.alloc(4);
      v.writeUInt32LE(99);
      patch(4, v);
      break;
    }
    case 'empty':
      truncateSync(path, 0);
      break;
  }
}
