#!/usr/bin/env node
'use strict';
// llama.cpp's OpenMP build gives every thread that calls into it a worker team of its own, and
// node-llama-cpp decodes on whichever libuv pool thread is free: with libuv's default of 4 pool
// threads consecutive decodes hop between teams and run 15% (one sequence) to 50% (four in one
// batch) slower on 2 cores (docs/cpu-batching.md §4). One pool thread keeps every decode on one
// team. An explicit UV_THREADPOOL_SIZE wins. This file is CommonJS on purpose: Node reads an ES
// module entry through the pool, which would fix the pool's size before this line runs. An ES
// module preload (`--import`, `--loader`, also from NODE_OPTIONS) has started the pool already:
// then the variable stays unset, so the start-up hint tells the truth and says what to set.
const preloaded = /--(?:import|loader|experimental-loader)\b/.test(`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`);
if (!preloaded) process.env.UV_THREADPOOL_SIZE ??= '1';

// Runs the TypeScript sources through tsx's loader, so the CLI and `npm start` share one code path.
import('tsx/esm/api')
  .then(({ register }) => {
    register();
    return import('../src/cli/index.ts');
  })
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
