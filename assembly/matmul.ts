// Matmul, GotoBLAS style: C[M,N] += A[M,K] @ B[K,N] over packed panels of A (MC x KC, in slivers of
// MR rows) and B (KC x NC, in slivers of NR columns), with an MR x NR = 4x8 register-blocked
// micro-kernel (8 f32x4 accumulators). A and B are read through element strides, so the transposed
// operands of the backward products are packed into the same layout instead of looping strided.
// Measured in Node 20 (V8): ~44 GFLOP/s on one core; unrolling the k loop by 2 (~28) and a 5x8 tile
// (~23) were slower, other KC/MC/NC within noise. Later, on L1-resident slivers under load: 4x8 and
// 2x16 ~34 (relaxed ~50), 3x12 ~18 and 6x8 ~16-22 (V8 spills their accumulators); touching the C tile
// before the loop gained nothing. 4x8 issues 22 vector ops per 64 flops (6 loads, 8 mul, 8 add), and
// ~34 GFLOP/s at ~3.1 GHz is about four of them a cycle. Decoding's products (a few rows:
// matmulRowsCols) skip packing.
import { madd } from './math';

const MR = 4;
const NR = 8;
// KC x NR of B (8 KiB) stays in L1, MC x KC of A (128 KiB) in L2, KC x NC of B in L2/L3
const KC = 256;
const MC = 128;
const NC = 1024;

// Packing buffers and the edge tile. Globals are per instance, so in the threaded build each worker
// points its own instance at its own region (setScratch); the calling thread keeps the static one.
const PACK_A_BYTES: usize = MC * KC * 4;
const PACK_B_BYTES: usize = KC * NC * 4;
// an MR x NR tile of accumulators for edge tiles that are smaller than MR x NR
const EDGE_TILE_BYTES: usize = MR * NR * 4;
let packA = memory.data(<i32>PACK_A_BYTES, 64);
let packB = memory.data(<i32>PACK_B_BYTES, 64);
let edgeTile = memory.data(<i32>EDGE_TILE_BYTES, 64);

/** bytes of scratch one thread's matmul needs (setScratch's region) */
export function matmulScratchBytes(): usize {
  return PACK_A_BYTES + PACK_B_BYTES + EDGE_TILE_BYTES;
}

/** points this instance's packing buffers at [region, region + matmulScratchBytes()), 64-byte aligned */
export function setScratch(region: usize): void {
  packA = region;
  packB = region + PACK_A_BYTES;
  edgeTile = packB + PACK_B_BYTES;
}

/**
 * stores the 4x4 block whose rows are v0..v3 transposed: its column j, (v0[j], v1[j], v2[j], v3[j]),
 * at dst + j * step bytes
 */
// @ts-ignore: decorator
@inline function storeTransposed4(dst: usize, step: usize, v0: v128, v1: v128, v2: v128, v3: v128): void {
  const low01 = f32x4.shuffle(v0, v1, 0, 4, 1, 5);
  const low23 = f32x4.shuffle(v2, v3, 0, 4, 1, 5);
  const high01 = f32x4.shuffle(v0, v1, 2, 6, 3, 7);
  const high23 = f32x4.shuffle(v2, v3, 2, 6, 3, 7);
  v128.store(dst, f32x4.shuffle(low01, low23, 0, 1, 4, 5));
  v128.store(dst + step, f32x4.shuffle(low01, low23, 2, 3, 6, 7));
  v128.store(dst + 2 * step, f32x4.shuffle(high01, high23, 0, 1, 4, 5));
  v128.store(dst + 3 * step, f32x4.shuffle(high01, high23, 2, 3, 6, 7));
}

/**
 * packs A[0:mc, 0:kc] (A(i,p) at a + 4*(i*rs + p*cs)) into MR-row slivers [p][MR] at dst, zero
 * padded: ceil(mc / MR) * MR * kc floats
 */
