import sharp, { type Metadata } from 'sharp';
import { ApiError } from '../../errors.ts';
import { MetadataError, type Preprocess } from './classifier-metadata.ts';
import type { ImagePlan } from './model-io.ts';

/** Formats accepted from clients (sharp decodes more; these are the ones the API promises). */
const FORMATS = new Set(['png', 'jpeg', 'webp']);
export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;

/** The resolved image pipeline of one model, shown in the model state. */
export interface ImageSettings {
  width: number;
  height: number;
  channels: 1 | 3;
  layout: 'NCHW' | 'NHWC';
  dtype: 'float32' | 'uint8';
  resize: NonNullable<Preprocess['resize']>;
  crop_pct: number;
  interpolation: NonNullable<Preprocess['interpolation']>;
  background: number;
  channel_order: 'RGB' | 'BGR';
  scale: number;
  mean: number[];
  std: number[];
  invert: boolean;
  max_image_bytes: number;
  max_image_pixels: number;
}

function perChannel(v: number | number[] | undefined, channels: number, fallback: number, field: string): number[] {
  if (v === undefined) return new Array(channels).fill(fallback);
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 1) return new Array(channels).fill(list[0]);
  if (list.length !== channels) throw new MetadataError(`'metadata.preprocess.${field}' has ${list.length} values but the model takes ${channels} channel(s)`, `metadata.preprocess.${field}`);
  return list;
}

/** Fills the preprocessing defaults from the model's input plan. */
export function imageSettings(plan: ImagePlan, p: Preprocess): ImageSettings {
  const mean = perChannel(p.mean, plan.channels, 0, 'mean');
  const std = perChannel(p.std, plan.channels, 1, 'std');
  // mean/std written in 0-1 units (ImageNet's 0.485...) mean the model takes pixels scaled to 0-1.
  const unitNorm = (p.mean !== undefined || p.std !== undefined) && [...mean, ...std].every((x) => Math.abs(x) <= 1);
  return {
    width: plan.width,
    height: plan.height,
    channels: plan.channels,
    layout: plan.layout,
    dtype: plan.dtype,
    resize: p.resize ?? 'stretch',
    crop_pct: p.crop_pct ?? 0.875,
    interpolation: p.interpolation ?? 'linear',
    background: p.background ?? 0,
    channel_order: p.channel_order ?? 'RGB',
    scale: p.scale ?? (unitNorm ? 1 / 255 : 1),
    mean,
    std,
    invert: p.invert ?? false,
    max_image_bytes: p.max_image_bytes ?? DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: p.max_image_pixels ?? DEFAULT_MAX_IMAGE_PIXELS,
  };
}

/**
 * Bytes that a clean base64 string (no whitespace or foreign characters) decodes to, or -1
 * for a length no base64 string has. Skipping k >= 1 characters always changes the result:
 * floor(3x/4) is strictly increasing except from x = 4m to 4m + 1, a length ruled out here.
 */
function base64Bytes(b64: string): number {
  const sextets = b64.length - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
  return sextets % 4 === 1 ? -1 : Math.floor((sextets * 3) / 4);
}

/** Decodes base64 or a base64 data URL, enforcing the byte limit before allocating. */
export function decodeImageData(input: string, param: string, maxBytes: number): Buffer {
  let b64 = input;
  const m = /^data:([^;,]*)((?:;[^;,]*)*),/.exec(input);
  if (m) {
    if (!/;base64$/i.test(m[2] ?? '')) throw new ApiError('invalid_image', `'${param}' is a data URL without ;base64; send the image base64-encoded`, { param });
    b64 = input.slice(m[0].length);
  }
  if (b64.length === 0) throw new ApiError('invalid_image', `'${param}' is empty`, { param });
  const bytes = Math.floor((b64.length * 3) / 4);
  if (bytes > maxBytes) {
    throw new ApiError('image_too_large', `'${param}' is ${bytes} bytes; this model accepts images up to ${maxBytes} bytes (metadata.preprocess.max_image_bytes)`, { param });
  }
  // Node's decoder skips whitespace and foreign characters, so a clean string decodes to
  // exactly base64Bytes(): one native pass instead of two regex scans of a large string.
  const fast = Buffer.from(b64, 'base64');
  if (fast.length === base64Bytes(b64) && fast.length > 0) return fast;
  b64 = b64.replace(/\s+/g, '');
  if (b64.length === 0) throw new ApiError('invalid_image', `'${param}' is empty`, { param });
  if (!/^[A-Za-z0-9+/\-_]+={0,2}$/.test(b64)) {
    throw new ApiError('invalid_image', `'${param}' is not base64 or a data URL (data:image/png;base64,...)`, { param });
  }
  return Buffer.from(b64, 'base64');
}

/** Whether the bytes start like a PNG, JPEG or WebP file (what libvips' loaders check too). */
function acceptedSignature(b: Buffer): boolean {
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47 && b.readUInt32BE(4) === 0x0d0a1a0a) return true;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return true;
  return b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP';
}

