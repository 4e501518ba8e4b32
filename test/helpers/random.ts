/**
 * Seeded random inputs and numeric comparisons shared by every backend test. Each helper takes an
 * `Rng` so that a test's inputs are fixed by its seed and independent of test order.
 */
import { Rng } from '../../src/util/rng.js';

export { Rng };

type Numbers = ArrayLike<number>;

/** n values uniform in [lo, hi) */
export function uniform32(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from(uniformValues(rng, n, lo, hi));
}

export function uniform64(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from(uniformValues(rng, n, lo, hi));
}

/** n values from N(mean, std^2) */
export function normal32(rng: Rng, n: number, std = 1, mean = 0): Float32Array {
  return Float32Array.from(normalValues(rng, n, std, mean));
}

export function normal64(rng: Rng, n: number, std = 1, mean = 0): Float64Array {
  return Float64Array.from(normalValues(rng, n, std, mean));
}

/** n integers uniform in [lo, hi) */
export function ints(rng: Rng, n: number, lo: number, hi: number): Int32Array {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi <= lo) throw new RangeError(`ints: need integers lo < hi, got [${lo}, ${hi})`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + rng.nextInt(hi - lo);
  return out;
}

function uniformValues(rng: Rng, n: number, lo: number, hi: number): number[] {
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = lo + (hi - lo) * rng.next();
  return values;
}

function normalValues(rng: Rng, n: number, std: number, mean: number): number[] {
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = mean + std * rng.normal();
  return values;
}

// ---- comparisons ----

/** max_i |a[i] - b[i]| (Infinity where exactly one side is NaN or they differ in length) */
export function maxAbsDiff(a: Numbers, b: Numbers): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (Number.isNaN(diff)) {
      if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
      if (a[i] === b[i]) continue; // equal infinities
      return Infinity;
    }
    worst = Math.max(worst, diff);
  }
  return worst;
}

/**
 * max_i |actual[i] - expected[i]| / max_i |expected[i]|: the error relative to the scale of the
 * expected tensor, so tiny elements do not dominate. 0 when both are all zero.
 */
export function maxRelErr(actual: Numbers, expected: Numbers): number {
  const diff = maxAbsDiff(actual, expected);
  if (diff === 0) return 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  return scale === 0 ? Infinity : diff / scale;
}

export interface CloseOptions {
  /** elementwise relative tolerance (default 1e-5) */
  rtol?: number;
  /** elementwise absolute tolerance (default 1e-6) */
  atol?: number;
}

export interface CloseReport {
  ok: boolean;
  /** index of the element furthest over its tolerance, -1 if none (or lengths differ) */
  worstIndex: number;
  /** |actual - expected| / (atol + rtol |expected|) at worstIndex; <= 1 means within tolerance */
  worstRatio: number;
  message: string;
}

/** Elementwise |actual - expected| <= atol + rtol |expected|, as numpy.allclose. */
export function compareClose(actual: Numbers, expected: Numbers, options: CloseOptions = {}): CloseReport {
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  if (actual.length !== expected.length) {
    return { ok: false, worstIndex: -1, worstRatio: Infinity, message: `length ${actual.length} != expected length ${expected.length}` };
  }
  let worstIndex = -1;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const ratio = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    const over = Number.isNaN(ratio) ? Infinity : ratio;
    if (over > worstRatio) {
      worstRatio = over;
      worstIndex = i;
    }
  }
  const ok = worstRatio <= 1;
  const message = ok
    ? `all ${actual.length} elements within atol ${atol} + rtol ${rtol}`
    : `element ${worstIndex}: actual ${actual[worstIndex]} vs expected ${expected[worstIndex]} ` +
      `(${worstRatio.toPrecision(3)}x the tolerance atol ${atol} + rtol ${rtol}); maxRelErr ${maxRelErr(actual, expected).toExponential(2)}`;
  return { ok, worstIndex, worstRatio, message };
}

/** Throws with the worst element named unless compareClose passes. */
export function assertClose(actual: Numbers, expected: Numbers, options: CloseOptions = {}, label = 'values'): void {
  const report = compareClose(actual, expected, options);
  if (!report.ok) throw new Error(`${label}: ${report.message}`);
}
