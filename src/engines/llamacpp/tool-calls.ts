import type { ChatWrapper } from 'node-llama-cpp';
import type { TokenLogprob, ToolCallDelta, ToolCallOut, ToolFunction } from '../engine.ts';
import { plainText } from './llama-text.ts';
import { StopText } from './stop-text.ts';

/**
 * How a chat template writes a tool call, as plain text: node-llama-cpp reads it from the
 * template (a Jinja template that renders `tools` and `tool_calls`, e.g. Qwen's
 * `<tool_call>\n{"name": "…", "arguments": …}\n</tool_call>`), or gives a template without
 * tool support its own syntax (`||call: name({…})`), documented in the system prompt.
 */
export interface ToolCallSyntax {
  /** What opens a call; the first is what the model is shown, the others are also recognised. */
  prefixes: string[];
  /** Between the name and the arguments; may contain `{{functionName}}`. */
  paramsPrefix: string;
  /** After the arguments; may contain `{{functionName}}`. */
  suffix: string;
  /** Between two calls of one turn (parallel calls). */
  between: string;
  /** The arguments of a function without parameters, as written. */
  emptyParams: string;
}

export function toolCallSyntax(wrapper: ChatWrapper): ToolCallSyntax {
  const call = wrapper.settings.functions.call;
  const between = wrapper.settings.functions.parallelism?.call.betweenCalls;
  const empty = call.emptyCallParamsPlaceholder;
  return {
    prefixes: [call.prefix, ...(call.prefixAlternateMatches ?? [])].map(plainText).filter((p, i, all) => p !== '' && all.indexOf(p) === i),
    paramsPrefix: plainText(call.paramsPrefix),
    suffix: plainText(call.suffix),
    between: between === undefined ? '' : plainText(between),
    emptyParams: empty === undefined || empty === '' ? '' : JSON.stringify(empty),
  };
}

const named = (template: string, name: string) => template.replaceAll('{{functionName}}', name);

/**
 * Splits an answer into its text and its tool calls, the way Ollama reads a model's output:
 * the text before the first call prefix is the content, then calls follow one another.
 * A call must name one of `functions` and carry arguments that parse as JSON; if the first
 * does not, the whole answer is text (a model that writes the prefix in prose). Text after
 * the last call is dropped (the template's own end of turn usually stops it first).
 * Spacing is free where JSON's is (`{"name":"f"` reads as `{"name": "f"`), as models vary it.
 */
export function parseToolCalls(text: string, syntax: ToolCallSyntax, functions: readonly ToolFunction[]): { content: string; calls: ToolCallOut[] } {
  const prefix = new RegExp(syntax.prefixes.map(loose).sort((a, b) => b.length - a.length).join('|'), 'g');
  const start = prefix.exec(text);
  if (!start) return { content: text, calls: [] };
  // Longest names first, so `get` does not shadow `get_weather`.
  const names = functions.map((f) => f.name).sort((a, b) => b.length - a.length);
  const between = new RegExp(`\\s*${loose(syntax.between)}\\s*`, 'y');
  const calls: ToolCallOut[] = [];
  let pos = start.index + start[0].length;
  for (;;) {
    const call = readCall(text, pos, syntax, names);
    if (!call) break;
    calls.push(call.call);
    between.lastIndex = call.end;
    pos = between.exec(text) ? between.lastIndex : call.end;
    prefix.lastIndex = pos;
    const next = prefix.exec(text);
    if (next?.index !== pos) break;
    pos += next[0].length;
  }
  if (calls.length === 0) return { content: text, calls };
  return { content: text.slice(0, start.index).trimEnd(), calls };
}

/** JSON punctuation and whitespace: a syntax piece is matched as its other parts with free spacing between. */
const LOOSE_SPLIT = /(\s+|[{}:,])/;

/**
 * A syntax piece as a pattern: its whitespace optional and free, as is the spacing around
 * JSON punctuation; free spacing after it unless it ends inside a string (`{"name": "`).
 */