export function packPanelA(dst: usize, a: usize, rs: i32, cs: i32, mc: i32, kc: i32): void {
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const mr = min(MR, mc - i0);
    if (cs == 1 && mr == MR) {
      // rows contiguous along p: four row streams, four p at a time transposed in registers
      const r0 = a + (<usize>(i0 * rs) << 2);
      const r1 = r0 + (<usize>rs << 2);
      const r2 = r1 + (<usize>rs << 2);
      const r3 = r2 + (<usize>rs << 2);
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = <usize>p << 2;
        storeTransposed4(dst, 16, v128.load(r0 + o), v128.load(r1 + o), v128.load(r2 + o), v128.load(r3 + o));
        dst += 64;
      }
      for (; p < kc; p++) {
        const o = <usize>p << 2;
        store<f32>(dst, load<f32>(r0 + o));
        store<f32>(dst, load<f32>(r1 + o), 4);
        store<f32>(dst, load<f32>(r2 + o), 8);
        store<f32>(dst, load<f32>(r3 + o), 12);
        dst += 16;
      }
    } else if (rs == 1 && mr == MR) {
      // transposed A: the MR values of one p are contiguous
      for (let p = 0; p < kc; p++) {
        v128.store(dst, v128.load(a + (<usize>(p * cs + i0) << 2)));
        dst += 16;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        for (let i = 0; i < MR; i++) {
          store<f32>(dst + (<usize>i << 2), i < mr ? load<f32>(a + (<usize>((i0 + i) * rs + p * cs) << 2)) : 0);
        }
        dst += 16;
      }
    }
  }
}

/**
 * packs B[0:kc, 0:nc] (B(p,j) at b + 4*(p*rs + j*cs)) into NR-column slivers [p][NR] at dst, zero
 * padded: ceil(nc / NR) * NR * kc floats; the sliver of columns j0.. (j0 a multiple of NR) starts
 * at dst + 4 * j0 * kc
 */
export function packPanelB(dst: usize, b: usize, rs: i32, cs: i32, kc: i32, nc: i32): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const nr = min(NR, nc - j0);
    if (cs == 1 && nr == NR) {
      for (let p = 0; p < kc; p++) {
        const src = b + (<usize>(p * rs + j0) << 2);
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        dst += 32;
      }
    } else if (rs == 1 && nr == NR) {
      // transposed B: each column j is contiguous along p; four p of eight columns at a time,
      // transposed in registers as two 4x4 blocks
      const c0 = b + (<usize>(j0 * cs) << 2);
      const step = <usize>cs << 2;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = c0 + (<usize>p << 2);
        storeTransposed4(dst, 32, v128.load(o), v128.load(o + step), v128.load(o + 2 * step), v128.load(o + 3 * step));
        storeTransposed4(dst + 16, 32, v128.load(o + 4 * step), v128.load(o + 5 * step), v128.load(o + 6 * step), v128.load(o + 7 * step));
        dst += 128;
      }
      for (; p < kc; p++) {
        const o = c0 + (<usize>p << 2);
        for (let j = 0; j < NR; j++) store<f32>(dst + (<usize>j << 2), load<f32>(o + <usize>j * step));
        dst += 32;
      }
    } else if (rs == 1) {
      // transposed B's last columns: each column j is contiguous along p; write it with stride NR
      for (let j = 0; j < NR; j++) {
        const col = dst + (<usize>j << 2);
        if (j < nr) {
          const src = b + (<usize>((j0 + j) * cs) << 2);
          for (let p = 0; p < kc; p++) store<f32>(col + (<usize>(p * NR) << 2), load<f32>(src + (<usize>p << 2)));
        } else {
          for (let p = 0; p < kc; p++) store<f32>(col + (<usize>(p * NR) << 2), 0);
        }
      }
      dst += <usize>(kc * NR) << 2;
    } else {
      for (let p = 0; p < kc; p++) {
        for (let j = 0; j < NR; j++) {
          store<f32>(dst + (<usize>j << 2), j < nr ? load<f32>(b + (<usize>(p * rs + (j0 + j) * cs) << 2)) : 0);
        }
        dst += 32;
      }
    }
  }
}

/**
 * C[0:mr, 0:nr] += Apacked sliver (kc x MR) times Bpacked sliver (kc x NR); C row stride ldc elements.
 * Full tiles are added to C directly, edge tiles through edgeTile.
 */
