/**
 * A KV-cached context window over `rows` sequences decoded in lockstep (1 for greedy/sampling,
 * numBeams for beam search).
 *
 * The prompt goes through the model in one pass, then one position per step. Positions use learned
 * absolute embeddings, so a full cache cannot be shifted in place: when a row would pass maxSeqLen,
 * the oldest tokens drop and the cache is rebuilt by feeding the last `windowKeep(maxSeqLen)` tokens
 * (the new one included) in one pass, leaving slideBy = round(maxSeqLen / 4) positions free, so
 * the next rebuild comes slideBy + 1 tokens later. That costs about 3 extra positions per token,
 * amortised, and keeps per-token cost linear in the context.
 * A prompt longer than maxSeqLen starts from its last windowKeep tokens, as if it had slid.
 *
 * The cache holds only the positions the caller says it will feed (`positions`, the prompt and the
 * new tokens), up to maxSeqLen: a short generation with GPT-2 small then sets aside a few MiB per
 * row instead of 72, and clears no more. Fed past that, the window grows to maxSeqLen by feeding
 * every row's history into a fresh cache, as a prefill would.
 */
import type { GPTModel, KVCache, TokenChoice } from '../model/types.js';

/** one forward over the cache: logits read back (forwardCached), or ids chosen on the backend (forwardCachedTokens) */
type Forward<T> = (cache: KVCache, ids: Int32Array, Tn: number) => Promise<T>;

/** tokens kept after a slide: maxSeqLen - max(1, round(maxSeqLen / 4)), at least 1 */
export function windowKeep(maxSeqLen: number): number {
  return Math.max(1, maxSeqLen - Math.max(1, Math.round(maxSeqLen / 4)));
}

export class ContextWindow {
  private cache: KVCache | null;
  private readonly maxSeqLen: number;
  private readonly vocabSize: number;

  /** `positions`: how many positions each row will be fed at most (prompt and new tokens); maxSeqLen when left out */
  constructor(
    private readonly model: GPTModel,
    readonly rows: number,
    positions = model.config.maxSeqLen,
  ) {
    this.maxSeqLen = model.config.maxSeqLen;
    this.vocabSize = model.config.vocabSize;
    this.cache = model.createKVCache(rows, Math.max(1, Math.min(this.maxSeqLen, positions)));
  }

  /** positions currently held per row */
  get length(): number {
    return this.live().length;
  }

  /** Feed each row's whole history (all the same length) from an empty cache. Logits [rows, V]. */
  async prefill(histories: readonly ArrayLike<number>[]): Promise<Float32Array> {
    return this.first(histories, this.logits);
  }

  /**
   * Append one token per row; `histories` already end with those tokens. Slides (rebuilds) when the
   * cache is full. Logits [rows, V].
   */
  async step(tokens: readonly number[], histories: readonly ArrayLike<number>[]): Promise<Float32Array> {
    return this.next(tokens, histories, this.logits);
  }

  /** prefill, with each row's next token chosen on the backend: ids [rows] */
  async prefillTokens(histories: readonly ArrayLike<number>[], choice: TokenChoice): Promise<Int32Array> {
    return this.first(histories, this.tokens(choice));
  }

  /** step, with each row's next token chosen on the backend: ids [rows] */
  async stepTokens(tokens: readonly number[], histories: readonly ArrayLike<number>[], choice: TokenChoice): Promise<Int32Array> {
    return this.next(tokens, histories, this.tokens(choice));
  }

  private readonly logits: Forward<Float32Array> = async (cache, ids, Tn) => {
    const logits = await this.model.forwardCached(cache, ids, Tn);
    if (logits.length !== this.rows * this.vocabSize) {
      throw new Error(`forwardCached returned ${logits.length} logits, expected rows * vocabSize = ${this.rows * this.vocabSize}`);
    }
    return logits;
  };

  private tokens(choice: TokenChoice): Forward<Int32Array> {
    const model = this.model;
    if (!model.forwardCachedTokens)
      throw new Error('ContextWindow: this model cannot choose tokens on its backend (no forwardCachedTokens)');
    return async (cache, ids, Tn) => {
      const chosen = await model.forwardCachedTokens!(cache, ids, Tn, choice);
      if (chosen.length !== this.rows) throw new Error(`forwardCachedTokens returned ${chosen.length} ids, expected rows = ${this.rows}`);
      return chosen;
    };
  }

  private async first<T>(histories: readonly ArrayLike<number>[], forward: Forward<T>): Promise<T> {
    const len = histories[0].length;
    const fed = len > this.maxSeqLen ? windowKeep(this.maxSeqLen) : len;
    return this.feedTails(histories, fed, forward);
  }

  private async next<T>(tokens: readonly number[], histories: readonly ArrayLike<number>[], forward: Forward<T>): Promise<T> {
    const cache = this.live();
    if (cache.length + 1 > cache.capacity) {
      // full: at maxSeqLen the window slides; below it, it grows to maxSeqLen
      cache.dispose();
      this.cache = null;
      this.cache = this.model.createKVCache(this.rows, this.maxSeqLen);
      return this.first(histories, forward);
    }
    return forward(cache, Int32Array.from(tokens), 1);
  }

  /** row i becomes old row sources[i] */
  reorder(sources: readonly number[]): void {
    this.model.reorderKVCache(this.live(), sources);
  }

  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
  }

  private live(): KVCache {
    if (!this.cache) throw new Error('ContextWindow: used after free()');
    return this.cache;
  }

  /** feed the last `count` tokens of every row in one pass; ids [rows, count] */
  private async feedTails<T>(histories: readonly ArrayLike<number>[], count: number, forward: Forward<T>): Promise<T> {
    const ids = new Int32Array(this.rows * count);
    for (let r = 0; r < this.rows; r++) {
      const h = histories[r];
      for (let t = 0; t < count; t++) ids[r * count + t] = h[h.length - count + t];
    }
    return forward(this.live(), ids, count);
  }
}
