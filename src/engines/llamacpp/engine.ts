import { GeneralChatWrapper, resolveChatWrapper, type ChatWrapper, type GgufFileInfo, type LlamaContext, type LlamaEmbeddingContext, type LlamaModel } from 'node-llama-cpp';
import { ModelObjectError, type Capability, type Engine, type EngineStatus, type LoadedModel, type LoadSpec } from '../engine.ts';
import { LLAMACPP_DESCRIPTORS } from './descriptors.ts';
import { chatTemplateProblem } from './chat-template-check.ts';
import { JanChatWrapper, parsePromptTemplate } from './jan-chat-wrapper.ts';
import { describeRuntime, getLlamaRuntime, runtimeHint, singleThreadPool, type LlamaGpuOption, type LlamaRuntimeInfo } from './llama-runtime.ts';
import { beginningToken, ggufChatTemplate, LoadedLlamaModel } from './loaded-llama-model.ts';
import { RerankPrompt } from './rerank-prompt.ts';
import { loraAdapters, type LoraAdapter } from './lora-adapters.ts';
import { GGUF_POOLING_RANK } from '../../registry/headers/gguf-header.ts';

export interface LlamaCppEngineOptions {
  /** GPU backend: "auto", "cuda", "vulkan", "metal", or "false"/"cpu" for CPU only. Default "auto". */
  gpu?: string;
  /** Decode threads; 0 or absent = the machine's physical cores. */
  threads?: number;
}

/** Default context per sequence when neither the model object nor the start request sets ctx_len, tokens. */
const DEFAULT_CTX_LEN = 4096;
/** GGUF `<arch>.pooling_type` value that means "no pooling" (a generative model). */
const POOLING_NONE = 0;
/** Architectures whose rank head llama.cpp already ends with a softmax (Qwen3-Reranker's yes/no): their output is the score. */
const NORMALIZED_RANK_ARCHS = new Set(['qwen3', 'qwen3vl']);

function gpuOption(gpu: string | undefined): LlamaGpuOption {
  if (gpu === undefined || gpu === 'auto') return 'auto';
  if (gpu === 'false' || gpu === 'cpu' || gpu === 'none' || gpu === '0') return false;
  return gpu as LlamaGpuOption;
}

/**
 * GGUF models through node-llama-cpp: one llama.cpp backend per process (loaded on the first
 * model), one context of `n_parallel` sequences per model, a separate embedding context when
 * the model embeds.
 */
export class LlamaCppEngine implements Engine {
  readonly name = 'llamacpp' as const;
  readonly descriptors = LLAMACPP_DESCRIPTORS;
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(['chat', 'completion', 'embedding', 'rerank', 'tokenize']);
  readonly #options: LlamaCppEngineOptions;
  #runtime: LlamaRuntimeInfo | undefined;

  constructor(options: LlamaCppEngineOptions = {}) {
    this.#options = options;
  }