// @ts-ignore: decorator
@inline function microKernel(kc: i32, a: usize, b: usize, c: usize, ldc: i32, mr: i32, nr: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  // the A pointer doubles as the loop counter: one add fewer per step, ~10% faster in V8
  const aEnd = a + (<usize>kc << 4);
  while (a < aEnd) {
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    const a0 = v128.load32_splat(a);
    c00 = madd(a0, b0, c00);
    c01 = madd(a0, b1, c01);
    const a1 = v128.load32_splat(a, 4);
    c10 = madd(a1, b0, c10);
    c11 = madd(a1, b1, c11);
    const a2 = v128.load32_splat(a, 8);
    c20 = madd(a2, b0, c20);
    c21 = madd(a2, b1, c21);
    const a3 = v128.load32_splat(a, 12);
    c30 = madd(a3, b0, c30);
    c31 = madd(a3, b1, c31);
    a += 16;
    b += 32;
  }
  const ldcb = <usize>ldc << 2;
  if (mr == MR && nr == NR) {
    let r = c;
    v128.store(r, f32x4.add(v128.load(r), c00));
    v128.store(r, f32x4.add(v128.load(r, 16), c01), 16);
    r += ldcb;
    v128.store(r, f32x4.add(v128.load(r), c10));
    v128.store(r, f32x4.add(v128.load(r, 16), c11), 16);
    r += ldcb;
    v128.store(r, f32x4.add(v128.load(r), c20));
    v128.store(r, f32x4.add(v128.load(r, 16), c21), 16);
    r += ldcb;
    v128.store(r, f32x4.add(v128.load(r), c30));
    v128.store(r, f32x4.add(v128.load(r, 16), c31), 16);
  } else {
    const t = edgeTile;
    v128.store(t, c00); v128.store(t, c01, 16);
    v128.store(t, c10, 32); v128.store(t, c11, 48);
    v128.store(t, c20, 64); v128.store(t, c21, 80);
    v128.store(t, c30, 96); v128.store(t, c31, 112);
    for (let i = 0; i < mr; i++) {
      const row = c + <usize>i * ldcb;
      const trow = t + (<usize>(i * NR) << 2);
      for (let j = 0; j < nr; j++) {
        const o = <usize>j << 2;
        store<f32>(row + o, load<f32>(row + o) + load<f32>(trow + o));
      }
    }
  }
}

/**
 * C[M,N] += A[M,K] @ B[K,N] (byte pointers; A(i,p) at a + 4*(i*rsA + p*csA), B(p,j) at
 * b + 4*(p*rsB + j*csB), C row stride ldc elements).
 */
export function gemmAccumulate(c: usize, ldc: i32, a: usize, rsA: i32, csA: i32, b: usize, rsB: i32, csB: i32, M: i32, K: i32, N: i32): void {
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      packPanelB(packB, b + (<usize>(pc * rsB + jc * csB) << 2), rsB, csB, kc, nc);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        packPanelA(packA, a + (<usize>(ic * rsA + pc * csA) << 2), rsA, csA, mc, kc);
        gemmPacked(c + (<usize>(ic * ldc + jc) << 2), ldc, packA, packB, mc, kc, nc);
      }
    }
  }
}

/**
 * C[0:M, 0:N] += A @ B from packed operands: A as packPanelA lays it out (M rows, K deep), B as
 * packPanelB does (K deep, N columns); C row stride ldc elements. The caller sizes the panels for
 * the caches (gemmAccumulate: MC x KC and KC x NC; attention: 64-row blocks).
 */
export function gemmPacked(c: usize, ldc: i32, ap: usize, bp: usize, M: i32, K: i32, N: i32): void {
  for (let jr = 0; jr < N; jr += NR) {
    const nr = min(NR, N - jr);
    const b = bp + (<usize>(jr * K) << 2);
    for (let ir = 0; ir < M; ir += MR) {
      const mr = min(MR, M - ir);
      microKernel(K, ap + (<usize>(ir * K) << 2), b, c + (<usize>(ir * ldc + jr) << 2), ldc, mr, nr);
    }
  }
}

// Decoding (forward with M < MR rows) is bound by reading W once per token. W is split into
// GEMV_STREAMS bands of whole rows, and each pass takes one row from every band: the hardware
// prefetchers see that many long sequential streams. Measured in Node 20 over config B's weights
// (42 MB, one row) under load: eight bands ~15 GB/s, where eight adjacent rows per pass (streams that
// end every row) gave ~10.5, one stream ~12, twelve bands ~12 and sixteen ~9; six bands were ~9%
// faster than eight in five of six same-run comparisons. The rows of y stay in L1 between passes.
// A pass over the six bands is written out (gemvSixRows): with the generic loop over rows, config
// B's 24 matrices took 1.58-1.64 ms per row on an AMD EPYC host, 1.33-1.37 written out.
const GEMV_STREAMS = 6;

/**
 * y[i,0:N] += sum over j < rows of x[i, j*xStep] * W(j)[0:N] for i < M, W(j) the row of W at
 * w + j*wStep bytes; x row stride xRow elements, y row stride ld elements. Columns go eight, then four
 * at a time, then one: a column's sum has the same order whichever path takes it.
 */
