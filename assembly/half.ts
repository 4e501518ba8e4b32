// Float16 weights (src/model/quant.ts, format 'f16'): out[M,N] = x[M,K] @ W^T + bias and the token
// embedding, W [N,K] stored as IEEE half bits (2 bytes each, row-major), widened to f32 on the fly
// eight at a time and never stored widened. Sums are f32, as the float32 products' are. One row of
// x at a time: the path is for decoding (M = 1), and the .wasm files are held to a size budget.
//
// Widening (exact for every finite half): a half sign-extended to 32 bits and shifted left by 13
// has its exponent and mantissa where an f32's low exponent bits and mantissa are, and copies of its
// sign in bits 28..31; keeping bit 31 of those gives an f32 equal to the half's value times 2^-112
// (normals and subnormals alike, since f32 keeps subnormals), so one multiply by 2^112 rescales,
// sign included. Infinities and NaNs (exponent 31) would come out finite: no f16 matrix holds one
// (quantizeModel refuses weights past float16's range, and a file's non-finite halves are refused
// when it loads). A subnormal half (|w| < 2^-14) makes that multiply's operand an f32 subnormal,
// which x64 cores take a slow microcode assist for; weights that small are rare in pretrained
// models (the integer rebias that avoids it needs a compare and a select per lane, and ran slower).

/** four halves, sign-extended to i32 lanes, as f32 */
// @ts-ignore: decorator
@inline function widen(h: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffe000)), f32x4.splat(reinterpret<f32>(0x77800000)));
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** acc + x[0..8) * the eight halves widened (lo: halves 0..3, hi: 4..7) */
// @ts-ignore: decorator
@inline function dot8(acc: v128, lo: v128, hi: v128, x: usize): v128 {
  return f32x4.add(acc, f32x4.add(f32x4.mul(lo, v128.load(x)), f32x4.mul(hi, v128.load(x, 16))));
}

/** columns n0..n1 of out[M,N] = x[M,K] @ W^T (+ bias[N] unless bias is 0), W [N,K] halves, K a multiple of 8 */
export function matmulF16Cols(out: usize, x: usize, w: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const xRow = <usize>K << 2;
  for (let n = n0; n < n1; n++) {
    const wRow = w + (<usize>n * <usize>K << 1);
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0;
    for (let m = 0; m < M; m++) {
      const x0 = x + <usize>m * xRow;
      // sixteen halves per step into two sums: one sum's chain of adds held the loop back
      let acc0 = f32x4.splat(0);
      let acc1 = f32x4.splat(0);
      let k = 0;
      for (; k + 16 <= K; k += 16) {
        const h0 = v128.load(wRow + (<usize>k << 1));
        const h1 = v128.load(wRow + (<usize>k << 1), 16);
        acc0 = dot8(acc0, widen(i32x4.extend_low_i16x8_s(h0)), widen(i32x4.extend_high_i16x8_s(h0)), x0 + (<usize>k << 2));
        acc1 = dot8(acc1, widen(i32x4.extend_low_i16x8_s(h1)), widen(i32x4.extend_high_i16x8_s(h1)), x0 + (<usize>k << 2) + 32);
      }
      if (k < K) {
        const h = v128.load(wRow + (<usize>k << 1));
        acc0 = dot8(acc0, widen(i32x4.extend_low_i16x8_s(h)), widen(i32x4.extend_high_i16x8_s(h)), x0 + (<usize>k << 2));
      }
      store<f32>(out + (<usize>(m * N + n) << 2), hsum(f32x4.add(acc0, acc1)) + b);
    }
  }
}

/**
 * out[B,T,C] = W[ids[b,t], :] + wpe[posOffset + t, :] with W [V,C] halves, C a multiple of 8.
 * Returns the first index whose id is outside [0, V), or -1.
 */
export function encoderF16Forward(out: usize, ids: usize, w: usize, wpe: usize, B: i32, T: i32, C: i32, V: i32, posOffset: i32): i32 {
  for (let bt = 0; bt < B * T; bt++) {
    const id = load<i32>(ids + (<usize>bt << 2));
    if (id < 0 || id >= V) return bt;
    const pos = posOffset + (bt % T);
    const o = out + (<usize>(bt * C) << 2);
    const p = wpe + (<usize>(pos * C) << 2);
    const src = w + (<usize>id * <usize>C << 1);
    for (let c = 0; c < C; c += 8) {
      const h = v128.load(src + (<usize>c << 1));
      const at = <usize>c << 2;
      v128.store(o + at, f32x4.add(widen(i32x4.extend_low_i16x8_s(h)), v128.load(p + at)));
      v128.store(o + at + 16, f32x4.add(widen(i32x4.extend_high_i16x8_s(h)), v128.load(p + at + 16)));
    }
  }
  return -1;
}
