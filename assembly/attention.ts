// Causal multi-head self-attention, fused per (batch, head): scores, softmax and the weighted sum of
// values, with each row's log-sum-exp saved so backward recomputes probabilities without storing
// them. The products run through the matmul kernel with strided operands, except for the KV cache's
// one-to-three-row steps, which go row by row.
import { exp4, exp1, hsum, hmax, dot, axpy } from './math';
import { gemmAccumulate } from './matmul';

/**
 * One query row over n keys/values (key j at k + j*stride bytes, value j at v + j*stride):
 * out[0:HS] = softmax(scale * q.k_j) @ v. Uses att[0:n] as scratch.
 */
function attendRow(out: usize, q: usize, k: usize, v: usize, stride: usize, n: i32, HS: i32, scale: f32, att: usize): void {
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
}

/**
 * Turns a row of raw scores (q . k_j, rowLen of them) into causal softmax probabilities in place:
 * P[j] = exp(scale S[j] - lse) for the n visible keys j < n, 0 for the rest. Returns lse.
 */
function softmaxCausalRow(row: usize, n: i32, rowLen: i32, scale: f32): f32 {
  const sv = f32x4.splat(scale);
  let mx = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= n; j += 4) mx = f32x4.max(mx, f32x4.mul(v128.load(row + (<usize>j << 2)), sv));
  let maxv = hmax(mx);
  for (; j < n; j++) maxv = max(maxv, load<f32>(row + (<usize>j << 2)) * scale);
  const maxSplat = f32x4.splat(maxv);
  let acc = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    const e = exp4(f32x4.sub(f32x4.mul(v128.load(row + o), sv), maxSplat));
    v128.store(row + o, e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; j < n; j++) {
    const o = <usize>j << 2;
    const e = exp1(load<f32>(row + o) * scale - maxv);
    store<f32>(row + o, e);
    sum += e;
  }
  const inv = f32x4.splat(<f32>1.0 / sum);
  j = 0;
  for (; j + 4 <= n; j += 4) v128.store(row + (<usize>j << 2), f32x4.mul(v128.load(row + (<usize>j << 2)), inv));
  for (; j < n; j++) store<f32>(row + (<usize>j << 2), load<f32>(row + (<usize>j << 2)) * f32x4.extract_lane(inv, 0));
  memory.fill(row + (<usize>n << 2), 0, <usize>(rowLen - n) << 2);
  return maxv + Mathf.log(sum);
}

/**
 * out[B,T,C], lse[B,NH,T] from qkv[B,T,3C] (q, k, v along the last dim, heads contiguous in each).
 * Per (b, h) the products run through the matmul kernel with strided operands: S = Q K^T, causal
 * softmax in place, O = P V. The masked upper triangle costs flops but keeps the fast kernel.
 * att: scratch of T*T floats.
 */
export function attentionForward(out: usize, lse: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32): void {
  attentionForwardPairs(out, lse, qkv, att, B, T, C, NH, 0, B * NH);
}

/**
 * attentionForward for the (batch, head) pairs b*NH + h in [p0, p1): each pair writes only its own
 * slices of out and lse, so threads can take disjoint ranges (each with its own att scratch).
 */
export function attentionForwardPairs(out: usize, lse: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, p0: i32, p1: i32): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const C3 = 3 * C;
  const rowStride = <usize>C3 << 2;
  const TT = <usize>(T * T) << 2;
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    const q = base + headOff;
    const k = base + (<usize>C << 2) + headOff;
    const v = base + (<usize>(2 * C) << 2) + headOff;
    const o = out + (<usize>(b * T * C) << 2) + headOff;
    memory.fill(att, 0, TT);
    // S[t,j] = q_t . k_j: A = Q (rows stride 3C), B(i,j) = K[j,i]
    gemmAccumulate(att, T, q, C3, 1, k, 1, C3, T, HS, T);
    for (let t = 0; t < T; t++) {
      const l = softmaxCausalRow(att + (<usize>(t * T) << 2), t + 1, T, scale);
      store<f32>(lse + (<usize>((b * NH + h) * T + t) << 2), l);
      memory.fill(o + (<usize>(t * C) << 2), 0, <usize>HS << 2);
    }
    // O[t,:] = sum_j P[t,j] v_j
    gemmAccumulate(o, C, att, T, 1, v, C3, 1, T, T, HS);
  }
}

/**
 * Accumulates into dqkv[B,T,3C]. Per (b, h), with P recomputed from Q K^T and lse:
 * dV += P^T dO; dP = dO V^T; dS = P (dP - rowsum(dO * O)) scale; dQ += dS K; dK += dS^T Q.
 * att: scratch of 2*T*T floats.
 */
export function attentionBackward(dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, att: usize, B: i32, T: i32, C: i32, NH: i32): void {
  attentionBackwardPairs(dqkv, dout, qkv, out, lse, att, B, T, C, NH, 0, B * NH);
}

