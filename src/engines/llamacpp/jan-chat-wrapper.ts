import {
  ChatWrapper, LlamaText, SpecialToken, SpecialTokensText,
  type ChatWrapperGenerateContextStateOptions, type ChatWrapperGeneratedContextState, type LlamaTextInputValue,
} from 'node-llama-cpp';

/** Jan's prompt pieces for models without a chat template of their own. */
export interface JanPromptOptions {
  /** Text before each system message. */
  systemPrompt: string;
  /** Text before each user message; the model writing it ends the answer. */
  userPrompt: string;
  /** Text before each assistant message and before the answer. */
  aiPrompt: string;
  /** Start the prompt with the model's BOS token (llama-family vocabularies want it). */
  bos: boolean;
  /**
   * The prefixes hold special tokens ("<|im_start|>"): tokenize them as such. When false they
   * are plain text and the whole prompt is tokenized in one piece, exactly as the same string
   * sent to /v1/completions would be (SentencePiece tokenizes pieces differently at their edges).
   */
  specialPrefixes: boolean;
}

/**
 * Splits Jan's one-line `prompt_template` ("{system_message}\n### Instruction: {prompt}\n###
 * Response:") into its three pieces the way Jan's nitro engine does: the text before
 * `{system_message}`, between it and `{prompt}`, and after `{prompt}`.
 */
export function parsePromptTemplate(template: string): Pick<JanPromptOptions, 'systemPrompt' | 'userPrompt' | 'aiPrompt'> | undefined {
  const p = template.indexOf('{prompt}');
  if (p < 0) return undefined;
  const s = template.indexOf('{system_message}');
  if (s >= 0 && s < p) {
    return {
      systemPrompt: template.slice(0, s),
      userPrompt: template.slice(s + '{system_message}'.length, p),
      aiPrompt: template.slice(p + '{prompt}'.length),
    };
  }
  return { systemPrompt: '', userPrompt: template.slice(0, p), aiPrompt: template.slice(p + '{prompt}'.length) };
}

/**
 * A node-llama-cpp chat wrapper built from Jan's pieces, as nitro renders them: each message
 * is its role prefix, the text and a newline; the answer follows `aiPrompt` and ends at EOS or
 * where the model writes the user prefix again (a blank line when there is none). Prefixes may
 * hold special tokens ("<|im_start|>"); message text never does.
 */
export class JanChatWrapper extends ChatWrapper {
  readonly wrapperName = 'Jan';
  readonly #o: JanPromptOptions;
  readonly #stop: string;

  constructor(options: JanPromptOptions) {
    super();
    this.#o = options;
    this.#stop = `\n${options.userPrompt}`.trimEnd() || '\n\n';
  }

  override generateContextState({ chatHistory: messages, availableFunctions, documentFunctionParams }: ChatWrapperGenerateContextStateOptions): ChatWrapperGeneratedContextState {
    const o = this.#o;
    // Tools are explained in the system message, in node-llama-cpp's own call syntax.
    const chatHistory = this.addAvailableFunctionsSystemMessageToHistory(messages, availableFunctions, { documentParams: documentFunctionParams });
    const parts: LlamaTextInputValue[] = o.bos ? [new SpecialToken('BOS')] : [];
    const prefix = (text: string) => (o.specialPrefixes ? new SpecialTokensText(text) : text);
    chatHistory.forEach((item, i) => {
      const last = i === chatHistory.length - 1;
      if (item.type === 'system') parts.push(prefix(o.systemPrompt), LlamaText.fromJSON(item.text), '\n');
      else if (item.type === 'user') parts.push(prefix(o.userPrompt), item.text, '\n');
      else {
        parts.push(prefix(o.aiPrompt), this.generateModelResponseText(item.response));
        if (!last) parts.push('\n');
      }
    });
    return {
      contextText: LlamaText(parts),
      stopGenerationTriggers: [LlamaText(new SpecialToken('EOS')), LlamaText(this.#stop), LlamaText(new SpecialTokensText(this.#stop))],
    };
  }
}
