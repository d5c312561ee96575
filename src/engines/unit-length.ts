/** The vector scaled to unit length (zero stays zero), as OpenAI's embeddings and llama-server's are. */
export function unitLength(v: readonly number[]): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? v.map((x) => x / norm) : [...v];
}
