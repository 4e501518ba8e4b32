/**
 * Q8_0 / Q4_0 block quantization (src/model/quant.ts): blocks worked by hand (codes, nibble layout,
 * float16 scales), the per-block error bounds on random blocks, and the quantized products of every
 * backend that has them (js, wasm on 1 and 3 threads, WebGPU whole and in pieces) against the float64 product of the
 * dequantized weights, wasm's threads bit for bit equal to its one thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, QuantFormat } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { float16BitsToFloat32, roundToFloat16Bits } from '../../src/io/safetensors.js';
import { dequantizeMatrix, quantizeMatrix, QUANT_BLOCK } from '../../src/model/quant.js';
import { Rng } from '../../src/util/rng.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const THREADS_URL = new URL('../../build/tinygpt-threads.wasm', import.meta.url);
const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);

/** WebGPU through Dawn (SwiftShader without a GPU); its products are left out where no adapter exists */
const gpu = await createNodeWebGPU();

const f16 = (x: number) => float16BitsToFloat32(roundToFloat16Bits(x));

describe('Q8_0 by hand', () => {
  it('codes a block whose scale is exact: d = amax / 127 = 1/64, codes round half away from zero', () => {
    const x = new Float32Array(32);
    x.set([127 / 64, -0.5 / 64, 0.5 / 64, 0.3 / 64, 2.7 / 64, -100.49 / 64, -127 / 64]);
    const q = quantizeMatrix(x, 1, 32, 'q8_0');
    expect(float16BitsToFloat32(q.scales[0])).toBe(1 / 64);
    expect(Array.from(new Int8Array(q.quants.buffer).subarray(0, 8))).toEqual([127, -1, 1, 0, 3, -100, -127, 0]);
    expect(Array.from(dequantizeMatrix(q).subarray(0, 7))).toEqual([127 / 64, -1 / 64, 1 / 64, 0, 3 / 64, -100 / 64, -127 / 64]);
  });

  it('stores the scale rounded to float16 and codes with the unrounded one, as ggml', () => {
    const x = new Float32Array(32).fill(0.001);
    x[0] = 1;
    const q = quantizeMatrix(x, 1, 32, 'q8_0');
    const d = Math.fround(1 / 127);
    expect(q.scales[0]).toBe(roundToFloat16Bits(d));
    // 0.001 / d = 0.127 -> 0; 1 / d = 127
    expect(new Int8Array(q.quants.buffer)[0]).toBe(127);
    expect(new Int8Array(q.quants.buffer)[1]).toBe(0);
    expect(dequantizeMatrix(q)[0]).toBe(127 * f16(d));
  });

  it('makes an all-zero block zero codes and a zero scale', () => {
    const q = quantizeMatrix(new Float32Array(64), 2, 32, 'q8_0');
    expect(Array.from(q.scales)).toEqual([0, 0]);
    expect(q.quants.every((b) => b === 0)).toBe(true);
  });
});

describe('Q4_0 by hand', () => {
  it('takes d = (value of largest magnitude) / -8 and packs weight j and j + 16 into byte j', () => {
    const x = new Float32Array(32);
    // max = -1, so d = 0.125 and id = 8: q = min(15, floor(8x + 8.5))
    x.set([-1, 0.9, 0.99, 0.3, 0.31, 0.32, -0.06, -0.07]);
    x[16] = 0.5; // q = 12
    x[17] = -0.5; // q = 4
    const q = quantizeMatrix(x, 1, 32, 'q4_0');
    expect(float16BitsToFloat32(q.scales[0])).toBe(0.125);
    // codes of weights 0..7: -1 -> 0, 0.9 -> 15, 0.99 -> 16 clamped to 15, 0.3 -> 10, 0.31 -> 10, 0.32 -> 11, -0.06 -> 8, -0.07 -> 7
    const low = [0, 15, 15, 10, 10, 11, 8, 7];
    const high = [12, 4, 8, 8, 8, 8, 8, 8];
    expect(Array.from(q.quants.subarray(0, 8))).toEqual(low.map((l, j) => l | (high[j] << 4)));
    const back = dequantizeMatrix(q);
    expect(Array.from(back.subarray(0, 8))).toEqual([-1, 0.875, 0.875, 0.25, 0.25, 0.375, 0, -0.125]);
    expect([back[16], back[17]]).toEqual([0.5, -0.5]);
  });
});

