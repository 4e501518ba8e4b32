/**
 * The backend contract: coarse, fused ops in the style of llm.c's layer functions.
 *
 * Conventions every backend follows:
 * - All float data is float32; token ids and targets are int32. Shapes are row-major and named in
 *   comments: B batch, T time, C channels, V vocab, NH heads, HS head size (C / NH), M/K/N matmul dims.
 * - A `Tensor` is a view (element offset + length) into a buffer the backend owns. `view()` makes
 *   sub-views without copying, so parameters and gradients can live in one flat buffer each.
 * - Ops are enqueued in call order and observe each other's results in that order. They return
 *   nothing; the only way back to the host is the async `download` (after which everything
 *   enqueued before it has finished).
 * - Backward ops ACCUMULATE (+=) into every gradient they write (dinp, dweight, dbias, ...), as in
 *   llm.c. Callers zero gradient buffers with `zero` before a fresh backward pass.
 * - Forward ops overwrite their outputs. `out` never aliases an input unless an op says it may.
 * - Every backend extends CheckedBackend (checked.ts), which checks each call against these rules
 *   (dimensions, dtypes, view lengths, aliasing) before the backend's own code runs, so a bad call
 *   fails with the same error on every backend.
 */

export type DType = 'f32' | 'i32';

/** Opaque to callers; each backend attaches its own storage. */
export interface Tensor {
  readonly dtype: DType;
  /** offset into the underlying buffer, in elements */
  readonly offset: number;
  /** number of elements in this view */
  readonly length: number;
}

export type BackendName = 'js' | 'wasm' | 'webgpu';

export type OpName =
  | 'encoder'
  | 'layerNorm'
  | 'matmul'
  | 'matmulFused'
  | 'attention'
  | 'attentionCached'
  | 'gelu'
  | 'residual'
  | 'dropout'
  | 'crossEntropy'
  | 'adamw'
  | 'squaredNorm'
  | 'scale'
  | 'sampleTokens';

/** where an allocation may be cut into buffers: ascending element offsets, or every n elements */
export type SplitPoints = readonly number[] | number;

export interface BackendLimits {
  /** the largest tensor (in elements) that one allocation may hold in one piece (more with splitAt) */
  maxTensorLength: number;
  /** total bytes this backend can hold, as far as it knows (Infinity when unbounded) */
  maxTotalBytes: number;
}

export interface AdamWParams {
  learningRate: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** decoupled weight decay; the caller passes 0 for tensors that must not decay */
  weightDecay: number;
  /** 1-based step number, for bias correction */
  step: number;
}

export interface Backend {
  readonly name: BackendName;
  readonly limits: BackendLimits;
  /** the wasm backend: the threads its kernels run on, the calling thread included (absent on the others) */
  readonly threads?: number;
  /** the wasm backend: why it runs on fewer threads than it was asked for ('' when it got what it asked; absent on the others) */
  readonly threadsNote?: string;
  /**
   * the memoryLimit option: the most bytes this backend's tensors may hold, checked at every alloc
   * before allocating (Infinity: none but the backend's own bound). Every built-in backend has it.
   */
  readonly memoryLimit?: number;
  /** set memoryLimit (a positive integer number of bytes, or Infinity) */
  setMemoryLimit?(bytes: number): void;
  /**
   * asynchronous backends (WebGPU): resolves once every allocation so far is known to have
   * succeeded, rejects as the next download would (MemoryLimitError for a device out of memory)
   */
  settle?(): Promise<void>;

  // ---- storage ----
  /**
   * allocate a zero-filled tensor of `length` elements. `splitAt` says where it may be cut if the
   * backend must store it in several buffers (WebGPU past maxBufferSize): ascending element
   * offsets (parameter starts), or a period (a row length). Backends with one buffer ignore it.
   */
  alloc(length: number, dtype?: DType, splitAt?: SplitPoints): Tensor;
  /** a sub-view of `t`: elements [offset, offset + length) of t */
  view(t: Tensor, offset: number, length: number): Tensor;
  /** copy host data into `t` starting at element 0 of the view */
  upload(t: Tensor, data: Float32Array | Int32Array): void;
  /** resolve with a host copy of the view's data once all enqueued work has finished */
  download(t: Tensor): Promise<Float32Array | Int32Array>;
  /** release the buffer that `t` was allocated as (views of it become invalid) */
  free(t: Tensor): void;
  /** bytes currently allocated */
  bytesInUse(): number;
  /** release everything */
  dispose(): void;

  // ---- elementwise helpers ----
  zero(t: Tensor): void;
  /** dst[i] = src[i] for i < src.length (views may be of different buffers; must not overlap) */
  copy(dst: Tensor, src: Tensor): void;
  /** t[i] *= s */
  scale(t: Tensor, s: number): void;
  /**
   * out[cols,rows] = inp[rows,cols]^T. The tied LM head multiplies by the token embedding [V,C]
   * transposed ([C,V]); this keeps matmul to its one orientation.
   */
  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void;
  /** out[0] = sum_i t[i]^2 (out is a 1-element f32 tensor; accumulated in at least f32 with care) */
  squaredNorm(out: Tensor, t: Tensor): void;

