// Quantized inference products: out[M,N] = x[M,K] @ W^T + bias, W [N,K] in ggml's Q8_0 or Q4_0
// blocks of 32 along K (src/model/quant.ts), dequantized on the fly, never widened in memory.
//
// x is first quantized per block of 32 to int16 with an f32 scale (quantizeActivations, once per
// call on the calling thread): a block's product is then four i32x4.dot_i16x8_s of the weights'
// codes with x's, one int-to-float conversion and one scale (the weight's d times x's), about 20
// SIMD instructions per 32 weights instead of ~45 for widening every weight to f32. int16 keeps
// x's own rounding at 2^-16 of its block's largest value, far below the weights' 2^-8 (Q8_0).
// Bounds: |code| <= 127, |x code| <= 32767, so a lane's sum of 8 products stays below 2^26.
//
// Rows of x go four at a time over one block of W, so the widened weight codes are loaded and
// unpacked once per four rows (the prompt pass); decoding (M = 1) streams W once.

const QK: i32 = 32;

/** x [M,K] f32 -> xq [M,K] i16 (64 bytes per block) and xs [M,K/32] f32 scales: x ~ xq * xs */
export function quantizeActivations(xq: usize, xs: usize, x: usize, M: i32, K: i32): void {
  const blocks = (M * K) / QK;
  for (let b = 0; b < blocks; b++) {
    const src = x + (<usize>b << 7);
    let amax = f32x4.splat(0);
    for (let j = 0; j < 8; j++) amax = f32x4.max(amax, f32x4.abs(v128.load(src + (<usize>j << 4))));
    const m = max(max(f32x4.extract_lane(amax, 0), f32x4.extract_lane(amax, 1)), max(f32x4.extract_lane(amax, 2), f32x4.extract_lane(amax, 3)));
    const d: f32 = m / 32767.0;
    const id = f32x4.splat(d != 0 ? 1.0 / d : 0);
    store<f32>(xs + (<usize>b << 2), d);
    const dst = xq + (<usize>b << 6);
    for (let j = 0; j < 4; j++) {
      const lo = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (<usize>j << 5)), id)));
      const hi = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (<usize>j << 5) + 16), id)));
      v128.store(dst + (<usize>j << 4), i16x8.narrow_i32x4_s(lo, hi));
    }
  }
}

