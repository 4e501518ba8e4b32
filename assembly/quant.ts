// Quantized inference products: out[M,N] = x[M,K] @ W^T + bias, W [N,K] in ggml's Q8_0 or Q4_0
// blocks of 32 along K (src/model/quant.ts), dequantized on the fly, never widened in memory.
//
// x is first quantized per block of 32 with an f32 scale (quantizeActivations, once per call on the
// calling thread): for Q8_0 to int16 codes, so x's own rounding (2^-16 of its block's largest value)
// stays far below the weights' 2^-8; for Q4_0 to int8 codes (as ggml does), 2^-8 against the
// weights' 2^-4, so that the relaxed-SIMD build can dot a block's bytes directly (below). In the
// plain-SIMD build a block's product is four i32x4.dot_i16x8_s of W's codes with x's. W's codes are
// widened to i16 lanes without unpacking: Q8_0's first 16 codes by sign-extending loads
// (load8x8_s), its last 16 read as i16 lanes of two bytes each and split by shifts (this balance of
// loads and shifts ran fastest); Q4_0's 16 bytes read as i16 lanes and split by masks and shifts. The four i16x8 vectors of codes come in the order
//   Q8_0 (bytes b0..b31 = codes 0..31): codes 0..7, 8..15, even 16..30, odd 17..31
//   Q4_0 (byte j = code j low nibble, code j+16 high nibble): even codes 0..14, odd 1..15, even
//   16..30, odd 17..31, codes 0..15 unsigned
// and x's codes are stored in its format's order (xq below). Q4_0's codes are dotted without their -8, which
// comes back as -8 * sum(x codes) per block, precomputed here (xc). Bounds: |x code| <= 32767 and
// |W code| <= 127, so a block's sum stays below 2^27 in i32 (Q4_0: below 2^17, exact in f32).
//
// The relaxed-SIMD build dots a Q4_0 block as bytes: its 16 bytes masked and shifted give codes
// 0..15 and 16..31 (0..15 each, within i16x8.relaxed_dot_i8x16_i7x16_s's 7-bit operand, so the
// result is the same on every runtime), dotted with x's int8 codes in their natural order. Each i32
// lane then sums the same eight products as the plain build's lane (codes 4j..4j+3 and 16+4j..19+4j),
// so both builds give the same bits.
//
// Sums leave the integers once per four values: in the prompt pass the i32x4 partial sums of one
// block of four x rows (elsewhere of four blocks of one row) are reduced into one i32x4 of four totals
// (reduce4), converted and scaled by a vector of four scale products. Decoding (one row) reduces
// Q8_0's blocks in pairs and Q4_0's one at a time, two columns at once (decodeQuantCols): TurboFan
// hoists every load of a step to its top, and four blocks' loads spill registers (the accumulator
// among them) to the stack.
//
// Layout of the activation scratch for M rows, B = K/32 blocks:
//   xq [M, B, 64 bytes]: i16 codes in the order above (the relaxed build's Q4_0: i8 codes 0..31,
//      then 32 unused bytes);  xs [B, M] f32 scales;  xc [B, M] i32 -8*sum(codes)
// (xs and xc are block-major so that four x rows of one block are one v128 load.)

const QK: i32 = 32;
/**
 * The prompt pass takes x in chunks of this many rows, each chunk against every column of W: a
 * chunk's int16 codes (64 bytes per block of 32; K = 1536: 192 KiB) stay in L2 while W streams past.
 * Without chunks, a 512-row product of config B was 15% slower per block-row than a 64-row one.
 */
const PROMPT_ROWS: i32 = 64;

