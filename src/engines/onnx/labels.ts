import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expandHome } from '../../config/config.ts';
import { MetadataError } from './classifier-metadata.ts';

/** metadata_props keys that exporters use for class names, in the order they are tried. */
const PROP_KEYS = ['classes', 'labels', 'class_names', 'id2label', 'names'];

/** Parses a label list: a JSON array, a JSON {index: label} object, or one label per line. */
export function parseLabels(text: string): string[] | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (t.startsWith('[') || t.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      return undefined;
    }
    if (Array.isArray(v)) return v.map(String);
    if (v && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>).filter(([k]) => /^\d+$/.test(k));
      if (entries.length === 0) return undefined;
      const out: string[] = [];
      for (const [k, label] of entries) out[Number(k)] = String(label);
      return Array.from(out, (l, i) => l ?? String(i));
    }
    return undefined;
  }
  return t.split(/\r?\n/).map((l) => l.trim());
}

/**
 * Class names in index order: `metadata.classes` (an array, or a labels file relative to
 * the model folder), else the model's own metadata_props; undefined when neither says.
 */
export async function resolveLabels(
  classes: unknown,
  folder: string,
  metadataProps: Record<string, string> | undefined,
): Promise<{ labels?: string[]; source: string }> {
  if (Array.isArray(classes)) return { labels: classes.map(String), source: 'metadata.classes' };
  if (typeof classes === 'string') {
    const file = path.resolve(folder, expandHome(classes));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new MetadataError(`'metadata.classes' names the labels file ${file}, which cannot be read: ${(err as Error).message}`, 'metadata.classes');
    }
    const labels = parseLabels(text);
    if (!labels) throw new MetadataError(`'metadata.classes' labels file ${file} holds no labels`, 'metadata.classes');
    return { labels, source: file };
  }
  for (const key of PROP_KEYS) {
    const v = metadataProps?.[key];
    if (v === undefined) continue;
    // Exporters also write a plain "cat,dog,bird" list.
    const commaList = !/^\s*[[{]/.test(v) && !v.includes('\n') && v.includes(',');
    const labels = commaList ? v.split(',').map((s) => s.trim()) : parseLabels(v);
    if (labels) return { labels, source: `metadata_props.${key}` };
  }
  return { source: 'class index' };
}