/** attentionBackward for the (batch, head) pairs in [p0, p1): each pair adds only into its own head's dq, dk, dv */
export function attentionBackwardPairs(
  dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, p0: i32, p1: i32,
): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const C3 = 3 * C;
  const rowStride = <usize>C3 << 2;
  const TT = <usize>(T * T) << 2;
  const P = att;
  const dS = att + TT;
  const sv = f32x4.splat(scale);
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const dbase = dqkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    const q = base + headOff;
    const k = base + (<usize>C << 2) + headOff;
    const v = base + (<usize>(2 * C) << 2) + headOff;
    const dq = dbase + headOff;
    const dk = dbase + (<usize>C << 2) + headOff;
    const dv = dbase + (<usize>(2 * C) << 2) + headOff;
    const o = out + (<usize>(b * T * C) << 2) + headOff;
    const dO = dout + (<usize>(b * T * C) << 2) + headOff;
    memory.fill(P, 0, TT);
    memory.fill(dS, 0, TT);
    gemmAccumulate(P, T, q, C3, 1, k, 1, C3, T, HS, T);
    // dP[t,j] = dO_t . v_j, into dS
    gemmAccumulate(dS, T, dO, C, 1, v, 1, C3, T, HS, T);
    for (let t = 0; t < T; t++) {
      const pRow = P + (<usize>(t * T) << 2);
      const dRow = dS + (<usize>(t * T) << 2);
      const l = f32x4.splat(load<f32>(lse + (<usize>((b * NH + h) * T + t) << 2)));
      const D = f32x4.splat(dot(dO + (<usize>(t * C) << 2), o + (<usize>(t * C) << 2), HS));
      const n = t + 1;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const off = <usize>j << 2;
        const p = exp4(f32x4.sub(f32x4.mul(v128.load(pRow + off), sv), l));
        v128.store(pRow + off, p);
        v128.store(dRow + off, f32x4.mul(f32x4.mul(p, f32x4.sub(v128.load(dRow + off), D)), sv));
      }
      for (; j < n; j++) {
        const off = <usize>j << 2;
        const p = exp1(load<f32>(pRow + off) * scale - f32x4.extract_lane(l, 0));
        store<f32>(pRow + off, p);
        store<f32>(dRow + off, p * (load<f32>(dRow + off) - f32x4.extract_lane(D, 0)) * scale);
      }
      memory.fill(pRow + (<usize>n << 2), 0, <usize>(T - n) << 2);
      memory.fill(dRow + (<usize>n << 2), 0, <usize>(T - n) << 2);
    }
    // dV[j,:] += sum_t P[t,j] dO_t: A(j,t) = P[t,j]
    gemmAccumulate(dv, C3, P, 1, T, dO, C, 1, T, T, HS);
    // dQ[t,:] += sum_j dS[t,j] k_j
    gemmAccumulate(dq, C3, dS, T, 1, k, C3, 1, T, T, HS);
    // dK[j,:] += sum_t dS[t,j] q_t
    gemmAccumulate(dk, C3, dS, 1, T, q, C3, 1, T, T, HS);
  }
}

/**
 * KV-cache attention: writes the Tn new positions' k, v from qkv[B,Tn,3C] into kCache/vCache
 * [B,cacheLen,C] at startPos.., then new position i attends over cache positions 0..startPos+i.
 * out[B,Tn,C]. A prompt (Tn >= 4) goes through the matmul kernel per (b, h) like training; a few new
 * rows go row by row, where packing the cache would cost more than it saves.
 * att: scratch of Tn*(startPos+Tn) floats.
 */
export function attentionCached(out: usize, qkv: usize, kCache: usize, vCache: usize, att: usize, B: i32, Tn: i32, C: i32, NH: i32, startPos: i32, cacheLen: i32): void {
  kvCacheAppend(qkv, kCache, vCache, B, Tn, C, startPos, cacheLen);
  attentionCachedPairs(out, qkv, kCache, vCache, att, B, Tn, C, NH, startPos, cacheLen, 0, B * NH);
}

/** copies the Tn new positions' k, v from qkv[B,Tn,3C] into kCache/vCache [B,cacheLen,C] at startPos.. */
export function kvCacheAppend(qkv: usize, kCache: usize, vCache: usize, B: i32, Tn: i32, C: i32, startPos: i32, cacheLen: i32): void {
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
}

/**
 * attentionCached's attention (after kvCacheAppend) for the (batch, head) pairs b*NH + h in
 * [p0, p1): each pair writes only its own head's slice of out, so threads can take disjoint ranges
 * (each with its own att scratch).
 */
export function attentionCachedPairs(
  out: usize, qkv: usize, kCache: usize, vCache: usize, att: usize, B: i32, Tn: i32, C: i32, NH: i32, startPos: i32, cacheLen: i32, p0: i32, p1: i32,
): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const C3 = 3 * C;
  const rowStride = <usize>C3 << 2;
  const cBytes = <usize>C << 2;
  const L = startPos + Tn;
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const qb = qkv + <usize>(b * Tn) * rowStride;
    const kb = kCache + <usize>(b * cacheLen) * cBytes;
    const vb = vCache + <usize>(b * cacheLen) * cBytes;
    const ob = out + <usize>(b * Tn) * cBytes;
    const headOff = <usize>(h * HS) << 2;
    if (Tn < 4) {
      for (let i = 0; i < Tn; i++) {
        attendRow(ob + <usize>i * cBytes + headOff, qb + <usize>i * rowStride + headOff, kb + headOff, vb + headOff, cBytes, startPos + i + 1, HS, scale, att);
      }
      continue;
    }
    memory.fill(att, 0, <usize>(Tn * L) << 2);
    // S[i,j] = q_i . k_j over the whole cache so far: B(p,j) = K[j,p]
    gemmAccumulate(att, L, qb + headOff, C3, 1, kb + headOff, 1, C, Tn, HS, L);
    for (let i = 0; i < Tn; i++) {
      softmaxCausalRow(att + (<usize>(i * L) << 2), startPos + i + 1, L, scale);
      memory.fill(ob + <usize>i * cBytes + headOff, 0, <usize>HS << 2);
    }
    gemmAccumulate(ob + headOff, C, att, L, 1, vb + headOff, C, 1, Tn, L, HS);
  }
}
