// Causal multi-head self-attention, fused per (batch, head), FlashAttention style: queries go in
// blocks of BLOCK rows and keys in blocks of BLOCK keys; each score tile is turned into probabilities
// with an online softmax (a running max and sum per row, the output rescaled when the max grows), so
// no more than a BLOCK x BLOCK tile of scores exists at a time and only each row's log-sum-exp is
// saved. Backward recomputes the tiles from it. Memory therefore stays bounded whatever T: forward
// scratch holds the (batch, head)'s keys and values packed once for the matmul micro-kernel
// (O(T * HS)), backward only two tiles. Each tile skips the keys its queries cannot see (causal).
// The products run through the matmul kernel (packed operands); the KV cache's one-to-three-row
// steps go row by row.
import { exp4, exp1, hsum, hmax, dot, madd } from './math';
import { gemmAccumulate, gemmPacked, packPanelA, packPanelB } from './matmul';

/** query rows and keys per tile (a multiple of the matmul's MR = 4 and NR = 8) */
const BLOCK = 64;
/** the matmul's B slivers are this many columns wide: packed panels pad columns to a multiple of it */
const NR = 8;
/** the matmul's A slivers are this many rows tall */
const MR = 4;
const LOG2E: f32 = 1.44269504088896341;
const LN2: f32 = 0.693147180559945309;

function roundUp(n: i32, to: i32): i32 {
  return ((n + to - 1) / to) * to;
}

/**
 * floats of scratch one thread's share of attention needs for up to L keys of head size HS:
 * forward (and KV-cache prompts) keys transposed and values packed (roundUp(L, 8) * HS + L * roundUp(HS, 8)),
 * a query block, a score tile, its packed probabilities, an output tile and the row statistics;
 * backward (backward != 0) two score tiles and a row of D = rowsum(dO * O)
 */
export function attentionScratchFloats(L: i32, HS: i32, backward: i32): i32 {
  if (backward) return 2 * BLOCK * BLOCK + BLOCK;
  return roundUp(L, NR) * HS + L * roundUp(HS, NR) + 2 * BLOCK * HS + 2 * BLOCK * BLOCK + 2 * BLOCK;
}

/**
 * Packs one (batch, head)'s L keys transposed (kt: K^T as packPanelB's B, HS deep, L columns) and its
 * values one key block at a time (vp + 4 * j0 * roundUp(HS, 8): block j0's V rows as B, kb deep, HS
 * columns), key/value row j at k/v + j*kvStride bytes.
 */
function packKeysValues(kt: usize, vp: usize, k: usize, v: usize, kvStride: usize, L: i32, HS: i32): void {
  const kvs = <i32>(kvStride >> 2);
  packPanelB(kt, k, 1, kvs, HS, L);
  const hsPadded = roundUp(HS, NR);
  for (let j0 = 0; j0 < L; j0 += BLOCK) {
    packPanelB(vp + (<usize>(j0 * hsPadded) << 2), v + <usize>j0 * kvStride, kvs, 1, min(BLOCK, L - j0), HS);
  }
}

/**
 * Causal attention for `rows` <= BLOCK query rows against the keys/values packed by packKeysValues:
 * query i sees keys 0..first+i. q row i at q + i*qStride bytes, out row i at o + i*oStride (all
 * head-offset already). Writes each row's log-sum-exp to lse + 4i unless lse is 0. work: the scratch
 * after the packed keys and values (attentionScratchFloats).
 * The queries are packed multiplied by log2(e) / sqrt(HS), so the scores come out in base-2 units and
 * each probability is a bare 2^(s - m) (exp2Row). Per key block, S = Q K^T goes one sliver of MR
 * query rows at a time, over only the key slivers the sliver's last row can see (the diagonal
 * block's upper part is skipped).
 */
