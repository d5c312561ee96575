/**
 * The one interface every engine implements. An engine turns a model's files and merged
 * load parameters into a LoadedModel, a disposable native resource with capabilities.
 * Domain code only: nothing here knows about HTTP.
 */
export const ENGINE_NAMES = ['llamacpp', 'onnx', 'api', 'tensorrt'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** `tokenize`: the model's tokenizer can be used on its own (tokenize, detokenize, the chat template's prompt). */
export type Capability = 'chat' | 'completion' | 'embedding' | 'classification' | 'rerank' | 'tokenize';

/**
 * A load failed because of what the model object says (classifier metadata that does not fit
 * the model, labels that do not match its outputs), not because of the server: answered 422
 * model_invalid naming `field`.
 */
export class ModelObjectError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * A run parameter in the descriptor form of the parameter-definition seed:
 * `{name, default, min_value, max_value, increment, special_type, options, description}`,
 * plus the value `type` and the `scope` it applies at.
 */
export interface ParamDescriptor {
  name: string;
  type: 'integer' | 'number' | 'string' | 'boolean' | 'string_array' | 'integer_or_string' | 'duration';
  default: unknown;
  min_value?: number | null;
  max_value?: number | null;
  increment?: number;
  special_type?: 'dropdown' | 'path';
  options?: unknown[];
  description: string;
  /** `load`: read when the model starts; `request`: may change per request. */
  scope: 'load' | 'request';
}

export interface EngineStatus {
  available: boolean;
  /** Why it is unavailable, or notes on what it runs on. */
  reason?: string;
  /** Backend details: build, devices, threads. */
  info?: Record<string, unknown>;
}

export interface LoadSpec {
  id: string;
  /** Absolute paths of the model's binaries, the primary file first. */
  files: string[];
  /** The model folder. */
  folder: string;
  /** Parameters after precedence and validation: load scope, plus request-scope defaults (model object and start overrides) that each request layers its own values on. */
  params: Record<string, unknown>;
  /** The model object's metadata (classes, preprocess, task...). */
  metadata: Record<string, unknown>;
  /** The model object's `source_url` as written (an api model's server, when `metadata.api` names none). */
  sourceUrl?: string;
  /** What the registry read from the primary binary's header, when it did (saves a second read). */
  header?: Record<string, unknown>;
  /** Called with the rows of every batch the engine runs (for the batch-size metric). */
  onBatch?: (rows: number) => void;
}

/** One item to classify: a text, or an image as base64 or a data URL. */
export type ClassificationInput = { type: 'text'; text: string } | { type: 'image'; image: string };

export interface ClassifyOptions {
  /** Return the k best classes in `scores`, best first. */
  topK?: number;
  /** Return every class score in `scores`, in class index order (unless `topK` is set). */
  scores?: boolean;
}

export interface LabelScore {
  label: string;
  score: number;
}

export interface ClassificationItem {
  /** Position of the item in the request's input. */
  index: number;
  /** The best class. */
  label: string;
  score: number;
  scores?: LabelScore[];
}

/** One parallel sequence of a loaded model. */
export interface SlotView {
  id: number;
  /** Tokens the sequence's context holds at most. */
  nCtx: number;
  /** A request holds the sequence now. */
  processing: boolean;
  /** Tokens whose KV state the sequence keeps (the last conversation's, for the next turn to reuse). */
  cachedTokens: number;
}

/** Relevance scores of documents for a query (a cross-encoder reranker), in the documents' order. */
export interface RankResult {
  scores: number[];
  usage: { prompt_tokens: number };
}

export interface ClassificationResult {
  data: ClassificationItem[];
  usage: { items: number; prompt_tokens?: number; total_tokens?: number };
}

/** A chat message after the route has flattened OpenAI's content parts to text. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  /**
   * An assistant message's tool calls, each with the answer the client sent for it (OpenAI's
   * `tool` messages that follow, folded in by the route).
   */
  toolCalls?: ChatToolCall[];
}

export interface ChatToolCall {
  name: string;
  /** The arguments, parsed. */
  arguments: unknown;
  /** The tool's answer as the client sent it. */
  result: string;
}

/** A function the model may call (OpenAI `tools[].function`). */
export interface ToolFunction {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object; none = no arguments. */
  parameters?: Record<string, unknown>;
  /** The request field that gave `parameters`, for errors (`tools[0].function.parameters`). */
  parametersField?: string;
}

/** OpenAI `tools`, `tool_choice` and `parallel_tool_calls`, for a chat that may call tools. */
export interface ToolOptions {
  functions: ToolFunction[];
  /** `auto`: the model decides; `required`: it calls one or more; `{ name }`: it calls that one. */
  choice: 'auto' | 'required' | { name: string };
  /** More than one call in an answer. */
  parallel: boolean;
}

/** A piece of a tool call as it streams: its start (index and name), or more of its arguments. */
export interface ToolCallDelta {
  index: number;
  name?: string;
  arguments?: string;
}

