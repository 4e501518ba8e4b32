// Causal multi-head self-attention, fused per (batch, head): scores, softmax and the weighted sum of
// values, with each row's log-sum-exp saved so backward recomputes probabilities without storing
// them. The products run through the matmul kernel with strided operands, except for the KV cache's
// one-to-three-row steps, which go row by row. Queries go in blocks of ROW_BLOCK rows, each against
// only the keys it can see (causal): about half the flops of the full T x T square, and scratch of
// ROW_BLOCK x T scores instead of T x T, so long contexts train and prefill in bounded memory.
import { exp4, exp1, hsum, hmax, dot, axpy } from './math';
import { gemmAccumulate } from './matmul';

/** query rows per block (a multiple of the matmul's MR = 4; src/backend/wasm mirrors it to size the scratch) */
const ROW_BLOCK = 64;

/**
 * Causal attention for `rows` query rows against keys/values 0..L-1 (L = first + rows): query i
 * sees keys 0..first+i. q row i at q + i*qStride bytes, k/v row j at k/v + j*kvStride, out row i
 * at o + i*oStride (all head-offset already). att: rows*L floats of scratch. Writes each row's
 * log-sum-exp to lse + 4i unless lse is 0.
 */
function attendBlock(
  o: usize, oStride: usize, q: usize, qStride: usize, k: usize, v: usize, kvStride: usize, rows: i32, first: i32, HS: i32, scale: f32, att: usize, lse: usize,
): void {
  const L = first + rows;
  const qs = <i32>(qStride >> 2), kvs = <i32>(kvStride >> 2), os = <i32>(oStride >> 2);
  memory.fill(att, 0, <usize>(rows * L) << 2);
  // S[i,j] = q_i . k_j: B(p,j) = K[j,p]
  gemmAccumulate(att, L, q, qs, 1, k, 1, kvs, rows, HS, L);
  for (let i = 0; i < rows; i++) {
    const l = softmaxCausalRow(att + (<usize>(i * L) << 2), first + i + 1, L, scale);
    if (lse) store<f32>(lse + (<usize>i << 2), l);
    memory.fill(o + <usize>i * oStride, 0, <usize>HS << 2);
  }
  // O[i,:] = sum_j P[i,j] v_j
  gemmAccumulate(o, os, att, L, 1, v, kvs, 1, rows, L, HS);
}

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
 * softmax in place, O = P V, one block of query rows at a time.
 * att: scratch of min(T, ROW_BLOCK) * T floats.
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
  const rowStride = <usize>(3 * C) << 2;
  const cBytes = <usize>C << 2;
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    const q = base + headOff;
    const k = base + cBytes + headOff;
    const v = base + 2 * cBytes + headOff;
    const o = out + <usize>(b * T) * cBytes + headOff;
    const l = lse + (<usize>((b * NH + h) * T) << 2);
    for (let i0 = 0; i0 < T; i0 += ROW_BLOCK) {
      const rows = min(ROW_BLOCK, T - i0);
      attendBlock(o + <usize>i0 * cBytes, cBytes, q + <usize>i0 * rowStride, rowStride, k, v, rowStride, rows, i0, HS, scale, att, l + (<usize>i0 << 2));
    }
  }
}

/**
 * Accumulates into dqkv[B,T,3C]. Per (b, h) and block of query rows (keys 0..L-1 visible to it),
 * with P recomputed from Q K^T and lse: dV += P^T dO; dP = dO V^T; dS = P (dP - rowsum(dO * O))
 * scale; dQ += dS K; dK += dS^T Q. att: scratch of 2 * min(T, ROW_BLOCK) * T floats.
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
  const cBytes = <usize>C << 2;
  const P = att;
  const dS = att + (<usize>(min(T, ROW_BLOCK) * T) << 2);
  const sv = f32x4.splat(scale);
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const dbase = dqkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    const k = base + cBytes + headOff;
    const v = base + 2 * cBytes + headOff;
    const dk = dbase + cBytes + headOff;
    const dv = dbase + 2 * cBytes + headOff;
    for (let i0 = 0; i0 < T; i0 += ROW_BLOCK) {
      const rows = min(ROW_BLOCK, T - i0);
      const L = i0 + rows;
      const q = base + <usize>i0 * rowStride + headOff;
      const dq = dbase + <usize>i0 * rowStride + headOff;
      const o = out + <usize>(b * T + i0) * cBytes + headOff;
      const dO = dout + <usize>(b * T + i0) * cBytes + headOff;
      const rowLse = lse + (<usize>((b * NH + h) * T + i0) << 2);
      memory.fill(P, 0, <usize>(rows * L) << 2);
      memory.fill(dS, 0, <usize>(rows * L) << 2);
      gemmAccumulate(P, L, q, C3, 1, k, 1, C3, rows, HS, L);
      // dP[i,j] = dO_i . v_j, into dS
      gemmAccumulate(dS, L, dO, C, 1, v, 1, C3, rows, HS, L);
      for (let i = 0; i < rows; i++) {
        const pRow = P + (<usize>(i * L) << 2);
        const dRow = dS + (<usize>(i * L) << 2);
        const l = f32x4.splat(load<f32>(rowLse + (<usize>i << 2)));
        const D = f32x4.splat(dot(dO + <usize>i * cBytes, o + <usize>i * cBytes, HS));
        const n = i0 + i + 1;
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
        memory.fill(pRow + (<usize>n << 2), 0, <usize>(L - n) << 2);
        memory.fill(dRow + (<usize>n << 2), 0, <usize>(L - n) << 2);
      }
      // dV[j,:] += sum_i P[i,j] dO_i: A(j,i) = P[i,j]
      gemmAccumulate(dv, C3, P, 1, L, dO, C, 1, L, rows, HS);
      // dQ[i,:] += sum_j dS[i,j] k_j
      gemmAccumulate(dq, C3, dS, L, 1, k, C3, 1, rows, L, HS);
      // dK[j,:] += sum_i dS[i,j] q_i
      gemmAccumulate(dk, C3, dS, 1, L, q, C3, 1, L, rows, HS);
    }
  }
}

/**
 * KV-cache attention: writes the Tn new positions' k, v from qkv[B,Tn,3C] into kCache/vCache
 * [B,cacheLen,C] at startPos.., then new position i attends over cache positions 0..startPos+i.
 * out[B,Tn,C]. A prompt (Tn >= 4) goes through the matmul kernel per (b, h) in blocks of query rows
 * like training; a few new rows go row by row, where packing the cache would cost more than it saves.
 * att: scratch of min(Tn, ROW_BLOCK) * (startPos+Tn) floats.
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
    for (let i0 = 0; i0 < Tn; i0 += ROW_BLOCK) {
      const rows = min(ROW_BLOCK, Tn - i0);
      const o = ob + <usize>i0 * cBytes + headOff;
      attendBlock(o, cBytes, qb + <usize>i0 * rowStride + headOff, rowStride, kb + headOff, vb + headOff, cBytes, rows, startPos + i0, HS, scale, att, 0);
    }
  }
}