function attendBlock(
  o: usize, oStride: usize, q: usize, qStride: usize, kt: usize, vp: usize, rows: i32, first: i32, HS: i32, scale: f32, work: usize, lse: usize,
): void {
  const L = first + rows;
  const hsPadded = roundUp(HS, NR);
  const qa = work;
  const tile = qa + (<usize>(BLOCK * HS) << 2);
  const pa = tile + (<usize>(BLOCK * BLOCK) << 2);
  const acc = pa + (<usize>(BLOCK * BLOCK) << 2);
  const rowMax = acc + (<usize>(BLOCK * HS) << 2);
  const rowSum = rowMax + (<usize>BLOCK << 2);
  packPanelA(qa, q, <i32>(qStride >> 2), 1, rows, HS);
  const qaEnd = qa + (<usize>(roundUp(rows, MR) * HS) << 2);
  const qScale = f32x4.splat(scale * LOG2E);
  for (let p = qa; p < qaEnd; p += 16) v128.store(p, f32x4.mul(v128.load(p), qScale));
  memory.fill(acc, 0, <usize>(rows * HS) << 2);
  memory.fill(rowSum, 0, <usize>rows << 2);
  for (let j0 = 0; j0 < L; j0 += BLOCK) {
    const kb = min(BLOCK, L - j0);
    memory.fill(tile, 0, <usize>(rows * BLOCK) << 2);
    for (let i0 = 0; i0 < rows; i0 += MR) {
      const mr = min(MR, rows - i0);
      const visible = min(kb, first + i0 + mr - j0);
      if (visible > 0) {
        gemmPacked(tile + (<usize>(i0 * BLOCK) << 2), BLOCK, qa + (<usize>(i0 * HS) << 2), kt + (<usize>(j0 * HS) << 2), mr, HS, min(kb, roundUp(visible, NR)));
      }
    }
    // P = 2^(S - running max) row by row (0 past the keys a row sees), the rows' statistics updated
    for (let i = 0; i < rows; i++) {
      const row = tile + (<usize>(i * BLOCK) << 2);
      const n = min(kb, first + i + 1 - j0);
      if (n <= 0) {
        memory.fill(row, 0, <usize>kb << 2);
        continue;
      }
      const at = <usize>i << 2;
      const m = rowStatistics(row, n, rowMax + at, rowSum + at, acc + (<usize>(i * HS) << 2), HS);
      store<f32>(rowSum + at, load<f32>(rowSum + at) + exp2Row(row, n, kb, m));
    }
    // O += P V for this key block
    packPanelA(pa, tile, BLOCK, 1, rows, kb);
    gemmPacked(acc, HS, pa, vp + (<usize>(j0 * hsPadded) << 2), rows, kb, HS);
  }
  for (let i = 0; i < rows; i++) {
    const sum = load<f32>(rowSum + (<usize>i << 2));
    const inv = f32x4.splat(<f32>1.0 / sum);
    const src = acc + (<usize>(i * HS) << 2);
    const dst = o + <usize>i * oStride;
    let c = 0;
    for (; c + 4 <= HS; c += 4) v128.store(dst + (<usize>c << 2), f32x4.mul(v128.load(src + (<usize>c << 2)), inv));
    for (; c < HS; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + (<usize>c << 2)) * f32x4.extract_lane(inv, 0));
    // the max is in base-2 units, the log-sum-exp natural
    if (lse) store<f32>(lse + (<usize>i << 2), load<f32>(rowMax + (<usize>i << 2)) * LN2 + Mathf.log(sum));
  }
}

/**
 * A row's max for one key block, in the scores' base-2 units: the max of its n > 0 visible scores
 * at row, or the running max at maxAt if that is larger, stored there and returned. When the max
 * grows, what was summed so far (the running sum at sumAt, the output accumulator's HS floats) was
 * scaled by 2^-old and is rescaled to 2^-new.
 */
function rowStatistics(row: usize, n: i32, maxAt: usize, sumAt: usize, accRow: usize, HS: i32): f32 {
  let mx = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= n; j += 4) mx = f32x4.pmax(mx, v128.load(row + (<usize>j << 2)));
  let tileMax = hmax(mx);
  for (; j < n; j++) tileMax = max(tileMax, load<f32>(row + (<usize>j << 2)));
  const before = load<f32>(sumAt);
  let m = tileMax;
  if (before > 0) {
    const old = load<f32>(maxAt);
    if (old >= tileMax) m = old;
    else {
      const alpha = exp1((old - tileMax) * LN2);
      store<f32>(sumAt, before * alpha);
      const av = f32x4.splat(alpha);
      let c = 0;
      for (; c + 4 <= HS; c += 4) v128.store(accRow + (<usize>c << 2), f32x4.mul(v128.load(accRow + (<usize>c << 2)), av));
      for (; c < HS; c++) store<f32>(accRow + (<usize>c << 2), load<f32>(accRow + (<usize>c << 2)) * alpha);
    }
  }
  store<f32>(maxAt, m);
  return m;
}

