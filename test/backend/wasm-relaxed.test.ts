/**
 * The relaxed-SIMD build of the kernels (tinygpt-relaxed.wasm, tinygpt-threads-relaxed.wasm: the
 * matmul kernels with f32x4.relaxed_madd, fused multiply-adds):
 * - with relaxed SIMD on (Node 20 has it behind --experimental-wasm-relaxed-simd, set here for this
 *   test process only: vitest runs each test file in its own process; Node 21 and later without it),
 *   the feature probe says so and the default backend, single and threaded, loads the relaxed build;
 * - every conformance case against the float64 reference on shapes that take every matmul path
 *   (packed, one row, two or three rows, K and N tails) and attention across query-row blocks, with
 *   wasm-ops.test.ts's tolerance: |got - ref| <= 1e-5 |ref| + 2e-6 max|ref|. Fused results may differ
 *   from the plain build's in the last bits, so each build is held to the reference, not to the other;
 * - 3 threads equal 1 thread bit for bit on the relaxed build too;
 * - the quantized products (Q8_0, Q4_0: integer dot products, no fused ops) equal the plain build's
 *   bit for bit, so quant.test.ts's checks of the plain build against float64 hold for both.
 * The plain build (loaded where relaxed SIMD is off) is covered by wasm-ops and wasm-threads tests.
 * Requires the four builds in build/ (npm run build:wasm).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { hasRelaxedSimd } from '../../src/backend/wasm/loader.js';
import { opCases, runCase, type OpShapes } from '../helpers/conformance.js';
import { compareClose } from '../helpers/random.js';
import { float16BitsToFloat32, type Backend, type QuantFormat } from '../../src/backend/contract.js';
import { quantizeMatrix } from '../../src/model/quant.js';
import { Rng } from '../../src/util/rng.js';
import { enableRelaxedSimd } from '../helpers/relaxed-simd.js';

const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);
const RTOL = 1e-5;
const ATOL_OF_MAX = 2e-6;
const SEED = Math.floor(Math.random() * 2 ** 31);

const relaxedBefore = hasRelaxedSimd();
// V8 ships relaxed SIMD from 11.4 (Chrome 114, Node 21 and later); Node 20's V8 11.3 runs it behind a flag
const [v8Major, v8Minor] = process.versions.v8.split('.').map(Number);
const relaxedByDefault = v8Major > 11 || (v8Major === 11 && v8Minor >= 4);
enableRelaxedSimd();

const SHAPES: [string, OpShapes][] = [
  ['M=1 (one row) K=21 N=47, T=130 (three row blocks), HS 8', { B: 1, T: 130, C: 16, NH: 2, V: 9, M: 1, K: 21, N: 47 }],
  ['M=2 K=13 N=43, HS 5, B 5', { B: 5, T: 9, C: 10, NH: 2, V: 70, M: 2, K: 13, N: 43 }],
  ['M=3 K=9 N=6, V=257', { B: 2, T: 17, C: 24, NH: 3, V: 257, M: 3, K: 9, N: 6 }],
  // a decoded row over 70 keys with HS 64: attention's four-key scores and 32-column value sums
  ['T=70, HS 64', { B: 1, T: 70, C: 128, NH: 2, V: 9, M: 5, K: 6, N: 7 }],
];
// matmul cases only, as in wasm-threads: the packed kernel past its blocks (MC 128, KC 256, NC 1024),
// and the one-row kernel on a long K and N
const MATMUL_SHAPES: [string, OpShapes][] = [
  ['M=130 K=300 N=1030 (packed)', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 130, K: 300, N: 1030 }],
  ['M=1 K=301 N=1027 (one row)', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 1, K: 301, N: 1027 }],
];

const backends = new Map<number, WasmBackend>();
let plain: WasmBackend;
beforeAll(async () => {
  for (const threads of [1, 3]) {
    backends.set(threads, await createWasmBackend({ threads, workerUrl: WORKER_URL, minMacsPerShare: 0, onNotice: () => {} }));
  }
  plain = await createWasmBackend({ url: new URL('../../build/tinygpt.wasm', import.meta.url) });
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
  plain.dispose();
});

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe('feature detection', () => {
  it('the probe follows the runtime flag, and the default backend takes the relaxed build, on 1 and 3 threads', () => {
    expect(relaxedBefore, `relaxed SIMD without the flag on V8 ${process.versions.v8}`).toBe(relaxedByDefault);
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

describe('relaxed build, quantized products', () => {
  async function product(be: Backend, format: QuantFormat, M: number, K: number, N: number): Promise<Float32Array> {
    const rng = new Rng(M * 1000 + K + N);
    const x = new Float32Array(M * K).map(() => rng.normal());
    const q = quantizeMatrix(
      new Float32Array(N * K).map(() => rng.normal() * 0.1),
      N,
      K,
      format,
    );
    const tx = be.alloc(M * K);
    const tq = be.alloc(q.quants.length / 4, 'i32');
    const ts = be.alloc(q.scales.length);
    const out = be.alloc(M * N);
    be.upload(tx, x);
    be.upload(tq, new Int32Array(q.quants.buffer, q.quants.byteOffset, q.quants.length / 4));
    be.upload(ts, Float32Array.from(q.scales, float16BitsToFloat32));
    be.matmulQuantForward!(out, tx, tq, ts, null, M, K, N, format);
    const got = (await be.download(out)) as Float32Array;
    for (const t of [tx, tq, ts, out]) be.free(t);
    return got;
  }
  // decoding's pairs of blocks with a tail, the prompt pass's groups of four rows with a tail row,
  // and single rows with M > 1
  const shapes = [
    { M: 1, K: 160, N: 9 },
    { M: 5, K: 96, N: 37 },
    { M: 3, K: 160, N: 19 },
  ];
  for (const format of ['q8_0', 'q4_0'] as QuantFormat[]) {
    for (const { M, K, N } of shapes) {
      it(`${format}, M ${M}, K ${K}, N ${N}: 1 and 3 threads equal the plain build bit for bit`, async () => {
        expect(plain.fusedMultiplyAdd).toBe(false);
        const want = await product(plain, format, M, K, N);
        expect(want.some((v) => v !== 0)).toBe(true);
        for (const [threads, be] of backends) {
          expect(bytesOf(await product(be, format, M, K, N)), `${threads} thread(s)`).toEqual(bytesOf(want));
        }
      });
    }
  }
});
