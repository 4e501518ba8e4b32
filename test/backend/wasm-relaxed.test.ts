/**
 * The relaxed-SIMD build of the kernels (tinygpt-relaxed.wasm, tinygpt-threads-relaxed.wasm: the
 * matmul kernels with f32x4.relaxed_madd, fused multiply-adds):
 * - with relaxed SIMD on (Node 20 has it behind --experimental-wasm-relaxed-simd, set here for this
 *   test process only: vitest runs each test file in its own process), the feature probe says so and
 *   the default backend, single and threaded, loads the relaxed build;
 * - every conformance case against the float64 reference on shapes that take every matmul path
 *   (packed, one row, two or three rows, K and N tails) and attention across query-row blocks, with
 *   wasm-ops.test.ts's tolerance: |got - ref| <= 1e-5 |ref| + 2e-6 max|ref|. Fused results may differ
 *   from the plain build's in the last bits, so each build is held to the reference, not to the other;
 * - 3 threads equal 1 thread bit for bit on the relaxed build too.
 * The plain build (loaded where relaxed SIMD is off) is covered by wasm-ops and wasm-threads tests.
 * Requires the four builds in build/ (npm run build:wasm).
 */
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { hasRelaxedSimd } from '../../src/backend/wasm/loader.js';
import { opCases, runCase, type OpShapes } from '../helpers/conformance.js';
import { compareClose } from '../helpers/random.js';

const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);
const RTOL = 1e-5;
const ATOL_OF_MAX = 2e-6;
const SEED = Math.floor(Math.random() * 2 ** 31);

const relaxedBefore = hasRelaxedSimd();
setFlagsFromString('--experimental-wasm-relaxed-simd');

const SHAPES: [string, OpShapes][] = [
  ['M=1 (one row) K=21 N=47, T=130 (three row blocks), HS 8', { B: 1, T: 130, C: 16, NH: 2, V: 9, M: 1, K: 21, N: 47 }],
  ['M=2 K=13 N=43, HS 5, B 5', { B: 5, T: 9, C: 10, NH: 2, V: 70, M: 2, K: 13, N: 43 }],
  ['M=3 K=9 N=6, V=257', { B: 2, T: 17, C: 24, NH: 3, V: 257, M: 3, K: 9, N: 6 }],
];
// matmul cases only, as in wasm-threads: the packed kernel past its blocks (MC 128, KC 256, NC 1024),
// and the one-row kernel on a long K and N
const MATMUL_SHAPES: [string, OpShapes][] = [
  ['M=130 K=300 N=1030 (packed)', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 130, K: 300, N: 1030 }],
  ['M=1 K=301 N=1027 (one row)', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 1, K: 301, N: 1027 }],
];

const backends = new Map<number, WasmBackend>();
beforeAll(async () => {
  for (const threads of [1, 3]) {
    backends.set(threads, await createWasmBackend({ threads, workerUrl: WORKER_URL, minMacsPerShare: 0, onNotice: () => {} }));
  }
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
});

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe('feature detection', () => {
  it('the probe follows the runtime flag, and the default backend takes the relaxed build, on 1 and 3 threads', () => {
    expect(relaxedBefore, 'Node 20 runs relaxed SIMD only behind a flag').toBe(false);
    expect(hasRelaxedSimd()).toBe(true);
    for (const [threads, be] of backends) {
      expect(be.threads).toBe(threads);
      expect(be.fusedMultiplyAdd, `${threads} thread(s)`).toBe(true);
    }
  });
});

const cases = [
  ...SHAPES.flatMap(([label, shapes]) => opCases.map((c) => ({ label, shapes, c }))),
  ...MATMUL_SHAPES.flatMap(([label, shapes]) => opCases.filter((c) => c.op === 'matmul').map((c) => ({ label, shapes, c }))),
];
describe.each(cases)('relaxed build, $label', ({ shapes, c }) => {
  {
    it(`${c.name}: matches the f64 reference, 3 threads equal 1 bit for bit`, async () => {
      const reference = new JsBackend({ precision: 'f64' });
      const expected = await runCase(reference, c, SEED, shapes);
      reference.dispose();
      const single = await runCase(backends.get(1)!, c, SEED, shapes);
      const threaded = await runCase(backends.get(3)!, c, SEED, shapes);
      const outputs = Object.keys(expected);
      expect(outputs.length).toBeGreaterThan(0);
      for (const name of outputs) {
        let scale = 0;
        for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
        const report = compareClose(single[name], expected[name], { rtol: RTOL, atol: ATOL_OF_MAX * scale });
        expect(report.ok, `${c.name} / ${name} (seed ${SEED}): ${report.message}`).toBe(true);
        expect(bytesOf(threaded[name]), `${c.name} / ${name}: 3 threads equal 1 (seed ${SEED})`).toEqual(bytesOf(single[name]));
      }
    });
  }
});