// 2^r for r in [-1/2, 1/2]: the Taylor series of e^(r ln 2) to degree 6 (error below 1.3e-7, about
// one float32 ulp), lanes splat; then the clamp below which 2^x leaves the normal floats, and
// 1.5 * 2^23 + 127: added to an x in [-126, 0] it rounds x to the nearest integer k in the low
// mantissa bits, as k + 127, the exponent field of 2^k once shifted left by 23. exp2Row loads them
// once per row: V8 (Node 20) rebuilds a v128 constant with about four instructions wherever it is
// used, inside the loop; it also expands f32x4.max, nearest and trunc_sat into several instructions
// each, where pmax and the rounding add are one.
const EXP2_TABLE = memory.data<f32>([
  1.5403530393381606e-4, 1.5403530393381606e-4, 1.5403530393381606e-4, 1.5403530393381606e-4,
  1.3333558146428443e-3, 1.3333558146428443e-3, 1.3333558146428443e-3, 1.3333558146428443e-3,
  9.6181291076284772e-3, 9.6181291076284772e-3, 9.6181291076284772e-3, 9.6181291076284772e-3,
  5.5504108664821580e-2, 5.5504108664821580e-2, 5.5504108664821580e-2, 5.5504108664821580e-2,
  2.4022650695910071e-1, 2.4022650695910071e-1, 2.4022650695910071e-1, 2.4022650695910071e-1,
  6.9314718055994531e-1, 6.9314718055994531e-1, 6.9314718055994531e-1, 6.9314718055994531e-1,
  1, 1, 1, 1,
  -126, -126, -126, -126,
  12583039, 12583039, 12583039, 12583039,
], 16);

/**
 * row[0:n] = 2^(row[j] - m) in place (scores in base-2 units, each <= m), row[n:rowLen] = 0;
 * returns the sum of row[0:n]. The last n % 4 scores go through the same vector path, masked.
 */
function exp2Row(row: usize, n: i32, rowLen: i32, m: f32): f32 {
  const c6 = v128.load(EXP2_TABLE), c5 = v128.load(EXP2_TABLE, 16), c4 = v128.load(EXP2_TABLE, 32);
  const c3 = v128.load(EXP2_TABLE, 48), c2 = v128.load(EXP2_TABLE, 64), c1 = v128.load(EXP2_TABLE, 80);
  const one = v128.load(EXP2_TABLE, 96), lowest = v128.load(EXP2_TABLE, 112), round = v128.load(EXP2_TABLE, 128);
  const mv = f32x4.splat(m);
  const nv = i32x4.splat(n);
  let lanes = i32x4(0, 1, 2, 3);
  const four = i32x4.splat(4);
  let sum = f32x4.splat(0);
  const end = row + (<usize>roundUp(n, 4) << 2);
  for (let p = row; p < end; p += 16) {
    const x = f32x4.pmax(f32x4.sub(v128.load(p), mv), lowest);
    const t = f32x4.add(x, round);
    const r = f32x4.sub(x, f32x4.sub(t, round));
    let y = f32x4.add(f32x4.mul(c6, r), c5);
    y = f32x4.add(f32x4.mul(y, r), c4);
    y = f32x4.add(f32x4.mul(y, r), c3);
    y = f32x4.add(f32x4.mul(y, r), c2);
    y = f32x4.add(f32x4.mul(y, r), c1);
    y = f32x4.add(f32x4.mul(y, r), one);
    const e = v128.and(f32x4.mul(y, i32x4.shl(t, 23)), i32x4.lt_s(lanes, nv));
    v128.store(p, e);
    sum = f32x4.add(sum, e);
    lanes = i32x4.add(lanes, four);
  }
  const done = roundUp(n, 4);
  if (done < rowLen) memory.fill(end, 0, <usize>(rowLen - done) << 2);
  return hsum(sum);
}

