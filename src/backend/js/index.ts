/**
 * The reference backend: plain TypeScript loops that follow src/backend/contract.ts to the letter.
 * Every other backend is tested against it, so it favours clarity over speed. Arithmetic runs in
 * JavaScript doubles; results are stored in float32 (default) or, with `precision: 'f64'`, in
 * float64 so that tests can check gradients against finite differences. Attention's loops are in
 * attention.ts.
 *
 * It runs past 700 lines because it is one class with a method per contract op, each the plainest
 * loop that states the op; splitting the class would scatter the reference readers compare against.
 */
import {
  type Activation,
  GELU_SCALE,
  IGNORE_INDEX,
  LAYER_NORM_EPS,
  dropoutKeep,
  type AdamWParams,
  type BackendLimits,
  type DType,
  float16BitsToFloat32,
  type QuantFormat,
  type Tensor,
  type TokenSampling,
} from '../contract.js';
import { CheckedBackend } from '../checked.js';
import { chooseToken } from '../../generate/choose.js';
import { attentionBackward, attentionCached, attentionForward, type FloatStorage } from './attention.js';

export type JsPrecision = 'f32' | 'f64';

export interface JsBackendOptions {
  /** storage of f32 tensors: Float32Array ('f32', default) or Float64Array ('f64', for tests) */
  precision?: JsPrecision;
}

type Storage = FloatStorage | Int32Array;

/** One allocation; tensors are views into it. */
interface JsBuffer {
  readonly data: Storage;
  readonly owner: JsBackend;
  live: boolean;
}

class JsTensor implements Tensor {
  constructor(
    readonly dtype: DType,
    readonly offset: number,
    readonly length: number,
    readonly buffer: JsBuffer,
  ) {}
}

const GELU_CUBIC = 0.044715;

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + GELU_CUBIC * x ** 3)));
}

/** d gelu(x) / dx */
function geluGrad(x: number): number {
  const th = Math.tanh(GELU_SCALE * (x + GELU_CUBIC * x ** 3));
  const dInner = GELU_SCALE * (1 + 3 * GELU_CUBIC * x * x);
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * dInner;
}

export class JsBackend extends CheckedBackend {
  readonly name = 'js' as const;
  /** this backend does not split work over threads */
  readonly threads = 1;
  readonly threadsNote = '';
  /**
   * Host memory has no fixed bound, but a model or batch past wasm32's 4 GiB is far beyond what
   * the reference backend is for: refusing it up front beats growing the heap for minutes
   */
  readonly limits: BackendLimits = { maxTensorLength: 2 ** 31 - 1, maxTotalBytes: 4 * 2 ** 30 };
  readonly precision: JsPrecision;
  private readonly liveBuffers = new Set<JsBuffer>();

  constructor(options: JsBackendOptions = {}) {
    const precision = options.precision ?? 'f32';
    if (precision !== 'f32' && precision !== 'f64') {
      throw new RangeError(`JsBackend: precision must be 'f32' or 'f64', got ${String(precision)}`);
    }
    super();
    this.precision = precision;
  }

  protected get maxAllocLength(): number {
    return this.limits.maxTensorLength;
  }

  protected storageOf(t: Tensor): JsBuffer | undefined {
    return t instanceof JsTensor && t.buffer.owner === this ? t.buffer : undefined;
  }

  // ---- storage ----

  /** f64 precision stores f32 tensors in Float64Arrays */
  protected override allocationBytes(length: number, dtype: DType): number {
    return length * (dtype === 'f32' && this.precision === 'f64' ? 8 : 4);
  }

  protected _alloc(length: number, dtype: DType): Tensor {
    const data: Storage =
      dtype === 'i32' ? new Int32Array(length) : this.precision === 'f64' ? new Float64Array(length) : new Float32Array(length);
    const buffer: JsBuffer = { data, owner: this, live: true };
    this.liveBuffers.add(buffer);
    return new JsTensor(dtype, 0, length, buffer);
  }