/** x [M,K] f32 -> xq, xs, xc (layout above; q4: Q4_0's code order, else Q8_0's) at xq, xs and xs + 4*M*K/32: x ~ xq * xs */
export function quantizeActivations(xq: usize, xs: usize, x: usize, M: i32, K: i32, q4: bool): void {
  const blocks = K / QK;
  const xc = xs + (<usize>(M * blocks) << 2);
  for (let m = 0; m < M; m++) {
    for (let b = 0; b < blocks; b++) {
      const src = x + (<usize>(m * K + b * QK) << 2);
      const top = blockMax(src);
      const d: f32 = top / (q4 ? 127.0 : 32767.0);
      const id = f32x4.splat(d != 0 ? 1.0 / d : 0);
      // n0..n3: codes 0..7, 8..15, 16..23, 24..31
      const n0 = codes8(src, id);
      const n1 = codes8(src + 32, id);
      const n2 = codes8(src + 64, id);
      const n3 = codes8(src + 96, id);
      const dst = xq + (<usize>(m * blocks + b) << 6);
      if (q4 && ASC_FEATURE_RELAXED_SIMD) {
        v128.store(dst, i8x16.narrow_i16x8_s(n0, n1));
        v128.store(dst, i8x16.narrow_i16x8_s(n2, n3), 16);
      } else if (q4) {
        v128.store(dst, i8x16.shuffle(n0, n1, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29));
        v128.store(dst, i8x16.shuffle(n0, n1, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31), 16);
      } else {
        v128.store(dst, n0);
        v128.store(dst, n1, 16);
      }
      if (!(q4 && ASC_FEATURE_RELAXED_SIMD)) {
        v128.store(dst, i8x16.shuffle(n2, n3, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29), 32);
        v128.store(dst, i8x16.shuffle(n2, n3, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31), 48);
      }
      const sum = i32x4.add(
        i32x4.add(i32x4.extadd_pairwise_i16x8_s(n0), i32x4.extadd_pairwise_i16x8_s(n1)),
        i32x4.add(i32x4.extadd_pairwise_i16x8_s(n2), i32x4.extadd_pairwise_i16x8_s(n3)),
      );
      const at = <usize>(b * M + m) << 2;
      store<f32>(xs + at, d);
      store<i32>(xc + at, -8 * hsumI32(sum));
    }
  }
}

/**
 * the largest |x| of the 32 f32 at src. |x|'s bits order as i32 do, NaN above infinity, so integer
 * maxima (one instruction each, where f32x4.max is several on x64 for its NaN rule) give the same
 * value, NaN for a block holding one. Reduced as a tree, not a chain of eight.
 */
