import os from 'node:os';
import path from 'node:path';
import { Value } from 'typebox/value';
import { Type, type Static } from '../schemas/typebox.ts';

/**
 * Server configuration. Every field has a default, an environment variable and (for the
 * CLI) a flag; the result is frozen and usable without Fastify.
 */
export const ConfigSchema = Type.Object({
  /** Interface to bind. Loopback by default; the container image binds 0.0.0.0. */
  host: Type.String({ default: '127.0.0.1' }),
  /** TCP port (Jan's default). */
  port: Type.Integer({ default: 1337, minimum: 0, maximum: 65535 }),
  /** Folder of model folders. */
  modelsDir: Type.String({ default: './models' }),
  logLevel: Type.Union(
    [
      Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
      Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  /** Bearer keys; empty means no authentication. */
  apiKeys: Type.Array(Type.String(), { default: [] }),
  /** CORS origins; empty means CORS off. `*` allows any origin. */
  corsOrigins: Type.Array(Type.String(), { default: [] }),
  /** Largest accepted request body, bytes (images travel as base64). */
  bodyLimit: Type.Integer({ default: 32 * 1024 * 1024, minimum: 1024 }),
  /** Load a stopped model on its first inference request. */
  jit: Type.Boolean({ default: true }),
  /** Idle time before a model unloads, Ollama syntax ("5m", "30s", "0" = at once, "-1" = never). */
  keepAlive: Type.String({ default: '5m' }),
  /** Requests waiting per model beyond its parallelism before 503 queue_full. */
  maxWaiting: Type.Integer({ default: 64, minimum: 0 }),
  /** Per-request time limit, ms, queue wait included (0 = none). */
  requestTimeoutMs: Type.Integer({ default: 10 * 60 * 1000, minimum: 0 }),
  /** Watch the models folder for added, edited and removed model objects. */
  watch: Type.Boolean({ default: true }),
  /** CPU threads for inference; 0 = the machine's physical cores. */
  threads: Type.Integer({ default: 0, minimum: 0 }),
  /** GPU backend for llama.cpp: auto, cuda, vulkan, metal or false (CPU only). */
  gpu: Type.String({ default: 'auto' }),
  /** Downloads running at once; more wait their turn. */
  maxConcurrentDownloads: Type.Integer({ default: 2, minimum: 1 }),
  /** Hugging Face hub base URL (HF_ENDPOINT). */
  hfEndpoint: Type.String({ default: 'https://huggingface.co' }),
  /** Hugging Face token for gated repositories (HF_TOKEN). */
  hfToken: Type.Optional(Type.String()),
});

export type Config = Readonly<Static<typeof ConfigSchema>>;

const ENV: Record<string, keyof Config> = {
  MODELD_HOST: 'host',
  MODELD_PORT: 'port',
  MODELD_MODELS_DIR: 'modelsDir',
  MODELD_LOG_LEVEL: 'logLevel',
  MODELD_API_KEY: 'apiKeys',
  MODELD_CORS_ORIGIN: 'corsOrigins',
  MODELD_BODY_LIMIT: 'bodyLimit',
  MODELD_JIT: 'jit',
  MODELD_KEEP_ALIVE: 'keepAlive',
  MODELD_MAX_WAITING: 'maxWaiting',
  MODELD_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  MODELD_WATCH: 'watch',
  MODELD_THREADS: 'threads',
  MODELD_GPU: 'gpu',
  MODELD_MAX_DOWNLOADS: 'maxConcurrentDownloads',
  HF_ENDPOINT: 'hfEndpoint',
  HF_TOKEN: 'hfToken',
};

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

/**
 * Text (a variable, a flag) to the setting's type. Text that is no integer or boolean stays
 * text, so the schema check refuses it with the value shown; `Number` would take '' as 0 and
 * '0x10' as 16, and a misspelt boolean must not quietly mean true.
 */
function coerce(key: keyof Config, raw: string): unknown {
  const schema = ConfigSchema.properties[key] as { type?: string };
  if (schema.type === 'array') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (schema.type === 'integer') return /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (schema.type === 'boolean') {
    const v = raw.trim().toLowerCase();
    return TRUE.includes(v) ? true : FALSE.includes(v) ? false : raw;
  }
  return raw;
}

/** What a setting accepts, in words, for the error about a value it refuses. */
function accepted(key: keyof Config): string | undefined {
  const s = ConfigSchema.properties[key] as { type?: string; minimum?: number; maximum?: number; anyOf?: Array<{ const?: unknown }> };
  if (s.anyOf?.every((o) => o.const !== undefined)) return `one of ${s.anyOf.map((o) => String(o.const)).join(', ')}`;
  if (s.type === 'boolean') return `true or false (or ${TRUE.slice(1).map((t, i) => `${t}/${FALSE[i + 1]}`).join(', ')})`;
  if (s.type === 'integer') {
    if (s.minimum !== undefined && s.maximum !== undefined) return `an integer from ${s.minimum} to ${s.maximum}`;
    return s.minimum !== undefined ? `an integer of at least ${s.minimum}` : 'an integer';
  }
  return undefined;
}

export class ConfigError extends Error {}

/** A setting given on the command line: its text (or a switch's boolean) and the flag, for errors. */
export interface FlagValue {
  flag: string;
  value: string | boolean;
}

/**
 * Builds the frozen config: defaults < environment < command-line flags < explicit overrides
 * (tests, embedders). Throws ConfigError naming the setting, and the flag or variable it came
 * from, when a value is invalid.
 */
export function loadConfig(
  overrides: Partial<Config> = {},
  env: NodeJS.ProcessEnv = process.env,
  flags: Partial<Record<keyof Config, FlagValue>> = {},
): Config {
  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') fromEnv[key] = coerce(key, raw);
  }
  const fromFlags: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(flags) as Array<[keyof Config, FlagValue | undefined]>) {
    if (f) fromFlags[key] = typeof f.value === 'string' ? coerce(key, f.value) : f.value;
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const merged = Value.Default(ConfigSchema, { ...fromEnv, ...fromFlags, ...defined }) as Record<string, unknown>;
  /** The flag or variable a value came from; the variable when it came from neither. */
  const origin = (key: keyof Config) => {
    const envName = Object.entries(ENV).find(([, k]) => k === key)?.[0];
    if (!(key in defined) && flags[key]) return flags[key].flag;
    return envName;
  };
  const errors = [...Value.Errors(ConfigSchema, merged)];
  if (errors.length > 0) {
    const e = errors[0]!;
    const key = e.instancePath.slice(1).split('/')[0] as keyof Config;
    const where = origin(key);
    const want = accepted(key);
    const why = want ? `must be ${want}, not ${JSON.stringify(String(merged[key]))}` : e.message;
    throw new ConfigError(`invalid setting ${key}${where ? ` (${where})` : ''}: ${why}`);
  }
  try {
    parseDuration(merged.keepAlive as string);
  } catch (err) {
    throw new ConfigError(`invalid setting keepAlive (${origin('keepAlive')}): ${(err as Error).message}; use e.g. 5m, 1h30m, 0 or -1`);
  }
  merged.modelsDir = path.resolve(expandHome(merged.modelsDir as string));
  return Object.freeze(merged) as unknown as Config;
}

export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** Parses Ollama-style durations ("5m", "1h30m", "300", "0", "-1") into ms; -1 = never. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value < 0 ? -1 : value * 1000;
  const v = value.trim();
  if (/^-\d+(\.\d+)?[a-z]*$/.test(v)) return -1;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of v.matchAll(re)) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    total += Number(m[1]) * unit;
    consumed += m[0].length;
  }
  if (consumed !== v.length || consumed === 0) throw new ConfigError(`invalid duration "${value}"`);
  return total;
}
