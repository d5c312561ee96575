import { readLogprobs, type LogprobReaders, type NativeContext, type NativeSampler } from './native-context.ts';
import { cachedToKeep, promptChunks } from './prompt-chunks.ts';
import { commonPrefixLength } from './sequence-pool.ts';

/**
 * Continuous batching over one llama.cpp context, the way llama-server's slot loop does it:
 * every step puts the next token of every generating sequence (and chunks of the prompts
 * still being read) into one batch, decodes it, samples each sequence, and goes round again.
 *
 * Why not node-llama-cpp's own scheduling: there each sequence runs its own promise chain
 * (`LlamaContextSequence.evaluate` → `LlamaCompletion`/`LlamaChat`) and queues its next token
 * only after a dozen hops, so the context's dispatch loop must either decode short batches or
 * wait for stragglers, and every token's text handling sits between two decodes. Here the
 * loop owns the step: a sequence's next token goes into the next batch the moment it is
 * sampled, and the text work of a step (detokenising, stop strings, sending) runs while the
 * next batch decodes on the libuv pool thread (docs/cpu-batching.md §5 has the figures).
 */

/** One sequence (slot) of the context and the tokens its KV cache holds, in position order. */
export interface KvSequence {
  readonly id: number;
  /** Tokens whose KV state the sequence holds; the loop keeps it in step with the cache. */
  readonly contextTokens: number[];
}

/** A generation as the loop drives it; the per-request logic lives in the job. */
export interface DecodeJob {
  readonly sequence: KvSequence;
  /** Every token of the prompt; the cached prefix the sequence holds is not decoded again. */
  readonly prompt: readonly number[];
  readonly sampler: NativeSampler;
  readonly signal: AbortSignal;
  /** Called right before each sampling (e.g. to hand the sampler the repeat-penalty window). */
  beforeSample?(): void;
  /**
   * A token was sampled. Return false to end the generation (end of generation, max tokens):
   * it then decodes nothing more. Runs between sampling and the next decode: keep it cheap.
   */
  accept(token: number): boolean;
  /**
   * Set when the request asks for logprobs: after each sampling (before the next decode, while
   * the logits are there) `readers` read the model's distribution for the sampled token and
   * the `top` likeliest, and `record` receives them.
   */
  readonly logprobs?: {
    readers: LogprobReaders;
    top: number;
    record(token: number, logprob: number, top: Array<[token: number, logprob: number]>): void;
  };
  /**
   * Text work for the tokens accepted since the last call; runs while the next batch decodes.
   * Return false to end the generation (a stop string matched).
   */
  drain(): boolean;
}

/** What a finished job reports about its prompt. */
export interface PromptUse {
  /** Prompt tokens the sequence already held (not decoded again). */
  cachedTokens: number;
  /** Prompt tokens decoded for this job. */
  evaluatedTokens: number;
  /** Prompt tokens copied from another running job's sequence (present only then). */
  sharedTokens?: number;
}

export interface DecodeLoopOptions {
  /** Most tokens in one decode call (the context's `n_batch`). */
  batchSize: number;
  /** Called once per decode with the sequences and tokens it carried. */
  onBatch?(sequences: number, tokens: number): void;
  /**
   * Queue each step's samplings right behind its decode instead of after the decode returns.
   * Correct only when libuv's pool has exactly one thread (UV_THREADPOOL_SIZE=1, which
   * `bin/modeld.cjs` sets): the pool then runs its work in order, so each sampling reads the
   * logits of the decode before it. It saves the pool thread and the event loop a round trip
   * of wake-ups per step (docs/cpu-batching.md §5).
   */
  pipelineSampling?: boolean;
  /**
   * Jobs whose prompts start alike (OpenAI `n`, the same request twice, one long system prompt
   * for several users at once) read the common part once: a job admitted while another running
   * job's prompt shares at least this many tokens it would otherwise read copies that job's KV
   * state (one buffer copy) once those tokens are in it, waiting outside the batches until then,
   * and reads only the rest. Unset: every job reads its own prompt.
   */
  sharePromptsFrom?: number;
  /**
   * The shortest prompt chunk worth a batch (see `promptChunks`): ggml-cpu's flash attention
   * reads a sequence's rows through its tiled kernel only from `CPU_ATTENTION_TILE` rows in one
   * micro-batch. Unset or 0: prompts share each batch's room equally, however thin.
   */
  minPromptChunk?: number;
}

