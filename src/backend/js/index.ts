/**
 * The reference backend: plain TypeScript loops that follow src/backend/contract.ts to the letter.
 * Every other backend is tested against it, so it favours clarity over speed. Arithmetic runs in
 * JavaScript doubles; results are stored in float32 (default) or, with `precision: 'f64'`, in
 * float64 so that tests can check gradients against finite differences.
 */
import {
  GELU_SCALE,
  IGNORE_INDEX,
  LAYER_NORM_EPS,
  dropoutKeep,
  type AdamWParams,
  type Backend,
  type BackendLimits,
  type DType,
  type OpName,
  type QuantFormat,
  type Tensor,
} from '../contract.js';
import { adamwArgs, describe, dims, dropoutArgs, finite, headSize, nonNegativeInteger, quantWords, viewRange } from '../checks.js';

export type JsPrecision = 'f32' | 'f64';

export interface JsBackendOptions {
  /** storage of f32 tensors: Float32Array ('f32', default) or Float64Array ('f64', for tests) */
  precision?: JsPrecision;
}

type FloatStorage = Float32Array | Float64Array;
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

export class JsBackend implements Backend {
  readonly name = 'js' as const;
  readonly limits: BackendLimits = { maxTensorLength: 2 ** 31 - 1, maxTotalBytes: Infinity };
  readonly precision: JsPrecision;
  private readonly liveBuffers = new Set<JsBuffer>();

  constructor(options: JsBackendOptions = {}) {
    const precision = options.precision ?? 'f32';
    if (precision !== 'f32' && precision !== 'f64') {
      throw new RangeError(`JsBackend: precision must be 'f32' or 'f64', got ${String(precision)}`);
    }
    this.precision = precision;
  }