function loose(piece: string): string {
  const parts = piece.split(LOOSE_SPLIT).filter((p) => p.trim() !== '').map(escapeRegExp);
  if (parts.length === 0) return '';
  return parts.join('\\s*') + (piece.trimEnd().endsWith('"') ? '' : '\\s*');
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The literal start every match of a piece's {@link loose} pattern begins with: what the
 * stream holds back on, so it never sends text that turns out to open a call.
 */
export function looseHead(piece: string): string {
  return piece.split(LOOSE_SPLIT).find((p) => p.trim() !== '') ?? '';
}

function readCall(text: string, pos: number, syntax: ToolCallSyntax, names: readonly string[]): { call: ToolCallOut; end: number } | undefined {
  for (const name of names) {
    const head = new RegExp(`${escapeRegExp(name)}${loose(named(syntax.paramsPrefix, name))}`, 'y');
    head.lastIndex = pos;
    if (!head.exec(text)) continue;
    const args = readArguments(text, head.lastIndex, named(syntax.suffix, name), syntax.emptyParams);
    if (args) return { call: { name, arguments: args.json }, end: args.end };
  }
  return undefined;
}

/**
 * The arguments end at the first suffix after which they parse as JSON (a string argument may
 * contain the suffix's text); a model that ended its turn before writing the suffix is
 * read to the end of the answer.
 */
function readArguments(text: string, from: number, suffix: string, emptyParams: string): { json: string; end: number } | undefined {
  const parse = (raw: string): string | undefined => {
    const body = raw.trim();
    if (body === '' || body === emptyParams) return '{}';
    // As written: re-serialised, a number beyond double range would turn into null.
    return isJson(body) ? body : undefined;
  };
  const ends = loose(suffix);
  if (ends) {
    const re = new RegExp(ends, 'g');
    re.lastIndex = from;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const json = parse(text.slice(from, m.index));
      if (json !== undefined) return { json, end: m.index + m[0].length };
      re.lastIndex = m.index + 1;
    }
  }
  // Cut short: drop whatever part of the suffix made it.
  const rest = text.slice(from).trimEnd();
  const json = parse(rest.slice(0, withoutSuffixStart(rest, suffix, 0)));
  return json === undefined ? undefined : { json, end: text.length };
}

/**
 * Streams the text before the first tool call and holds back the rest: text that may still
 * grow into a call prefix waits, as do trailing spaces, so a client never sees a piece of
 * `<tool_call>` in `content`. When the answer ends, {@link finish} sends what the content
 * turned out to be beyond what went out (the whole answer, when its calls did not parse).
 */
export class ToolCallSplit {
  readonly #emit: (text: string, logprobs?: TokenLogprob[]) => void;
  readonly #stop: StopText;
  #space = '';
  /** Length of the content sent. */
  #sent = 0;
  #lps: TokenLogprob[] | undefined;

  constructor(syntax: ToolCallSyntax, emit: (text: string, logprobs?: TokenLogprob[]) => void = () => undefined) {
    this.#emit = emit;
    this.#stop = new StopText(syntax.prefixes.map(looseHead), (text) => this.#out(text));
  }

  /** Text as the answer streams, with the logprobs of the tokens it begins (sent with the text they lead to). */
  push(text: string, logprobs?: TokenLogprob[]): void {
    if (logprobs) (this.#lps ??= []).push(...logprobs);
    this.#stop.push(text);
  }

  /** Where a call may begin: the literal start seen in the content (a {@link looseHead}), if any yet. */
  get opened(): string | undefined {
    return this.#stop.matchedStop;
  }

  /** The content before {@link opened}, spaces included. */
  get before(): string {
    return this.#stop.text;
  }

  /** `content`: the answer's text less its parsed calls; it begins with what was sent. */
  finish(content: string): void {
    if (content.length > this.#sent) this.#send(content.slice(this.#sent));
  }

  #out(text: string): void {
    const buf = this.#space + text;
    const body = buf.trimEnd();
    this.#space = buf.slice(body.length);
    if (body) this.#send(body);
  }

  #send(text: string): void {
    this.#sent += text.length;
    this.#emit(text, this.#lps?.splice(0));
  }
}

