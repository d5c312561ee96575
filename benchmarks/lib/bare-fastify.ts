/**
 * The control-plane baseline: a bare Fastify 5 server (no plugins, no
 * schemas, default logger off) answering `GET /v1/models` with the exact JSON
 * modeld returned and `GET /health` with `{status:"ok"}`. Run as its own
 * process: `node --import tsx bare-fastify.ts <port> <models.json>`.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [port, file] = process.argv.slice(2);
const models = JSON.parse(readFileSync(file!, 'utf8')) as unknown;
const app = Fastify({ logger: false });
app.get('/v1/models', async () => models);
app.get('/health', async () => ({ status: 'ok' }));
await app.listen({ host: '127.0.0.1', port: Number(port) });
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