  // ---- model ops ----
  /**
   * out[B,T,C] = wte[inp[b,t], :] + wpe[posOffset + t, :]
   * inp: i32 [B,T]; wte [V,C]; wpe [maxT,C]
   */
  encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset?: number): void;
  /**
   * dwte[inp[b,t]] += dout[b,t]; dwpe[t] += dout[b,t]. Either may be null (a frozen embedding gets
   * no gradient work); both null does nothing.
   */
  encoderBackward(dwte: Tensor | null, dwpe: Tensor | null, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void;

  /**
   * LayerNorm over the last dim, eps 1e-5, biased variance.
   * out[N,C]; mean[N]; rstd[N]; inp[N,C]; weight[C]; bias[C]
   */
  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void;
  /** accumulates into dinp[N,C], dweight[C], dbias[C]; dweight, dbias or both may be null (frozen: not computed) */
  layerNormBackward(
    dinp: Tensor,
    dweight: Tensor | null,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    mean: Tensor,
    rstd: Tensor,
    N: number,
    C: number,
  ): void;

  /** out[M,N] = inp[M,K] @ weight[K,N] + bias[N] (bias may be null) */
  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void;
  /**
   * dinp[M,K] += dout[M,N] @ weight^T; dweight[K,N] += inp^T @ dout; dbias[N] += sum_m dout[m,:]
   * Each of dinp, dweight and dbias may be null, independently: dinp when the input needs no
   * gradient, dbias when there is no bias, dweight and dbias when that parameter is frozen (a LoRA
   * fine-tune's base weights, or train()'s freeze); what is null is not computed.
   */
  matmulBackward(
    dinp: Tensor | null,
    dweight: Tensor | null,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    M: number,
    K: number,
    N: number,
  ): void;

  // ---- fused products (epilogues and a prologue folded into the product that produces them) ----
  // Each is defined as the composition of the unfused ops above that it names, and CheckedBackend
  // (checked.ts) implements it so, for every backend; a backend with fused kernels (WebGPU) does it
  // in fewer passes over memory and fewer dispatches, and is tested against that composition.

  /**
   * pre[M,N] = inp[M,K] @ weight[K,N] + bias[N]; out[M,N] = gelu(pre) (geluForward's formula).
   * pre is kept for backward; null when it is not needed (inference). out aliases neither input nor pre.
   */
  matmulGeluForward(
    out: Tensor,
    pre: Tensor | null,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
  ): void;
  /**
   * out[M,N] = residual[M,N] + inp[M,K] @ weight[K,N] + bias[N]: a projection and the residual add
   * after it. out may alias residual exactly (the residual stream updated in place).
   */
  matmulResidualForward(
    out: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    residual: Tensor,
    M: number,
    K: number,
    N: number,
  ): void;
  /**
   * The backward of matmulForward(out, inp = gelu(pre), weight, bias) through the GELU before it:
   * dpre[M,K] += gelu'(pre) * (dout[M,N] @ weight^T); dweight[K,N] += inp^T @ dout; dbias[N] += sum_m dout[m,:]
   * (matmulBackward into a zeroed buffer, then geluBackward into dpre). dweight and dbias may be null
   * as in matmulBackward (frozen, or no bias).
   */
  matmulGeluBackward(
    dpre: Tensor,
    dweight: Tensor | null,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    pre: Tensor,
    M: number,
    K: number,
    N: number,
  ): void;
  /**
   * out[M,N] = act(layerNorm(inp[M,K]; lnWeight[K], lnBias[K]) @ weight[K,N] + bias[N]), act GELU
   * or nothing ('none', the default); the normalised rows and the pre-activation are not kept
   * (inference: training keeps them for backward, where fusing LayerNorm would not pay).
   */
  layerNormMatmulForward(
    out: Tensor,
    inp: Tensor,
    lnWeight: Tensor,
    lnBias: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    activation?: Activation,
  ): void;

  /**
   * Fused causal multi-head self-attention, scale 1/sqrt(HS).
   * qkv [B,T,3C] holds q, k, v in that order along the last dim, heads contiguous inside each
   * (head h of q is qkv[b,t, h*HS : (h+1)*HS]).
   * out [B,T,C]; lse [B,NH,T] saves log-sum-exp of each softmax row (of the scaled scores) for backward.
   */
  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void;
  /** accumulates into dqkv [B,T,3C]; recomputes probabilities from qkv and lse */
  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void;

  /**
   * Attention over a KV cache (inference). Appends the Tn new positions' k, v from qkv [B,Tn,3C] to
   * kCache/vCache [B,cacheLen,C] at positions startPos..startPos+Tn-1, then each new position i
   * attends causally over cache positions 0..startPos+i. out [B,Tn,C].
   */
  attentionCached(
    out: Tensor,
    qkv: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    B: number,
    Tn: number,
    C: number,
    NH: number,
    startPos: number,
    cacheLen: number,
  ): void;

  /** out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (N elements); out may alias inp */
  geluForward(out: Tensor, inp: Tensor, N: number): void;
  /** dinp += gelu'(inp) * dout */
  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void;

  /** out = a + b (N elements); out may alias a */
  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void;
  /** dst += src (N elements): the backward of residual, and gradient accumulation */
  accumulate(dst: Tensor, src: Tensor, N: number): void;

  /**
   * Inverted dropout with a counter-based mask: element i is kept iff dropoutKeep(seed, i, p),
   * and kept elements are scaled by 1/(1-p). out may alias inp. The mask is recomputed in backward.
   */
  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void;
  /** dinp += mask * dout / (1-p) */
  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void;

  /**
   * Fused softmax + cross-entropy. logits [N,V]; targets i32 [N] (-1 = ignore);
   * losses [N] = -log softmax(logits)[target] (0 where ignored); probs [N,V] = softmax(logits).
   */
  crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void;
  /** dlogits[n,:] += (probs[n,:] - onehot(target)) * dlossScale, zero contribution where ignored */
  crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void;

  /**
   * AdamW, decoupled decay (PyTorch's form):
   * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; mhat = m/(1-b1^t); vhat = v/(1-b2^t)
   * p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
   */
  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void;

  // ---- decoding ----
  /**
   * One token per row of logits [B,V] into ids i32 [B], so decoding reads back B ids rather than
   * B*V logits. Each row: ids >= sampling.allowed are banned; then the argmax (greedy; lowest id
   * among ties), or temperature, top-k, top-p, min-p (in that order, Hugging Face's) and a draw by
   * inverse CDF in id order with uniforms[b] in [0, 1). A row with a NaN or +Infinity logit, or no
   * token left, gets id -1. The js backend is the reference: it runs src/generate's CPU sampler
   * (chooseToken) and gives exactly its ids. Backends that compute in float32 give the same ids
   * except where rounding moves a cut or the draw's boundary (greedy: identical up to ties that
   * rounding makes or breaks). uniforms are host numbers (a seeded Rng's), unread when greedy.
   */
  sampleTokens(ids: Tensor, logits: Tensor, uniforms: ArrayLike<number>, B: number, V: number, sampling: TokenSampling): void;

  // ---- quantized inference (src/model/quant.ts has the formats; backends without them leave these out) ----
  /**
   * out[M,N] = inp[M,K] @ W^T + bias[N] (bias may be null), W [N,K] quantized in blocks of 32 along
   * K: quants i32 [N*K*bytesPerWeight/4] holding ggml's block bytes (Q8_0: 32 int8; Q4_0: 16 bytes of
   * nibble pairs), scales f32 [N*K/32]; or, for 'f16', quants holding W's float16 bits two to a word
   * (element 2i in the low half of word i) and scales null. K is a multiple of 32. Sums are f32 or wider.
   */
  matmulQuantForward?(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    format: QuantFormat,
  ): void;
  /** encoderForward with wte [V,C] quantized as matmulQuantForward's W: out[B,T,C] = W[inp[b,t], :] + wpe[posOffset + t, :] */
  encoderQuantForward?(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    wpe: Tensor,
    B: number,
    T: number,
    C: number,
    posOffset: number,
    format: QuantFormat,
  ): void;
}

