import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config/config.ts';
import { controlCommand } from './control.ts';
import { listCommand } from './ls.ts';
import { pullCommand } from './pull.ts';

const program = new Command()
  .name('modeld')
  .description('OpenAI-compatible local inference server for GGUF and ONNX models')
  .showHelpAfterError();

const serverOptions = (cmd: Command) =>
  cmd
    .option('--host <host>', 'interface to bind (MODELD_HOST)')
    .option('-p, --port <port>', 'port (MODELD_PORT)', (v) => Number(v))
    .option('-m, --models-dir <dir>', 'models folder (MODELD_MODELS_DIR)');

function configFrom(opts: Record<string, unknown>): Config {
  try {
    return loadConfig({
      host: opts.host as string | undefined,
      port: opts.port as number | undefined,
      modelsDir: opts.modelsDir as string | undefined,
      logLevel: opts.logLevel as Config['logLevel'] | undefined,
      jit: opts.jit as boolean | undefined,
      keepAlive: opts.keepAlive as string | undefined,
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`modeld: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

serverOptions(program.command('serve').description('start the server'))
  .addOption(new Option('-l, --log-level <level>', 'log level (MODELD_LOG_LEVEL)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .option('--no-jit', 'do not load a stopped model on its first request (MODELD_JIT=false)')
  .option('--keep-alive <duration>', 'idle time before a model unloads, e.g. 5m, 0, -1 (MODELD_KEEP_ALIVE)')
  .action(async (opts) => {
    const config = configFrom(opts);
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
  });

serverOptions(program.command('ls').alias('list').description('print the model table (from a running server, else from the folder)'))
  .option('--json', 'print JSON instead of a table')
  .action(async (opts) => {
    process.exitCode = await listCommand(configFrom(opts), { json: Boolean(opts.json) });
  });

serverOptions(program.command('pull').description('create a model object if needed and download it on the running server, following its progress'))
  .argument('<model>', 'model id, http(s) URL, local path, Hugging Face URL or org/repo[:QUANT]')
  .option('-q, --quant <quant>', 'quantization to pull from a repository with several, e.g. Q4_K_M')
  .option('--all', 'pull every quantization of a repository')
  .action(async (model: string, opts) => {
    process.exitCode = await pullCommand(configFrom(opts), model, { quant: opts.quant as string | undefined, all: Boolean(opts.all) });
  });

for (const [action, what] of [['rm', 'delete a model object and the binaries the server downloaded for it'], ['start', 'load a model'], ['stop', 'unload a model']] as const) {
  serverOptions(program.command(action).description(`${what} (on the running server)`))
    .argument('<id>', 'model id')
    .action(async (id: string, opts) => {
      process.exitCode = await controlCommand(configFrom(opts), action, id);
    });
}

await program.parseAsync(process.argv);