function gemvPass(y: usize, x: usize, w: usize, M: i32, xRow: i32, N: i32, ld: i32, rows: i32, wStep: usize, xStep: usize): void {
  const n8 = <usize>(N & ~7) << 2;
  const n4 = <usize>(N & ~3) << 2;
  const nBytes = <usize>N << 2;
  const wEnd = w + <usize>rows * wStep;
  for (let i = 0; i < M; i++) {
    const yi = y + (<usize>(i * ld) << 2);
    const xi = x + (<usize>(i * xRow) << 2);
    let o: usize = 0;
    for (; o < n8; o += 32) {
      let s0 = v128.load(yi + o), s1 = v128.load(yi + o, 16);
      for (let wj = w + o, xj = xi; wj < wEnd + o; wj += wStep, xj += xStep) {
        const a = v128.load32_splat(xj);
        s0 = madd(a, v128.load(wj), s0);
        s1 = madd(a, v128.load(wj, 16), s1);
      }
      v128.store(yi + o, s0);
      v128.store(yi + o, s1, 16);
    }
    if (o < n4) {
      let s = v128.load(yi + o);
      for (let wj = w + o, xj = xi; wj < wEnd + o; wj += wStep, xj += xStep) s = madd(v128.load32_splat(xj), v128.load(wj), s);
      v128.store(yi + o, s);
      o += 16;
    }
    for (; o < nBytes; o += 4) {
      let s = load<f32>(yi + o);
      for (let wj = w + o, xj = xi; wj < wEnd + o; wj += wStep, xj += xStep) s += load<f32>(xj) * load<f32>(wj);
      store<f32>(yi + o, s);
    }
  }
}

/**
 * gemvPass over exactly GEMV_STREAMS (six) rows, in the same order (so the same bits), written
 * out: the six x values of a pass are splat once per row of y instead of once per eight columns,
 * and the six row pointers stay in registers, so eight columns cost 12 loads and 24 vector ops of
 * W with no inner loop. Columns past the last eight go through gemvPass.
 */
function gemvSixRows(y: usize, x: usize, w: usize, M: i32, xRow: i32, N: i32, ld: i32, wStep: usize, xStep: usize): void {
  const n8 = <usize>(N & ~7) << 2;
  const w0 = w, w1 = w0 + wStep, w2 = w1 + wStep, w3 = w2 + wStep, w4 = w3 + wStep, w5 = w4 + wStep;
  for (let i = 0; i < M; i++) {
    const yi = y + (<usize>(i * ld) << 2);
    const xi = x + (<usize>(i * xRow) << 2);
    const a0 = v128.load32_splat(xi), a1 = v128.load32_splat(xi + xStep), a2 = v128.load32_splat(xi + 2 * xStep);
    const a3 = v128.load32_splat(xi + 3 * xStep), a4 = v128.load32_splat(xi + 4 * xStep), a5 = v128.load32_splat(xi + 5 * xStep);
    for (let o: usize = 0; o < n8; o += 32) {
      let s0 = v128.load(yi + o), s1 = v128.load(yi + o, 16);
      s0 = madd(a0, v128.load(w0 + o), s0);
      s1 = madd(a0, v128.load(w0 + o, 16), s1);
      s0 = madd(a1, v128.load(w1 + o), s0);
      s1 = madd(a1, v128.load(w1 + o, 16), s1);
      s0 = madd(a2, v128.load(w2 + o), s0);
      s1 = madd(a2, v128.load(w2 + o, 16), s1);
      s0 = madd(a3, v128.load(w3 + o), s0);
      s1 = madd(a3, v128.load(w3 + o, 16), s1);
      s0 = madd(a4, v128.load(w4 + o), s0);
      s1 = madd(a4, v128.load(w4 + o, 16), s1);
      s0 = madd(a5, v128.load(w5 + o), s0);
      s1 = madd(a5, v128.load(w5 + o, 16), s1);
      v128.store(yi + o, s0);
      v128.store(yi + o, s1, 16);
    }
  }
  if (n8 < (<usize>N << 2)) {
    const tail = <i32>(n8 >> 2);
    gemvPass(y + n8, x, w + n8, M, xRow, N - tail, ld, GEMV_STREAMS, wStep, xStep);
  }
}

/**
 * out[i,0:N] += inp[i,0:K] @ W[0:K,0:N] for i < M < MR without packing, W read once: one
 * row of each of GEMV_STREAMS bands per pass, then the K % GEMV_STREAMS rows left over one at a
 * time. inp has row stride xRow elements; out and W have row stride ld (N is ld, or fewer for a
 * column block). Every out element is summed in that same order whatever column range a thread takes.
 */
