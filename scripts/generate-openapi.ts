// Writes openapi/openapi.json and models/schema.json from the route and model-object schemas.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateModelSchema, generateOpenApi } from '../src/openapi.ts';

const root = path.resolve(import.meta.dirname, '..');
const empty = await mkdtemp(path.join(os.tmpdir(), 'modeld-openapi-'));
try {
  await writeFile(path.join(root, 'openapi/openapi.json'), await generateOpenApi(empty));
  await writeFile(path.join(root, 'models/schema.json'), generateModelSchema());
  console.log('wrote openapi/openapi.json and models/schema.json');
} finally {
  await rm(empty, { recursive: true, force: true });
}
