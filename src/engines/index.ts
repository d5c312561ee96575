import type { Config } from '../config/config.ts';
import type { Engine } from './engine.ts';

/** Every engine built into the server. Native libraries load lazily, on first use. */
export async function createEngines(_config: Config): Promise<Engine[]> {
  return [];
}
