/**
 * The contract's argument checks, written once for every backend (in the spirit of tinygrad's
 * `alloc` / `_alloc`): each public op of `CheckedBackend` checks its arguments (dimensions, scalars,
 * that every tensor is a live tensor of this backend with the dtype and length the op reads, and the
 * aliasing rule) and then calls the backend's unchecked `_op` with each tensor cut to exactly the
 * elements the op reads. So a bad call gets the same error class and message on every backend, and
 * a backend's kernels never see a call the contract forbids.
 *
 * Checks that need the data (token ids and targets in range) stay with the backends that can see it.
 *
 * Why this file runs past 700 lines: it holds one checked method and one abstract unchecked method
 * per op of contract.ts, so its length is the contract's; cutting it would split one table.
 */
import type {
  Activation,
  AdamWParams,
  Backend,
  BackendLimits,
  BackendName,
  DType,
  QuantFormat,
  SplitPoints,
  Tensor,
  TokenSampling,
} from './contract.js';
import {
  adamwArgs,
  dims,
  dropoutArgs,
  finite,
  headSize,
  nonNegativeInteger,
  quantScales,
  quantWords,
  samplingArgs,
  viewRange,
} from './checks.js';
import { describe } from '../util/describe.js';
import { checkMemoryLimit, MemoryLimitError } from './errors.js';
import { formatBytes } from './capacity.js';

/** The storage a tensor is a view of: views of one storage may overlap, of two never. */
export interface TensorStorage {
  live: boolean;
}

/** one tensor argument: its name in messages, the view, and the dtype and elements the op reads */
type Arg = readonly [name: string, t: Tensor | null, dtype: DType, need: number];

export abstract class CheckedBackend implements Backend {
  abstract readonly name: BackendName;
  abstract readonly limits: BackendLimits;
  private disposed = false;
  private memoryLimitBytes = Infinity;

  /** the memoryLimit option: the most bytes this backend's tensors may hold (Infinity: only the backend's own bound) */
  get memoryLimit(): number {
    return this.memoryLimitBytes;
  }

  /**
   * Bound what this backend's tensors hold to `bytes` (Infinity removes the bound). Every alloc is
   * checked against it before anything is allocated; a lower bound than what is in use refuses the
   * next allocation, it frees nothing.
   */
  setMemoryLimit(bytes: number): void {
    this.memoryLimitBytes = checkMemoryLimit(bytes, 'setMemoryLimit: bytes');
  }

  /** bytes an allocation of `length` elements takes here (each backend rounds buffers its own way) */
  protected allocationBytes(length: number, dtype: DType, splitAt?: SplitPoints): number {
    void dtype;
    void splitAt;
    return length * 4;
  }

  /**
   * Refuse, before allocating, `bytes` more than the memory limit leaves room for, saying what asked
   * (`what`): an alloc here, or a backend's own scratch.
   */
  protected checkMemoryLimitFor(what: string, bytes: number): void {
    const limit = this.memoryLimitBytes;
    if (limit === Infinity) return;
    const inUse = this.bytesInUse();
    if (inUse + bytes > limit) {
      throw new MemoryLimitError(
        `${what} needs ${formatBytes(bytes)} (${bytes} bytes), but memoryLimit = ${limit} bytes (${formatBytes(limit)}) leaves room for ` +
          `${formatBytes(Math.max(0, limit - inUse))} with ${formatBytes(inUse)} in use on the ${this.name} backend: raise memoryLimit or make the batch smaller`,
        { requestedBytes: bytes, bytesInUse: inUse, limitBytes: limit },
      );
    }
  }

  /** the storage `t` is a view of, when `t` is a tensor of this backend; else undefined */
  protected abstract storageOf(t: Tensor): TensorStorage | undefined;
  /** the longest allocation this backend takes (in elements) */
  protected abstract readonly maxAllocLength: number;