// @ts-ignore: decorator
@inline function blockMax(src: usize): f32 {
  const a = i32x4.max_s(f32x4.abs(v128.load(src)), f32x4.abs(v128.load(src, 16)));
  const b = i32x4.max_s(f32x4.abs(v128.load(src, 32)), f32x4.abs(v128.load(src, 48)));
  const c = i32x4.max_s(f32x4.abs(v128.load(src, 64)), f32x4.abs(v128.load(src, 80)));
  const d = i32x4.max_s(f32x4.abs(v128.load(src, 96)), f32x4.abs(v128.load(src, 112)));
  let m = i32x4.max_s(i32x4.max_s(a, b), i32x4.max_s(c, d));
  m = i32x4.max_s(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
  m = i32x4.max_s(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
  return f32x4.extract_lane(m, 0);
}

/** 1.5 * 2^23: adding it leaves an f32 below 2^22 in magnitude rounded to an integer (ties to even) in the low mantissa bits */
const ROUNDING_BIAS: f32 = 12582912.0;

/**
 * eight f32 at src times id, rounded to integer codes (ties to even, as f32x4.nearest) in i16 lanes.
 * The codes are at most 32767 in magnitude, so adding ROUNDING_BIAS and subtracting its bits rounds
 * and converts in two operations, where i32x4.trunc_sat_f32x4_s alone is several on x64. (A NaN
 * input gives some code; its block's scale is NaN, so the product is NaN all the same.)
 */
// @ts-ignore: decorator
@inline function codes8(src: usize, id: v128): v128 {
  const bias = f32x4.splat(ROUNDING_BIAS);
  const lo = i32x4.sub(f32x4.add(f32x4.mul(v128.load(src), id), bias), bias);
  const hi = i32x4.sub(f32x4.add(f32x4.mul(v128.load(src, 16), id), bias), bias);
  return i16x8.narrow_i32x4_s(lo, hi);
}

// @ts-ignore: decorator
@inline function hsumI32(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** the four 32-bit values at p, p + step, p + 2 step, p + 3 step */
// @ts-ignore: decorator
@inline function gather4(p: usize, step: usize): v128 {
  let v = v128.load32_zero(p);
  v = v128.load32_lane(p + step, v, 1);
  v = v128.load32_lane(p + 2 * step, v, 2);
  return v128.load32_lane(p + 3 * step, v, 3);
}

/** [sum(a), sum(b), sum(c), sum(d)] of four i32x4 */
// @ts-ignore: decorator
@inline function reduce4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i8x16.shuffle(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), i8x16.shuffle(a, b, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
  const cd = i32x4.add(i8x16.shuffle(c, d, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), i8x16.shuffle(c, d, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
  // ab = [a0+a2, b0+b2, a1+a3, b1+b3], cd likewise
  return i32x4.add(i8x16.shuffle(ab, cd, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), i8x16.shuffle(ab, cd, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
}

/** the i32x4 partial sums of one block: W's four code vectors (see the header) dotted with x's block at xb */
// @ts-ignore: decorator
@inline function dotBlock(w0: v128, w1: v128, w2: v128, w3: v128, xb: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(xb)), i32x4.dot_i16x8_s(w1, v128.load(xb, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(xb, 32)), i32x4.dot_i16x8_s(w3, v128.load(xb, 48))),
  );
}

/** Q4_0 codes (unsigned, without the -8) from a block's 16 bytes p read as i16 lanes: part 0..3 as in the header */
// @ts-ignore: decorator
@inline function q4Codes(p: v128, part: i32): v128 {
  if (part == 3) return i16x8.shr_u(p, 12);
  const shift = part == 0 ? 0 : part == 1 ? 8 : 4;
  return v128.and(shift == 0 ? p : i16x8.shr_u(p, shift), i16x8.splat(15));
}

/** Q8_0 codes from 16 bytes c read as i16 lanes: the even bytes (odd false) or the odd ones, sign-extended */
// @ts-ignore: decorator
@inline function q8Codes(c: v128, odd: bool): v128 {
  return i16x8.shr_s(odd ? c : i16x8.shl(c, 8), 8);
}

/** the relaxed build's Q4_0 codes from a block's 16 bytes p, one per byte: codes 0..15, or 16..31 (high) */
// @ts-ignore: decorator
@inline function q4Bytes(p: v128, high: bool): v128 {
  return v128.and(high ? i16x8.shr_u(p, 4) : p, i8x16.splat(15));
}

/**
 * the relaxed build's Q4_0 block product: codes 0..15 and 16..31 (q4Bytes) dotted with x's int8
 * codes x0, x1, plus c. The two i16 dots add in i16 (each lane at most 4 * 127 * 15) before one
 * widening. Not i32x4.relaxed_dot_i8x16_i7x16_add_s: Node 20's baseline compiler (Liftoff) returns
 * twice the dot product for it and drops the accumulator, until TurboFan takes over.
 */
// @ts-ignore: decorator
@inline function q4ByteDot(low: v128, high: v128, x0: v128, x1: v128, c: v128): v128 {
  const pairs = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, low), i16x8.relaxed_dot_i8x16_i7x16_s(x1, high));
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(pairs), c);
}

/**
 * one Q4_0 block (its 16 bytes p) dotted with an x block already loaded (x0..x3, from q4X; the
 * relaxed build's x0 and x1 are its int8 codes 0..15 and 16..31), plus c: i32x4 partial sums
 * without the -8
 */
// @ts-ignore: decorator
@inline function q4BlockDot(p: v128, x0: v128, x1: v128, x2: v128, x3: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return q4ByteDot(q4Bytes(p, false), q4Bytes(p, true), x0, x1, c);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(q4Codes(p, 0), x0), i32x4.dot_i16x8_s(q4Codes(p, 1), x1)),
    i32x4.add(i32x4.add(i32x4.dot_i16x8_s(q4Codes(p, 2), x2), i32x4.dot_i16x8_s(q4Codes(p, 3), x3)), c),
  );
}

/** the i-th (0..3) vector of a Q4_0 x block at xb for q4BlockDot: the relaxed build reads only two */
// @ts-ignore: decorator
@inline function q4X(xb: usize, i: i32): v128 {
  if (ASC_FEATURE_RELAXED_SIMD && i >= 2) return i32x4.splat(0);
  return v128.load(xb + (<usize>i << 4));
}

/** one block of W at src (Q8_0 or Q4_0 bytes) dotted with one x block at xb: i32x4 partial sums, Q4_0 without its -8 */
// @ts-ignore: decorator
@inline function blockDot(src: usize, xb: usize, q4: bool): v128 {
  if (q4) return q4BlockDot(v128.load(src), q4X(xb, 0), q4X(xb, 1), q4X(xb, 2), q4X(xb, 3), i32x4.splat(0));
  const c1 = v128.load(src, 16);
  return dotBlock(v128.load8x8_s(src), v128.load8x8_s(src, 8), q8Codes(c1, false), q8Codes(c1, true), xb);
}

/**
 * [sum of row 0, ..., row 3] for one block of W at src (without Q4_0's -8) against the same block of
 * four x rows, xb and xRowBytes apart: the rows share the block's codes, unpacked once
 */
