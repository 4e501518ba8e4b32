// Elementwise ops: residual add, accumulate, copy, zero, dropout.

/** out[i] = a[i] + b[i] for n elements; out may alias a */
export function residualForward(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

/** dst[i] += src[i] for n elements */
export function accumulate(dst: usize, src: usize, n: i32): void {
  residualForward(dst, dst, src, n);
}

/** copies n bytes; the regions must not overlap (callers guarantee it) */
export function copyBytes(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n);
}

/** zeroes n bytes */
export function zeroBytes(dst: usize, n: usize): void {
  memory.fill(dst, 0, n);
}

/**
 * The counter-based mask hash of dropoutHash in src/backend/contract.ts (lowbias32 of i ^ seed mix),
 * on four consecutive counters i..i+3.
 */
// @ts-ignore: decorator
@inline function dropoutHash4(seedMix: v128, i: i32): v128 {
  let x = v128.xor(i32x4.add(i32x4.splat(i), i32x4(0, 1, 2, 3)), seedMix);
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x7feb352d));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(<i32>0x846ca68b));
  return v128.xor(x, i32x4.shr_u(x, 16));
}

// @ts-ignore: decorator
@inline function dropoutHash1(seedMix: u32, i: i32): u32 {
  let x = (<u32>i) ^ seedMix;
  x ^= x >>> 16;
  x *= 0x7feb352d;
  x ^= x >>> 15;
  x *= 0x846ca68b;
  x ^= x >>> 16;
  return x;
}

/**
 * out[i] = keep(i) ? inp[i] * scale : 0, keep(i) iff hash(seed, i) >= threshold (u32 compare).
 * out may alias inp.
 */
export function dropoutForward(out: usize, inp: usize, n: i32, seed: u32, threshold: u32, scale: f32): void {
  const seedMix = seed * 0x9e3779b9;
  const seedMixV = i32x4.splat(seedMix);
  const thr = i32x4.splat(threshold);
  const sv = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const keep = i32x4.ge_u(dropoutHash4(seedMixV, i), thr);
    v128.store(out + o, v128.and(f32x4.mul(v128.load(inp + o), sv), keep));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, dropoutHash1(seedMix, i) >= threshold ? load<f32>(inp + o) * scale : 0);
  }
}

/** dinp[i] += keep(i) ? dout[i] * scale : 0 */
export function dropoutBackward(dinp: usize, dout: usize, n: i32, seed: u32, threshold: u32, scale: f32): void {
  const seedMix = seed * 0x9e3779b9;
  const seedMixV = i32x4.splat(seedMix);
  const thr = i32x4.splat(threshold);
  const sv = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const keep = i32x4.ge_u(dropoutHash4(seedMixV, i), thr);
    const g = v128.and(f32x4.mul(v128.load(dout + o), sv), keep);
    v128.store(dinp + o, f32x4.add(v128.load(dinp + o), g));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    if (dropoutHash1(seedMix, i) >= threshold) store<f32>(dinp + o, load<f32>(dinp + o) + load<f32>(dout + o) * scale);
  }
}
