/**
 * The one interface every engine implements. An engine turns a model's files and merged
 * load parameters into a LoadedModel, a disposable native resource with capabilities.
 * Domain code only: nothing here knows about HTTP.
 */
export const ENGINE_NAMES = ['llamacpp', 'onnx', 'api', 'tensorrt'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

export type Capability = 'chat' | 'completion' | 'embedding' | 'classification';

/**
 * A run parameter in the descriptor form of the parameter-definition seed:
 * `{name, default, min_value, max_value, increment, special_type, options, description}`,
 * plus the value `type` and the `scope` it applies at.
 */
export interface ParamDescriptor {
  name: string;
  type: 'integer' | 'number' | 'string' | 'boolean' | 'string_array' | 'integer_or_string' | 'duration';
  default: unknown;
  min_value?: number | null;
  max_value?: number | null;
  increment?: number;
  special_type?: 'dropdown' | 'path';
  options?: unknown[];
  description: string;
  /** `load`: read when the model starts; `request`: may change per request. */
  scope: 'load' | 'request';
}

export interface EngineStatus {
  available: boolean;
  /** Why it is unavailable, or notes on what it runs on. */
  reason?: string;
  /** Backend details: build, devices, threads. */
  info?: Record<string, unknown>;
}

export interface LoadSpec {
  id: string;
  /** Absolute paths of the model's binaries, the primary file first. */
  files: string[];
  /** The model folder. */
  folder: string;
  /** Load-scope parameters after precedence and validation. */
  params: Record<string, unknown>;
  /** The model object's metadata (classes, preprocess, task...). */
  metadata: Record<string, unknown>;
}

export interface LoadedModel {
  readonly capabilities: ReadonlySet<Capability>;
  /** Requests that truly run at once (llama context sequences; batch slots for ONNX). */
  readonly concurrency: number;
  /** Facts about the loaded instance, shown in the model state. */
  readonly info?: Record<string, unknown>;
  /** Idempotent; frees native memory. */
  dispose(): Promise<void>;
}

export interface Engine {
  readonly name: EngineName;
  readonly descriptors: readonly ParamDescriptor[];
  status(): Promise<EngineStatus>;
  /** Loads; honours `signal` during the load and frees what it made when aborted. */
  load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel>;
  dispose(): Promise<void>;
}