// @ts-ignore: decorator
@inline function fourRowSums(src: usize, xb: usize, xRowBytes: usize, q4: bool): v128 {
  // (the feature test comes first: the builder compiles only the branch of a constant test)
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (q4) {
      const p = v128.load(src);
      const low = q4Bytes(p, false);
      const high = q4Bytes(p, true);
      const zero = i32x4.splat(0);
      return reduce4(
        q4ByteDot(low, high, v128.load(xb), v128.load(xb, 16), zero),
        q4ByteDot(low, high, v128.load(xb + xRowBytes), v128.load(xb + xRowBytes, 16), zero),
        q4ByteDot(low, high, v128.load(xb + 2 * xRowBytes), v128.load(xb + 2 * xRowBytes, 16), zero),
        q4ByteDot(low, high, v128.load(xb + 3 * xRowBytes), v128.load(xb + 3 * xRowBytes, 16), zero),
      );
    }
  }
  let w0: v128, w1: v128, w2: v128, w3: v128;
  if (q4) {
    const p = v128.load(src);
    w0 = q4Codes(p, 0);
    w1 = q4Codes(p, 1);
    w2 = q4Codes(p, 2);
    w3 = q4Codes(p, 3);
  } else {
    const c1 = v128.load(src, 16);
    w0 = v128.load8x8_s(src);
    w1 = v128.load8x8_s(src, 8);
    w2 = q8Codes(c1, false);
    w3 = q8Codes(c1, true);
  }
  return reduce4(
    dotBlock(w0, w1, w2, w3, xb),
    dotBlock(w0, w1, w2, w3, xb + xRowBytes),
    dotBlock(w0, w1, w2, w3, xb + 2 * xRowBytes),
    dotBlock(w0, w1, w2, w3, xb + 3 * xRowBytes),
  );
}

/**
 * Columns n0..n1 of rows 0..M & ~3 of out, four x rows at a time (the prompt pass), PROMPT_ROWS
 * rows of x against all the columns before the next chunk: the four rows share each W block's
 * codes and their sums of a block are reduced together. Inlined into each
 * format's entry, with pointers stepping through the blocks: a test of the format and index
 * arithmetic in the loop cost TurboFan registers, and the step spilled.
 */
// @ts-ignore: decorator
@inline function matmulQuantCols4(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32, q4: bool): void {
  const blocks = K / QK;
  const blockBytes: usize = q4 ? 16 : 32;
  const rowBytes = <usize>blocks * blockBytes;
  const xRowBytes = <usize>blocks << 6;
  const xc = xs + (<usize>(M * blocks) << 2);
  const outStep = <usize>N << 2;
  const rows = M & ~3;
  for (let m0 = 0; m0 < rows; m0 += PROMPT_ROWS) {
    const m1 = min(m0 + PROMPT_ROWS, rows);
    for (let n = n0; n < n1; n++) {
      const wRow = wq + <usize>n * rowBytes;
      const dRow = ws + (<usize>(n * blocks) << 2);
      const b: f32 = bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0;
      for (let m = m0; m < m1; m += 4) {
        let acc = f32x4.splat(0);
        let src = wRow;
        let xb = xq + <usize>m * xRowBytes;
        let d = dRow;
        let at = <usize>m << 2;
        for (let blk = 0; blk < blocks; blk++) {
          let sums = fourRowSums(src, xb, xRowBytes, q4);
          if (q4) sums = i32x4.add(sums, v128.load(xc + at));
          const scale = f32x4.mul(v128.load32_splat(d), v128.load(xs + at));
          acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), scale));
          src += blockBytes;
          xb += 64;
          d += 4;
          at += <usize>M << 2;
        }
        acc = f32x4.add(acc, f32x4.splat(b));
        const o = out + (<usize>(m * N + n) << 2);
        store<f32>(o, f32x4.extract_lane(acc, 0));
        store<f32>(o + outStep, f32x4.extract_lane(acc, 1));
        store<f32>(o + 2 * outStep, f32x4.extract_lane(acc, 2));
        store<f32>(o + 3 * outStep, f32x4.extract_lane(acc, 3));
      }
    }
  }
}

/**
 * Decoding (M = 1): columns n0..n1 of out, streaming W's rows once. Q4_0 takes two columns per
 * pass (an odd last one alone, in the same steps), sharing each x block's loads between them, one
 * block per step; Q8_0 one column per pass, two blocks per step, their sums half-reduced into
 * [b0, b1, b0, b1] lanes and scaled by [d0, d1, d0, d1]. Each step holds few enough values that
 * TurboFan keeps them all in registers. Pointers step through W's blocks, x's and the per-block
 * values side by side.
 */
