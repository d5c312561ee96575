#!/usr/bin/env node
// Runs the TypeScript sources through tsx's loader, so the CLI and `npm start` share one code path.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