/** A tool call the model made: its arguments as JSON text, as OpenAI sends them. */
export interface ToolCallOut {
  name: string;
  arguments: string;
}

/** Constrains generated text (OpenAI `response_format`). */
export type ResponseFormat = { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; schema: Record<string, unknown> };

/** A token as OpenAI's logprobs show it: its text, the log of its probability, its UTF-8 bytes. */
export interface TokenChoice {
  token: string;
  logprob: number;
  bytes: number[];
}

/** One generated token's log-probability under the model, and the likeliest tokens at its place. */
export interface TokenLogprob extends TokenChoice {
  /** The `GenerateOptions.logprobs` likeliest tokens, likeliest first. */
  top: TokenChoice[];
}

export interface GenerateOptions {
  /**
   * The request's own run parameters (`temperature`, `max_tokens`, `stop`, ...), already
   * checked against the engine's descriptors; the model fills in its defaults beneath them.
   */
  params: Record<string, unknown>;
  responseFormat?: ResponseFormat;
  /** Tools the model may call (chat only). */
  tools?: ToolOptions;
  /**
   * Fill in the middle (completions only): the text after the gap, the prompt being the text
   * before it. The model must have fill-in-the-middle tokens (a code model's `<|fim_prefix|>`…).
   */
  suffix?: string;
  /**
   * Asked after each piece of text has gone out; true ends the answer there as `max_tokens`
   * would (finish reason `length`): llama-server's `t_max_predict_ms`.
   */
  limitWhen?: () => boolean;
  /** llama-server's /infill beyond `suffix` (see {@link InfillOptions}). */
  infill?: InfillOptions;
  /** Stops the generation within one token; the call then rejects with the signal's reason. */
  signal: AbortSignal;
  /**
   * Called once the request has passed the engine's own checks (prompt length, grammar,
   * logit_bias ids) and its generation begins. A stream starts its HTTP answer here, so a
   * request the engine refuses still gets an ordinary error with its status. An engine that
   * knows the prompt's length here says it, with the tokens it expects to take from its cache
   * (Anthropic's `message_start` reports them before the answer).
   */
  onStart?: (prompt?: { tokens: number; cachedTokens: number }) => void;
  /**
   * OpenAI `n`: this generation is choice `choice` of several for the same prompt. A fixed
   * seed is offset by it, so the choices differ and the request still repeats.
   */
  choice?: number;
  /**
   * Return each generated token's log-probability and this many likeliest alternatives
   * (OpenAI `logprobs`/`top_logprobs`); unset = none. The probabilities are the model's own
   * (its logits' softmax), before temperature, penalties and truncation, as llama-server reports them.
   */
  logprobs?: number;
  /**
   * Receives each piece of new text as it is decoded, in order (streaming), with the logprobs
   * of the tokens whose text begins in it when `logprobs` is set.
   */
  onText?: (text: string, logprobs?: TokenLogprob[]) => void;
  /**
   * Receives each tool call as it streams (chat with tools, where a grammar writes the call):
   * first its index and name, then pieces of its arguments; together the pieces are a prefix
   * of the call's final `arguments`.
   */
  onToolCall?: (delta: ToolCallDelta) => void;
  /** Receives each piece of a reasoning model's thought (chat only), kept out of `onText`. */
  onReasoning?: (text: string, logprobs?: TokenLogprob[]) => void;
}

export interface TokenUsage {
  /** Tokens of the prompt as the model saw it (template and special tokens included). */
  promptTokens: number;
  /** Tokens the model generated (stop sequences included, though they are not in `text`). */
  completionTokens: number;
  /** Of `completionTokens`, those of a reasoning model's thought (its tags included); absent when the engine does not tell them apart. */
  reasoningTokens?: number;
  /** Leading prompt tokens reused from the engine's cache, not evaluated again (OpenAI `prompt_tokens_details.cached_tokens`); absent when the engine has no prompt cache. */
  cachedPromptTokens?: number;
  /** Prompt tokens the engine evaluated for this request, as it measured them (promptTokens − cachedPromptTokens when the cache worked as reported). */
  evaluatedPromptTokens?: number;
}

/** What llama-server's /infill adds to a fill-in-the-middle prompt. */
export interface InfillOptions {
  /** Text after the prefix that the middle continues (llama-server's `prompt`: what is typed so far). */
  prompt?: string;
  /** Other files shown before the prefix, with the model's repository and file-separator tokens when it has them. */
  extra?: Array<{ filename: string; text: string }>;
  /**
   * Cut the prefix (to its last ¾ batch), the suffix (to its first ¼ batch) and the extra
   * files (to what the context leaves beside a batch and twice `max_tokens`) as llama-server
   * does, instead of refusing a prompt the context cannot hold.
   */
  fit?: boolean;
}

