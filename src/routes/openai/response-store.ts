import type { ResponseObject } from '../../schemas/openai/responses.ts';
import { randomId } from '../ids.ts';
import type { InputItem } from './responses-request.ts';

/** A stored response: the answer, and the conversation it ends (every input item, then its output) to continue it. */
export interface StoredResponse {
  response: ResponseObject;
  items: readonly InputItem[];
  /** What its own `input` gave, as `GET /v1/responses/{id}/input_items` lists it. */
  input: readonly ListedInputItem[];
}

export type ListedInputItem = InputItem & { id: string; type: string };

const ID_PREFIX: Record<string, string> = { message: 'msg_', function_call: 'fc_', function_call_output: 'fco_', reasoning: 'rs_' };

/**
 * A request's input items as OpenAI lists them: each with an id (its own, else a new one),
 * a `type`, and a message's text as content parts (`input_text`; `output_text` for the assistant's).
 */
export function listedInput(items: readonly InputItem[]): ListedInputItem[] {
  return items.map((item) => {
    const type = item.type ?? 'message';
    const id = typeof item.id === 'string' ? item.id : randomId(ID_PREFIX[type] ?? 'item_');
    if (type !== 'message' || typeof item.content !== 'string') return { ...item, id, type };
    return { ...item, id, type, content: [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content }] };
  });
}

/**
 * The responses kept for `previous_response_id` and `GET /v1/responses/{id}`, in memory, the
 * `limit` most recently used (a server restart forgets them, as LM Studio's do). Each keeps
 * its whole conversation, whose items it shares with the responses before it, so a response
 * whose predecessors were dropped can still be continued.
 */
export class ResponseStore {
  readonly #limit: number;
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  readonly #responses = new Map<string, StoredResponse>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#responses.size;
  }

  put(stored: StoredResponse): void {
    this.#responses.set(stored.response.id, stored);
    for (const id of this.#responses.keys()) {
      if (this.#responses.size <= this.#limit) break;
      this.#responses.delete(id);
    }
  }

  get(id: string): StoredResponse | undefined {
    const stored = this.#responses.get(id);
    if (stored) {
      this.#responses.delete(id);
      this.#responses.set(id, stored);
    }
    return stored;
  }

  delete(id: string): boolean {
    return this.#responses.delete(id);
  }
}
