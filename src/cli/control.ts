import type { Config } from '../config/config.ts';
import { modelPath, ServerClient } from './server-client.ts';

type Action = 'rm' | 'start' | 'stop';

/**
 * Runs one command's calls against the running server: a server that does not answer, or a
 * call that fails, is one `modeld: …` line on stderr and exit code 1; `what` names the command.
 */
async function onServer(config: Config, what: string, run: (client: ServerClient) => Promise<void>): Promise<number> {
  const client = new ServerClient(config);
  if (!(await client.reachable())) {
    console.error(`modeld: no modeld server answers at ${client.base}; start one with \`modeld serve\``);
    return 1;
  }
  try {
    await run(client);
    return 0;
  } catch (err) {
    console.error(`modeld: ${what}: ${(err as Error).message}`);
    return 1;
  }
}

/** `modeld rm|start|stop <id>`: one model-control call to the running server. */
export function controlCommand(config: Config, action: Action, id: string): Promise<number> {
  return onServer(config, `${action} ${id}`, async (client) => {
    // The id may be a folder alias: print the canonical id the server answers.
    if (action === 'rm') {
      const res = await client.request<{ id: string; deleted: boolean }>('DELETE', modelPath(id));
      console.log(`deleted ${res.id}`);
    } else {
      const res = await client.request<{ id: string; state: string }>('POST', modelPath(id, `/${action}`));
      console.log(`${res.id}: ${res.state}`);
    }
  });
}

/** `modeld cp <source> <destination>`: Ollama's copy on the running server (binaries hard-linked). */
export function copyCommand(config: Config, source: string, destination: string): Promise<number> {
  return onServer(config, `cp ${source} ${destination}`, async (client) => {
    const from = await client.request<{ id: string }>('GET', modelPath(source));
    await client.request('POST', '/api/copy', { source: from.id, destination });
    const made = await client.request<{ id: string }>('GET', modelPath(destination.replace(/:latest$/i, '')));
    console.log(`copied ${from.id} to ${made.id}`);
  });
}