interface Sampling {
  r: Running;
  /** Where the job's logits are in the batch. */
  index: number;
  token: Promise<number>;
}

interface Running {
  job: DecodeJob;
  /** Tokens still to decode: the rest of the prompt, then the last sampled token. */
  pending: number[];
  /** Position of `pending[0]`. */
  position: number;
  /** The batch index of this job's logits in the decode in flight; −1 = none. */
  logitIndex: number;
  /** Set once the job must decode nothing more; it finishes after its last drain. */
  ending: boolean;
  /**
   * The job whose sequence will hold the first `tokens` of this job's prompt, to be copied
   * instead of read; this job is not batched meanwhile.
   */
  leader?: { r: Running; tokens: number };
  /** Tokens accepted since the last drain. */
  undrained: boolean;
  failure?: { error: unknown };
  use: PromptUse;
  resolve(use: PromptUse): void;
  reject(error: unknown): void;
}

export class DecodeLoop {
  readonly #native: NativeContext;
  readonly #options: DecodeLoopOptions;
  readonly #queued: Running[] = [];
  readonly #running: Running[] = [];
  /** The loop's promise while it runs; it ends when nothing is left to do and restarts on the next job. */
  #loop: Promise<void> | undefined;
  #closed = false;

  constructor(native: NativeContext, options: DecodeLoopOptions) {
    this.#native = native;
    this.#options = options;
  }

  /** Generations admitted or waiting for the next step. */
  get active(): number {
    return this.#running.length + this.#queued.length;
  }

  /**
   * Runs a job to its end. Resolves when its last text work has run; rejects with the signal's
   * reason when it aborts, or with the native error when a decode or sampling fails.
   */
  run(job: DecodeJob): Promise<PromptUse> {
    if (this.#closed) return Promise.reject(new Error('the model is being unloaded'));
    if (job.signal.aborted) return Promise.reject(job.signal.reason);
    return new Promise<PromptUse>((resolve, reject) => {
      this.#queued.push({
        job, pending: [], position: 0, logitIndex: -1, ending: false, undrained: false,
        use: { cachedTokens: 0, evaluatedTokens: 0 }, resolve, reject,
      });
      // Started on the next turn of the event loop, so requests that arrive together share the first batch.
      this.#loop ??= new Promise<void>((started) => setImmediate(started))
        .then(() => this.#run())
        .catch((error: unknown) => this.#abandon(error));
    });
  }

  /** Rejects what has not finished and resolves once no decode is in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    for (;;) {
      this.#admit();
      this.#dropAborted();
      this.#releaseOrphans();
      const batch = this.#buildBatch();
      if (batch.length === 0) {
        this.#drainAll();
        this.#settle();
        // A leader that failed while the batch was built, or ended, leaves followers that can read now.
        if (this.#releaseOrphans()) continue;
        // Every running job has tokens to decode or is ending; one with neither would spin this loop.
        for (const r of this.#running) this.#fail(r, new Error('decode loop: a generation has nothing to decode'), false);
        this.#settle();
        if (this.#queued.length > 0) continue;
        // Cleared in the same turn as the last check, so a job queued from now on starts a new loop.
        this.#loop = undefined;
        return;
      }
      let decoded: Promise<void>;
      try {
        decoded = this.#native.decodeBatch();
      } catch (error) {
        decoded = Promise.reject(error);
      }
      let sampled = this.#options.pipelineSampling ? this.#queueSamples(batch) : undefined;
      // The previous step's text work overlaps the decode that just started.
      this.#drainAll();
      try {
        await decoded;
      } catch (error) {
        if (sampled) await Promise.allSettled(sampled.map((x) => x.token));
        for (const r of batch) this.#fail(r, error, true);
        this.#settle();
        continue;
      }
      // Before anything settles: a leader that ends here must not hand its sequence on first.
      await this.#copySharedPrompts();
      await this.#accept(sampled ?? this.#queueSamples(batch));
      this.#settle();
    }
  }

  /**
   * A bug in the loop itself must fail its jobs, not the process: every job still here is
   * rejected and the loop ends (the next job starts a fresh one).
   */
  #abandon(error: unknown): void {
    this.#loop = undefined;
    for (const r of [...this.#running.splice(0), ...this.#queued.splice(0)]) {
      try {
        this.#native.removeTokenCellsFromSequence(r.job.sequence.id, 0, -1);
        r.job.sequence.contextTokens.length = 0;
      } catch {
        // The cache stays as it was; the pool's next admission trims it from contextTokens.
      }
      r.reject(error);
    }
  }

  /** Moves waiting jobs in: trims each sequence's cache to the prompt prefix it shares. */
  #admit(): void {
    while (this.#queued.length > 0) {
      const r = this.#queued.shift()!;
      if (this.#closed) {
        r.reject(new Error('the model is being unloaded'));
        continue;
      }
      const { sequence, prompt } = r.job;
      if (prompt.length === 0) {
        r.reject(new Error('decode loop: a generation needs at least one prompt token'));
        continue;
      }
      const cached = sequence.contextTokens;
      // The prompt's last token is always decoded again: its logits pick the first answer token.
      const keep = this.#keepFor(Math.min(commonPrefixLength(cached, prompt), prompt.length - 1), prompt.length);
      if (cached.length > keep) {
        this.#native.removeTokenCellsFromSequence(sequence.id, keep, -1);
        cached.length = keep;
      }
      r.pending = prompt.slice(keep);
      r.position = keep;
      r.use = { cachedTokens: keep, evaluatedTokens: prompt.length - keep };
      r.leader = this.#leaderFor(r);
      this.#running.push(r);
    }
  }

