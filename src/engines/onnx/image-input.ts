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

/** Decodes base64 or a base64 data URL, enforcing the byte limit before allocating. */
export function decodeImageData(input: string, param: string, maxBytes: number): Buffer {
  let b64 = input;
  const m = /^data:([^;,]*)((?:;[^;,]*)*),/.exec(input);
  if (m) {
    if (!/;base64$/i.test(m[2] ?? '')) throw new ApiError('invalid_image', `'${param}' is a data URL without ;base64; send the image base64-encoded`, { param });
    b64 = input.slice(m[0].length);
  }
  b64 = b64.replace(/\s+/g, '');
  if (b64.length === 0) throw new ApiError('invalid_image', `'${param}' is empty`, { param });
  if (!/^[A-Za-z0-9+/\-_]+={0,2}$/.test(b64)) {
    throw new ApiError('invalid_image', `'${param}' is not base64 or a data URL (data:image/png;base64,...)`, { param });
  }
  const bytes = Math.floor((b64.length * 3) / 4);
  if (bytes > maxBytes) {
    throw new ApiError('image_too_large', `'${param}' is ${bytes} bytes; this model accepts images up to ${maxBytes} bytes (metadata.preprocess.max_image_bytes)`, { param });
  }
  return Buffer.from(b64, 'base64');
}

/**
 * Decodes, orients, converts, resizes and normalises one image into a model row (a
 * Float32Array or Uint8Array of channels x height x width in the model's layout).
 */
export async function imageToRow(input: string, param: string, s: ImageSettings): Promise<Float32Array | Uint8Array> {
  const buf = decodeImageData(input, param, s.max_image_bytes);
  // One instance: the header read by metadata() is reused by the pipeline below. The pixel
  // limit is checked from that header, before anything is decoded.
  let img = sharp(buf, { failOn: 'error', limitInputPixels: false });
  let meta: Metadata;
  try {
    meta = await img.metadata();
  } catch (err) {
    throw new ApiError('invalid_image', `'${param}' cannot be decoded as a PNG, JPEG or WebP image: ${(err as Error).message}`, { param });
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new ApiError('invalid_image', `'${param}' is a ${meta.format ?? 'unknown'} image; send PNG, JPEG or WebP`, { param });
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > s.max_image_pixels) {
    throw new ApiError('image_too_large', `'${param}' is ${meta.width}x${meta.height} pixels; this model accepts up to ${s.max_image_pixels} pixels (metadata.preprocess.max_image_pixels)`, { param });
  }
  const W = s.width;
  const H = s.height;
  const kernel = s.interpolation;
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
      const oriented = (meta.orientation ?? 1) >= 5;
      const w = oriented ? meta.height! : meta.width!;
      const h = oriented ? meta.width! : meta.height!;
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
    throw new ApiError('invalid_image', `'${param}' cannot be decoded: ${(err as Error).message}`, { param });
  }
  return toTensorRow(data, channels, s);
}

/** Interleaved 8-bit pixels (height x width x channels) to the model's row. */
export function toTensorRow(data: Uint8Array, srcChannels: number, s: ImageSettings): Float32Array | Uint8Array {
  const n = s.width * s.height;
  const C = s.channels;
  const out = s.dtype === 'float32' ? new Float32Array(C * n) : new Uint8Array(C * n);
  const float = s.dtype === 'float32';
  for (let c = 0; c < C; c++) {
    // BGR models take the source's blue channel first.
    const src = Math.min(srcChannels - 1, s.channel_order === 'BGR' ? C - 1 - c : c);
    const mean = s.mean[c]!;
    const std = s.std[c]!;
    for (let p = 0; p < n; p++) {
      let v = data[p * srcChannels + src]!;
      if (s.invert) v = 255 - v;
      const at = s.layout === 'NCHW' ? c * n + p : p * C + c;
      out[at] = float ? (v * s.scale - mean) / std : v;
    }
  }
  return out;
}