// @ts-ignore: decorator
@inline function dot32(w0: v128, w1: v128, w2: v128, w3: v128, xb: usize): v128 {
  let a = i32x4.dot_i16x8_s(w0, v128.load(xb));
  a = i32x4.add(a, i32x4.dot_i16x8_s(w1, v128.load(xb, 16)));
  a = i32x4.add(a, i32x4.dot_i16x8_s(w2, v128.load(xb, 32)));
  return i32x4.add(a, i32x4.dot_i16x8_s(w3, v128.load(xb, 48)));
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/**
 * Columns n0..n1 of out: each W row's blocks are unpacked to int16 codes (Q8_0: the int8 codes;
 * Q4_0: nibbles minus 8) and dotted with four rows of x at a time.
 */
function matmulQuantCols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32, q4: bool): void {
  const blocks = K / QK;
  const blockBytes: usize = q4 ? 16 : 32;
  const rowBytes = <usize>blocks * blockBytes;
  const xRowBytes = <usize>K << 1;
  const xsRowBytes = <usize>blocks << 2;
  const low4 = i8x16.splat(15);
  const eight = i8x16.splat(8);
  for (let n = n0; n < n1; n++) {
    const wRow = wq + <usize>n * rowBytes;
    const dRow = ws + (<usize>(n * blocks) << 2);
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize>n << 2)) : 0;
    let m = 0;
    for (; m + 4 <= M; m += 4) {
      let acc0 = f32x4.splat(0);
      let acc1 = f32x4.splat(0);
      let acc2 = f32x4.splat(0);
      let acc3 = f32x4.splat(0);
      const x0 = xq + <usize>m * xRowBytes;
      const s0 = xs + <usize>m * xsRowBytes;
      for (let blk = 0; blk < blocks; blk++) {
        const src = wRow + <usize>blk * blockBytes;
        let c0: v128, c1: v128;
        if (q4) {
          const packed = v128.load(src);
          c0 = i8x16.sub(v128.and(packed, low4), eight);
          c1 = i8x16.sub(i8x16.shr_u(packed, 4), eight);
        } else {
          c0 = v128.load(src);
          c1 = v128.load(src, 16);
        }
        const w0 = i16x8.extend_low_i8x16_s(c0);
        const w1 = i16x8.extend_high_i8x16_s(c0);
        const w2 = i16x8.extend_low_i8x16_s(c1);
        const w3 = i16x8.extend_high_i8x16_s(c1);
        const d = load<f32>(dRow + (<usize>blk << 2));
        const xb = x0 + (<usize>blk << 6);
        const sb = s0 + (<usize>blk << 2);
        acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(dot32(w0, w1, w2, w3, xb)), f32x4.splat(d * load<f32>(sb))));
        acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(dot32(w0, w1, w2, w3, xb + xRowBytes)), f32x4.splat(d * load<f32>(sb + xsRowBytes))));
        acc2 = f32x4.add(
          acc2,
          f32x4.mul(f32x4.convert_i32x4_s(dot32(w0, w1, w2, w3, xb + 2 * xRowBytes)), f32x4.splat(d * load<f32>(sb + 2 * xsRowBytes))),
        );
        acc3 = f32x4.add(
          acc3,
          f32x4.mul(f32x4.convert_i32x4_s(dot32(w0, w1, w2, w3, xb + 3 * xRowBytes)), f32x4.splat(d * load<f32>(sb + 3 * xsRowBytes))),
        );
      }
      const o = out + (<usize>(m * N + n) << 2);
      const step = <usize>N << 2;
      store<f32>(o, hsum(acc0) + b);
      store<f32>(o + step, hsum(acc1) + b);
      store<f32>(o + 2 * step, hsum(acc2) + b);
      store<f32>(o + 3 * step, hsum(acc3) + b);
    }
    for (; m < M; m++) {
      let acc = f32x4.splat(0);
      const x0 = xq + <usize>m * xRowBytes;
      const s0 = xs + <usize>m * xsRowBytes;
      for (let blk = 0; blk < blocks; blk++) {
        const src = wRow + <usize>blk * blockBytes;
        let c0: v128, c1: v128;
        if (q4) {
          const packed = v128.load(src);
          c0 = i8x16.sub(v128.and(packed, low4), eight);
          c1 = i8x16.sub(i8x16.shr_u(packed, 4), eight);
        } else {
          c0 = v128.load(src);
          c1 = v128.load(src, 16);
        }
        const dot = dot32(
          i16x8.extend_low_i8x16_s(c0),
          i16x8.extend_high_i8x16_s(c0),
          i16x8.extend_low_i8x16_s(c1),
          i16x8.extend_high_i8x16_s(c1),
          x0 + (<usize>blk << 6),
        );
        const scale = load<f32>(dRow + (<usize>blk << 2)) * load<f32>(s0 + (<usize>blk << 2));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(dot), f32x4.splat(scale)));
      }
      store<f32>(out + (<usize>(m * N + n) << 2), hsum(acc) + b);
    }
  }
}

/** Q8_0 product, columns n0..n1 (x already quantized by quantizeActivations) */
export function matmulQ8Cols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulQuantCols(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, false);
}

/** Q4_0 product, columns n0..n1 */
export function matmulQ4Cols(out: usize, xq: usize, xs: usize, wq: usize, ws: usize, bias: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulQuantCols(out, xq, xs, wq, ws, bias, M, K, N, n0, n1, true);
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
