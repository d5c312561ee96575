import type { Config } from '../config/config.ts';
import { controlCommand, copyCommand } from './control.ts';
import { listCommand } from './ls.ts';
import { buildProgram } from './program.ts';
import { pullCommand } from './pull.ts';

async function serve(config: Config): Promise<void> {
  const { startServer } = await import('../server.ts');
  try {
    await startServer(config);
  } catch (err) {
    // A port in use or a models path that is a file: one line, and no server left half up.
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? `${config.host}:${config.port} is already in use; choose another port with -p (MODELD_PORT)` : e.message;
    console.error(`modeld: cannot serve: ${why}`);
    process.exit(1);
  }
}

await buildProgram({ serve, ls: listCommand, pull: pullCommand, control: controlCommand, copy: copyCommand }).parseAsync(process.argv);