/** [sum of a's lanes, of b's, of c's, of d's] */
// @ts-ignore: decorator
@inline function laneSums(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i8x16.shuffle(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), i8x16.shuffle(a, b, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
  const cd = f32x4.add(i8x16.shuffle(c, d, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), i8x16.shuffle(c, d, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
  // ab = [a0+a2, b0+b2, a1+a3, b1+b3], cd likewise
  return f32x4.add(i8x16.shuffle(ab, cd, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), i8x16.shuffle(ab, cd, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
}

/**
 * att[j..j+3] = scale * (q . key j+i) for the four keys at k, k + stride, ...: the four dot products
 * share q's loads and are reduced together
 */
function scoreFourKeys(att: usize, q: usize, k: usize, stride: usize, HS: i32, scale: f32): void {
  const k1 = k + stride;
  const k2 = k1 + stride;
  const k3 = k2 + stride;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c = 0;
  for (; c + 4 <= HS; c += 4) {
    const o = <usize>c << 2;
    const qv = v128.load(q + o);
    a0 = madd(qv, v128.load(k + o), a0);
    a1 = madd(qv, v128.load(k1 + o), a1);
    a2 = madd(qv, v128.load(k2 + o), a2);
    a3 = madd(qv, v128.load(k3 + o), a3);
  }
  let sums = laneSums(a0, a1, a2, a3);
  for (; c < HS; c++) {
    const o = <usize>c << 2;
    const keys = f32x4(load<f32>(k + o), load<f32>(k1 + o), load<f32>(k2 + o), load<f32>(k3 + o));
    sums = f32x4.add(sums, f32x4.mul(f32x4.splat(load<f32>(q + o)), keys));
  }
  v128.store(att, f32x4.mul(sums, f32x4.splat(scale)));
}

/**
 * out[0:32] (wide) or out[0:4] = inv * sum over j < n of p[j] * the same columns of value j (at v +
 * j*stride bytes), the sums held in registers across every key
 */
// @ts-ignore: decorator
@inline function weightedValues(out: usize, p: usize, v: usize, stride: usize, n: i32, inv: f32, wide: bool): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0), s7 = f32x4.splat(0);
  let row = v;
  const end = p + (<usize>n << 2);
  for (let pj = p; pj < end; pj += 4) {
    const w = v128.load32_splat(pj);
    s0 = madd(w, v128.load(row), s0);
    if (wide) {
      s1 = madd(w, v128.load(row, 16), s1);
      s2 = madd(w, v128.load(row, 32), s2);
      s3 = madd(w, v128.load(row, 48), s3);
      s4 = madd(w, v128.load(row, 64), s4);
      s5 = madd(w, v128.load(row, 80), s5);
      s6 = madd(w, v128.load(row, 96), s6);
      s7 = madd(w, v128.load(row, 112), s7);
    }
    row += stride;
  }
  const iv = f32x4.splat(inv);
  v128.store(out, f32x4.mul(s0, iv));
  if (wide) {
    v128.store(out, f32x4.mul(s1, iv), 16);
    v128.store(out, f32x4.mul(s2, iv), 32);
    v128.store(out, f32x4.mul(s3, iv), 48);
    v128.store(out, f32x4.mul(s4, iv), 64);
    v128.store(out, f32x4.mul(s5, iv), 80);
    v128.store(out, f32x4.mul(s6, iv), 96);
    v128.store(out, f32x4.mul(s7, iv), 112);
  }
}

/**
 * One query row over n keys/values (key j at k + j*stride bytes, value j at v + j*stride):
 * out[0:HS] = softmax(scale * q.k_j) @ v. Uses att[0:n] as scratch. Scores go four keys at a time;
 * the weighted sum of the values goes 32 output columns at a time, held in registers over every
 * key (then four, then one), so the output is written once rather than once per key.
 */
function attendRow(out: usize, q: usize, k: usize, v: usize, stride: usize, n: i32, HS: i32, scale: f32, att: usize): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) scoreFourKeys(att + (<usize>j << 2), q, k + <usize>j * stride, stride, HS, scale);
  for (; j < n; j++) store<f32>(att + (<usize>j << 2), dot(q, k + <usize>j * stride, HS) * scale);
  let mx = f32x4.splat(-Infinity);
  for (j = 0; j + 4 <= n; j += 4) mx = f32x4.pmax(mx, v128.load(att + (<usize>j << 2)));
  let maxv = hmax(mx);
  for (; j < n; j++) maxv = max(maxv, load<f32>(att + (<usize>j << 2)));
  const maxSplat = f32x4.splat(maxv);
  let acc = f32x4.splat(0);
  for (j = 0; j + 4 <= n; j += 4) {
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
  let c = 0;
  for (; c + 32 <= HS; c += 32) weightedValues(out + (<usize>c << 2), att, v + (<usize>c << 2), stride, n, inv, true);
  for (; c + 4 <= HS; c += 4) weightedValues(out + (<usize>c << 2), att, v + (<usize>c << 2), stride, n, inv, false);
  for (; c < HS; c++) {
    let total: f32 = 0;
    for (j = 0; j < n; j++) total += load<f32>(att + (<usize>j << 2)) * load<f32>(v + <usize>j * stride + (<usize>c << 2));
    store<f32>(out + (<usize>c << 2), total * inv);
  }
}

/**
 * out[B,T,C], lse[B,NH,T] from qkv[B,T,3C] (q, k, v along the last dim, heads contiguous in each),
 * for the (batch, head) pairs b*NH + h in [p0, p1): each pair writes only its own slices of out and
 * lse, so threads can take disjoint ranges (each with its own att scratch). Per pair: keys and
 * values packed once, then one block of query rows at a time against the key tiles it can see
 * (attendBlock). att: attentionScratchFloats(T, C / NH, 0) floats of scratch.
 */
export function attentionForwardPairs(out: usize, lse: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, p0: i32, p1: i32): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const rowStride = <usize>(3 * C) << 2;
  const cBytes = <usize>C << 2;
  const kt = att;
  const vp = kt + (<usize>(roundUp(T, NR) * HS) << 2);
  const work = vp + (<usize>(T * roundUp(HS, NR)) << 2);
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    const q = base + headOff;
    const o = out + <usize>(b * T) * cBytes + headOff;
    const l = lse + (<usize>((b * NH + h) * T) << 2);
    packKeysValues(kt, vp, base + cBytes + headOff, base + 2 * cBytes + headOff, rowStride, T, HS);
    for (let i0 = 0; i0 < T; i0 += BLOCK) {
      const rows = min(BLOCK, T - i0);
      attendBlock(o + <usize>i0 * cBytes, cBytes, q + <usize>i0 * rowStride, rowStride, kt, vp, rows, i0, HS, scale, work, l + (<usize>i0 << 2));
    }
  }
}

