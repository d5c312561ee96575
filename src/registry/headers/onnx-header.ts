import type { FileHandle } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { inferTask } from '../../engines/onnx/model-io.ts';
import { withRegularFile } from '../regular-file.ts';

const { onnx } = onnxProto;

const ELEM_TYPES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

export interface OnnxTensorInfo {
  name: string;
  type: string;
  /** Dimensions: a number, or the symbolic name of a dynamic one (e.g. "batch"), or null. */
  shape: Array<number | string | null>;
}

function valueInfo(v: onnxProto.onnx.IValueInfoProto): OnnxTensorInfo {
  const t = v.type?.tensorType;
  const dims = t?.shape?.dim ?? [];
  return {
    name: v.name ?? '',
    type: t ? (ELEM_TYPES[t.elemType ?? 0] ?? `elem_type_${t.elemType}`) : 'non-tensor',
    shape: dims.map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null)),
  };
}

/**
 * Reads an ONNX model's interface (inputs/outputs with types and shapes), opset, producer and
 * metadata_props. A FIFO or device in the file's place is refused (see openRegularFile), never
 * waited on. protobufjs decodes byte fields as views of the buffer, so this costs one
 * read of the file and no copy of the weights.
 */
export async function readOnnxHeader(file: string): Promise<Record<string, unknown>> {
  return withRegularFile(file, (handle) => readOnnxHeaderFrom(handle));
}

/** readOnnxHeader of a file the caller opened (and checked is a regular file). */
export async function readOnnxHeaderFrom(handle: FileHandle): Promise<Record<string, unknown>> {
  const buf = await handle.readFile();
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(buf);
  } catch (err) {
    throw new Error(`not a valid ONNX protobuf: ${(err as Error).message}`);
  }
  if (!model.graph) throw new Error('not a valid ONNX model: no graph');
  const initializers = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const props = Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key, p.value]));
  const inputs = (model.graph.input ?? []).filter((i) => !initializers.has(i.name ?? '')).map(valueInfo);
  const task = inferTask(inputs);
  return {
    format: 'onnx',
    ir_version: Number(model.irVersion),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' ') || undefined,
    opset: Object.fromEntries((model.opsetImport ?? []).map((o) => [o.domain || 'ai.onnx', Number(o.version)])),
    inputs,
    ...(task ? { task } : {}),
    outputs: (model.graph.output ?? []).map(valueInfo),
    ...(Object.keys(props).length ? { metadata_props: props } : {}),
  };
}