describe('per-block error bounds on random blocks', () => {
  const rng = new Rng(11);
  const rows = 64;
  const cols = 256;
  // values over several magnitudes, so scales span float16's range of normal numbers
  const values = new Float32Array(rows * cols).map((_, i) => rng.normal() * 10 ** ((Math.floor(i / 32) % 7) - 4));
  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format}: |x - dequant(x)| <= ${format === 'q8_0' ? 'd/2 + 127 |d - f16(d)|' : '|d| + 8 |d - f16(d)|'} in every block`, () => {
      const q = quantizeMatrix(values, rows, cols, format);
      const back = dequantizeMatrix(q);
      let worstRatio = 0;
      for (let b = 0; b < (rows * cols) / QUANT_BLOCK; b++) {
        const block = values.subarray(b * 32, b * 32 + 32);
        let amax = 0;
        let max = 0;
        for (const v of block) if (Math.abs(v) > amax) [amax, max] = [Math.abs(v), v];
        const d = format === 'q8_0' ? Math.fround(amax / 127) : Math.fround(max / -8);
        const rounding = Math.abs(d - f16(d));
        const bound = format === 'q8_0' ? Math.abs(d) / 2 + 127 * rounding : Math.abs(d) + 8 * rounding;
        for (let j = 0; j < 32; j++) {
          const err = Math.abs(block[j] - back[b * 32 + j]);
          expect(err).toBeLessThanOrEqual(bound * (1 + 1e-6));
          worstRatio = Math.max(worstRatio, err / Math.abs(d));
        }
      }
      // the bound is reached, not loose: the worst error is close to d/2 (Q8_0) or d (Q4_0)
      expect(worstRatio).toBeGreaterThan(format === 'q8_0' ? 0.45 : 0.9);
    });
  }
});

describe('quantized products against the float64 product of the dequantized weights', () => {
  const backends: [string, Backend][] = [];
  beforeAll(async () => {
    backends.push(['js', new JsBackend()]);
    for (const threads of [1, 3]) {
      const be: WasmBackend = await createWasmBackend({
        url: WASM_URL,
        threadsSource: { url: THREADS_URL },
        workerUrl: WORKER_URL,
        threads,
        minMacsPerShare: 0,
      });
      backends.push([`wasm, ${threads} thread${threads > 1 ? 's' : ''}`, be]);
    }
    if (gpu.backend !== null) {
      backends.push([`webgpu (${gpu.backend.adapterName})`, gpu.backend]);
      // bindings of 4 KiB: products whose operands exceed one binding run in pieces
      backends.push(['webgpu, 4 KiB bindings', await createWebGPUBackend({ maxBindingBytes: 4096 })]);
    }
  });
  afterAll(() => {
    for (const [, be] of backends) be.dispose();
  });
  // wasm's integer activations add rounding the others do not have
  const roundsActivations = (name: string) => name.startsWith('wasm');

  const shapes = [
    { M: 1, K: 32, N: 1 },
    { M: 1, K: 384, N: 1152 },
    // decoding's pairs of blocks and a tail of one
    { M: 1, K: 160, N: 9 },
    { M: 5, K: 96, N: 37 },
    { M: 9, K: 256, N: 64 },
    // single rows with M > 1 (their per-block values gathered), four blocks and a tail of one
    { M: 3, K: 160, N: 19 },
    { M: 6, K: 416, N: 11 },
    // the prompt pass's chunks of 64 rows: two full, one of 4 and three rows left
    { M: 135, K: 96, N: 13 },
  ];
  for (const format of ['q8_0', 'q4_0'] as QuantFormat[]) {
    for (const { M, K, N } of shapes) {
      it(`${format}, M ${M}, K ${K}, N ${N}: matmulQuantForward on every backend`, async () => {
        const rng = new Rng(M * 1000 + K + N);
        const x = new Float32Array(M * K).map(() => rng.normal());
        const w = new Float32Array(N * K).map(() => rng.normal() * 0.1);
        const bias = new Float32Array(N).map(() => rng.normal());
        const q = quantizeMatrix(w, N, K, format);
        const deq = dequantizeMatrix(q);
        // the float64 product, and a bound on what wasm's rounding of x (half a step per element: Q8_0
        // rounds x to int16, a step of 1/32767 of the block's largest |x|, Q4_0 to int8, 1/127) and
        // f32 summation (~2^-22 of sum |x w|) may add
        const xSteps = format === 'q8_0' ? 32767 : 127;
        const want = new Float64Array(M * N);
        const bound = new Float64Array(M * N);
        const floatBound = new Float64Array(M * N);
        for (let m = 0; m < M; m++)
          for (let n = 0; n < N; n++) {
            let sum = bias[n];
            let rounding = 0;
            let magnitude = Math.abs(bias[n]);
            for (let k0 = 0; k0 < K; k0 += 32) {
              let amax = 0;
              for (let k = k0; k < k0 + 32; k++) amax = Math.max(amax, Math.abs(x[m * K + k]));
              for (let k = k0; k < k0 + 32; k++) {
                sum += x[m * K + k] * deq[n * K + k];
                rounding += (amax / xSteps / 2) * Math.abs(deq[n * K + k]);
                magnitude += Math.abs(x[m * K + k] * deq[n * K + k]);
              }
            }
            want[m * N + n] = sum;
            bound[m * N + n] = rounding + 1e-6 * magnitude;
            floatBound[m * N + n] = 1e-6 * magnitude;
          }
        expect(backends.length).toBe(gpu.backend === null ? 3 : 5);
        const results: Float32Array[] = [];
        for (const [name, be] of backends) {
          const tx = be.alloc(M * K);
          const tq = be.alloc(q.quants.length / 4, 'i32');
          const ts = be.alloc(q.scales.length);
          const tb = be.alloc(N);
          const out = be.alloc(M * N);
          be.upload(tx, x);
          be.upload(tq, new Int32Array(q.quants.buffer, q.quants.byteOffset, q.quants.length / 4));
          be.upload(ts, Float32Array.from(q.scales, float16BitsToFloat32));
          be.upload(tb, bias);
          be.matmulQuantForward!(out, tx, tq, ts, tb, M, K, N, format);
          const got = (await be.download(out)) as Float32Array;
          for (let i = 0; i < M * N; i++) {
            expect(Math.abs(got[i] - want[i]), `${name} [${i}]`).toBeLessThanOrEqual(roundsActivations(name) ? bound[i] : floatBound[i]);
          }
          results.push(got);
          for (const t of [tx, tq, ts, tb, out]) be.free(t);
        }
        // threads split the columns: each column is summed as on one thread, bit for bit
        expect(results[2]).toEqual(results[1]);
      });
    }
    it(`${format}: a NaN or an infinity in a row of x makes that row's outputs non-finite on every backend, and only that row's`, async () => {
      const M = 6;
      const K = 96;
      const N = 5;
      const rng = new Rng(7);
      const x = new Float32Array(M * K).map(() => rng.normal());
      // row 1: a NaN in its second block; row 4: an infinity in its last
      x[1 * K + 40] = NaN;
      x[4 * K + 95] = Infinity;
      const q = quantizeMatrix(
        new Float32Array(N * K).map(() => rng.normal() * 0.1),
        N,
        K,
        format,
      );
      for (const [name, be] of backends) {
        for (const rows of [1, M]) {
          // one row (decoding) is row 1 alone; all six take the prompt pass's groups of four and its remainder
          const input = rows === 1 ? x.subarray(K, 2 * K) : x;
          const tx = be.alloc(rows * K);
          const tq = be.alloc(q.quants.length / 4, 'i32');
          const ts = be.alloc(q.scales.length);
          const out = be.alloc(rows * N);
          be.upload(tx, input);
          be.upload(tq, new Int32Array(q.quants.buffer, q.quants.byteOffset, q.quants.length / 4));
          be.upload(ts, Float32Array.from(q.scales, float16BitsToFloat32));
          be.matmulQuantForward!(out, tx, tq, ts, null, rows, K, N, format);
          const got = (await be.download(out)) as Float32Array;
          for (let m = 0; m < rows; m++) {
            const poisoned = rows === 1 || m === 1 || m === 4;
            for (let n = 0; n < N; n++) expect(Number.isFinite(got[m * N + n]), `${name}, ${rows} row(s), [${m}, ${n}]`).toBe(!poisoned);
          }
          for (const t of [tx, tq, ts, out]) be.free(t);
        }
      }
    });
  }
});