// @ts-ignore: decorator
@inline function decodeQuantCols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, K: i32, n0: i32, n1: i32, q4: bool): void {
  const blocks = K / QK;
  const blockBytes: usize = q4 ? 16 : 32;
  const rowBytes = <usize>blocks * blockBytes;
  const xc = xs + (<usize>blocks << 2);
  let n = n0;
  if (q4) {
    for (; n + 2 <= n1; n += 2) {
      const dA = ws + (<usize>(n * blocks) << 2);
      const dB = dA + (<usize>blocks << 2);
      let accA = f32x4.splat(0);
      let accB = f32x4.splat(0);
      let src = wq + <usize>n * rowBytes;
      let xb = xq;
      for (let at: usize = 0; at < <usize>blocks << 2; at += 4) {
        const x0 = q4X(xb, 0);
        const x1 = q4X(xb, 1);
        const x2 = q4X(xb, 2);
        const x3 = q4X(xb, 3);
        // the block's -8 correction, in lane 0 only
        const c = v128.load32_zero(xc + at);
        const sA = q4BlockDot(v128.load(src), x0, x1, x2, x3, c);
        const sB = q4BlockDot(v128.load(src + rowBytes), x0, x1, x2, x3, c);
        const xScale = v128.load32_splat(xs + at);
        accA = f32x4.add(accA, f32x4.mul(f32x4.convert_i32x4_s(sA), f32x4.mul(v128.load32_splat(dA + at), xScale)));
        accB = f32x4.add(accB, f32x4.mul(f32x4.convert_i32x4_s(sB), f32x4.mul(v128.load32_splat(dB + at), xScale)));
        src += blockBytes;
        xb += 64;
      }
      store<f32>(out + (<usize>n << 2), hsum(accA) + (bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0));
      store<f32>(out + (<usize>(n + 1) << 2), hsum(accB) + (bias != 0 ? load<f32>(bias + (<usize>(n + 1) << 2)) : 0));
    }
  }
  // Q8_0's columns, and Q4_0's last when there is an odd number
  for (; n < n1; n++) {
    const wRow = wq + <usize>n * rowBytes;
    const dRow = ws + (<usize>(n * blocks) << 2);
    let acc = f32x4.splat(0);
    let blk = 0;
    let src = wRow;
    let xb = xq;
    let at: usize = 0;
    if (q4) {
      // the same steps as a column of a pair, so a column's sum does not depend on its pairing
      for (; blk < blocks; blk++) {
        const s = q4BlockDot(v128.load(src), q4X(xb, 0), q4X(xb, 1), q4X(xb, 2), q4X(xb, 3), v128.load32_zero(xc + at));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(v128.load32_splat(dRow + at), v128.load32_splat(xs + at))));
        src += blockBytes;
        xb += 64;
        at += 4;
      }
    } else {
      for (; blk + 2 <= blocks; blk += 2) {
        const s0 = blockDot(src, xb, false);
        const s1 = blockDot(src + blockBytes, xb + 64, false);
        const pair = i32x4.add(i8x16.shuffle(s0, s1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), i8x16.shuffle(s0, s1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(pair), f32x4.mul(v128.load64_splat(dRow + at), v128.load64_splat(xs + at))));
        src += 2 * blockBytes;
        xb += 128;
        at += 8;
      }
    }
    store<f32>(out + (<usize>n << 2), blockTail(hsum(acc), wRow, dRow, xq, xs, xc, 1, 0, blk, blocks, q4) + (bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0));
  }
}

/** total plus blocks blk..blocks of row m of x (of M) dotted with W's row at wRow, one block at a time */
// @ts-ignore: decorator
@inline function blockTail(total: f32, wRow: usize, dRow: usize, xq: usize, xs: usize, xc: usize, M: i32, m: i32, blk: i32, blocks: i32, q4: bool): f32 {
  const blockBytes: usize = q4 ? 16 : 32;
  const x0 = xq + (<usize>(m * blocks) << 6);
  for (; blk < blocks; blk++) {
    const at = <usize>(blk * M + m) << 2;
    let sum = hsumI32(blockDot(wRow + <usize>blk * blockBytes, x0 + (<usize>blk << 6), q4));
    if (q4) sum += load<i32>(xc + at);
    total += <f32>sum * (load<f32>(dRow + (<usize>blk << 2)) * load<f32>(xs + at));
  }
  return total;
}

