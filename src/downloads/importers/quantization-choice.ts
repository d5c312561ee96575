/** Quantizations in the order a default is picked when the user names none (Ollama and LM Studio default to Q4_K_M too). */
export const PREFERRED_QUANTS = ['Q4_K_M', 'Q4_K_S', 'Q5_K_M', 'Q4_0', 'Q8_0'];

/**
 * The model a repository's default pull takes: the first of PREFERRED_QUANTS it has, else
 * its smallest. `quantOf` and `sizeOf` read a model's quantization and byte size.
 */
export function defaultQuantization<T>(models: readonly T[], quantOf: (m: T) => string, sizeOf: (m: T) => number): T | undefined {
  return PREFERRED_QUANTS.map((q) => models.find((m) => quantOf(m) === q)).find((m) => m !== undefined)
    ?? [...models].sort((a, b) => sizeOf(a) - sizeOf(b))[0];
}

/** Whether a model's quantization is the one asked for (`q4_k_m` names Q4_K_M). */
export const sameQuantization = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
