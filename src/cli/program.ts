import { Command, Option } from 'commander';
import { ConfigError, ConfigSchema, loadConfig, type Config, type FlagValue } from '../config/config.ts';
import type { PullOptions } from './pull.ts';

/** What each command does once its config is built; index.ts wires the real ones, tests stubs. */
export interface CliActions {
  serve(config: Config): Promise<void>;
  ls(config: Config, opts: { json: boolean }): Promise<number>;
  pull(config: Config, model: string, opts: PullOptions): Promise<number>;
  control(config: Config, action: 'rm' | 'start' | 'stop', id: string): Promise<number>;
  copy(config: Config, source: string, destination: string): Promise<number>;
}

/** Option name (commander's camelCase) → the config key it sets, for the flags the CLI has. */
const FLAGS = ['host', 'port', 'modelsDir', 'logLevel', 'jit', 'keepAlive'] as const satisfies ReadonlyArray<keyof Config>;

/**
 * The commander program. No option carries a commander default or parser: loadConfig applies
 * flag > environment > default and checks a flag's text as it checks a variable's (a commander
 * default would count as a flag; `Number` would read `-p ''` as port 0).
 */
export function buildProgram(actions: CliActions, env: NodeJS.ProcessEnv = process.env): Command {
  const def = (key: keyof Config) => String((ConfigSchema.properties[key] as { default?: unknown }).default);
  // The variable's current value is shown because that, not the default, is what applies.
  const src = (key: keyof Config, name: string) => `(default ${def(key)}, env ${name}${env[name] ? `=${env[name]}` : ''})`;

  const program = new Command()
    .name('modeld')
    .description('OpenAI-compatible local inference server for GGUF and ONNX models');

  /** Options of the commands that talk to a running server rather than being one. */
  const clientOptions = (cmd: Command) =>
    cmd
      .option('--host <host>', `host of the modeld server to talk to ${src('host', 'MODELD_HOST')}`)
      .option('-p, --port <port>', `port of the modeld server to talk to ${src('port', 'MODELD_PORT')}`)
      .addHelpText('after', '\nThe first key in MODELD_API_KEY, if set, is sent to the server.');

  /** Builds the config from the flags given on the command line only (see buildProgram). */
  function configFrom(cmd: Command): Config | undefined {
    const given: Partial<Record<keyof Config, FlagValue>> = {};
    for (const k of FLAGS) {
      if (cmd.getOptionValueSource(k) !== 'cli') continue;
      const flag = cmd.options.filter((o) => o.attributeName() === k).map((o) => [o.short, o.long].filter(Boolean).join(', ')).join(' / ');
      given[k] = { flag, value: cmd.getOptionValue(k) as string | boolean };
    }
    try {
      return loadConfig({}, env, given);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      console.error(`modeld: ${err.message}`);
      process.exitCode = 2;
      return undefined;
    }
  }

  program
    .command('serve')
    .description('start the server')
    .option('--host <host>', `interface to bind ${src('host', 'MODELD_HOST')}`)
    .option('-p, --port <port>', `port to listen on ${src('port', 'MODELD_PORT')}`)
    .option('-m, --models-dir <dir>', `models folder ${src('modelsDir', 'MODELD_MODELS_DIR')}`)
    .addOption(new Option('-l, --log-level <level>', `log level ${src('logLevel', 'MODELD_LOG_LEVEL')}`).choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    // Both forms, so that a flag can undo MODELD_JIT=false; with --jit defined, --no-jit sets no default.
    .option('--jit', 'load a stopped model on its first request, whatever MODELD_JIT says')
    .option('--no-jit', `do not load a stopped model on its first request (default: load it, env MODELD_JIT=false${env.MODELD_JIT ? `; set to ${env.MODELD_JIT}` : ''})`)
    .option('--keep-alive <duration>', `idle time before a model unloads, e.g. 5m, 0, -1 ${src('keepAlive', 'MODELD_KEEP_ALIVE')}`)
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (config) await actions.serve(config);
    });

  clientOptions(program.command('ls').alias('list').description('print the model table (from a running server, else from the folder)'))
    .option('-m, --models-dir <dir>', `models folder to read when no server answers ${src('modelsDir', 'MODELD_MODELS_DIR')}`)
    .option('--json', 'print JSON instead of a table')
    .action(async (opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (config) process.exitCode = await actions.ls(config, { json: Boolean(opts.json) });
    });

  // The server, not the CLI, decides where a model lands: pull, rm, start and stop still accept
  // -m (scripts pass it) but no longer list it, as a folder they would use.
  const ignoredModelsDir = () => new Option('-m, --models-dir <dir>').hideHelp();

  clientOptions(program.command('pull').description('create a model object if needed and download it on the running server, following its progress'))
    .argument('<model>', 'model id, http(s) URL, local path, Hugging Face URL or org/repo[:QUANT]')
    .option('-q, --quant <quant>', 'quantization to pull from a repository with several, e.g. Q4_K_M')
    .option('--all', 'pull every quantization of a repository')
    .addOption(ignoredModelsDir())
    .action(async (model: string, opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (config) process.exitCode = await actions.pull(config, model, { quant: opts.quant as string | undefined, all: Boolean(opts.all) });
    });

  for (const [action, what] of [['rm', 'delete a model object and the binaries the server downloaded for it'], ['start', 'load a model'], ['stop', 'unload a model']] as const) {
    clientOptions(program.command(action).description(`${what} (on the running server)`))
      .argument('<id>', 'model id or folder alias')
      .addOption(ignoredModelsDir())
      .action(async (id: string, _opts, cmd: Command) => {
        const config = configFrom(cmd);
        if (config) process.exitCode = await actions.control(config, action, id);
      });
  }

  clientOptions(program.command('cp').description('copy a model as `ollama cp` does: a new model object whose downloaded binaries are hard links of the source\'s (on the running server)'))
    .argument('<source>', 'model id or folder alias')
    .argument('<destination>', 'the new model: a name (id <name>/model) or <folder>/<file>')
    .addOption(ignoredModelsDir())
    .action(async (source: string, destination: string, _opts, cmd: Command) => {
      const config = configFrom(cmd);
      if (config) process.exitCode = await actions.copy(config, source, destination);
    });

  // Usage errors in one line, as every other error: commander's own would be followed by the
  // whole help page, which buries the line that says what was wrong.
  for (const cmd of [program, ...program.commands]) {
    const help = cmd === program ? 'modeld --help' : `modeld ${cmd.name()} --help`;
    cmd.configureOutput({
      outputError: (str, write) => {
        const line = str.replace(/^error: /, '').trim().replace(/\s*\n\(Did you mean (.*)\)$/, '; did you mean $1').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');
        write(`modeld: ${line} (see ${help})\n`);
      },
    });
  }
  return program;
}