  supports(_op: OpName): boolean {
    return true;
  }

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32'): Tensor {
    if (!Number.isInteger(length) || length < 1 || length > this.limits.maxTensorLength) {
      throw new RangeError(`alloc: length must be an integer in [1, ${this.limits.maxTensorLength}], got ${length}`);
    }
    let data: Storage;
    if (dtype === 'i32') data = new Int32Array(length);
    else if (dtype === 'f32') data = this.precision === 'f64' ? new Float64Array(length) : new Float32Array(length);
    else throw new TypeError(`alloc: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
    const buffer: JsBuffer = { data, owner: this, live: true };
    this.liveBuffers.add(buffer);
    return new JsTensor(dtype, 0, length, buffer);
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    const parent = this.tensor('view', 't', t);
    viewRange(parent.length, offset, length);
    return new JsTensor(parent.dtype, parent.offset + offset, length, parent.buffer);
  }

  upload(t: Tensor, data: Float32Array | Int32Array): void {
    const target = this.tensor('upload', 't', t);
    const expected = target.dtype === 'f32' ? 'Float32Array' : 'Int32Array';
    // the tag, not instanceof, so arrays from another realm (worker, vm context) are accepted
    if (Object.prototype.toString.call(data) !== `[object ${expected}]`) {
      throw new TypeError(`upload: a ${target.dtype} tensor takes a ${expected}, got ${describe(data)}`);
    }
    this.writeChecked('upload', target, data);
  }

  download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = this.tensor('download', 't', t);
    const values = this.storage(source);
    return Promise.resolve(source.dtype === 'i32' ? Int32Array.from(values) : Float32Array.from(values));
  }

  /** Synchronous copy of the view in storage precision (tests only). */
  read(t: Tensor): Float64Array | Float32Array | Int32Array {
    return this.storage(this.tensor('read', 't', t)).slice();
  }

  /** Synchronous write from element 0 of the view, in full storage precision (tests only). */
  write(t: Tensor, data: ArrayLike<number>): void {
    const target = this.tensor('write', 't', t);
    if (target.dtype === 'i32') {
      for (let i = 0; i < data.length; i++) {
        const x = data[i];
        if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) {
          throw new RangeError(`write: data[${i}] = ${x} is not an int32 (the tensor is i32)`);
        }
      }
    }
    this.writeChecked('write', target, data);
  }

  free(t: Tensor): void {
    const buffer = this.owned('free', 't', t).buffer;
    buffer.live = false;
    this.liveBuffers.delete(buffer);
  }

  bytesInUse(): number {
    let bytes = 0;
    for (const buffer of this.liveBuffers) bytes += buffer.data.byteLength;
    return bytes;
  }

  dispose(): void {
    for (const buffer of this.liveBuffers) buffer.live = false;
    this.liveBuffers.clear();
  }

  // ---- elementwise helpers ----

  zero(t: Tensor): void {
    this.storage(this.tensor('zero', 't', t)).fill(0);
  }

  copy(dst: Tensor, src: Tensor): void {
    const from = this.tensor('copy', 'src', src);
    const to = this.tensor('copy', 'dst', dst);
    if (to.dtype !== from.dtype) throw new TypeError(`copy: dst is ${to.dtype} but src is ${from.dtype}`);
    if (to.length < from.length) {
      throw new RangeError(`copy: dst has ${to.length} elements, needs at least src.length = ${from.length}`);
    }
    const source = this.storage(from);
    const target = this.storage(to).subarray(0, source.length);
    separate('copy', { dst: target }, { src: source });
    target.set(source);
  }

  scale(t: Tensor, s: number): void {
    finite('scale', 's', s);
    const x = this.floats('scale', 't', t, t.length);
    for (let i = 0; i < x.length; i++) x[i] *= s;
  }

  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    dims(op, { rows, cols });
    const o = this.floats(op, 'out', out, rows * cols);
    const x = this.floats(op, 'inp', inp, rows * cols);
    separate(op, { out: o }, { inp: x });
    // out[c, r] = inp[r, c]
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) o[c * rows + r] = x[r * cols + c];
    }
  }

  squaredNorm(out: Tensor, t: Tensor): void {
    const result = this.floats('squaredNorm', 'out', out, 1);
    const x = this.floats('squaredNorm', 't', t, t.length);
    let sum = 0; // float64 accumulator
    for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
    result[0] = sum;
  }

  // ---- encoder ----

  encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    const o = this.floats(op, 'out', out, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const tokenTable = this.floats(op, 'wte', wte, wte.length); // [V,C]: V is its number of rows
    const positionTable = this.floats(op, 'wpe', wpe, (posOffset + T) * C);
    separate(op, { out: o }, { wte: tokenTable, wpe: positionTable });
    const V = Math.floor(tokenTable.length / C);
    for (let bt = 0; bt < B * T; bt++) {
      const id = checkedId(op, 'inp', ids, bt, V);
      const pos = posOffset + (bt % T);
      for (let c = 0; c < C; c++) o[bt * C + c] = tokenTable[id * C + c] + positionTable[pos * C + c];
    }
  }

  encoderBackward(dwte: Tensor, dwpe: Tensor, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    dims(op, { B, T, C });
    const dTokenTable = this.floats(op, 'dwte', dwte, dwte.length); // [V,C]: V is its number of rows
    const dPositionTable = this.floats(op, 'dwpe', dwpe, T * C);
    const d = this.floats(op, 'dout', dout, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const V = Math.floor(dTokenTable.length / C);
    separate(op, { dwte: dTokenTable, dwpe: dPositionTable }, { dout: d });
    for (let bt = 0; bt < B * T; bt++) {
      const id = checkedId(op, 'inp', ids, bt, V);
      const t = bt % T;
      for (let c = 0; c < C; c++) {
        dTokenTable[id * C + c] += d[bt * C + c];
        dPositionTable[t * C + c] += d[bt * C + c];
      }
    }
  }

  // ---- layer norm ----

  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const op = 'layerNormForward';
    dims(op, { N, C });
    const o = this.floats(op, 'out', out, N * C);
    const means = this.floats(op, 'mean', mean, N);
    const rstds = this.floats(op, 'rstd', rstd, N);
    const x = this.floats(op, 'inp', inp, N * C);
    const w = this.floats(op, 'weight', weight, C);
    const b = this.floats(op, 'bias', bias, C);
    separate(op, { out: o, mean: means, rstd: rstds }, { inp: x, weight: w, bias: b });
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

  layerNormBackward(
    dinp: Tensor,
    dweight: Tensor,
    dbias: Tensor,
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
    const dx = this.floats(op, 'dinp', dinp, N * C);
    const dw = this.floats(op, 'dweight', dweight, C);
    const db = this.floats(op, 'dbias', dbias, C);
    const d = this.floats(op, 'dout', dout, N * C);
    const x = this.floats(op, 'inp', inp, N * C);
    const w = this.floats(op, 'weight', weight, C);
    const means = this.floats(op, 'mean', mean, N);
    const rstds = this.floats(op, 'rstd', rstd, N);
    separate(op, { dinp: dx, dweight: dw, dbias: db }, { dout: d, inp: x, weight: w, mean: means, rstd: rstds });
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
        db[c] += d[row + c];
        dw[c] += norm * d[row + c];
        dx[row + c] += (dnorm - dnormMean - norm * dnormNormMean) * invStd;
      }
    }
  }

  // ---- matmul ----

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const op = 'matmulForward';
    dims(op, { M, K, N });
    const o = this.floats(op, 'out', out, M * N);
    const x = this.floats(op, 'inp', inp, M * K);
    const w = this.floats(op, 'weight', weight, K * N);
    const b = bias === null ? null : this.floats(op, 'bias', bias, N);
    separate(op, { out: o }, { inp: x, weight: w, bias: b });
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = b === null ? 0 : b[n];
        for (let k = 0; k < K; k++) sum += x[m * K + k] * w[k * N + n];
        o[m * N + n] = sum;
      }
    }
  }

  matmulBackward(
    dinp: Tensor | null,
    dweight: Tensor,
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
    const dx = dinp === null ? null : this.floats(op, 'dinp', dinp, M * K);
    const dw = this.floats(op, 'dweight', dweight, K * N);
    const db = dbias === null ? null : this.floats(op, 'dbias', dbias, N);
    const d = this.floats(op, 'dout', dout, M * N);
    const x = this.floats(op, 'inp', inp, M * K);
    const w = this.floats(op, 'weight', weight, K * N);
    separate(op, { dinp: dx, dweight: dw, dbias: db }, { dout: d, inp: x, weight: w });
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
    // dweight[k,n] += sum_m inp[m,k] * dout[m,n]
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let m = 0; m < M; m++) sum += x[m * K + k] * d[m * N + n];
        dw[k * N + n] += sum;
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

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionForward';
    const HS = headSize(op, B, T, C, NH);
    const o = this.floats(op, 'out', out, B * T * C);
    const logSumExps = this.floats(op, 'lse', lse, B * NH * T);
    const x = this.floats(op, 'qkv', qkv, B * T * 3 * C);
    separate(op, { out: o, lse: logSumExps }, { qkv: x });
    const scale = 1 / Math.sqrt(HS);
    const scores = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < NH; h++) {
        for (let t = 0; t < T; t++) {
          const q = (b * T + t) * 3 * C + h * HS;
          // scores over the causal window t2 <= t
          let maxScore = -Infinity;
          for (let t2 = 0; t2 <= t; t2++) {
            const k = (b * T + t2) * 3 * C + C + h * HS;
            let dot = 0;
            for (let i = 0; i < HS; i++) dot += x[q + i] * x[k + i];
            scores[t2] = dot * scale;
            maxScore = Math.max(maxScore, scores[t2]);
          }
          let sumExp = 0;
          for (let t2 = 0; t2 <= t; t2++) sumExp += Math.exp(scores[t2] - maxScore);
          const rowLse = maxScore + Math.log(sumExp);
          logSumExps[(b * NH + h) * T + t] = rowLse;
          const outRow = (b * T + t) * C + h * HS;
          for (let i = 0; i < HS; i++) {
            let sum = 0;
            for (let t2 = 0; t2 <= t; t2++) {
              const v = (b * T + t2) * 3 * C + 2 * C + h * HS;
              sum += Math.exp(scores[t2] - rowLse) * x[v + i];
            }
            o[outRow + i] = sum;
          }
        }
      }
    }
  }

  /**
   * With p = softmax(s): dv += p * dout, dp = dout . v, ds = p * (dp - sum(p * dp)), and
   * s = scale * q . k gives dq += scale * ds * k, dk += scale * ds * q. The row sum(p * dp) equals
   * dout . out; it is computed from p here so that the oracle does not depend on `out`.
   */
  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionBackward';
    const HS = headSize(op, B, T, C, NH);
    const dx = this.floats(op, 'dqkv', dqkv, B * T * 3 * C);
    const d = this.floats(op, 'dout', dout, B * T * C);
    const x = this.floats(op, 'qkv', qkv, B * T * 3 * C);
    const o = this.floats(op, 'out', out, B * T * C);
    const logSumExps = this.floats(op, 'lse', lse, B * NH * T);
    separate(op, { dqkv: dx }, { dout: d, qkv: x, out: o, lse: logSumExps });
    const scale = 1 / Math.sqrt(HS);
    const probs = new Float64Array(T);
    const dprobs = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < NH; h++) {
        for (let t = 0; t < T; t++) {
          const q = (b * T + t) * 3 * C + h * HS;
          const doutRow = (b * T + t) * C + h * HS;
          const rowLse = logSumExps[(b * NH + h) * T + t];
          let pdpSum = 0;
          for (let t2 = 0; t2 <= t; t2++) {
            const k = (b * T + t2) * 3 * C + C + h * HS;
            const v = k + C;
            let dot = 0;
            let dp = 0;
            for (let i = 0; i < HS; i++) {
              dot += x[q + i] * x[k + i];
              dp += d[doutRow + i] * x[v + i];
            }
            probs[t2] = Math.exp(dot * scale - rowLse);
            dprobs[t2] = dp;
            pdpSum += probs[t2] * dp;
          }
          for (let t2 = 0; t2 <= t; t2++) {
            const k = (b * T + t2) * 3 * C + C + h * HS;
            const v = k + C;
            const dscore = probs[t2] * (dprobs[t2] - pdpSum);
            for (let i = 0; i < HS; i++) {
              dx[q + i] += scale * dscore * x[k + i];
              dx[k + i] += scale * dscore * x[q + i];
              dx[v + i] += probs[t2] * d[doutRow + i];
            }
          }
        }
      }
    }
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
    const HS = headSize(op, B, Tn, C, NH);
    dims(op, { cacheLen });
    nonNegativeInteger(op, 'startPos', startPos);
    if (startPos + Tn > cacheLen) {
      throw new RangeError(`${op}: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    }
    const o = this.floats(op, 'out', out, B * Tn * C);
    const x = this.floats(op, 'qkv', qkv, B * Tn * 3 * C);
    const keys = this.floats(op, 'kCache', kCache, B * cacheLen * C);
    const values = this.floats(op, 'vCache', vCache, B * cacheLen * C);
    separate(op, { out: o, kCache: keys, vCache: values }, { qkv: x });
    // append the new positions' k and v: cache [B, cacheLen, C]
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < Tn; i++) {
        const src = (b * Tn + i) * 3 * C;
        const dst = (b * cacheLen + startPos + i) * C;
        for (let c = 0; c < C; c++) {
          keys[dst + c] = x[src + C + c];
          values[dst + c] = x[src + 2 * C + c];
        }
      }
    }
    const scale = 1 / Math.sqrt(HS);
    const scores = new Float64Array(startPos + Tn);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < NH; h++) {
        for (let i = 0; i < Tn; i++) {
          const q = (b * Tn + i) * 3 * C + h * HS;
          const lastPos = startPos + i;
          let maxScore = -Infinity;
          for (let pos = 0; pos <= lastPos; pos++) {
            const k = (b * cacheLen + pos) * C + h * HS;
            let dot = 0;
            for (let j = 0; j < HS; j++) dot += x[q + j] * keys[k + j];
            scores[pos] = dot * scale;
            maxScore = Math.max(maxScore, scores[pos]);
          }
          let sumExp = 0;
          for (let pos = 0; pos <= lastPos; pos++) sumExp += Math.exp(scores[pos] - maxScore);
          const rowLse = maxScore + Math.log(sumExp);
          const outRow = (b * Tn + i) * C + h * HS;
          for (let j = 0; j < HS; j++) {
            let sum = 0;
            for (let pos = 0; pos <= lastPos; pos++) {
              sum += Math.exp(scores[pos] - rowLse) * values[(b * cacheLen + pos) * C + h * HS + j];
            }
            o[outRow + j] = sum;
          }
        }
      }
    }
  }

  // ---- gelu ----

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    const op = 'geluForward';
    dims(op, { N });
    const o = this.floats(op, 'out', out, N);
    const x = this.floats(op, 'inp', inp, N);
    inPlaceOrSeparate(op, 'out', o, 'inp', x);
    for (let i = 0; i < N; i++) {
      const xi = x[i];
      o[i] = 0.5 * xi * (1 + Math.tanh(GELU_SCALE * (xi + GELU_CUBIC * xi ** 3)));
    }
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const op = 'geluBackward';
    dims(op, { N });
    const dx = this.floats(op, 'dinp', dinp, N);
    const x = this.floats(op, 'inp', inp, N);
    const d = this.floats(op, 'dout', dout, N);
    separate(op, { dinp: dx }, { inp: x, dout: d });
    for (let i = 0; i < N; i++) {
      const xi = x[i];
      const th = Math.tanh(GELU_SCALE * (xi + GELU_CUBIC * xi ** 3));
      const dInner = GELU_SCALE * (1 + 3 * GELU_CUBIC * xi * xi);
      const grad = 0.5 * (1 + th) + 0.5 * xi * (1 - th * th) * dInner;
      dx[i] += grad * d[i];
    }
  }

  // ---- residual ----

  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const op = 'residualForward';
    dims(op, { N });
    const o = this.floats(op, 'out', out, N);
    const x = this.floats(op, 'a', a, N);
    const y = this.floats(op, 'b', b, N);
    inPlaceOrSeparate(op, 'out', o, 'a', x);
    separate(op, { out: o }, { b: y });
    for (let i = 0; i < N; i++) o[i] = x[i] + y[i];
  }

  accumulate(dst: Tensor, src: Tensor, N: number): void {
    const op = 'accumulate';
    dims(op, { N });
    const to = this.floats(op, 'dst', dst, N);
    const from = this.floats(op, 'src', src, N);
    separate(op, { dst: to }, { src: from });
    for (let i = 0; i < N; i++) to[i] += from[i];
  }

  // ---- dropout ----

  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutForward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const o = this.floats(op, 'out', out, N);
    const x = this.floats(op, 'inp', inp, N);
    inPlaceOrSeparate(op, 'out', o, 'inp', x);
    const keptScale = 1 / (1 - p);
    for (let i = 0; i < N; i++) o[i] = dropoutKeep(seed, i, p) ? x[i] * keptScale : 0;
  }

  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutBackward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const dx = this.floats(op, 'dinp', dinp, N);
    const d = this.floats(op, 'dout', dout, N);
    separate(op, { dinp: dx }, { dout: d });
    const keptScale = 1 / (1 - p);
    for (let i = 0; i < N; i++) {
      if (dropoutKeep(seed, i, p)) dx[i] += d[i] * keptScale;
    }
  }

  // ---- softmax + cross-entropy ----

  crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    dims(op, { N, V });
    const l = this.floats(op, 'losses', losses, N);
    const p = this.floats(op, 'probs', probs, N * V);
    const z = this.floats(op, 'logits', logits, N * V);
    const y = this.ints(op, 'targets', targets, N);
    separate(op, { losses: l, probs: p }, { logits: z });
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

  crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    dims(op, { N, V });
    finite(op, 'dlossScale', dlossScale);
    const dz = this.floats(op, 'dlogits', dlogits, N * V);
    const p = this.floats(op, 'probs', probs, N * V);
    const y = this.ints(op, 'targets', targets, N);
    separate(op, { dlogits: dz }, { probs: p });
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

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const op = 'adamwUpdate';
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    adamwArgs(op, opts);
    const n = params.length;
    const w = this.floats(op, 'params', params, n);
    const g = this.floats(op, 'grads', grads, n);
    const m1 = this.floats(op, 'm', m, n);
    const m2 = this.floats(op, 'v', v, n);
    separate(op, { params: w, m: m1, v: m2 }, { grads: g });
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
    scales: Tensor,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    format: QuantFormat,
  ): void {
    const op = 'matmulQuantForward';
    dims(op, { M, K, N });
    const q = this.quantBytes(op, quants, quantWords(op, format, N, K));
    const d = this.floats(op, 'scales', scales, (N * K) / 32);
    const o = this.floats(op, 'out', out, M * N);
    const x = this.floats(op, 'inp', inp, M * K);
    const b = bias === null ? null : this.floats(op, 'bias', bias, N);
    separate(op, { out: o }, { inp: x, scales: d, bias: b });
    const row = new Float64Array(K);
    for (let n = 0; n < N; n++) {
      dequantizeRowInto(row, q, d, n, K, format);
      for (let m = 0; m < M; m++) {
        let sum = b === null ? 0 : b[n];
        for (let k = 0; k < K; k++) sum += x[m * K + k] * row[k];
        o[m * N + n] = sum;
      }
    }
  }

  encoderQuantForward(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor,
    wpe: Tensor,
    B: number,
    T: number,
    C: number,
    posOffset: number,
    format: QuantFormat,
  ): void {
    const op = 'encoderQuantForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    const V = Math.floor(scales.length / (C / 32));
    const q = this.quantBytes(op, quants, quantWords(op, format, V, C));
    const d = this.floats(op, 'scales', scales, (V * C) / 32);
    const o = this.floats(op, 'out', out, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const positionTable = this.floats(op, 'wpe', wpe, (posOffset + T) * C);
    separate(op, { out: o }, { scales: d, wpe: positionTable });
    const row = new Float64Array(C);
    for (let bt = 0; bt < B * T; bt++) {
      dequantizeRowInto(row, q, d, checkedId(op, 'inp', ids, bt, V), C, format);
      const pos = posOffset + (bt % T);
      for (let c = 0; c < C; c++) o[bt * C + c] = row[c] + positionTable[pos * C + c];
    }
  }

  /** the bytes of the first `words` i32 elements of a quants tensor */
  private quantBytes(op: string, quants: Tensor, words: number): Uint8Array {
    const ints = this.ints(op, 'quants', quants, words);
    return new Uint8Array(ints.buffer, ints.byteOffset, ints.byteLength);
  }

  // ---- tensor access and validation ----

  /** `t` as this backend's tensor, whatever its state */
  private owned(op: string, name: string, t: Tensor): JsTensor {
    if (!(t instanceof JsTensor) || t.buffer.owner !== this) {
      throw new TypeError(`${op}: ${name} is not a tensor of this js backend`);
    }
    return t;
  }

  /** `t` as a live tensor of this backend */
  private tensor(op: string, name: string, t: Tensor): JsTensor {
    const own = this.owned(op, name, t);
    if (!own.buffer.live) throw new Error(`${op}: ${name} belongs to a buffer that was freed`);
    return own;
  }

  /** the storage elements of a checked tensor's view (a subarray: no copy) */
  private storage(t: JsTensor): Storage {
    return t.buffer.data.subarray(t.offset, t.offset + t.length);
  }

  /** the first `need` elements of an f32 tensor, checked */
  private floats(op: string, name: string, t: Tensor, need: number): FloatStorage {
    const own = this.tensor(op, name, t);
    if (own.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be an f32 tensor, got ${own.dtype}`);
    if (own.length < need) throw new RangeError(`${op}: ${name} has ${own.length} elements, needs at least ${need}`);
    return own.buffer.data.subarray(own.offset, own.offset + need) as FloatStorage;
  }

  /** the first `need` elements of an i32 tensor, checked */
  private ints(op: string, name: string, t: Tensor, need: number): Int32Array {
    const own = this.tensor(op, name, t);
    if (own.dtype !== 'i32') throw new TypeError(`${op}: ${name} must be an i32 tensor, got ${own.dtype}`);
    if (own.length < need) throw new RangeError(`${op}: ${name} has ${own.length} elements, needs at least ${need}`);
    return own.buffer.data.subarray(own.offset, own.offset + need) as Int32Array;
  }

  private writeChecked(op: string, target: JsTensor, data: ArrayLike<number>): void {
    if (data.length > target.length) {
      throw new RangeError(`${op}: data has ${data.length} elements, the tensor view holds ${target.length}`);
    }
    this.storage(target).set(data);
  }
}

type Region = FloatStorage | Int32Array;

function shareStorage(a: Region, b: Region): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * The contract's no-alias rule: the regions an op writes share no storage with each other or with
 * the regions it reads (null entries are absent optional tensors).
 */
function separate(op: string, outputs: Record<string, Region | null>, inputs: Record<string, Region | null>): void {
  const written = Object.entries(outputs).filter((e): e is [string, Region] => e[1] !== null);
  const read = Object.entries(inputs).filter((e): e is [string, Region] => e[1] !== null);
  for (let i = 0; i < written.length; i++) {
    const [outName, out] = written[i];
    for (const [otherName, other] of [...written.slice(i + 1), ...read]) {
      if (shareStorage(out, other)) throw new RangeError(`${op}: ${outName} overlaps ${otherName}; they must not share storage`);
    }
  }
}

/** For ops whose output may alias an input: exactly the same elements, or no shared storage. */
function inPlaceOrSeparate(op: string, outName: string, out: Region, inName: string, inp: Region): void {
  const samePlace = out.buffer === inp.buffer && out.byteOffset === inp.byteOffset;
  if (!samePlace && shareStorage(out, inp)) {
    throw new RangeError(`${op}: ${outName} partly overlaps ${inName}; it may alias it exactly or not at all`);
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

/** row n of a quantized [rows, K] matrix (src/model/quant.ts), dequantized into `row` */
function dequantizeRowInto(row: Float64Array, q: Uint8Array, d: ArrayLike<number>, n: number, K: number, format: QuantFormat): void {
  const blocks = K / 32;
  for (let blk = 0; blk < blocks; blk++) {
    const scale = d[n * blocks + blk];
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
