import type { Backend, BackendName, Tensor, TokenSampling } from '../backend/contract.js';
import type { LoRAAdapter } from './lora.js';

export type BackendChoice = 'auto' | BackendName;

/** What a user passes to createModel. */
export interface GPTConfigInput {
  vocabSize: number;
  maxSeqLen: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** MLP hidden size; default 4 * dModel */
  dFF?: number;
  /** dropout probability on embeddings and residual branches, [0, 1); default 0 */
  dropout?: number;
  /** seed for init and dropout masks; default 1337 */
  seed?: number;
  /**
   * @deprecated the config is the architecture: pass the backend in createModel's (or loadModel's)
   * options. Still honoured, with a one-time warning, when the options name none.
   */
  backend?: BackendChoice;
}

/** A validated config with every default filled in (backend excluded: see model.backendName). */
export interface GPTConfig {
  vocabSize: number;
  maxSeqLen: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  dFF: number;
  dropout: number;
  seed: number;
}

/** One named parameter tensor inside the flat parameter buffer. */
export interface ParamEntry {
  /** GPT-2 name, e.g. 'h.0.attn.c_attn.weight' */
  name: string;
  shape: number[];
  /** element offset in the flat buffer */
  offset: number;
  length: number;
  /** AdamW weight decay applies (weight matrices and embeddings, not biases or LayerNorm) */
  decay: boolean;
}

/**
 * Parameters that train together: flat parameter and gradient buffers on the backend and the
 * entries in them an optimizer updates (the model's own, or a LoRA adapter's).
 */
export interface ParameterGroup {
  readonly params: Tensor;
  readonly grads: Tensor;
  readonly entries: readonly ParamEntry[];
  /**
   * element offset of each entry's gradient in `grads`, in the order of `entries` (absent: the
   * entry's own offset, grads laid out as params); a frozen fine-tune packs only what trains
   */
  readonly gradOffsets?: readonly number[];
}

export interface ForwardOptions {
  /** download and return logits [B*T*V] (default false) */
  returnLogits?: boolean;
  /** training mode: dropout active (default false) */
  training?: boolean;
}

export interface ForwardResult {
  /** mean loss over targets that are not the ignore index; null without targets (NaN if all ignored) */
  loss: number | null;
  logits?: Float32Array;
}

/** A KV cache for incremental decoding of `batchSize` rows, up to `capacity` positions each. */
export interface KVCache {
  readonly batchSize: number;
  /** positions each row can hold: createKVCache's capacity, config.maxSeqLen unless given */
  readonly capacity: number;
  /** number of positions already in the cache (the same for every row) */
  length: number;
  /** per layer: k and v, each [B, capacity, C] */
  readonly layers: { k: Tensor; v: Tensor }[];
  /** frees the cache's tensors (`using cache = model.createKVCache(B)` calls it); a disposed cache is refused */
  dispose(): void;
  [Symbol.dispose](): void;
}

/**
 * The low-level model surface shared by the trainer, generation, serialization, users' own loops
 * and tests.
 */
/** how forwardCachedTokens chooses: sampleTokens' plan, and one uniform in [0, 1) per row when it samples */
export interface TokenChoice {
  sampling: TokenSampling;
  uniforms: ArrayLike<number>;
}

export interface GPTModel {
  readonly config: GPTConfig;
  readonly backendName: BackendName;
  /** the backend in use now: moveToBackend replaces it (and params, grads) */
  readonly backend: Backend;
  /** layout of the flat parameter buffer, in GPT-2 order */
  readonly paramLayout: readonly ParamEntry[];
  /** flat parameter and gradient buffers on the backend (trainer fast path) */
  readonly params: Tensor;
  readonly grads: Tensor;

  numParameters(): number;
  dispose(): void;
  /** the attached LoRA adapter, which train() trains in place of the model's own parameters (absent or null: none) */
  readonly lora?: LoRAAdapter | null;

  /** inputs/targets are [batchSize, T] row-major with T <= maxSeqLen; targets may use -1 to ignore */
  forward(inputs: Int32Array, targets: Int32Array | null, batchSize: number, options?: ForwardOptions): Promise<ForwardResult>;
  /**
   * accumulate d(mean loss)/d(params) into grads, for the last forward (which must have had
   * targets). With `into` (params: model.params; entries from model.paramLayout; grads a buffer of
   * this backend holding each entry at its gradOffset), only its entries' gradients are computed,
   * into its own buffer: the other parameters are frozen and get no gradient work.
   */
  backward(into?: ParameterGroup): Promise<void>;
  zeroGrad(): Promise<void>;

  getParameters(): Promise<Record<string, Float32Array>>;
  getGradients(): Promise<Record<string, Float32Array>>;
  setParameters(record: Record<string, Float32Array>): Promise<void>;

  /** dropout mask counter: part of the training state saved in checkpoints */
  getRngState(): { dropoutStep: number };
  setRngState(state: { dropoutStep: number }): void;

  /**
   * Go on from a host copy of the parameters on another backend (a name, created with the options
   * the model was created with, or an instance), e.g. after a lost GPU device. The old backend is
   * disposed; gradients start at zero; KV caches made before the move are invalid. train()'s
   * onDeviceLost: 'wasm' uses it.
   */
  moveToBackend(target: BackendName | Backend, parameters: Record<string, Float32Array>): Promise<void>;

  // ---- inference ----
  /**
   * bytes a training step over `rows` positions of length `seqLen` would allocate beyond what the
   * model holds: activations and the gradients backward computes, of every parameter or (with
   * `trained`) of those entries alone
   */
  stepBytes?(rows: number, seqLen: number, trained?: readonly ParamEntry[]): number;
  /** whether the model holds its gradient buffer now (it is made on first use) */
  readonly holdsGradients?: boolean;
  /** let go of the gradient buffer (made again, zeroed, on next use): a frozen fine-tune packs its own */
  releaseGradients?(): void;
  /**
   * Let go of the training and inference scratch (activations, the head's gradient); it is made
   * again on the next call. A failed forward, backward or cached step does this by itself; the
   * trainer calls it when a step fails after its backward.
   */
  releaseScratch?(): void;
  /** whether dispose() ran (calls then throw DisposedError) */
  readonly isDisposed?: boolean;
  /**
   * A cache of `batchSize` rows of `capacity` positions (an integer in [1, maxSeqLen]; maxSeqLen when
   * left out): its memory is batchSize * capacity * dModel * nLayers * 2 floats, so a generation that
   * knows how long it runs asks for no more.
   */
  createKVCache(batchSize: number, capacity?: number): KVCache;
  /**
   * Feed Tn new positions per row (ids [B, Tn]) through the model, appending to the cache.
   * cache.length + Tn must be <= cache.capacity. Resolves with the logits of the last new position of each
   * row: [B, V].
   */
  forwardCached(cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array>;
  /**
   * forwardCached, then one token per row chosen where the logits [B, V] are (the backend's
   * sampleTokens): resolves with the ids [B] (-1 for a row with no possible token), so only those
   * come back to the host. Generation uses it for plans that need no logits on the host.
   */
  forwardCachedTokens?(cache: KVCache, ids: Int32Array, Tn: number, choice: TokenChoice): Promise<Int32Array>;
  /** cache row i becomes old row sources[i] (beam search); sources.length === cache.batchSize */
  reorderKVCache(cache: KVCache, sources: readonly number[]): void;
  /** @deprecated `cache.dispose()` (or `using`) frees a cache; this alias goes in the next release */
  freeKVCache?(cache: KVCache): void;
}