/** The image_too_large error when the header's size exceeds the model's pixel limit. */
function tooManyPixels(meta: Metadata, param: string, s: ImageSettings): ApiError | undefined {
  if ((meta.width ?? 0) * (meta.height ?? 0) <= s.max_image_pixels) return undefined;
  return new ApiError('image_too_large', `'${param}' is ${meta.width}x${meta.height} pixels; this model accepts up to ${s.max_image_pixels} pixels (metadata.preprocess.max_image_pixels)`, { param });
}

/** The invalid_image or image_too_large error for bytes the fast path refused; reads the header. */
async function explainRefusal(buf: Buffer, param: string, s: ImageSettings, cause: unknown): Promise<ApiError> {
  let meta: Metadata;
  try {
    meta = await sharp(buf, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (err) {
    return new ApiError('invalid_image', `'${param}' cannot be decoded as a PNG, JPEG or WebP image: ${(err as Error).message}`, { param });
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    return new ApiError('invalid_image', `'${param}' is a ${meta.format ?? 'unknown'} image; send PNG, JPEG or WebP`, { param });
  }
  return tooManyPixels(meta, param, s) ?? new ApiError('invalid_image', `'${param}' cannot be decoded: ${(cause as Error | undefined)?.message ?? 'unknown error'}`, { param });
}

/**
 * Decodes, orients, converts, resizes and normalises one image into a model row (a
 * Float32Array or Uint8Array of channels x height x width in the model's layout).
 */
export async function imageToRow(input: string, param: string, s: ImageSettings): Promise<Float32Array | Uint8Array> {
  const buf = decodeImageData(input, param, s.max_image_bytes);
  // The format is checked from the signature and the pixel limit by sharp from the header
  // (limitInputPixels, before decoding), so the common case costs one sharp call: each
  // call spends ~0.2 ms of event-loop time marshalling its options. A refused image pays a
  // second call, metadata(), for an error that names the format or the size.
  if (!acceptedSignature(buf)) throw await explainRefusal(buf, param, s, undefined);
  const W = s.width;
  const H = s.height;
  const kernel = s.interpolation;
  let img = sharp(buf, { failOn: 'error', limitInputPixels: Math.max(1, Math.floor(s.max_image_pixels)) });
  let meta: Metadata | undefined;
  if (s.resize === 'center_crop') {
    try {
      meta = await img.metadata();
    } catch (err) {
      throw await explainRefusal(buf, param, s, err);
    }
    const tooLarge = tooManyPixels(meta, param, s);
    if (tooLarge) throw tooLarge;
  }
  img = img.autoOrient().removeAlpha();
  img = s.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  switch (s.resize) {
    case 'stretch':
      img = img.resize(W, H, { fit: 'fill', kernel });
      break;
    case 'contain': {
      const g = s.background;
      img = img.resize(W, H, { fit: 'contain', kernel, background: { r: g, g, b: g } });
      break;
    }
    case 'cover':
      img = img.resize(W, H, { fit: 'cover', position: 'centre', kernel });
      break;
    case 'center_crop': {
      const oriented = (meta!.orientation ?? 1) >= 5;
      const w = oriented ? meta!.height! : meta!.width!;
      const h = oriented ? meta!.width! : meta!.height!;
      const shorter = Math.round(Math.max(W, H) / s.crop_pct);
      const nw = w <= h ? shorter : Math.max(W, Math.round((w * shorter) / h));
      const nh = w <= h ? Math.max(H, Math.round((h * shorter) / w)) : shorter;
      img = img.resize(nw, nh, { fit: 'fill', kernel }).extract({ left: Math.floor((nw - W) / 2), top: Math.floor((nh - H) / 2), width: W, height: H });
      break;
    }
  }
  let data: Buffer;
  let channels: number;
  try {
    const out = await img.raw().toBuffer({ resolveWithObject: true });
    data = out.data;
    channels = out.info.channels;
  } catch (err) {
    throw await explainRefusal(buf, param, s, err);
  }
  return toTensorRow(data, channels, s);
}

/** Interleaved 8-bit pixels (height x width x channels) to the model's row. */
export function toTensorRow(data: Uint8Array, srcChannels: number, s: ImageSettings): Float32Array | Uint8Array {
  const n = s.width * s.height;
  const C = s.channels;
  const float = s.dtype === 'float32';
  const out = float ? new Float32Array(C * n) : new Uint8Array(C * n);
  // 256 possible inputs per channel: a table computed with the same expression keeps the
  // values bit-identical and takes the per-pixel branches and arithmetic off the loop.
  const lut = float ? new Float32Array(256) : new Uint8Array(256);
  for (let c = 0; c < C; c++) {
    // BGR models take the source's blue channel first.
    const src = Math.min(srcChannels - 1, s.channel_order === 'BGR' ? C - 1 - c : c);
    const mean = s.mean[c]!;
    const std = s.std[c]!;
    for (let v = 0; v < 256; v++) {
      const x = s.invert ? 255 - v : v;
      lut[v] = float ? (x * s.scale - mean) / std : x;
    }
    const start = s.layout === 'NCHW' ? c * n : c;
    const step = s.layout === 'NCHW' ? 1 : C;
    for (let p = 0, at = start, from = src; p < n; p++, at += step, from += srcChannels) out[at] = lut[data[from]!]!;
  }
  return out;
}