export interface GenerationResult {
  text: string;
  /** A reasoning model's thought, split from `text` by the chat template's thought segment (chat only). */
  reasoning?: string;
  /** `stop`: the model ended or a stop sequence matched; `length`: max_tokens or the context ran out. */
  finishReason: 'stop' | 'length';
  /** The request's stop string that ended the answer, when one did. */
  stopSequence?: string;
  usage: TokenUsage;
  /** With `GenerateOptions.logprobs`: one entry per token of the answer (thought included), stop sequences excluded. */
  logprobs?: TokenLogprob[];
}

/** A chat answer, which may call tools. */
export interface ChatResult extends Omit<GenerationResult, 'finishReason'> {
  /** As {@link GenerationResult}'s, or `tool_calls`: the answer called tools (`toolCalls`). */
  finishReason: GenerationResult['finishReason'] | 'tool_calls';
  /** With `GenerateOptions.tools`: the calls the answer made (then `text` is what came before them). */
  toolCalls?: ToolCallOut[];
}

export interface EmbeddingResult {
  vectors: number[][];
  promptTokens: number;
}

/** An element of a token prompt: a token id, or (in a mixed prompt) a text tokenized in place. */
export type PromptPiece = number | string;

export interface LoadedModel {
  readonly capabilities: ReadonlySet<Capability>;
  /** Requests that truly run at once (llama context sequences; batch slots for ONNX). */
  readonly concurrency: number;
  /** Facts about the loaded instance, shown in the model state. */
  readonly info?: Record<string, unknown>;
  /** The model's own chat template source (a GGUF's Jinja), as llama-server's /props gives it. */
  readonly chatTemplate?: string;
  /** The model's parallel sequences as llama-server's /slots shows its slots. */
  slots?(): SlotView[];
  /**
   * Continues a raw prompt (capability `completion`): a text, or token ids taken verbatim (no
   * BOS added, as OpenAI and llama-server take them), or ids and texts mixed (llama-server's
   * form: the texts tokenized in place, BOS only when a text comes first).
   */
  complete?(prompt: string | readonly PromptPiece[], options: GenerateOptions): Promise<GenerationResult>;
  /**
   * A token (or mixed) prompt as text (for `echo` and logprobs' `text_offset`), special tokens
   * written out; an id outside the vocabulary is a 400 naming `prompt`.
   */
  promptText?(prompt: readonly PromptPiece[]): string;
  /**
   * Throws the 400 `complete` would throw for this prompt before generating (an id outside the
   * vocabulary, naming `prompt[i]`; an empty prompt; one the context cannot hold), so that a
   * request with several prompts is refused before any of them starts a stream.
   */
  checkPrompt?(prompt: string | readonly PromptPiece[]): void;
  /**
   * A text's token ids (capability `tokenize`): `addSpecial` puts the model's BOS first;
   * `parseSpecial` reads special-token text (`<|im_start|>`) as those tokens.
   */
  tokenize?(text: string, options: { addSpecial: boolean; parseSpecial: boolean }): number[];
  /** Each token's text and own bytes; an id outside the vocabulary is a 400 naming `field[i]`. */
  tokenPieces?(tokens: readonly number[], field: string): Array<{ text: string; bytes: number[] }>;
  /** Token ids as text, special tokens written out; an id outside the vocabulary is a 400 naming `field[i]`. */
  detokenize?(tokens: readonly number[], field: string): string;
  /** The chat template's prompt for a conversation, as a chat answer would read it, and its length in tokens. */
  renderChat?(messages: ChatMessage[], tools?: ToolOptions): { prompt: string; tokens: number };
  /** Answers a conversation through the model's chat template (capability `chat`). */
  chat?(messages: ChatMessage[], options: GenerateOptions): Promise<ChatResult>;
  /** One vector per input, in order (capability `embedding`). */
  embed?(inputs: string[], signal: AbortSignal): Promise<EmbeddingResult>;
  /** Idempotent; frees native memory. */
  dispose(): Promise<void>;
  /** Present with the `classification` capability; `signal` drops the request's work. */
  classify?(inputs: ClassificationInput[], options: ClassifyOptions, signal: AbortSignal): Promise<ClassificationResult>;
  /**
   * Scores each document's relevance to the query (capability `rerank`; llama-server's and
   * Jina's /v1/rerank): a cross-encoder that reads the query and the document as one input (an
   * ONNX text classifier over a sentence pair, or a GGUF with llama.cpp's rank pooling). A 400
   * model_not_capable when the model is no such model.
   */
  rank?(query: string, documents: string[], signal: AbortSignal): Promise<RankResult>;
}

export interface Engine {
  readonly name: EngineName;
  readonly descriptors: readonly ParamDescriptor[];
  /**
   * What a model of this engine can do at most; a loaded model reports what it really does.
   * Lets a request the engine can never serve be refused before a load (JIT) it would waste.
   */
  readonly capabilities: ReadonlySet<Capability>;
  status(): Promise<EngineStatus>;
  /** Optional warm-up at server start: loads the native backend and describes it for the log. */
  prepare?(): Promise<{ message: string; hint?: string }>;
  /** Loads; honours `signal` during the load and frees what it made when aborted. */
  load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel>;
  dispose(): Promise<void>;
}