/**
 * Columns n0..n1 of rows m0..M of out, one row at a time: the rows a prompt pass leaves after its
 * groups of four (one to three). Four blocks of a row are reduced together; their per-block values
 * are M apart and gathered.
 */
function matmulQuantRows(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32, m0: i32, q4: bool): void {
  const blocks = K / QK;
  const blockBytes: usize = q4 ? 16 : 32;
  const rowBytes = <usize>blocks * blockBytes;
  const xc = xs + (<usize>(M * blocks) << 2);
  const fullBlocks = blocks & ~3;
  for (let m = m0; m < M; m++) {
    const x0 = xq + (<usize>(m * blocks) << 6);
    for (let n = n0; n < n1; n++) {
      const wRow = wq + <usize>n * rowBytes;
      const dRow = ws + (<usize>(n * blocks) << 2);
      let acc = f32x4.splat(0);
      let blk = 0;
      for (; blk < fullBlocks; blk += 4) {
        const src = wRow + <usize>blk * blockBytes;
        const xb = x0 + (<usize>blk << 6);
        let sums = reduce4(
          blockDot(src, xb, q4),
          blockDot(src + blockBytes, xb + 64, q4),
          blockDot(src + 2 * blockBytes, xb + 128, q4),
          blockDot(src + 3 * blockBytes, xb + 192, q4),
        );
        const at = <usize>(blk * M + m) << 2;
        if (q4) sums = i32x4.add(sums, gather4(xc + at, <usize>M << 2));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sums), f32x4.mul(v128.load(dRow + (<usize>blk << 2)), gather4(xs + at, <usize>M << 2))));
      }
      const b: f32 = bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0;
      store<f32>(out + (<usize>(m * N + n) << 2), blockTail(hsum(acc), wRow, dRow, xq, xs, xc, M, m, blk, blocks, q4) + b);
    }
  }
}

/** Q8_0 product, columns n0..n1 (x already quantized by quantizeActivations) */
export function matmulQ8Cols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) {
    decodeQuantCols(out, xq, xs, wq, ws, bias, K, n0, n1, false);
    return;
  }
  if (M >= 4) matmulQuantCols4(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, false);
  if (M & 3) matmulQuantRows(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, M & ~3, false);
}

/** Q4_0 product, columns n0..n1 */
export function matmulQ4Cols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) {
    decodeQuantCols(out, xq, xs, wq, ws, bias, K, n0, n1, true);
    return;
  }
  if (M >= 4) matmulQuantCols4(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, true);
  if (M & 3) matmulQuantRows(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, M & ~3, true);
}

/**
 * out[B,T,C] = dequant(W)[ids[b,t], :] + wpe[posOffset + t, :] with W [V,C] quantized (q4: Q4_0,
 * else Q8_0). Returns the first index whose id is outside [0, V), or -1.
 */
export function encoderQuantForward(out: usize, ids: usize, wq: usize, ws: usize, wpe: usize, B: i32, T: i32, C: i32, V: i32, posOffset: i32, q4: bool): i32 {
  const blocks = C / QK;
  const blockBytes: usize = q4 ? 16 : 32;
  for (let bt = 0; bt < B * T; bt++) {
    const id = load<i32>(ids + (<usize>bt << 2));
    if (id < 0 || id >= V) return bt;
    const pos = posOffset + (bt % T);
    const o = out + (<usize>(bt * C) << 2);
    const p = wpe + (<usize>(pos * C) << 2);
    for (let blk = 0; blk < blocks; blk++) {
      const src = wq + <usize>(id * blocks + blk) * blockBytes;
      const d = load<f32>(ws + (<usize>(id * blocks + blk) << 2));
      const c = blk * QK;
      for (let j = 0; j < 16; j++) {
        let lo: i32, hi: i32;
        if (q4) {
          const byte = <i32>load<u8>(src + j);
          lo = (byte & 15) - 8;
          hi = (byte >> 4) - 8;
        } else {
          lo = <i32>load<i8>(src + j);
          hi = <i32>load<i8>(src + j + 16);
        }
        store<f32>(o + (<usize>(c + j) << 2), <f32>lo * d + load<f32>(p + (<usize>(c + j) << 2)));
        store<f32>(o + (<usize>(c + j + 16) << 2), <f32>hi * d + load<f32>(p + (<usize>(c + j + 16) << 2)));
      }
    }
  }
  return -1;
}
