import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ErrorSchema } from '../schemas/common.ts';
import { ModelSchema, ProgressSchema, QueueSchema, ModelStateSchema } from '../schemas/models.ts';
import { ParamDescriptorSchema } from '../schemas/system.ts';

/** Schemas referenced by id from many routes; registered once so the document names them. */
export const SHARED_SCHEMAS = [ErrorSchema, QueueSchema, ProgressSchema, ModelSchema, ModelStateSchema, ParamDescriptorSchema];

export const OPENAPI_INFO = {
  title: 'modeld',
  description:
    'OpenAI-compatible local inference server: chat, completions and embeddings from GGUF models (node-llama-cpp), classifications from ONNX models (onnxruntime-node), and Jan model control. Errors use the OpenAI envelope `{error: {message, type, param, code}}`.',
  version: '0.1.0',
};

export default fp(
  async function swaggerPlugin(app: FastifyInstance) {
    for (const s of SHARED_SCHEMAS) app.addSchema(s);
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        // Relative: Swagger UI's "Try it out" goes to whichever host and port served the page.
        servers: [{ url: '/' }],
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
        tags: [
          { name: 'openai', description: 'OpenAI-compatible endpoints' },
          { name: 'models', description: 'Model table and Jan model control' },
          { name: 'system', description: 'Health, status, engines, metrics' },
          { name: 'classifications', description: 'ONNX image and text classifiers (not in OpenAI)' },
          { name: 'tokenizer', description: "llama-server's tokenizer routes (not in OpenAI)" },
          { name: 'rerank', description: 'Documents ranked by relevance to a query with a cross-encoder (llama-server, Jina, Cohere; not in OpenAI)' },
          { name: 'llama-server', description: "llama-server's native /completion and /infill in its own answer shape, and its router mode's model control (not in OpenAI)" },
          { name: 'lmstudio', description: "LM Studio's REST API v0: its model table, and OpenAI's answers with its stats" },
          { name: 'anthropic', description: "Anthropic's Messages API, as llama-server and Ollama offer it" },
          { name: 'ollama', description: "Ollama's native API (chat, generate, embed, model lists)" },
        ],
      },
      refResolver: { buildLocalReference: (json, _base, _frag, i) => (json.$id as string) || `def-${i}` },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'swagger', dependencies: ['error-handler'] },
);