  /** Loads the llama.cpp backend ahead of the first model and says which build runs. */
  async prepare(): Promise<{ message: string; hint?: string }> {
    const { info } = await getLlamaRuntime({ gpu: gpuOption(this.#options.gpu), threads: this.#options.threads || undefined });
    this.#runtime = info;
    return { message: describeRuntime(info), hint: runtimeHint(info) };
  }

  async status(): Promise<EngineStatus> {
    return this.#runtime
      ? { available: true, info: { ...this.#runtime } }
      : { available: true, reason: 'the llama.cpp backend loads with the first model' };
  }

  async load(spec: LoadSpec, signal: AbortSignal): Promise<LoadedModel> {
    const { llama, info } = await getLlamaRuntime({ gpu: gpuOption(this.#options.gpu), threads: this.#options.threads || undefined });
    this.#runtime = info;
    signal.throwIfAborted();
    const p = spec.params;
    const made: Array<{ dispose(): Promise<void> }> = [];
    try {
      const model: LlamaModel = await llama.loadModel({
        modelPath: spec.files[0]!,
        gpuLayers: p.ngl as number | 'auto' | 'max' | undefined,
        useMmap: p.use_mmap as boolean | undefined,
        defaultContextFlashAttention: (p.flash_attn as boolean | undefined) ?? 'auto',
        loadSignal: signal,
      });
      made.push(model);
      signal.throwIfAborted();
      const threads = (p.threads as number | undefined) || info.threads;
      const nBatch = p.n_batch as number;
      const ctxLen = (p.ctx_len as number | undefined) ?? Math.min(model.trainContextSize, DEFAULT_CTX_LEN);
      const meta = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
      const arch = String(meta.general?.architecture ?? '');
      const pooling = meta[arch]?.pooling_type;
      const embeddingModel = spec.metadata.task === 'embedding' || (typeof pooling === 'number' && pooling !== POOLING_NONE);
      const reranker = pooling === GGUF_POOLING_RANK ? { prompt: new RerankPrompt(model), relevance: rerankRelevance(arch, spec.metadata) } : undefined;
      // A reranker's only context is this one: it runs the relevance head.
      const wantEmbedding = reranker !== undefined || ((p.embedding as boolean | undefined) ?? embeddingModel);

      let context: LlamaContext | undefined;
      let chatWrapper: ChatWrapper | undefined;
      let chatTemplateSetAside: string | undefined;
      let lora: LoraAdapter[] = [];
      if (!embeddingModel) {
        // Tried in a worker while the context is made; awaited before node-llama-cpp renders the template.
        const template = ggufChatTemplate(model);
        // A trial that cannot run at all (no worker, no renderer) says nothing about the template.
        const trial = template !== undefined && template.trim() !== ''
          ? chatTemplateProblem(template, { bos: model.tokens.bosString ?? '', eos: model.tokens.eosString ?? '' }).catch(() => undefined)
          : undefined;
        lora = await loraAdapters(spec.folder, p.lora as string[] | null | undefined, p.lora_scale as number, arch);
        context = await model.createContext({
          ...(lora.length > 0 ? { lora: { adapters: lora } } : {}),
          sequences: p.n_parallel as number,
          contextSize: ctxLen,
          batchSize: nBatch,
          threads,
          createSignal: signal,
          failedCreationRemedy: false,
        });
        made.push(context);
        chatTemplateSetAside = await trial;
        signal.throwIfAborted();
        chatWrapper = this.#chatWrapper(model, p, chatTemplateSetAside !== undefined);
      }
      let embeddingContext: LlamaEmbeddingContext | undefined;
      let embeddingContextSize: number | undefined;
      if (wantEmbedding) {
        embeddingContextSize = Math.min(ctxLen, model.trainContextSize);
        embeddingContext = await model.createEmbeddingContext({ contextSize: embeddingContextSize, batchSize: Math.max(nBatch, embeddingContextSize), threads, createSignal: signal });
        made.push(embeddingContext);
      }
      signal.throwIfAborted();
      const pipelineSampling = context !== undefined && singleThreadPool();
      return new LoadedLlamaModel({
        id: spec.id, llama, model, context, embeddingContext, embeddingContextSize, reranker, chatWrapper, params: p, onBatch: spec.onBatch, pipelineSampling,
        facts: {
          engine: 'llamacpp',
          ctx_len: context?.contextSize ?? embeddingContextSize,
          n_parallel: context?.totalSequences ?? 1,
          n_batch: context?.batchSize ?? nBatch,
          threads,
          pipelined_sampling: pipelineSampling,
          gpu_layers: model.gpuLayers,
          flash_attn: context?.flashAttention ?? false,
          embedding: Boolean(embeddingContext) && !reranker,
          ...(model.tokens.bosString != null ? { bos_token: model.tokens.bosString } : {}),
          ...(model.tokens.eosString != null ? { eos_token: model.tokens.eosString } : {}),
          ...(reranker ? { reranker: true } : {}),
          ...(lora.length > 0 ? { lora: lora.map((a) => ({ file: a.filePath, scale: a.scale })) } : {}),
          ...(chatWrapper ? { chat_template: chatWrapper.wrapperName } : {}),
          ...(chatTemplateSetAside ? { chat_template_set_aside: `the GGUF's tokenizer.chat_template: ${chatTemplateSetAside}` } : {}),
          backend: info,
        },
      });
    } catch (err) {
      for (const r of made.reverse()) await r.dispose().catch(() => undefined);
      if (signal.aborted) throw signal.reason;
      throw err;
    }
  }

  /**
   * The GGUF's own template through node-llama-cpp; Jan's prompt pieces for a model without one.
   * A template set aside (it would hang or exhaust the process) is not rendered at all: the
   * format is chosen from the model's name and architecture, as node-llama-cpp does for a
   * template that fails.
   */
  #chatWrapper(model: LlamaModel, p: Record<string, unknown>, setAside: boolean): ChatWrapper {
    const template = ggufChatTemplate(model);
    if (template !== undefined && setAside) {
      const fileInfo: GgufFileInfo = { ...model.fileInfo, metadata: { ...model.fileInfo.metadata, tokenizer: { ...model.fileInfo.metadata.tokenizer, chat_template: undefined } } };
      return resolveChatWrapper({ bosString: model.tokens.bosString, filename: model.filename, fileInfo, tokenizer: model.tokenizer, warningLogs: false }) ?? new GeneralChatWrapper();
    }
    if (template !== undefined) return resolveChatWrapper(model);
    const fromTemplate = typeof p.prompt_template === 'string' ? parsePromptTemplate(p.prompt_template) : undefined;
    const pieces = {
      systemPrompt: fromTemplate?.systemPrompt ?? (p.system_prompt as string),
      userPrompt: fromTemplate?.userPrompt ?? (p.user_prompt as string),
      aiPrompt: fromTemplate?.aiPrompt ?? (p.ai_prompt as string),
    };
    const special = Object.values(pieces).some((text) => model.tokenize(text, true).join() !== model.tokenize(text, false).join());
    return new JanChatWrapper({ ...pieces, bos: beginningToken(model) != null, specialPrefixes: special });
  }

  /** Models are disposed by their owner (the manager); the backend lives as long as the process. */
  async dispose(): Promise<void> {}
}

/**
 * How a GGUF reranker's head output becomes `relevance_score`: the sigmoid of its logit (0–1, as
 * the ONNX cross-encoders score and as Jina and Cohere answer), or the output as it is for the
 * heads llama.cpp already ends with a softmax; `metadata.output.activation: "none"` keeps
 * the raw logit, as llama-server's /rerank returns it.
 */
function rerankRelevance(arch: string, metadata: Record<string, unknown>): (output: number) => number {
  const activation = (metadata.output as { activation?: unknown } | undefined)?.activation;
  if (activation !== undefined && activation !== 'sigmoid' && activation !== 'none') {
    throw new ModelObjectError(`metadata.output.activation ${JSON.stringify(activation)} does not apply to a GGUF reranker: "sigmoid" (the default) or "none" (the raw logit)`, 'metadata.output.activation');
  }
  if (activation === 'none' || NORMALIZED_RANK_ARCHS.has(arch)) return (output) => output;
  return (output) => 1 / (1 + Math.exp(-output));
}
