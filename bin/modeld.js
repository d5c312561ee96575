#!/usr/bin/env node
// llama.cpp's OpenMP build gives every thread that calls into it a worker team of its own, and
// node-llama-cpp decodes on whichever libuv pool thread is free: with libuv's default of 4 pool
// threads consecutive decodes hop between teams and run 15% (one sequence) to 50% (four in one
// batch) slower on 2 cores (docs/cpu-batching.md). One pool thread keeps every decode on one team.
// It must be set before anything uses the pool; an explicit UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= '1';

// Runs the TypeScript sources through tsx's loader, so the CLI and `npm start` share one code path.
const { register } = await import('tsx/esm/api');
register();
await import('../src/cli/index.ts');
