// Vector math shared by the kernels. f32x4 exp (Cephes expf: range reduction to r in
// [-ln2/2, ln2/2] and a degree-6 polynomial, ~1 ulp) so softmax, attention and gelu stay in SIMD.

// Above this, e^x overflows f32 once scaled by 2^n; below EXP_LO the result is below the normal range.
const EXP_HI: f32 = 88.3762626647949;
const EXP_LO: f32 = -87.3365478515625;
const LOG2E: f32 = 1.44269504088896341;
// ln 2 split in two so fx * LN2_HI is exact
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;

// exp4's constants, lanes splat, in memory: V8 (Node 20) rebuilds a v128 constant with about four
// instructions at each use, inside the caller's loop, where a load is one. Then 1.5 * 2^23 + 127:
// added to a float in [-127, 128] it rounds it to the nearest integer n (ties to even, as nearest)
// in the low mantissa bits, as n + 127, 2^n's exponent field once shifted left by 23. (V8 also
// expands f32x4.min/max, nearest and trunc_sat into several instructions each; pmin/pmax and the
// rounding add are one, with the same results for all but NaN inputs, which stay NaN.)
const EXP_TABLE = memory.data<f32>([
  EXP_LO, EXP_LO, EXP_LO, EXP_LO,
  EXP_HI, EXP_HI, EXP_HI, EXP_HI,
  LOG2E, LOG2E, LOG2E, LOG2E,
  LN2_HI, LN2_HI, LN2_HI, LN2_HI,
  LN2_LO, LN2_LO, LN2_LO, LN2_LO,
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4,
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3,
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3,
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2,
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1,
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1,
  1, 1, 1, 1,
  12583039, 12583039, 12583039, 12583039,
], 16);

/** e^x for each lane; inputs are clamped to [EXP_LO, EXP_HI] (so never inf, tiny instead of 0) */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  const c = EXP_TABLE;
  x = f32x4.pmin(f32x4.pmax(x, v128.load(c)), v128.load(c, 16));
  const round = v128.load(c, 192);
  const t = f32x4.add(f32x4.mul(x, v128.load(c, 32)), round);
  const fx = f32x4.sub(t, round);
  let r = f32x4.sub(x, f32x4.mul(fx, v128.load(c, 48)));
  r = f32x4.sub(r, f32x4.mul(fx, v128.load(c, 64)));
  const z = f32x4.mul(r, r);
  let y = v128.load(c, 80);
  y = f32x4.add(f32x4.mul(y, r), v128.load(c, 96));
  y = f32x4.add(f32x4.mul(y, r), v128.load(c, 112));
  y = f32x4.add(f32x4.mul(y, r), v128.load(c, 128));
  y = f32x4.add(f32x4.mul(y, r), v128.load(c, 144));
  y = f32x4.add(f32x4.mul(y, r), v128.load(c, 160));
  const one = v128.load(c, 176);
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), one);
  // 2^n built directly in the exponent bits
  return f32x4.mul(y, i32x4.shl(t, 23));
}

/** scalar e^x with exactly the vector path's rounding, for loop tails */
// @ts-ignore: decorator
@inline export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

/**
 * a * b + c per lane: one fused multiply-add in the relaxed-SIMD build (tinygpt-relaxed.wasm), a
 * multiply then an add (two roundings) in the plain-SIMD build
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** 1 in the relaxed-SIMD build (fused multiply-adds in the matmul kernels), 0 in the plain-SIMD one */
export function fusedMultiplyAdd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

/** sum of the four lanes */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** max of the four lanes */
// @ts-ignore: decorator
@inline export function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/** dot product of n floats at a and b (byte pointers) */
export function dot(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  if (i + 4 <= n) {
    const o = <usize>i << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}