function gemvRows(out: usize, inp: usize, xRow: i32, w: usize, M: i32, K: i32, N: i32, ld: i32): void {
  const rowBytes = <usize>ld << 2;
  const band = K / GEMV_STREAMS;
  const bandBytes = <usize>band * rowBytes;
  for (let r = 0; r < band; r++) {
    gemvSixRows(out, inp + (<usize>r << 2), w + <usize>r * rowBytes, M, xRow, N, ld, bandBytes, <usize>band << 2);
  }
  const done = band * GEMV_STREAMS;
  if (done < K) gemvPass(out, inp + (<usize>done << 2), w + <usize>done * rowBytes, M, xRow, N, ld, K - done, rowBytes, 4);
}

/** starts columns [n0, n1) of every row of out[M,N] at the bias (or zero when bias is 0) */
function startAtBias(out: usize, bias: usize, M: i32, N: i32, n0: i32, n1: i32): void {
  const colOff = <usize>n0 << 2;
  const blockBytes = <usize>(n1 - n0) << 2;
  for (let m = 0; m < M; m++) {
    const row = out + (<usize>(m * N) << 2) + colOff;
    if (bias) memory.copy(row, bias + colOff, blockBytes);
    else memory.fill(row, 0, blockBytes);
  }
}

/**
 * Columns [n0, n1) of out[M,N] = bias[N] (0: none) + inp[:, k0:k1] @ w[k0:k1, :] for M < MR
 * (decoding). The caller sums K in two parts, the second into a buffer of its own that it then adds
 * to the first: then two threads each stream one contiguous half of W, where threads that split the
 * columns each read every row of W in pieces and their prefetches ran into each other's pieces.
 * Config B's 24 matrices on one row, AMD EPYC with 2 cores: by columns two threads took 1.3-1.7x
 * one thread's time, by halves 0.75-0.8x; one thread's halves are level with one pass over K
 * (within the host's noise, ~5%). Each element's sum has the same order whatever the column range.
 */
export function matmulRowsCols(out: usize, inp: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, k0: i32, k1: i32, n0: i32, n1: i32): void {
  startAtBias(out, bias, M, N, n0, n1);
  const colOff = <usize>n0 << 2;
  gemvRows(out + colOff, inp + (<usize>k0 << 2), K, w + (<usize>k0 * <usize>N << 2) + colOff, M, k1 - k0, n1 - n0, N);
}

/**
 * Columns [n0, n1) of out[M,N] = inp[M,K] @ w[K,N] + bias[N] (bias 0: none), packed (see
 * matmulRowsCols for decoding's rows). Each output element is summed in the same order whatever the
 * column range, so threads that split the columns produce exactly the single-threaded result.
 */
export function matmulForwardCols(out: usize, inp: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  startAtBias(out, bias, M, N, n0, n1);
  const colOff = <usize>n0 << 2;
  gemmAccumulate(out + colOff, N, inp, K, 1, w + colOff, N, 1, M, K, n1 - n0);
}

/** out[M,N] = inp[M,K] @ w[K,N] + bias[N]; bias 0 means none */
export function matmulForward(out: usize, inp: usize, w: usize, bias: usize, M: i32, K: i32, N: i32): void {
  matmulForwardCols(out, inp, w, bias, M, K, N, 0, N);
}

/** columns [k0, k1) of dinp[M,K] += dout[M,N] @ w^T (w is [K,N]: packed transposed into the same micro-kernel) */
export function matmulBackwardInputCols(dinp: usize, dout: usize, w: usize, M: i32, K: i32, N: i32, k0: i32, k1: i32): void {
  gemmAccumulate(dinp + (<usize>k0 << 2), K, dout, N, 1, w + (<usize>(k0 * N) << 2), 1, N, M, N, k1 - k0);
}

/**
 * Columns [n0, n1) of dweight[K,N] += inp^T @ dout and of dbias[N] += column sums of dout (dbias 0:
 * none)
 */
export function matmulBackwardWeightCols(dweight: usize, dbias: usize, dout: usize, inp: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const colOff = <usize>n0 << 2;
  // either may be 0 (null): a frozen weight or bias gets no gradient work
  if (dweight) gemmAccumulate(dweight + colOff, N, inp, 1, K, dout + colOff, N, 1, K, M, n1 - n0);
  if (dbias) {
    for (let m = 0; m < M; m++) {
      const row = dout + (<usize>(m * N) << 2);
      let n = n0;
      for (; n + 4 <= n1; n += 4) {
        const o = <usize>n << 2;
        v128.store(dbias + o, f32x4.add(v128.load(dbias + o), v128.load(row + o)));
      }
      for (; n < n1; n++) {
        const o = <usize>n << 2;
        store<f32>(dbias + o, load<f32>(dbias + o) + load<f32>(row + o));
      }
    }
  }
}
