import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { apiServer } from '../engines/api/api-server.ts';
import type { ModelEntry } from '../registry/registry.ts';
import type { Model, ModelState, RouterStatus } from '../schemas/models.ts';
import type { ModelStateView } from './model-manager.ts';

/**
 * The state of a model as every route reports it: registry, then runtime, then overlays.
 * `loaded: false` reports it unloaded: a stop's answer, which a start after it must not change.
 */
export function stateOf(app: FastifyInstance, entry: ModelEntry, { loaded = true } = {}): ModelStateView & { progress?: unknown } {
  let view: ModelStateView & { progress?: unknown } = loaded ? app.manager.state(entry) : app.manager.unloadedState(entry);
  for (const overlay of app.stateOverlays) {
    const extra = overlay(entry, view);
    if (extra) view = { ...view, ...extra };
  }
  return view;
}

/** Header facts added to metadata when the model object does not say them itself. */
const AUTOFILL: Record<string, string> = {
  architecture: 'architecture',
  quantization: 'quantization',
  size: 'size',
  parameter_count: 'parameter_count',
  context_length: 'context_length',
  task: 'task',
};

export function metadataOf(entry: ModelEntry): Record<string, unknown> {
  const own = (entry.object.metadata ?? {}) as Record<string, unknown>;
  const filled: Record<string, unknown> = { engine: entry.engine, ...own };
  for (const [from, to] of Object.entries(AUTOFILL)) {
    if (filled[to] === undefined && entry.header[from] !== undefined) filled[to] = entry.header[from];
  }
  if (filled.size === undefined) {
    const sizes = entry.binaries.map((b) => b.size);
    if (sizes.length > 0 && sizes.every((s) => typeof s === 'number')) filled.size = sizes.reduce((a, b) => a! + b!, 0);
  }
  if (Object.keys(entry.header).length > 0) filled.header = entry.header;
  return filled;
}

export function toWireModel(app: FastifyInstance, entry: ModelEntry): Model {
  const s = stateOf(app, entry);
  const o = entry.object;
  const primary = entry.binaries[0];
  return {
    id: entry.id,
    object: 'model',
    created: entry.created,
    owned_by: entry.ownedBy,
    name: o.name ?? path.basename(primary?.path ?? entry.file, path.extname(primary?.path ?? entry.file)),
    description: o.description ?? '',
    state: s.state,
    ...(s.error ? { error: s.error } : {}),
    status: routerStatus(s.state),
    ...(s.queue ? { queue: s.queue } : {}),
    ...(s.progress ? { progress: s.progress as Model['progress'] } : {}),
    source_url: o.source_url ?? primary?.url ?? primary?.path ?? (entry.engine === 'api' ? apiServer(o.metadata?.api, undefined).url : undefined) ?? entry.folder,
    parameters: (o.parameters ?? {}) as Record<string, unknown>,
    metadata: metadataOf(entry),
  };
}

export function toWireState(app: FastifyInstance, entry: ModelEntry): ModelState {
  const s = stateOf(app, entry);
  return {
    id: entry.id,
    state: s.state,
    ...(s.error ? { error: s.error } : {}),
    ...(s.progress ? { progress: s.progress as ModelState['progress'] } : {}),
    ...(s.queue ? { queue: s.queue } : {}),
    ...(s.params ? { parameters: s.params } : {}),
    ...(s.info ? { info: s.info } : {}),
  };
}

/** The JSON of a model's fields that only change when its file is rescanned (entries are replaced then). */
const staticJson = new WeakMap<ModelEntry, string>();

/**
 * The wire Model as a JSON string: the static part is serialized once per scan, the state
 * fields per call. `GET /v1/models` with hundreds of models then costs string joins, not
 * hundreds of object builds and a schema serialization (see benchmarks, control plane).
 */
export function wireModelJson(app: FastifyInstance, entry: ModelEntry): string {
  let head = staticJson.get(entry);
  if (head === undefined) {
    const { state: _s, error: _e, status: _st, queue: _q, progress: _p, ...rest } = toWireModel(app, entry);
    head = JSON.stringify(rest).slice(0, -1);
    staticJson.set(entry, head);
  }
  const s = stateOf(app, entry);
  let tail = `,"state":${JSON.stringify(s.state)}`;
  if (s.error) tail += `,"error":${JSON.stringify(s.error)}`;
  tail += `,"status":${JSON.stringify(routerStatus(s.state))}`;
  if (s.queue) tail += `,"queue":${JSON.stringify(s.queue)}`;
  if (s.progress) tail += `,"progress":${JSON.stringify(s.progress)}`;
  return `${head}${tail}}`;
}

/** A model state as llama-server's router mode names it (its web UI reads `status.value`). */
export function routerStatus(state: ModelStateView['state']): RouterStatus {
  switch (state) {
    case 'running': return { value: 'loaded' };
    case 'starting': return { value: 'loading' };
    case 'downloading': return { value: 'downloading' };
    case 'error': return { value: 'unloaded', failed: true };
    default: return { value: 'unloaded' };
  }
}