  protected _view(t: Tensor, offset: number, length: number): Tensor {
    const parent = t as JsTensor;
    return new JsTensor(parent.dtype, parent.offset + offset, length, parent.buffer);
  }

  protected _upload(t: Tensor, data: Float32Array | Int32Array): void {
    this.data(t).set(data);
  }

  protected _download(t: Tensor): Promise<Float32Array | Int32Array> {
    const values = this.data(t);
    return Promise.resolve(t.dtype === 'i32' ? Int32Array.from(values) : Float32Array.from(values));
  }

  /** Synchronous copy of the view in storage precision (tests only). */
  read(t: Tensor): Float64Array | Float32Array | Int32Array {
    return this.data(this.live('read', 't', t)).slice();
  }

  /** Synchronous write from element 0 of the view, in full storage precision (tests only). */
  write(t: Tensor, data: ArrayLike<number>): void {
    const target = this.live('write', 't', t);
    if (target.dtype === 'i32') {
      for (let i = 0; i < data.length; i++) {
        const x = data[i];
        if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) {
          throw new RangeError(`write: data[${i}] = ${x} is not an int32 (the tensor is i32)`);
        }
      }
    }
    if (data.length > target.length) {
      throw new RangeError(`write: data has ${data.length} elements, the tensor view holds ${target.length}`);
    }
    this.data(target).set(data);
  }

  protected _free(t: Tensor): void {
    this.liveBuffers.delete((t as JsTensor).buffer);
  }

  bytesInUse(): number {
    let bytes = 0;
    for (const buffer of this.liveBuffers) bytes += buffer.data.byteLength;
    return bytes;
  }

  protected _dispose(): void {
    for (const buffer of this.liveBuffers) buffer.live = false;
    this.liveBuffers.clear();
  }

  // ---- elementwise helpers ----

  protected _zero(t: Tensor): void {
    this.data(t).fill(0);
  }

  protected _copy(dst: Tensor, src: Tensor): void {
    this.data(dst).set(this.data(src));
  }

  protected _scale(t: Tensor, s: number): void {
    const x = this.f32(t);
    for (let i = 0; i < x.length; i++) x[i] *= s;
  }

  protected _transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const o = this.f32(out);
    const x = this.f32(inp);
    // out[c, r] = inp[r, c]
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) o[c * rows + r] = x[r * cols + c];
    }
  }

  protected _squaredNorm(out: Tensor, t: Tensor): void {
    const result = this.f32(out);
    const x = this.f32(t);
    let sum = 0; // float64 accumulator
    for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
    result[0] = sum;
  }

  // ---- encoder ----

  protected _encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    const o = this.f32(out);
    const ids = this.i32(inp);
    const tokenTable = this.f32(wte); // [V,C]: V is its number of rows
    const positionTable = this.f32(wpe);
    const V = Math.floor(tokenTable.length / C);
    for (let bt = 0; bt < B * T; bt++) {
      const id = checkedId(op, 'inp', ids, bt, V);
      const pos = posOffset + (bt % T);
      for (let c = 0; c < C; c++) o[bt * C + c] = tokenTable[id * C + c] + positionTable[pos * C + c];
    }
  }

  protected _encoderBackward(dwte: Tensor | null, dwpe: Tensor | null, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    const d = this.f32(dout);
    if (dwte !== null) {
      const dTokenTable = this.f32(dwte); // [V,C]: V is its number of rows
      const ids = this.i32(inp);
      const V = Math.floor(dTokenTable.length / C);
      for (let bt = 0; bt < B * T; bt++) {
        const id = checkedId(op, 'inp', ids, bt, V);
        for (let c = 0; c < C; c++) dTokenTable[id * C + c] += d[bt * C + c];
      }
    }
    if (dwpe !== null) {
      const dPositionTable = this.f32(dwpe);
      for (let bt = 0; bt < B * T; bt++) {
        const t = bt % T;
        for (let c = 0; c < C; c++) dPositionTable[t * C + c] += d[bt * C + c];
      }
    }
  }

  // ---- layer norm ----

  protected _layerNormForward(
    out: Tensor,
    mean: Tensor,
    rstd: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor,
    N: number,
    C: number,
  ): void {
    const o = this.f32(out);
    const means = this.f32(mean);
    const rstds = this.f32(rstd);
    const x = this.f32(inp);
    const w = this.f32(weight);
    const b = this.f32(bias);
    for (let n = 0; n < N; n++) {
      const row = n * C;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += x[row + c];
      const mu = sum / C;
      let squares = 0;
      for (let c = 0; c < C; c++) squares += (x[row + c] - mu) ** 2;
      const invStd = 1 / Math.sqrt(squares / C + LAYER_NORM_EPS);
      for (let c = 0; c < C; c++) o[row + c] = (x[row + c] - mu) * invStd * w[c] + b[c];
      means[n] = mu;
      rstds[n] = invStd;
    }
  }

  protected _layerNormBackward(
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
    const dx = this.f32(dinp);
    const dw = dweight === null ? null : this.f32(dweight);
    const db = dbias === null ? null : this.f32(dbias);
    const d = this.f32(dout);
    const x = this.f32(inp);
    const w = this.f32(weight);
    const means = this.f32(mean);
    const rstds = this.f32(rstd);
    for (let n = 0; n < N; n++) {
      const row = n * C;
      const mu = means[n];
      const invStd = rstds[n];
      // dnorm = dout * weight; dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
      let dnormMean = 0;
      let dnormNormMean = 0;
      for (let c = 0; c < C; c++) {
        const norm = (x[row + c] - mu) * invStd;
        const dnorm = d[row + c] * w[c];
        dnormMean += dnorm;
        dnormNormMean += dnorm * norm;
      }
      dnormMean /= C;
      dnormNormMean /= C;
      for (let c = 0; c < C; c++) {
        const norm = (x[row + c] - mu) * invStd;
        const dnorm = d[row + c] * w[c];
        if (db !== null) db[c] += d[row + c];
        if (dw !== null) dw[c] += norm * d[row + c];
        dx[row + c] += (dnorm - dnormMean - norm * dnormNormMean) * invStd;
      }
    }
  }

  // ---- matmul ----

  protected _matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const o = this.f32(out);
    const x = this.f32(inp);
    const w = this.f32(weight);
    const b = bias === null ? null : this.f32(bias);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = b === null ? 0 : b[n];
        for (let k = 0; k < K; k++) sum += x[m * K + k] * w[k * N + n];
        o[m * N + n] = sum;
      }
    }
  }

  // ---- fused products: the contract's compositions, each output rounded once from float64 ----

  /** sum_k rowOf(m)[k] * weight[k, n] + bias[n], in float64 */
  private productAt(
    row: ArrayLike<number>,
    rowStart: number,
    w: FloatStorage,
    b: FloatStorage | null,
    K: number,
    N: number,
    n: number,
  ): number {
    let sum = b === null ? 0 : b[n];
    for (let k = 0; k < K; k++) sum += row[rowStart + k] * w[k * N + n];
    return sum;
  }

  protected override _matmulGeluForward(
    out: Tensor,
    pre: Tensor | null,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
  ): void {
    const o = this.f32(out);
    const p = pre === null ? null : this.f32(pre);
    const x = this.f32(inp);
    const w = this.f32(weight);
    const b = bias === null ? null : this.f32(bias);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const value = this.productAt(x, m * K, w, b, K, N, n);
        if (p !== null) p[m * N + n] = value;
        o[m * N + n] = gelu(value);
      }
    }
  }

  protected override _matmulResidualForward(
    out: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    residual: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    const o = this.f32(out);
    const r = this.f32(residual);
    const x = this.f32(inp);
    const w = this.f32(weight);
    const b = bias === null ? null : this.f32(bias);
    // out may be residual itself: each element is read before it is written
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) o[m * N + n] = r[m * N + n] + this.productAt(x, m * K, w, b, K, N, n);
    }
  }

  protected override _matmulGeluBackward(
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
    this._matmulBackward(null, dweight, dbias, dout, inp, weight, M, K, N);
    const dp = this.f32(dpre);
    const d = this.f32(dout);
    const w = this.f32(weight);
    const p = this.f32(pre);
    for (let m = 0; m < M; m++) {
      for (let k = 0; k < K; k++) {
        let sum = 0;
        for (let n = 0; n < N; n++) sum += d[m * N + n] * w[k * N + n];
        dp[m * K + k] += geluGrad(p[m * K + k]) * sum;
      }
    }
  }

  protected override _layerNormMatmulForward(
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
    const o = this.f32(out);
    const x = this.f32(inp);
    const g = this.f32(lnWeight);
    const beta = this.f32(lnBias);
    const w = this.f32(weight);
    const b = bias === null ? null : this.f32(bias);
    const normalised = new Float64Array(K);
    for (let m = 0; m < M; m++) {
      const row = m * K;
      let sum = 0;
      for (let k = 0; k < K; k++) sum += x[row + k];
      const mu = sum / K;
      let squares = 0;
      for (let k = 0; k < K; k++) squares += (x[row + k] - mu) ** 2;
      const invStd = 1 / Math.sqrt(squares / K + LAYER_NORM_EPS);
      for (let k = 0; k < K; k++) normalised[k] = (x[row + k] - mu) * invStd * g[k] + beta[k];
      for (let n = 0; n < N; n++) {
        const value = this.productAt(normalised, 0, w, b, K, N, n);
        o[m * N + n] = activation === 'gelu' ? gelu(value) : value;
      }
    }
  }

  protected _matmulBackward(
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
    const dx = dinp === null ? null : this.f32(dinp);
    const db = dbias === null ? null : this.f32(dbias);
    const d = this.f32(dout);
    const x = this.f32(inp);
    const w = this.f32(weight);
    if (dx !== null) {
      // dinp[m,k] += sum_n dout[m,n] * weight[k,n]
      for (let m = 0; m < M; m++) {
        for (let k = 0; k < K; k++) {
          let sum = 0;
          for (let n = 0; n < N; n++) sum += d[m * N + n] * w[k * N + n];
          dx[m * K + k] += sum;
        }
      }
    }
    if (dweight !== null) {
      const dw = this.f32(dweight);
      // dweight[k,n] += sum_m inp[m,k] * dout[m,n]
      for (let k = 0; k < K; k++) {
        for (let n = 0; n < N; n++) {
          let sum = 0;
          for (let m = 0; m < M; m++) sum += x[m * K + k] * d[m * N + n];
          dw[k * N + n] += sum;
        }
      }
    }
    if (db !== null) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let m = 0; m < M; m++) sum += d[m * N + n];
        db[n] += sum;
      }
    }
  }

  // ---- attention ----

  protected _attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    attentionForward(this.f32(out), this.f32(lse), this.f32(qkv), B, T, C, NH);
  }

  protected _attentionBackward(
    dqkv: Tensor,
    dout: Tensor,
    qkv: Tensor,
    out: Tensor,
    lse: Tensor,
    B: number,
    T: number,
    C: number,
    NH: number,
  ): void {
    // the oracle recomputes the probabilities from lse, so it does not read `out`
    attentionBackward(this.f32(dqkv), this.f32(dout), this.f32(qkv), this.f32(lse), B, T, C, NH);
  }

  protected _attentionCached(
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
    if (startPos + Tn > cacheLen) {
      throw new RangeError(`attentionCached: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    }
    attentionCached(this.f32(out), this.f32(qkv), this.f32(kCache), this.f32(vCache), B, Tn, C, NH, startPos, cacheLen);
  }

  // ---- gelu ----

  protected _geluForward(out: Tensor, inp: Tensor, N: number): void {
    const o = this.f32(out);
    const x = this.f32(inp);
    for (let i = 0; i < N; i++) o[i] = gelu(x[i]);
  }

  protected _geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const dx = this.f32(dinp);
    const x = this.f32(inp);
    const d = this.f32(dout);
    for (let i = 0; i < N; i++) dx[i] += geluGrad(x[i]) * d[i];
  }

  // ---- residual ----

  protected _residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const o = this.f32(out);
    const x = this.f32(a);
    const y = this.f32(b);
    for (let i = 0; i < N; i++) o[i] = x[i] + y[i];
  }

  protected _accumulate(dst: Tensor, src: Tensor, N: number): void {
    const to = this.f32(dst);
    const from = this.f32(src);
    for (let i = 0; i < N; i++) to[i] += from[i];
  }

  // ---- dropout ----

  protected _dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const o = this.f32(out);
    const x = this.f32(inp);
    const keptScale = 1 / (1 - p);
    for (let i = 0; i < N; i++) o[i] = dropoutKeep(seed, i, p) ? x[i] * keptScale : 0;
  }

  protected _dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const dx = this.f32(dinp);
    const d = this.f32(dout);
    const keptScale = 1 / (1 - p);
    for (let i = 0; i < N; i++) {
      if (dropoutKeep(seed, i, p)) dx[i] += d[i] * keptScale;
    }
  }

  // ---- softmax + cross-entropy ----

  protected _crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    const l = this.f32(losses);
    const p = this.f32(probs);
    const z = this.f32(logits);
    const y = this.i32(targets);
    for (let n = 0; n < N; n++) {
      const target = checkedTarget(op, y, n, V);
      const row = n * V;
      let maxLogit = -Infinity;
      for (let v = 0; v < V; v++) maxLogit = Math.max(maxLogit, z[row + v]);
      let sumExp = 0;
      for (let v = 0; v < V; v++) sumExp += Math.exp(z[row + v] - maxLogit);
      const rowLse = maxLogit + Math.log(sumExp);
      for (let v = 0; v < V; v++) p[row + v] = Math.exp(z[row + v] - rowLse);
      // -log softmax[target] = lse - logit[target], exact even when the probability underflows
      l[n] = target === IGNORE_INDEX ? 0 : rowLse - z[row + target];
    }
  }

  /** generation's CPU sampler itself, on a float32 copy of each row (what generation reads back) */
  protected _sampleTokens(ids: Tensor, logits: Tensor, uniforms: ArrayLike<number>, B: number, V: number, sampling: TokenSampling): void {
    const out = this.i32(ids);
    const z = this.f32(logits);
    for (let b = 0; b < B; b++)
      out[b] = chooseToken(Float32Array.from(z.subarray(b * V, (b + 1) * V)), sampling, sampling.greedy ? 0 : uniforms[b]);
  }

  protected _crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    const dz = this.f32(dlogits);
    const p = this.f32(probs);
    const y = this.i32(targets);
    for (let n = 0; n < N; n++) {
      const target = checkedTarget(op, y, n, V);
      if (target === IGNORE_INDEX) continue;
      const row = n * V;
      for (let v = 0; v < V; v++) {
        const indicator = v === target ? 1 : 0;
        dz[row + v] += (p[row + v] - indicator) * dlossScale;
      }
    }
  }

  // ---- optimizer ----

  protected _adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    const n = params.length;
    const w = this.f32(params);
    const g = this.f32(grads);
    const m1 = this.f32(m);
    const m2 = this.f32(v);
    const bias1 = 1 - beta1 ** step;
    const bias2 = 1 - beta2 ** step;
    for (let i = 0; i < n; i++) {
      m1[i] = beta1 * m1[i] + (1 - beta1) * g[i];
      m2[i] = beta2 * m2[i] + (1 - beta2) * g[i] * g[i];
      const mHat = m1[i] / bias1;
      const vHat = m2[i] / bias2;
      w[i] -= learningRate * (mHat / (Math.sqrt(vHat) + eps) + weightDecay * w[i]);
    }
  }

  // ---- quantized inference: the dequantized product, summed in the storage precision ----

  matmulQuantForward(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    format: QuantFormat,
  ): void {
    const [o, x, q, d, b] = this.matmulQuantArgs(out, inp, quants, scales, bias, M, K, N, format).map((t) => t && this.data(t));
    const row = new Float64Array(K);
    const bytes = quantBytes(q as Int32Array);
    for (let n = 0; n < N; n++) {
      dequantizeRowInto(row, bytes, d, n, K, format);
      for (let m = 0; m < M; m++) {
        let sum = b === null ? 0 : b[n];
        for (let k = 0; k < K; k++) sum += x![m * K + k] * row[k];
        o![m * N + n] = sum;
      }
    }
  }

  encoderQuantForward(
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
  ): void {
    const op = 'encoderQuantForward';
    const [o, ids, q, d, positions, V] = this.encoderQuantArgs(out, inp, quants, scales, wpe, B, T, C, posOffset, format);
    const outRows = this.f32(o);
    const positionTable = this.f32(positions);
    const bytes = quantBytes(this.i32(q));
    const row = new Float64Array(C);
    for (let bt = 0; bt < B * T; bt++) {
      dequantizeRowInto(row, bytes, d && this.f32(d), checkedId(op, 'inp', this.i32(ids), bt, V), C, format);
      const pos = posOffset + (bt % T);
      for (let c = 0; c < C; c++) outRows[bt * C + c] = row[c] + positionTable[pos * C + c];
    }
  }

  // ---- storage of checked tensors ----

  /** the elements of a view (a subarray: no copy) */
  private data(t: Tensor): Storage {
    const own = t as JsTensor;
    return own.buffer.data.subarray(own.offset, own.offset + own.length);
  }

  private f32(t: Tensor): FloatStorage {
    return this.data(t) as FloatStorage;
  }

  private i32(t: Tensor): Int32Array {
    return this.data(t) as Int32Array;
  }
}

function checkedId(op: string, name: string, ids: Int32Array, i: number, V: number): number {
  const id = ids[i];
  if (id < 0 || id >= V) throw new RangeError(`${op}: ${name}[${i}] = ${id} is outside [0, ${V}) (rows of wte)`);
  return id;
}

function checkedTarget(op: string, targets: Int32Array, n: number, V: number): number {
  const target = targets[n];
  if (target !== IGNORE_INDEX && (target < 0 || target >= V)) {
    throw new RangeError(`${op}: targets[${n}] = ${target} is outside [0, ${V}) and is not the ignore index ${IGNORE_INDEX}`);
  }
  return target;
}

/** the bytes of a quants tensor's i32 words */
function quantBytes(ints: Int32Array): Uint8Array {
  return new Uint8Array(ints.buffer, ints.byteOffset, ints.byteLength);
}

/** row n of a quantized [rows, K] matrix (src/model/quant.ts), dequantized into `row`; d is null for f16 */
function dequantizeRowInto(row: Float64Array, q: Uint8Array, d: ArrayLike<number> | null, n: number, K: number, format: QuantFormat): void {
  if (format === 'f16') {
    // little-endian halves (model/quant.ts's halfBits, kept here so the backend does not pull in the quantizers)
    for (let i = n * K; i < (n + 1) * K; i++) row[i - n * K] = float16BitsToFloat32(q[2 * i] | (q[2 * i + 1] << 8));
    return;
  }
  const blocks = K / 32;
  for (let blk = 0; blk < blocks; blk++) {
    const scale = d![n * blocks + blk];
    if (format === 'q8_0') {
      const base = (n * blocks + blk) * 32;
      for (let j = 0; j < 32; j++) row[blk * 32 + j] = ((q[base + j] << 24) >> 24) * scale;
    } else {
      const base = (n * blocks + blk) * 16;
      for (let j = 0; j < 16; j++) {
        row[blk * 32 + j] = ((q[base + j] & 15) - 8) * scale;
        row[blk * 32 + j + 16] = ((q[base + j] >> 4) - 8) * scale;
      }
    }
  }
}
