/**
 * The shared conformance cases (test/helpers/conformance.ts) on JsBackend's default float32
 * storage against the float64 reference. Both run the same float64 arithmetic and differ only in
 * where results are rounded: with float32 inputs a forward op's f32 result is exactly the f64 result
 * rounded once, while backward ops, which accumulate into storage, agree to float32 accuracy. This
 * pins the default path to the one the gradient checks prove, and shows the harness that the wasm
 * and webgpu backends use.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { SMALL_SHAPES, compareToReference, opCases, runCase, type OpShapes } from '../helpers/conformance.js';

const OTHER_SHAPES: OpShapes = { B: 1, T: 9, C: 8, NH: 2, V: 11, M: 4, K: 9, N: 6 };

describe.each([
  ['small shapes', SMALL_SHAPES],
  ['other shapes', OTHER_SHAPES],
])('JsBackend f32 against the f64 reference, %s', (_label, shapes) => {
  for (const c of opCases) {
    const exact = c.kind !== 'backward';
    it(`${c.name}: ${exact ? 'the f64 result rounded once' : 'within float32 accuracy'}`, async () => {
      const be = new JsBackend();
      const tolerance = exact ? { rtol: 0, atol: 0 } : { rtol: 1e-5, atol: 1e-6 };
      const reports = await compareToReference(be, c, { seed: 7, shapes, tolerance });
      expect(reports.length).toBeGreaterThan(0);
      for (const r of reports) expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
      expect(be.bytesInUse(), 'runCase frees what the case allocated').toBe(0);
    });
  }
});

describe('conformance harness', () => {
  it('the same seed gives the same inputs; another seed other results', async () => {
    const be = new JsBackend();
    const matmul = opCases.find((c) => c.name === 'matmulForward with bias')!;
    const a = await runCase(be, matmul, 3);
    const b = await runCase(be, matmul, 3);
    const other = await runCase(be, matmul, 4);
    expect(a.out).toEqual(b.out);
    expect(a.out).not.toEqual(other.out);
  });

  it('reports a wrong backend: a matmul that forgets the bias fails against the reference', async () => {
    class BiasForgettingBackend extends JsBackend {
      override matmulForward(out: Tensor, inp: Tensor, weight: Tensor, _bias: Tensor | null, M: number, K: number, N: number): void {
        super.matmulForward(out, inp, weight, null, M, K, N);
      }
    }
    const wrong = new BiasForgettingBackend();
    const matmul = opCases.find((c) => c.name === 'matmulForward with bias')!;
    const [report] = await compareToReference(wrong, matmul);
    expect(report.ok).toBe(false);
    expect(report.message).toMatch(/^element \d+: actual/);
  });
});