  /** Of `usable` cached (or copyable) prompt tokens, how many to keep: `cachedToKeep`. */
  #keepFor(usable: number, promptLength: number): number {
    return cachedToKeep(usable, promptLength, this.#options.minPromptChunk ? this.#options.minPromptChunk + 1 : 0);
  }

  /**
   * The running job whose prompt shares the most tokens with `r`'s beyond what `r`'s sequence
   * keeps (at least `sharePromptsFrom`, at most all but `r`'s last prompt token, which `r`
   * decodes for its own logits), and which has at most twice that many of them still to read:
   * beyond that the wait would cost `r` more time than reading them (see `sharePromptsFrom`).
   */
  #leaderFor(r: Running): { r: Running; tokens: number } | undefined {
    const from = this.#options.sharePromptsFrom;
    if (from === undefined) return undefined;
    const prompt = r.job.prompt;
    const gainFrom = Math.max(1, from);
    let best: { r: Running; tokens: number } | undefined;
    for (const o of this.#running) {
      if (o === r || o.ending || o.leader) continue;
      const tokens = this.#keepFor(Math.min(commonPrefixLength(o.job.prompt, prompt), prompt.length - 1), prompt.length);
      const gain = tokens - r.position;
      const wait = tokens - o.job.sequence.contextTokens.length;
      if (gain >= gainFrom && wait <= 2 * gain && tokens > (best?.tokens ?? 0)) best = { r: o, tokens };
    }
    return best;
  }

  /**
   * Jobs whose leader ends before they got its state (an abort, a failure; its sequence may be
   * handed to another request once it settles) choose again among the running jobs: the first
   * that finds none reads its own prompt, and the others may follow it. True when there were some.
   */
  #releaseOrphans(): boolean {
    // Every step passes here: no array is built unless some job waits for a leader that ends.
    if (!this.#running.some((r) => r.leader?.r.ending)) return false;
    const orphans = this.#running.filter((r) => r.leader?.r.ending);
    // An orphan still points at its old leader while it chooses, so no orphan picks another
    // that has not chosen yet (that would chain them one step behind each other).
    for (const r of orphans) r.leader = this.#leaderFor(r);
    return true;
  }

  /**
   * After a decode: gives each follower whose leader's sequence now holds the tokens it waits
   * for the leader's KV state, trimmed to those tokens; the follower reads the rest of its
   * prompt itself. A copy that fails leaves the follower reading its whole prompt.
   */
  async #copySharedPrompts(): Promise<void> {
    if (!this.#running.some((f) => f.leader)) return;
    const followers = this.#running.filter((f) => f.leader && !f.ending && f.leader.r.job.sequence.contextTokens.length >= f.leader.tokens);
    // One after another: llama.cpp's KV bookkeeping is not safe to change from two pool threads at once.
    for (const f of followers) {
      const source = f.leader!.r.job.sequence;
      const keep = f.leader!.tokens;
      f.leader = undefined;
      const { sequence, prompt } = f.job;
      try {
        const last = await this.#native.copySequenceStateFromOtherSequence(sequence.id, source.id);
        if (last !== source.contextTokens.length - 1) throw new Error(`copied positions up to ${last}, not ${source.contextTokens.length - 1}`);
        // A recurrent model's state cannot be cut back to a position: it reads its own prompt then.
        if (!this.#native.removeTokenCellsFromSequence(sequence.id, keep, -1)) throw new Error('the copied cells could not be trimmed');
        sequence.contextTokens.length = 0;
        for (let i = 0; i < keep; i++) sequence.contextTokens.push(prompt[i]!);
        f.pending = prompt.slice(keep);
        f.position = keep;
        f.use = { cachedTokens: 0, evaluatedTokens: prompt.length - keep, sharedTokens: keep };
      } catch {
        this.#native.removeTokenCellsFromSequence(sequence.id, 0, -1);
        sequence.contextTokens.length = 0;
        f.pending = prompt.slice();
        f.position = 0;
        f.use = { cachedTokens: 0, evaluatedTokens: prompt.length };
      }
    }
  }

  #dropAborted(): void {
    for (const r of this.#running) {
      if (!r.failure && (r.job.signal.aborted || this.#closed)) {
        r.failure = { error: r.job.signal.aborted ? r.job.signal.reason : new Error('the model is being unloaded') };
        r.ending = true;
        r.pending = [];
      }
    }
  }

  /**
   * One batch: the next token of every generating sequence first (one each), then prompt
   * chunks sharing the room left (`promptChunks`: equally, none thinner than `minPromptChunk`
   * where the prompts allow). Only a chunk that
   * ends a job's pending tokens asks for logits. Rows go in by sequence id: with one KV stream
   * per sequence (node-llama-cpp's non-unified cache) llama.cpp splits a batch into
   * micro-batches of consecutive sequence ids taking the same number of tokens from each
   * (`split_equal`), so ids out of order or unequal prompt chunks cost extra passes over the
   * weights.
   */
  #buildBatch(): Running[] {
    const size = this.#options.batchSize;
    const counts = new Map<Running, number>();
    let room = size;
    for (const r of this.#running) {
      if (room > 0 && !r.ending && !r.leader && r.pending.length === 1) {
        counts.set(r, 1);
        room--;
      }
    }
    const prompts = this.#running.filter((r) => !r.ending && !r.leader && r.pending.length > 1);
    // Most steps of a generation read no prompt: nothing to share out then.
    if (prompts.length > 0) {
      // A generating sequence's one token splits one token off every sequence beside it in
      // llama.cpp's micro-batches (equal tokens each), so a chunk needs one more to keep the rest whole.
      const min = this.#options.minPromptChunk ? this.#options.minPromptChunk + (counts.size > 0 ? 1 : 0) : 0;
      const chunks = promptChunks(prompts.map((r) => r.pending.length), room, min);
      for (const [i, r] of prompts.entries()) {
        if (chunks[i]! === 0) continue;
        counts.set(r, chunks[i]!);
        room -= chunks[i]!;
      }
    }
    const picked = [...counts].map(([r, count]) => ({ r, count })).sort((a, b) => a.r.job.sequence.id - b.r.job.sequence.id);
    if (picked.length === 0) return [];
    const total = size - room;
    this.#native.initBatch(total);
    const batch: Running[] = [];
    for (const { r, count } of picked) {
      const tokens = r.pending.length === count ? r.pending : r.pending.slice(0, count);
      const last = count === r.pending.length;
      try {
        const indexes = this.#native.addToBatch(r.job.sequence.id, r.position, Uint32Array.from(tokens), last ? Uint32Array.of(count - 1) : new Uint32Array(0));
        r.logitIndex = last ? indexes[0]! : -1;
      } catch (error) {
        this.#fail(r, error, false);
        continue;
      }
      const held = r.job.sequence.contextTokens;
      for (const t of tokens) held.push(t);
      r.position += count;
      r.pending = last ? [] : r.pending.slice(count);
      batch.push(r);
    }
    this.#options.onBatch?.(batch.length, total);
    return batch;
  }

  /** Starts sampling every job of the batch that asked for logits. */
  #queueSamples(batch: Running[]): Sampling[] {
    const sampling: Sampling[] = [];
    for (const r of batch) {
      const index = r.logitIndex;
      r.logitIndex = -1;
      if (index < 0 || r.ending) continue;
      try {
        r.job.beforeSample?.();
        sampling.push({ r, index, token: this.#native.sampleToken(index, r.job.sampler) });
      } catch (error) {
        this.#fail(r, error, false);
      }
    }
    return sampling;
  }

  async #accept(sampling: Sampling[]): Promise<void> {
    const results = await Promise.allSettled(sampling.map((s) => s.token));
    let reading: Array<Promise<void>> | undefined;
    for (const [i, { r, index }] of sampling.entries()) {
      // A job that ended while its batch decoded (a stop string, an abort) takes no token.
      if (r.ending) continue;
      const result = results[i]!;
      if (result.status === 'rejected') {
        this.#fail(r, result.reason, false);
        continue;
      }
      const token = result.value;
      // -1: the sampler allowed no token at all (a grammar at a dead end; a finished grammar
      // still allows end-of-generation). node-llama-cpp's own evaluate throws there too.
      if (token === -1) {
        this.#fail(r, new Error('llama.cpp could not sample a token'), false);
        continue;
      }
      const lp = r.job.logprobs;
      if (lp) {
        (reading ??= []).push(
          readLogprobs(this.#native, index, lp.readers, token, lp.top).then(
            (read) => lp.record(token, read.logprob, read.top),
            (error: unknown) => this.#fail(r, error, false),
          ),
        );
      }
      const more = r.job.accept(token);
      r.undrained = true;
      if (more) r.pending = [token];
      else r.ending = true;
    }
    // The next decode overwrites the logits these read.
    if (reading) await Promise.all(reading);
  }

  /** Runs the text work of every job with new tokens. */
  #drainAll(): void {
    for (const r of this.#running) this.#drain(r);
  }

  /** Runs a job's text work if it has new tokens; a stop string ends the job. */
  #drain(r: Running): void {
    if (!r.undrained || r.failure) return;
    r.undrained = false;
    try {
      if (!r.job.drain()) {
        r.ending = true;
        r.pending = [];
      }
    } catch (error) {
      this.#fail(r, error, false);
    }
  }

  /** Finishes the jobs that end, once no decode in flight still holds their tokens. */
  #settle(): void {
    for (let i = 0; i < this.#running.length; i++) {
      const r = this.#running[i]!;
      if (!r.ending) continue;
      this.#drain(r);
      this.#running.splice(i--, 1);
      if (r.failure) r.reject(r.failure.error);
      else r.resolve(r.use);
    }
  }

  /**
   * Ends a job with an error. After a failed decode the sequence's cache is in an unknown
   * state, so it is emptied (the next request there reads its whole prompt).
   */
  #fail(r: Running, error: unknown, resetCache: boolean): void {
    r.failure ??= { error };
    r.ending = true;
    r.pending = [];
    r.logitIndex = -1;
    if (resetCache) {
      this.#native.removeTokenCellsFromSequence(r.job.sequence.id, 0, -1);
      r.job.sequence.contextTokens.length = 0;
    }
  }
}
