import { buildApp } from './app.ts';
import { loadConfig } from './config/config.ts';
import { ModelObjectFileSchema } from './registry/model-object-schema.ts';

/**
 * The generated documents: the OpenAPI file (by booting the app without listening and asking
 * @fastify/swagger) and the JSON Schema of model.json. Deterministic, so a test can compare
 * them with the committed files.
 */
export async function generateOpenApi(modelsDir: string): Promise<string> {
  const config = loadConfig({ modelsDir, logLevel: 'silent', watch: false }, {});
  const app = await buildApp({ config, logger: false });
  try {
    await app.ready();
    return JSON.stringify(app.swagger(), null, 2) + '\n';
  } finally {
    await app.close();
  }
}

export function generateModelSchema(): string {
  return JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...ModelObjectFileSchema }, null, 2) + '\n';
}
