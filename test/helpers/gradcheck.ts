/**
 * Central finite differences for gradient checks. Run objectives in float64 (JsBackend with
 * precision 'f64'): with h = 1e-5 the truncation error is O(h^2) and the rounding error about
 * 1e-16 |L| / h, both far below the tolerances the checks use.
 */

/** dL/dx by central differences: (L(x + h e_i) - L(x - h e_i)) / 2h for every i */
export function numericGradient(objective: (x: Float64Array) => number, x: ArrayLike<number>, h = 1e-5): Float64Array {
  const probe = Float64Array.from(x);
  const grad = new Float64Array(probe.length);
  for (let i = 0; i < probe.length; i++) {
    const original = probe[i];
    probe[i] = original + h;
    const plus = objective(probe);
    probe[i] = original - h;
    const minus = objective(probe);
    probe[i] = original;
    grad[i] = (plus - minus) / (2 * h);
  }
  return grad;
}

/** sum_i a[i] * b[i]; with b random, L = dot(out, R) is a scalar objective whose dL/dout is R */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`dot: lengths differ (${a.length} vs ${b.length})`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}
