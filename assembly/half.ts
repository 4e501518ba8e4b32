// Float16 weights (src/model/quant.ts, format 'f16'): out[M,N] = x[M,K] @ W^T + bias and the token
// embedding, W [N,K] stored as IEEE half bits (2 bytes each, row-major), widened to f32 on the fly
// eight at a time and never stored widened. Sums are f32, as the float32 products' are. One row of
// x at a time: the path is for decoding (M = 1), and the .wasm files are held to a size budget.
//
// Widening (exact for every half): the magnitude bits shifted into an f32's exponent and mantissa
// read as an f32 are the half's value times 2^-112 (normals and subnormals alike, since f32 keeps
// subnormals), so one multiply by 2^112 rescales; exponent 31 (Inf, NaN) gets f32's exponent 255;
// the sign moves up 16 bits.

// @ts-ignore: decorator
@inline function widen(h: v128): v128 {
  const magnitude = v128.and(h, i32x4.splat(0x7fff));
  let f = f32x4.mul(i32x4.shl(magnitude, 13), f32x4.splat(reinterpret<f32>(0x77800000)));
  f = v128.or(f, v128.and(i32x4.ge_u(magnitude, i32x4.splat(0x7c00)), i32x4.splat(0x7f800000)));
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
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
      let acc = f32x4.splat(0);
      for (let k = 0; k < K; k += 8) {
        const h = v128.load(wRow + (<usize>k << 1));
        acc = dot8(acc, widen(i32x4.extend_low_i16x8_u(h)), widen(i32x4.extend_high_i16x8_u(h)), x0 + (<usize>k << 2));
      }
      store<f32>(out + (<usize>(m * N + n) << 2), hsum(acc) + b);
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
      v128.store(o + at, f32x4.add(widen(i32x4.extend_low_i16x8_u(h)), v128.load(p + at)));
      v128.store(o + at + 16, f32x4.add(widen(i32x4.extend_high_i16x8_u(h)), v128.load(p + at + 16)));
    }
  }
  return -1;
}