/**
 * Accumulates into dqkv[B,T,3C] for the (batch, head) pairs in [p0, p1) (each adds only into its own
 * head's dq, dk, dv). Per pair, block of query rows i and tile of keys j it can see, with P
 * recomputed from Q K^T and lse: dV_j += P^T dO_i; dP = dO_i V_j^T; dS = P (dP - rowsum(dO * O))
 * scale; dQ_i += dS K_j; dK_j += dS^T Q_i. att: attentionScratchFloats(T, C / NH, 1) floats (two
 * tiles and a row, whatever T).
 */
export function attentionBackwardPairs(
  dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, p0: i32, p1: i32,
): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const C3 = 3 * C;
  const rowStride = <usize>C3 << 2;
  const cBytes = <usize>C << 2;
  const P = att;
  const dS = P + (<usize>(BLOCK * BLOCK) << 2);
  const rowD = dS + (<usize>(BLOCK * BLOCK) << 2);
  const sv = f32x4.splat(scale);
  for (let pair = p0; pair < p1; pair++) {
    const b = pair / NH;
    const h = pair % NH;
    const base = qkv + <usize>(b * T) * rowStride;
    const dbase = dqkv + <usize>(b * T) * rowStride;
    const headOff = <usize>(h * HS) << 2;
    for (let i0 = 0; i0 < T; i0 += BLOCK) {
      const rows = min(BLOCK, T - i0);
      const q = base + <usize>i0 * rowStride + headOff;
      const dq = dbase + <usize>i0 * rowStride + headOff;
      const o = out + <usize>(b * T + i0) * cBytes + headOff;
      const dO = dout + <usize>(b * T + i0) * cBytes + headOff;
      const rowLse = lse + (<usize>((b * NH + h) * T + i0) << 2);
      for (let i = 0; i < rows; i++) store<f32>(rowD + (<usize>i << 2), dot(dO + <usize>i * cBytes, o + <usize>i * cBytes, HS));
      for (let j0 = 0; j0 < i0 + rows; j0 += BLOCK) {
        const kb = min(BLOCK, i0 + rows - j0);
        const k = base + <usize>j0 * rowStride + cBytes + headOff;
        const v = k + cBytes;
        const dk = dbase + <usize>j0 * rowStride + cBytes + headOff;
        const dv = dk + cBytes;
        memory.fill(P, 0, <usize>(rows * BLOCK) << 2);
        memory.fill(dS, 0, <usize>(rows * BLOCK) << 2);
        // S = Q_i K_j^T into P; dP = dO_i V_j^T into dS
        gemmAccumulate(P, BLOCK, q, C3, 1, k, 1, C3, rows, HS, kb);
        gemmAccumulate(dS, BLOCK, dO, C, 1, v, 1, C3, rows, HS, kb);
        for (let i = 0; i < rows; i++) {
          const pRow = P + (<usize>(i * BLOCK) << 2);
          const dRow = dS + (<usize>(i * BLOCK) << 2);
          const n = min(kb, i0 + i + 1 - j0);
          const l = f32x4.splat(load<f32>(rowLse + (<usize>i << 2)));
          const D = f32x4.splat(load<f32>(rowD + (<usize>i << 2)));
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
          if (n < kb) {
            memory.fill(pRow + (<usize>max(n, 0) << 2), 0, <usize>(kb - max(n, 0)) << 2);
            memory.fill(dRow + (<usize>max(n, 0) << 2), 0, <usize>(kb - max(n, 0)) << 2);
          }
        }
        // dV_j[j,:] += sum_i P[i,j] dO_i: A(j,i) = P[i,j]
        gemmAccumulate(dv, C3, P, 1, BLOCK, dO, C, 1, kb, rows, HS);
        // dQ_i[i,:] += sum_j dS[i,j] k_j
        gemmAccumulate(dq, C3, dS, BLOCK, 1, k, C3, 1, rows, kb, HS);
        // dK_j[j,:] += sum_i dS[i,j] q_i
        gemmAccumulate(dk, C3, dS, 1, BLOCK, q, C3, 1, kb, rows, HS);
      }
    }
  }
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
 * KV-cache attention, after kvCacheAppend has written the Tn new positions' k, v into kCache/vCache
 * [B,cacheLen,C] at startPos..: new position i attends over cache positions 0..startPos+i; out[B,Tn,C].
 * For the (batch, head) pairs b*NH + h in [p0, p1): each pair writes only its own head's slice of
 * out, so threads can take disjoint ranges (each with its own att scratch). A prompt (Tn >= 4) goes
 * through the matmul kernel per (b, h) in tiles like training; a few new rows go row by row, where
 * packing the cache would cost more than it saves. att: attentionScratchFloats(startPos + Tn, C / NH, 0) floats.
 */
export function attentionCachedPairs(
  out: usize, qkv: usize, kCache: usize, vCache: usize, att: usize, B: i32, Tn: i32, C: i32, NH: i32, startPos: i32, cacheLen: i32, p0: i32, p1: i32,
): void {
  const HS = C / NH;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>HS);
  const C3 = 3 * C;
  const rowStride = <usize>C3 << 2;
  const cBytes = <usize>C << 2;
  // a prompt's keys and values, packed per pair, and the work area after them
  const L = startPos + Tn;
  const kt = att;
  const vp = kt + (<usize>(roundUp(L, NR) * HS) << 2);
  const work = vp + (<usize>(L * roundUp(HS, NR)) << 2);
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
    packKeysValues(kt, vp, kb + headOff, vb + headOff, cBytes, L, HS);
    for (let i0 = 0; i0 < Tn; i0 += BLOCK) {
      const rows = min(BLOCK, Tn - i0);
      const o = ob + <usize>i0 * cBytes + headOff;
      attendBlock(o, cBytes, qb + <usize>i0 * rowStride + headOff, rowStride, kt, vp, rows, startPos + i0, HS, scale, work, 0);
    }
  }
}
