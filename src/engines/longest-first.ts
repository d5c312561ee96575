/**
 * How many tokens of each text of a pair to keep when both must fit in `room`, as Hugging Face
 * tokenizers' `longest_first` truncation cuts them (closed form of its token-by-token loop,
 * utils/truncation.rs): the shorter keeps its length when the longer fits beside it, else each
 * gets half, the longer one the odd token. Cross-encoders were trained on pairs cut this way.
 */
export function longestFirst(a: number, b: number, room: number): [keepA: number, keepB: number] {
  if (a + b <= room) return [a, b];
  const short = Math.min(a, b);
  let keepShort = short;
  let keepLong = short > room ? short : Math.max(short, room - short);
  if (keepShort + keepLong > room) {
    keepShort = Math.floor(room / 2);
    keepLong = keepShort + (room % 2);
  }
  return a <= b ? [keepShort, keepLong] : [keepLong, keepShort];
}