/** How sampleTokens chooses a token from a row of logits (generation's plan for the plain strategies). */
export interface TokenSampling {
  /** argmax (the uniforms are unread); false: sample */
  readonly greedy: boolean;
  /** logits are divided by it before sampling; > 0 (1: unchanged) */
  readonly temperature: number;
  /** keep the topK highest logits and their ties; 0 keeps all */
  readonly topK: number;
  /** keep the fewest most probable tokens whose probability reaches topP, and their ties; in (0, 1] */
  readonly topP: number;
  /** keep tokens with p >= minP * p_max; in [0, 1] */
  readonly minP: number;
  /** ids >= allowed are never chosen (a vocabulary padded past its tokenizer's); in [1, V], V bans none */
  readonly allowed: number;
}

/** what layerNormMatmulForward applies to its product: nothing, or GELU (geluForward's formula) */
export type Activation = 'none' | 'gelu';

/** weight-only storage formats (see src/model/quant.ts): ggml's blocks Q8_0 and Q4_0, and plain float16 */
export type QuantFormat = 'q8_0' | 'q4_0' | 'f16';

/**
 * Counter-based dropout mask shared by every backend, so a seed gives the same mask everywhere:
 * keep iff hash32(seed, i) >= p * 2^32. The hash is a 32-bit mix (lowbias32 of i ^ seed-mix) that
 * WGSL and AssemblyScript compute with u32 arithmetic.
 */
export function dropoutHash(seed: number, i: number): number {
  let x = (i ^ Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.floor(p * 4294967296));
}

export function dropoutKeep(seed: number, i: number, p: number): boolean {
  return dropoutHash(seed, i) >= dropoutThreshold(p);
}

/** IEEE half bits -> float32 value (exact): the 'f16' weight format's widening, and float16 files' */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export const LAYER_NORM_EPS = 1e-5;
export const IGNORE_INDEX = -1;
export const GELU_SCALE = Math.sqrt(2 / Math.PI);
