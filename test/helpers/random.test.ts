/** The shared test helpers themselves: seeded determinism, ranges, and what the comparisons accept. */
import { describe, expect, it } from 'vitest';
import { dot, numericGradient } from './gradcheck.js';
import { Rng, assertClose, compareClose, ints, maxAbsDiff, maxRelErr, normal64, uniform32, uniform64 } from './random.js';

describe('random inputs', () => {
  it('the same seed gives the same values, another seed other values', () => {
    expect(uniform32(new Rng(5), 50)).toEqual(uniform32(new Rng(5), 50));
    expect(uniform32(new Rng(5), 50)).not.toEqual(uniform32(new Rng(6), 50));
  });

  it('uniform stays in [lo, hi); ints in [lo, hi) and hit every value; normal has about the asked mean and std', () => {
    const u = uniform64(new Rng(1), 10_000, -3, 2);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-3);
    expect(Math.max(...u)).toBeLessThan(2);
    const k = ints(new Rng(2), 10_000, -1, 4);
    expect(new Set(k)).toEqual(new Set([-1, 0, 1, 2, 3]));
    const n = normal64(new Rng(3), 20_000, 2, 5);
    const mean = n.reduce((s, x) => s + x, 0) / n.length;
    const std = Math.sqrt(n.reduce((s, x) => s + (x - mean) ** 2, 0) / n.length);
    // standard error of the mean 2 / sqrt(20000) = 0.014; of the std about 0.01
    expect(Math.abs(mean - 5)).toBeLessThan(0.08);
    expect(Math.abs(std - 2)).toBeLessThan(0.06);
  });
});

describe('comparisons', () => {
  it('maxRelErr is relative to the largest expected magnitude', () => {
    expect(maxRelErr([1, 2.5, 0], [1, 2, 0.1])).toBeCloseTo(0.25, 15);
    expect(maxRelErr([0, 0], [0, 0])).toBe(0);
    expect(maxRelErr([1e-9], [0])).toBe(Infinity);
  });

  it('maxAbsDiff treats a one-sided NaN or a length mismatch as infinitely far', () => {
    expect(maxAbsDiff([1, NaN], [1, 2])).toBe(Infinity);
    expect(maxAbsDiff([1, NaN], [1, NaN])).toBe(0);
    expect(maxAbsDiff([1], [1, 2])).toBe(Infinity);
  });

  it('compareClose is elementwise atol + rtol |expected| and names the worst element', () => {
    expect(compareClose([1.00001, 0], [1, 1e-7], { rtol: 1e-4, atol: 1e-6 }).ok).toBe(true);
    const report = compareClose([1, 2, 3.1], [1, 2, 3], { rtol: 1e-3, atol: 0 });
    expect(report.ok).toBe(false);
    expect(report.worstIndex).toBe(2);
    expect(report.message).toMatch(/element 2: actual 3.1 vs expected 3/);
    expect(compareClose([NaN], [1]).ok).toBe(false);
    expect(compareClose([1, 2], [1]).ok).toBe(false);
    expect(() => assertClose([1], [2], {}, 'dweight')).toThrow(/^dweight: element 0/);
  });
});

describe('numericGradient', () => {
  it('recovers the gradient of a known function: f(x) = sum x^3 + x0 x1, df = 3x^2 + (x1, x0, 0)', () => {
    const x = [0.5, -1.5, 2];
    const grad = numericGradient(
      (v) =>
        dot(
          v,
          v.map((e) => e * e),
        ) +
        v[0] * v[1],
      x,
    );
    assertClose(grad, [3 * 0.25 - 1.5, 3 * 2.25 + 0.5, 12], { rtol: 1e-8, atol: 1e-9 });
  });
});
