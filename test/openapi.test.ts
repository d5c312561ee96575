import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { generateModelSchema, generateOpenApi } from '../src/openapi.ts';
import { tempDir } from './helpers/app.ts';

const root = path.resolve(import.meta.dirname, '..');

t.test('committed openapi/openapi.json is current (run `npm run openapi`)', async (t) => {
  const fresh = await generateOpenApi(await tempDir());
  const committed = await readFile(path.join(root, 'openapi/openapi.json'), 'utf8');
  t.equal(committed, fresh, 'openapi/openapi.json is stale: run npm run openapi');
});

t.test('committed models/schema.json is current', async (t) => {
  const committed = await readFile(path.join(root, 'models/schema.json'), 'utf8');
  t.equal(committed, generateModelSchema(), 'models/schema.json is stale: run npm run openapi');
});

t.test('the default models folder holds valid model objects with remote sources and no binaries', async (t) => {
  const { ModelRegistry, staticState } = await import('../src/registry/registry.ts');
  const reg = new ModelRegistry({ modelsDir: path.join(root, 'models') });
  await reg.scan();
  const list = reg.list();
  t.ok(list.length >= 3);
  for (const e of list) {
    t.equal(staticState(e), 'not-downloaded', e.id);
    t.match(e.binaries[0]?.url, /^https:\/\/huggingface\.co\/.+\/resolve\/main\/.+\.gguf$/, e.id);
  }
});
