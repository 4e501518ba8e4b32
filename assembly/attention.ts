// Causal multi-head self-attention, fused: scores, softmax and the weighted sum of values per query
// row, with the row's log-sum-exp saved so backward recomputes probabilities without storing them.
import { exp4, exp1, hsum, dot, axpy } from './math';

/**
 * One query row over n keys/values (key j at k + j*stride bytes, value j at v + j*stride):
 * out[0:HS] = softmax(scale * q.k_j) @ v. Uses att[0:n] as scratch. Returns the log-sum-exp of the
 * scaled scores.
 */
function attendRow(out: usize, q: usize, k: usize, v: usize, stride: usize, n: i32, HS: i32, scale: f32, att: usize): f32 {
  let maxv: f32 = -Infinity;
  for (let j = 0; j < n; j++) {
    const s = dot(q, k + <usize>j * stride, HS) * scale;
    store<f32>(att + (<usize>j << 2), s);
    maxv = max(maxv, s);
  }
  const maxSplat = f32x4.splat(maxv);
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    const e = exp4(f32x4.sub(v128.load(att + o), maxSplat));
    v128.store(att + o, e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; j < n; j++) {
    const o = <usize>j << 2;
    const e = exp1(load<f32>(att + o) - maxv);
    store<f32>(att + o, e);
    sum += e;
  }
  const inv: f32 = 1.0 / sum;
  memory.fill(out, 0, <usize>HS << 2);
  for (j = 0; j < n; j++) axpy(out, v + <usize>j * stride, load<f32>(att + (<usize>j << 2)) * inv, HS);
  return maxv + Mathf.log(sum);
}

/**
 * out[B,T,C], lse[B,NH,T] from qkv[B,T,3C] (q, k, v along the last dim, heads contiguous in each).
 * att: scratch of T floats.
 */
export function attentionForward(out: usize, lse: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const rowStride = <usize>(3 * C) << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * rowStride;
    for (let h = 0; h < NH; h++) {
      const headOff = <usize>(h * HS) << 2;
      const k = base + (<usize>C << 2) + headOff;
      const v = base + (<usize>(2 * C) << 2) + headOff;
      for (let t = 0; t < T; t++) {
        const q = base + <usize>t * rowStride + headOff;
        const o = out + (<usize>((b * T + t) * C) << 2) + headOff;
        const l = attendRow(o, q, k, v, rowStride, t + 1, HS, scale, att);
        store<f32>(lse + (<usize>((b * NH + h) * T + t) << 2), l);
      }
    }
  }
}

/**
 * Accumulates into dqkv[B,T,3C]. Per query row t of head h, with p_j = exp(scale q.k_j - lse):
 * dv_j += p_j dout_t; ds_j = p_j (dout_t.v_j - dout_t.out_t); dq_t += scale sum_j ds_j k_j;
 * dk_j += scale ds_j q_t. att: scratch of T floats.
 */
export function attentionBackward(dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, att: usize, B: i32, T: i32, C: i32, NH: i32): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const rowStride = <usize>(3 * C) << 2;
  const kOff = <usize>C << 2;
  const vOff = <usize>(2 * C) << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * rowStride;
    const dbase = dqkv + <usize>(b * T) * rowStride;
    for (let h = 0; h < NH; h++) {
      const headOff = <usize>(h * HS) << 2;
      for (let t = 0; t < T; t++) {
        const q = base + <usize>t * rowStride + headOff;
        const dq = dbase + <usize>t * rowStride + headOff;
        const rowOff = (<usize>((b * T + t) * C) << 2) + headOff;
        const dy = dout + rowOff;
        const l = load<f32>(lse + (<usize>((b * NH + h) * T + t) << 2));
        const D = dot(dy, out + rowOff, HS);
        const n = t + 1;
        // p_j into att, vectorised exp
        for (let j = 0; j < n; j++) {
          store<f32>(att + (<usize>j << 2), dot(q, base + <usize>j * rowStride + kOff + headOff, HS) * scale - l);
        }
        let j = 0;
        for (; j + 4 <= n; j += 4) v128.store(att + (<usize>j << 2), exp4(v128.load(att + (<usize>j << 2))));
        for (; j < n; j++) store<f32>(att + (<usize>j << 2), exp1(load<f32>(att + (<usize>j << 2))));
        for (j = 0; j < n; j++) {
          const p = load<f32>(att + (<usize>j << 2));
          const kj = base + <usize>j * rowStride + kOff + headOff;
          const vj = base + <usize>j * rowStride + vOff + headOff;
          const ds = p * (dot(dy, vj, HS) - D) * scale;
          axpy(dbase + <usize>j * rowStride + vOff + headOff, dy, p, HS);
          axpy(dq, kj, ds, HS);
          axpy(dbase + <usize>j * rowStride + kOff + headOff, q, ds, HS);
        }
      }
    }
  }
}

/**
 * KV-cache attention: writes the Tn new positions' k, v from qkv[B,Tn,3C] into kCache/vCache
 * [B,cacheLen,C] at startPos.., then new position i attends over cache positions 0..startPos+i.
 * out[B,Tn,C]. att: scratch of startPos+Tn floats.
 */
export function attentionCached(out: usize, qkv: usize, kCache: usize, vCache: usize, att: usize, B: i32, Tn: i32, C: i32, NH: i32, startPos: i32, cacheLen: i32): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const rowStride = <usize>(3 * C) << 2;
  const cBytes = <usize>C << 2;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tn; i++) {
      const src = qkv + <usize>(b * Tn + i) * rowStride;
      const dst = <usize>(b * cacheLen + startPos + i) * cBytes;
      memory.copy(kCache + dst, src + cBytes, cBytes);
      memory.copy(vCache + dst, src + 2 * cBytes, cBytes);
    }
  }
  for (let b = 0; b < B; b++) {
    const kb = kCache + <usize>(b * cacheLen) * cBytes;
    const vb = vCache + <usize>(b * cacheLen) * cBytes;
    for (let i = 0; i < Tn; i++) {
      const q = qkv + <usize>(b * Tn + i) * rowStride;
      const o = out + <usize>(b * Tn + i) * cBytes;
      for (let h = 0; h < NH; h++) {
        const headOff = <usize>(h * HS) << 2;
        attendRow(o + headOff, q + headOff, kb + headOff, vb + headOff, cBytes, startPos + i + 1, HS, scale, att);
      }
    }
  }
}