  protected abstract _alloc(length: number, dtype: DType, splitAt?: SplitPoints): Tensor;
  protected abstract _view(t: Tensor, offset: number, length: number): Tensor;
  protected abstract _upload(t: Tensor, data: Float32Array | Int32Array): void;
  protected abstract _download(t: Tensor): Promise<Float32Array | Int32Array>;
  /** release a live allocation (`t` is a whole allocation or a view of it) */
  protected abstract _free(t: Tensor): void;
  protected abstract _dispose(): void;
  abstract bytesInUse(): number;

  protected abstract _zero(t: Tensor): void;
  protected abstract _copy(dst: Tensor, src: Tensor): void;
  protected abstract _scale(t: Tensor, s: number): void;
  protected abstract _transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void;
  protected abstract _squaredNorm(out: Tensor, t: Tensor): void;
  protected abstract _encoderForward(
    out: Tensor,
    inp: Tensor,
    wte: Tensor,
    wpe: Tensor,
    B: number,
    T: number,
    C: number,
    posOffset: number,
  ): void;
  protected abstract _encoderBackward(
    dwte: Tensor | null,
    dwpe: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    B: number,
    T: number,
    C: number,
  ): void;
  protected abstract _layerNormForward(
    out: Tensor,
    mean: Tensor,
    rstd: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor,
    N: number,
    C: number,
  ): void;
  protected abstract _layerNormBackward(
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
  protected abstract _matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void;
  protected abstract _matmulBackward(
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
  protected abstract _attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void;
  protected abstract _attentionBackward(
    dqkv: Tensor,
    dout: Tensor,
    qkv: Tensor,
    out: Tensor,
    lse: Tensor,
    B: number,
    T: number,
    C: number,
    NH: number,
  ): void;
  protected abstract _attentionCached(
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
  protected abstract _geluForward(out: Tensor, inp: Tensor, N: number): void;
  protected abstract _geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void;
  protected abstract _residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void;
  protected abstract _accumulate(dst: Tensor, src: Tensor, N: number): void;
  protected abstract _dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void;
  protected abstract _dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void;
  protected abstract _crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void;
  protected abstract _crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void;
  protected abstract _adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void;
  protected abstract _sampleTokens(
    ids: Tensor,
    logits: Tensor,
    uniforms: ArrayLike<number>,
    B: number,
    V: number,
    sampling: TokenSampling,
  ): void;

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32', splitAt?: SplitPoints): Tensor {
    this.checkUsable('alloc');
    if (!Number.isSafeInteger(length) || length < 1 || length > this.maxAllocLength) {
      throw new RangeError(`alloc: length must be an integer in [1, ${this.maxAllocLength}], got ${length}`);
    }
    if (dtype !== 'f32' && dtype !== 'i32') throw new TypeError(`alloc: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
    this.checkMemoryLimitFor(`alloc of ${length} ${dtype} elements`, this.allocationBytes(length, dtype, splitAt));
    return this._alloc(length, dtype, splitAt);
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    this.live('view', 't', t);
    viewRange(t.length, offset, length);
    return this._view(t, offset, length);
  }

  upload(t: Tensor, data: Float32Array | Int32Array): void {
    this.live('upload', 't', t);
    const expected = t.dtype === 'f32' ? 'Float32Array' : 'Int32Array';
    // the tag, not instanceof, so arrays from another realm (worker, vm context) are accepted
    if (Object.prototype.toString.call(data) !== `[object ${expected}]`) {
      throw new TypeError(`upload: a ${t.dtype} tensor takes a ${expected}, got ${describe(data)}`);
    }
    if (data.length > t.length) throw new RangeError(`upload: data has ${data.length} elements, the tensor view holds ${t.length}`);
    this._upload(t, data);
  }

  download(t: Tensor): Promise<Float32Array | Int32Array> {
    this.live('download', 't', t);
    return this._download(t);
  }

  /** freeing twice, or after dispose, does nothing */
  free(t: Tensor): void {
    const storage = this.owned('free', 't', t);
    if (this.disposed || !storage.live) return;
    storage.live = false;
    this._free(t);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this._dispose();
  }

  // ---- elementwise helpers ----

  zero(t: Tensor): void {
    this.live('zero', 't', t);
    this._zero(t);
  }

  copy(dst: Tensor, src: Tensor): void {
    const op = 'copy';
    this.live(op, 'dst', dst);
    this.live(op, 'src', src);
    if (dst.dtype !== src.dtype) throw new TypeError(`${op}: dst is ${dst.dtype} but src is ${src.dtype}`);
    if (dst.length < src.length) throw new RangeError(`${op}: dst has ${dst.length} elements, needs at least src.length = ${src.length}`);
    const [to, from] = this.args(op, [['dst', dst, src.dtype, src.length]], [['src', src, src.dtype, src.length]]);
    this._copy(to!, from!);
  }

  scale(t: Tensor, s: number): void {
    finite('scale', 's', s);
    const [x] = this.args('scale', [['t', t, 'f32', t.length]], []);
    this._scale(x!, s);
  }

  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    dims(op, { rows, cols });
    const [o, x] = this.args(op, [['out', out, 'f32', rows * cols]], [['inp', inp, 'f32', rows * cols]]);
    this._transpose(o!, x!, rows, cols);
  }

  squaredNorm(out: Tensor, t: Tensor): void {
    const [o, x] = this.args('squaredNorm', [['out', out, 'f32', 1]], [['t', t, 'f32', t.length]]);
    this._squaredNorm(o!, x!);
  }

  // ---- model ops ----

  encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    // wte [V,C]: V is its number of rows
    const V = Math.floor(this.live(op, 'wte', wte).length / C);
    const [o, ids, tokens, positions] = this.args(
      op,
      [['out', out, 'f32', B * T * C]],
      [
        ['inp', inp, 'i32', B * T],
        ['wte', wte, 'f32', V * C],
        ['wpe', wpe, 'f32', (posOffset + T) * C],
      ],
    );
    this._encoderForward(o!, ids!, tokens!, positions!, B, T, C, posOffset);
  }

  encoderBackward(dwte: Tensor | null, dwpe: Tensor | null, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    dims(op, { B, T, C });
    // without dwte the ids are not read: V does not matter
    const V = dwte === null ? 0 : Math.floor(this.live(op, 'dwte', dwte).length / C);
    const [dTokens, dPositions, d, ids] = this.args(
      op,
      [
        ['dwte', dwte, 'f32', V * C],
        ['dwpe', dwpe, 'f32', T * C],
      ],
      [
        ['dout', dout, 'f32', B * T * C],
        ['inp', inp, 'i32', B * T],
      ],
    );
    if (dTokens === null && dPositions === null) return;
    this._encoderBackward(dTokens, dPositions, d!, ids!, B, T, C);
  }

  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const op = 'layerNormForward';
    dims(op, { N, C });
    const [o, means, rstds, x, w, b] = this.args(
      op,
      [
        ['out', out, 'f32', N * C],
        ['mean', mean, 'f32', N],
        ['rstd', rstd, 'f32', N],
      ],
      [
        ['inp', inp, 'f32', N * C],
        ['weight', weight, 'f32', C],
        ['bias', bias, 'f32', C],
      ],
    );
    this._layerNormForward(o!, means!, rstds!, x!, w!, b!, N, C);
  }

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
  ): void {
    const op = 'layerNormBackward';
    dims(op, { N, C });
    const [dx, dw, db, d, x, w, means, rstds] = this.args(
      op,
      [
        ['dinp', dinp, 'f32', N * C],
        ['dweight', dweight, 'f32', C],
        ['dbias', dbias, 'f32', C],
      ],
      [
        ['dout', dout, 'f32', N * C],
        ['inp', inp, 'f32', N * C],
        ['weight', weight, 'f32', C],
        ['mean', mean, 'f32', N],
        ['rstd', rstd, 'f32', N],
      ],
    );
    this._layerNormBackward(dx!, dw, db, d!, x!, w!, means!, rstds!, N, C);
  }

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const op = 'matmulForward';
    dims(op, { M, K, N });
    const [o, x, w, b] = this.args(
      op,
      [['out', out, 'f32', M * N]],
      [
        ['inp', inp, 'f32', M * K],
        ['weight', weight, 'f32', K * N],
        ['bias', bias, 'f32', N],
      ],
    );
    this._matmulForward(o!, x!, w!, b, M, K, N);
  }

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
  ): void {
    const op = 'matmulBackward';
    dims(op, { M, K, N });
    const [dx, dw, db, d, x, w] = this.args(
      op,
      [
        ['dinp', dinp, 'f32', M * K],
        ['dweight', dweight, 'f32', K * N],
        ['dbias', dbias, 'f32', N],
      ],
      [
        ['dout', dout, 'f32', M * N],
        ['inp', inp, 'f32', M * K],
        ['weight', weight, 'f32', K * N],
      ],
    );
    this._matmulBackward(dx, dw, db, d!, x!, w!, M, K, N);
  }

  // ---- fused products (see the contract): checked here, composed below unless a backend fuses them ----

  matmulGeluForward(
    out: Tensor,
    pre: Tensor | null,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
  ): void {
    const op = 'matmulGeluForward';
    dims(op, { M, K, N });
    const [o, p, x, w, b] = this.args(
      op,
      [
        ['out', out, 'f32', M * N],
        ['pre', pre, 'f32', M * N],
      ],
      [
        ['inp', inp, 'f32', M * K],
        ['weight', weight, 'f32', K * N],
        ['bias', bias, 'f32', N],
      ],
    );
    this._matmulGeluForward(o!, p, x!, w!, b, M, K, N);
  }

  matmulResidualForward(
    out: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    residual: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    const op = 'matmulResidualForward';
    dims(op, { M, K, N });
    const [o, r, x, w, b] = this.args(
      op,
      [['out', out, 'f32', M * N]],
      [
        ['residual', residual, 'f32', M * N],
        ['inp', inp, 'f32', M * K],
        ['weight', weight, 'f32', K * N],
        ['bias', bias, 'f32', N],
      ],
      'residual',
    );
    this._matmulResidualForward(o!, x!, w!, b, r!, M, K, N);
  }

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
  ): void {
    const op = 'matmulGeluBackward';
    dims(op, { M, K, N });
    const [dp, dw, db, d, x, w, p] = this.args(
      op,
      [
        ['dpre', dpre, 'f32', M * K],
        ['dweight', dweight, 'f32', K * N],
        ['dbias', dbias, 'f32', N],
      ],
      [
        ['dout', dout, 'f32', M * N],
        ['inp', inp, 'f32', M * K],
        ['weight', weight, 'f32', K * N],
        ['pre', pre, 'f32', M * K],
      ],
    );
    this._matmulGeluBackward(dp!, dw, db, d!, x!, w!, p!, M, K, N);
  }

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
    activation: Activation = 'none',
  ): void {
    const op = 'layerNormMatmulForward';
    dims(op, { M, K, N });
    if (activation !== 'none' && activation !== 'gelu') {
      throw new RangeError(`${op}: activation must be 'none' or 'gelu', got ${JSON.stringify(activation)}`);
    }
    const [o, x, g, beta, w, b] = this.args(
      op,
      [['out', out, 'f32', M * N]],
      [
        ['inp', inp, 'f32', M * K],
        ['lnWeight', lnWeight, 'f32', K],
        ['lnBias', lnBias, 'f32', K],
        ['weight', weight, 'f32', K * N],
        ['bias', bias, 'f32', N],
      ],
    );
    this._layerNormMatmulForward(o!, x!, g!, beta!, w!, b, M, K, N, activation);
  }

  /**
   * Zero-filled temporaries of the composed fused ops below, one per length, handed back through
   * releaseTemporaries before the op returns: fresh allocations here; a backend may keep a region
   * for them.
   */
  protected takeTemporaries(lengths: readonly number[]): Tensor[] {
    return lengths.map((length) => this._alloc(length, 'f32'));
  }

  protected releaseTemporaries(temporaries: readonly Tensor[]): void {
    for (const t of temporaries) this._free(t);
  }

  /**
   * The fused products as the contract defines them, composed of this backend's own ops (the js
   * reference and wasm use these; WebGPU fuses them into its product kernels), with temporaries
   * from takeTemporaries.
   */
  protected _matmulGeluForward(
    out: Tensor,
    pre: Tensor | null,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
  ): void {
    // without pre, the product goes into out and GELU runs in place
    const product = pre ?? out;
    this._matmulForward(product, inp, weight, bias, M, K, N);
    this._geluForward(out, product, M * N);
  }

  protected _matmulResidualForward(
    out: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    residual: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    if (!this.overlap(out, residual)) {
      this._matmulForward(out, inp, weight, bias, M, K, N);
      this._residualForward(out, out, residual, M * N);
      return;
    }
    // in place on the residual stream: the product needs a buffer of its own
    const temporaries = this.takeTemporaries([M * N]);
    try {
      this._matmulForward(temporaries[0], inp, weight, bias, M, K, N);
      this._residualForward(out, residual, temporaries[0], M * N);
    } finally {
      this.releaseTemporaries(temporaries);
    }
  }

  protected _matmulGeluBackward(
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
  ): void {
    const temporaries = this.takeTemporaries([M * K]);
    try {
      this._matmulBackward(temporaries[0], dweight, dbias, dout, inp, weight, M, K, N);
      this._geluBackward(dpre, pre, temporaries[0], M * K);
    } finally {
      this.releaseTemporaries(temporaries);
    }
  }

  protected _layerNormMatmulForward(
    out: Tensor,
    inp: Tensor,
    lnWeight: Tensor,
    lnBias: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    activation: Activation,
  ): void {
    // three tensors: a backend that binds windows of buffers (WebGPU) may need to cut the rows
    const temporaries = this.takeTemporaries([M * K, M, M]);
    const [normalised, mean, rstd] = temporaries;
    try {
      this._layerNormForward(normalised, mean, rstd, inp, lnWeight, lnBias, M, K);
      if (activation === 'gelu') this._matmulGeluForward(out, null, normalised, weight, bias, M, K, N);
      else this._matmulForward(out, normalised, weight, bias, M, K, N);
    } finally {
      this.releaseTemporaries(temporaries);
    }
  }

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionForward';
    headSize(op, B, T, C, NH);
    const [o, logSumExps, x] = this.args(
      op,
      [
        ['out', out, 'f32', B * T * C],
        ['lse', lse, 'f32', B * NH * T],
      ],
      [['qkv', qkv, 'f32', B * T * 3 * C]],
    );
    this._attentionForward(o!, logSumExps!, x!, B, T, C, NH);
  }

  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionBackward';
    headSize(op, B, T, C, NH);
    const [dx, d, x, o, logSumExps] = this.args(
      op,
      [['dqkv', dqkv, 'f32', B * T * 3 * C]],
      [
        ['dout', dout, 'f32', B * T * C],
        ['qkv', qkv, 'f32', B * T * 3 * C],
        ['out', out, 'f32', B * T * C],
        ['lse', lse, 'f32', B * NH * T],
      ],
    );
    this._attentionBackward(dx!, d!, x!, o!, logSumExps!, B, T, C, NH);
  }

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
  ): void {
    const op = 'attentionCached';
    headSize(op, B, Tn, C, NH);
    dims(op, { cacheLen });
    nonNegativeInteger(op, 'startPos', startPos);
    if (startPos + Tn > cacheLen) throw new RangeError(`${op}: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    const [o, keys, values, x] = this.args(
      op,
      [
        ['out', out, 'f32', B * Tn * C],
        ['kCache', kCache, 'f32', B * cacheLen * C],
        ['vCache', vCache, 'f32', B * cacheLen * C],
      ],
      [['qkv', qkv, 'f32', B * Tn * 3 * C]],
    );
    this._attentionCached(o!, x!, keys!, values!, B, Tn, C, NH, startPos, cacheLen);
  }

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    const op = 'geluForward';
    dims(op, { N });
    const [o, x] = this.args(op, [['out', out, 'f32', N]], [['inp', inp, 'f32', N]], 'inp');
    this._geluForward(o!, x!, N);
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const op = 'geluBackward';
    dims(op, { N });
    const [dx, x, d] = this.args(
      op,
      [['dinp', dinp, 'f32', N]],
      [
        ['inp', inp, 'f32', N],
        ['dout', dout, 'f32', N],
      ],
    );
    this._geluBackward(dx!, x!, d!, N);
  }

  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const op = 'residualForward';
    dims(op, { N });
    const [o, x, y] = this.args(
      op,
      [['out', out, 'f32', N]],
      [
        ['a', a, 'f32', N],
        ['b', b, 'f32', N],
      ],
      'a',
    );
    this._residualForward(o!, x!, y!, N);
  }

  accumulate(dst: Tensor, src: Tensor, N: number): void {
    const op = 'accumulate';
    dims(op, { N });
    const [to, from] = this.args(op, [['dst', dst, 'f32', N]], [['src', src, 'f32', N]]);
    this._accumulate(to!, from!, N);
  }

  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutForward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const [o, x] = this.args(op, [['out', out, 'f32', N]], [['inp', inp, 'f32', N]], 'inp');
    this._dropoutForward(o!, x!, N, p, seed);
  }

  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutBackward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const [dx, d] = this.args(op, [['dinp', dinp, 'f32', N]], [['dout', dout, 'f32', N]]);
    this._dropoutBackward(dx!, d!, N, p, seed);
  }

  crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    dims(op, { N, V });
    const [l, p, z, y] = this.args(
      op,
      [
        ['losses', losses, 'f32', N],
        ['probs', probs, 'f32', N * V],
      ],
      [
        ['logits', logits, 'f32', N * V],
        ['targets', targets, 'i32', N],
      ],
    );
    this._crossEntropyForward(l!, p!, z!, y!, N, V);
  }

  crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    dims(op, { N, V });
    finite(op, 'dlossScale', dlossScale);
    const [dz, p, y] = this.args(
      op,
      [['dlogits', dlogits, 'f32', N * V]],
      [
        ['probs', probs, 'f32', N * V],
        ['targets', targets, 'i32', N],
      ],
    );
    this._crossEntropyBackward(dz!, p!, y!, dlossScale, N, V);
  }

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const op = 'adamwUpdate';
    adamwArgs(op, opts);
    const n = this.live(op, 'params', params).length;
    const [w, m1, m2, g] = this.args(
      op,
      [
        ['params', params, 'f32', n],
        ['m', m, 'f32', n],
        ['v', v, 'f32', n],
      ],
      [['grads', grads, 'f32', n]],
    );
    if (n > 0) this._adamwUpdate(w!, g!, m1!, m2!, opts);
  }

  sampleTokens(ids: Tensor, logits: Tensor, uniforms: ArrayLike<number>, B: number, V: number, sampling: TokenSampling): void {
    const op = 'sampleTokens';
    dims(op, { B, V });
    samplingArgs(op, sampling, uniforms, B, V);
    const [chosen, z] = this.args(op, [['ids', ids, 'i32', B]], [['logits', logits, 'f32', B * V]]);
    this._sampleTokens(chosen!, z!, uniforms, B, V, sampling);
  }

  // ---- the optional quantized ops: a backend that has them checks their arguments with these ----

  /** matmulQuantForward's arguments checked: out, inp, quants, scales (null for f16), bias as the op reads them */
  protected matmulQuantArgs(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    format: QuantFormat,
  ): [Tensor, Tensor, Tensor, Tensor | null, Tensor | null] {
    const op = 'matmulQuantForward';
    dims(op, { M, K, N });
    const words = quantWords(op, format, N, K);
    quantScales(op, format, scales);
    const [o, x, q, d, b] = this.args(
      op,
      [['out', out, 'f32', M * N]],
      [
        ['inp', inp, 'f32', M * K],
        ['quants', quants, 'i32', words],
        ['scales', scales, 'f32', (N * K) / 32],
        ['bias', bias, 'f32', N],
      ],
    );
    return [o!, x!, q!, d, b];
  }

  /** encoderQuantForward's arguments checked: out, inp, quants, scales (null for f16), wpe as the op reads them, and V */
  protected encoderQuantArgs(
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
  ): [Tensor, Tensor, Tensor, Tensor | null, Tensor, number] {
    const op = 'encoderQuantForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    quantWords(op, format, 1, C);
    quantScales(op, format, scales);
    // the token table [V,C]: C / 32 scales per row, or C / 2 words of f16 pairs
    const V =
      scales === null
        ? Math.floor((this.live(op, 'quants', quants).length * 2) / C)
        : Math.floor(this.live(op, 'scales', scales).length / (C / 32));
    const words = quantWords(op, format, V, C);
    const [o, ids, q, d, positions] = this.args(
      op,
      [['out', out, 'f32', B * T * C]],
      [
        ['inp', inp, 'i32', B * T],
        ['quants', quants, 'i32', words],
        ['scales', scales, 'f32', (V * C) / 32],
        ['wpe', wpe, 'f32', (posOffset + T) * C],
      ],
    );
    return [o!, ids!, q!, d, positions!, V];
  }

  // ---- the checks ----

  protected get isDisposed(): boolean {
    return this.disposed;
  }

  /** throws once the backend is disposed */
  protected checkUsable(op: string): void {
    if (this.disposed) throw new Error(`${op}: this ${this.name} backend was disposed`);
  }

  /** the storage of `t`, which must be a tensor of this backend (live or not) */
  private owned(op: string, name: string, t: Tensor): TensorStorage {
    const storage = this.storageOf(t);
    if (storage === undefined) throw new TypeError(`${op}: ${name} is not a tensor of this ${this.name} backend`);
    return storage;
  }

  /** `t`, which must be a live tensor of this usable backend */
  protected live(op: string, name: string, t: Tensor): Tensor {
    this.checkUsable(op);
    if (!this.owned(op, name, t).live) throw new Error(`${op}: ${name} belongs to a buffer that was freed`);
    return t;
  }

  /**
   * Checks the tensors an op writes and reads (in argument order: written first, then read) and
   * returns each as a view of exactly its `need` elements, in the same order (null stays null).
   * The written ones may share no element with each other or with a read one, except that the
   * first written may be the read one named `inPlace` exactly (an op that may run in place).
   */
  private args(op: string, written: readonly Arg[], read: readonly Arg[], inPlace?: string): (Tensor | null)[] {
    const views: (Tensor | null)[] = [];
    for (const arg of written) views.push(this.argView(op, arg));
    for (const arg of read) views.push(this.argView(op, arg));
    for (let i = 0; i < written.length; i++) {
      const out = views[i];
      if (out === null) continue;
      for (let j = i + 1; j < views.length; j++) {
        const other = views[j];
        if (other === null || !this.overlap(out, other)) continue;
        const [outName, otherName] = [written[i][0], j < written.length ? written[j][0] : read[j - written.length][0]];
        if (i === 0 && otherName === inPlace) {
          if (out.offset === other.offset) continue;
          throw new RangeError(`${op}: ${outName} partly overlaps ${otherName}; it may alias it exactly or not at all`);
        }
        throw new RangeError(`${op}: ${outName} overlaps ${otherName}; they must not share storage`);
      }
    }
    return views;
  }

  /** one argument checked (live, dtype, length) and cut to the elements the op reads */
  private argView(op: string, [name, t, dtype, need]: Arg): Tensor | null {
    if (t === null) return null;
    this.live(op, name, t);
    if (t.dtype !== dtype) throw new TypeError(`${op}: ${name} must be an ${dtype} tensor, got ${t.dtype}`);
    if (t.length < need) throw new RangeError(`${op}: ${name} has ${t.length} elements, needs at least ${need}`);
    return t.length === need ? t : this._view(t, 0, need);
  }

  private overlap(a: Tensor, b: Tensor): boolean {
    return (
      this.storageOf(a) === this.storageOf(b) &&
      a.length > 0 &&
      b.length > 0 &&
      a.offset < b.offset + b.length &&
      b.offset < a.offset + a.length
    );
  }
}