/**
 * Reads calls as a grammar writes them (the syntax's literal pieces exactly, free JSON inside
 * the arguments) while they stream: each call's name once it is whole, then its arguments as
 * they come, holding back what may still be the suffix or trailing space, so the pieces add up
 * to the arguments {@link parseToolCalls} reads from the whole text.
 */
export class ToolCallStream {
  readonly #syntax: ToolCallSyntax;
  readonly #names: readonly string[];
  readonly #emit: (delta: ToolCallDelta) => void;
  #buf = '';
  #pos = 0;
  #index = -1;
  #state: 'prefix' | 'name' | 'args' | 'between' | 'done';
  #name = '';
  /** Where the streamed arguments end in the text; −1 before their first character. */
  #sent = -1;
  /** Suffixes before here were tried. */
  #scanned = 0;

  /** @param opened the text starts after the first call's prefix (the prompt ended with it). */
  constructor(syntax: ToolCallSyntax, functions: readonly ToolFunction[], emit: (delta: ToolCallDelta) => void, opened = false) {
    this.#syntax = syntax;
    this.#names = functions.map((f) => f.name).sort((a, b) => b.length - a.length);
    this.#emit = emit;
    this.#state = opened ? 'name' : 'prefix';
  }

  push(text: string): void {
    this.#buf += text;
    while (this.#step());
  }

  /** One move of the reader; false when it needs more text. */
  #step(): boolean {
    const buf = this.#buf;
    const s = this.#syntax;
    switch (this.#state) {
      case 'prefix':
      case 'between': {
        const lead = (this.#state === 'between' ? s.between : '') + s.prefixes[0]!;
        if (buf.length - this.#pos < lead.length) return false;
        if (!buf.startsWith(lead, this.#pos)) return this.#stop();
        this.#pos += lead.length;
        this.#state = 'name';
        return true;
      }
      case 'name': {
        for (const name of this.#names) {
          const head = name + named(s.paramsPrefix, name);
          if (buf.length - this.#pos < head.length) continue;
          if (!buf.startsWith(head, this.#pos)) continue;
          this.#pos += head.length;
          this.#index++;
          this.#name = name;
          this.#sent = -1;
          this.#scanned = this.#pos;
          this.#state = 'args';
          this.#emit({ index: this.#index, name });
          return true;
        }
        // No name fits: with text enough for the longest, there never will be one.
        if (this.#names.every((n) => buf.length - this.#pos >= (n + named(s.paramsPrefix, n)).length)) return this.#stop();
        return false;
      }
      case 'args': {
        const suffix = named(s.suffix, this.#name);
        // Only suffixes not tried before: each is tried once, so a long argument stays linear.
        for (let i = buf.indexOf(suffix, this.#scanned); i >= 0; i = buf.indexOf(suffix, i + 1)) {
          const body = buf.slice(this.#pos, i).trim();
          // No arguments at all reads as `{}` (parseToolCalls), which the end of the answer sends.
          if (body !== '' && !isJson(body)) continue;
          this.#args(trimmedEnd(buf, this.#pos, i));
          this.#pos = i + suffix.length;
          this.#state = 'between';
          return true;
        }
        this.#scanned = Math.max(this.#pos, buf.length - suffix.length + 1);
        // Out so far: the arguments less trailing space and a possible start of the suffix.
        this.#args(trimmedEnd(buf, this.#pos, withoutSuffixStart(buf, suffix, this.#pos)));
        return false;
      }
      default:
        return false;
    }
  }

  /** Sends the arguments' text up to `end` (a place in the text) beyond what went out, leading space left out. */
  #args(end: number): void {
    if (this.#sent < 0) {
      let start = this.#pos;
      while (start < end && /\s/.test(this.#buf[start]!)) start++;
      if (start === end) return;
      this.#sent = start;
    }
    if (end > this.#sent) {
      this.#emit({ index: this.#index, arguments: this.#buf.slice(this.#sent, end) });
      this.#sent = end;
    }
  }

  #stop(): boolean {
    this.#state = 'done';
    return false;
  }
}

/** Where `text` ends once a start of `suffix` it may end with is cut off (not before `from`). */
function withoutSuffixStart(text: string, suffix: string, from: number): number {
  for (let n = Math.min(suffix.length, text.length - from); n > 0; n--) {
    if (text.endsWith(suffix.slice(0, n))) return text.length - n;
  }
  return text.length;
}

/** `end` moved back over whitespace, not before `from`. */
function trimmedEnd(text: string, from: number, end: number): number {
  while (end > from && /\s/.test(text[end - 1]!)) end--;
  return end;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A GBNF string literal. */
export function gbnfLiteral(text: string): string {
  return `"${text.replace(/[\\"\n\r\t]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c]!)}"`;
}

/**
 * One GBNF file for "the answer is tool calls" (`tool_choice: required` or a named function):
 * the call prefix, one of the functions' names, its arguments by its parameters' grammar
 * (node-llama-cpp's JSON-schema grammar, rules renamed apart), the suffix; with `parallel`,
 * more calls may follow. Once it is complete the model can only end its turn.
 */
export function toolCallGrammar(syntax: ToolCallSyntax, functions: ReadonlyArray<{ name: string; gbnf: string }>, parallel: boolean, opened = false): string {
  const rules: string[] = [];
  const alternatives = functions.map((f, i) => {
    const root = mergeRules(f.gbnf, `f${i}-`, rules);
    return `${gbnfLiteral(f.name + named(syntax.paramsPrefix, f.name))} ${root} ${gbnfLiteral(named(syntax.suffix, f.name))}`;
  });
  const between = syntax.between ? `${gbnfLiteral(syntax.between)} ` : '';
  // `opened`: the prompt already ends with the first call's prefix.
  const first = opened ? 'rest' : 'call';
  const root = parallel ? `root ::= ${first} ( ${between}call )*` : `root ::= ${first}`;
  return [root, `call ::= ${gbnfLiteral(syntax.prefixes[0]!)} rest`, `rest ::= ${alternatives.join(' | ')}`, ...rules].join('\n');
}

/**
 * The literal texts that open a call in free text (`auto`), on which the answer switches to
 * the call grammar: only distinctive ones (`<tool_call>`, `||call`, `[TOOL_CALLS]`); a syntax
 * that opens with bare JSON (`{`) is read after the fact instead.
 */
export function callHeads(syntax: ToolCallSyntax): string[] {
  return [...new Set(syntax.prefixes.map(looseHead))].filter((h) => h.length >= 3 && /[A-Za-z]/.test(h));
}

/**
 * Adds a JSON-schema grammar's rules to `out` under names prefixed with `prefix`; returns its
 * root's body, less the run of newlines node-llama-cpp ends a standalone JSON answer with.
 */
function mergeRules(gbnf: string, prefix: string, out: string[]): string {
  const parsed = gbnf.split('\n').filter((l) => l.trim() !== '').map((line) => {
    const m = /^([a-zA-Z0-9-]+) ::= (.*)$/.exec(line);
    if (!m) throw new Error(`unexpected grammar line: ${line}`);
    return { name: m[1]!, body: m[2]! };
  });
  const names = new Set(parsed.map((r) => r.name));
  let root = '';
  for (const { name, body } of parsed) {
    const renamed = renameRefs(body, names, prefix);
    if (name === 'root') root = `( ${renamed.replace(/\s*"(?:\\n)+" \[\\n\]\*$/, '')} )`;
    else out.push(`${prefix}${name} ::= ${renamed}`);
  }
  if (!root) throw new Error('the grammar has no root rule');
  return root;
}

/** Prefixes rule references in a GBNF rule body, leaving string literals and character classes alone. */
function renameRefs(body: string, names: ReadonlySet<string>, prefix: string): string {
  let out = '';
  let i = 0;
  while (i < body.length) {
    const c = body[i]!;
    if (c === '"' || c === '[') {
      const close = c === '"' ? '"' : ']';
      let j = i + 1;
      while (j < body.length && body[j] !== close) j += body[j] === '\\' ? 2 : 1;
      out += body.slice(i, j + 1);
      i = j + 1;
    } else if (/[a-zA-Z0-9-]/.test(c)) {
      let j = i;
      while (j < body.length && /[a-zA-Z0-9-]/.test(body[j]!)) j++;
      const word = body.slice(i, j);
      out += names.has(word) ? prefix + word : word;
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
