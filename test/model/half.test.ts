/**
 * The f16 weight format (src/model/quant.ts): weights rounded to float16, two bytes each, widened in
 * the products. Widening checked exactly on every backend (js, wasm on 1 and 3 threads, WebGPU
 * whole and in pieces) through the embedding, on every finite half bit for bit;
 * the products against the float64 product of the f16-rounded weights (f32 summation's tolerance)
 * and against the float64 product of the float32 weights (the stated looser tolerance, what rounding
 * the weights to float16 may add).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { float16BitsToFloat32, roundToFloat16Bits } from '../../src/io/safetensors.js';
import { dequantizeMatrix, quantizeMatrix } from '../../src/model/quant.js';
import { Rng } from '../../src/util/rng.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const THREADS_URL = new URL('../../build/tinygpt-threads.wasm', import.meta.url);
const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);

/** WebGPU through Dawn (SwiftShader without a GPU); its products are left out where no adapter exists */
const gpu = await createNodeWebGPU();

/** float16's unit roundoff: rounding to nearest changes a normal value by at most this fraction */
const HALF_ROUNDOFF = 2 ** -11;

/** the quants' bytes as the i32 words a backend holds */
const words = (bytes: Uint8Array) => new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);

describe('f16 storage', () => {
  it('stores each weight as its float16 bits, little-endian, with no scales; widening gives the rounded values back', () => {
    const values = Float32Array.from([1, -2.5, 65504, -65504, 2 ** -24, -(2 ** -20), 0.1, 1 / 3, ...new Array<number>(24).fill(0)]);
    values[10] = -0;
    const q = quantizeMatrix(values, 1, 32, 'f16');
    expect(q.scales.length).toBe(0);
    expect(q.quants.length).toBe(64);
    const bits = Array.from({ length: 32 }, (_, i) => q.quants[2 * i] | (q.quants[2 * i + 1] << 8));
    expect(bits).toEqual(Array.from(values, roundToFloat16Bits));
    expect(bits.slice(0, 5)).toEqual([0x3c00, 0xc100, 0x7bff, 0xfbff, 0x0001]);
    const back = dequantizeMatrix(q);
    expect(Array.from(back)).toEqual(Array.from(values, (v) => float16BitsToFloat32(roundToFloat16Bits(v))));
    expect(Object.is(back[10], -0)).toBe(true);
    expect(Math.abs(back[6] - 0.1) / 0.1).toBeLessThanOrEqual(HALF_ROUNDOFF);
  });

  it('refuses a weight beyond float16 range rather than storing an infinity', () => {
    const values = new Float32Array(32);
    values[7] = 70000;
    expect(() => quantizeMatrix(values, 1, 32, 'f16')).toThrow(/element 7 \(70000\) is outside float16's range \(\|x\| <= 65504\)/);
  });
});

describe('f16 products and embedding on every backend', () => {
  const backends: [string, Backend][] = [];
  beforeAll(async () => {
    backends.push(['js', new JsBackend()]);
    for (const threads of [1, 3]) {
      const be = await createWasmBackend({
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
      // bindings of 4 KiB: operands past one binding run in pieces (rows of W, token slices of wte)
      backends.push(['webgpu, 4 KiB bindings', await createWebGPUBackend({ maxBindingBytes: 4096 })]);
    }
  });
  afterAll(() => {
    for (const [, be] of backends) be.dispose();
  });

  it('the embedding widens every kind of half exactly: normals, subnormals, -0, the largest', async () => {
    const V = 41;
    const C = 64;
    const B = 2;
    const T = 5;
    const rng = new Rng(3);
    const table = new Float32Array(V * C).map(() => rng.normal() * 10 ** Math.floor(rng.next() * 10 - 7));
    table.set([65504, -65504, 2 ** -24, -(2 ** -24), 2 ** -14, 3 * 2 ** -20, -0, 0, 1e-9], 0);
    const q = quantizeMatrix(table, V, C, 'f16');
    const wide = dequantizeMatrix(q);
    const wpe = new Float32Array((3 + T) * C).map(() => rng.normal());
    const ids = Int32Array.from([0, 40, 7, 0, 19, 33, 1, 2, 40, 0]);
    const want = new Float32Array(B * T * C);
    for (let bt = 0; bt < B * T; bt++)
      for (let c = 0; c < C; c++) want[bt * C + c] = Math.fround(wide[ids[bt] * C + c] + wpe[(3 + (bt % T)) * C + c]);
    expect(backends.length).toBe(gpu.backend === null ? 3 : 5);
    for (const [name, be] of backends) {
      const tq = be.alloc(q.quants.length / 4, 'i32');
      const tids = be.alloc(B * T, 'i32');
      const tpe = be.alloc(wpe.length);
      const out = be.alloc(B * T * C);
      be.upload(tq, words(q.quants));
      be.upload(tids, ids);
      be.upload(tpe, wpe);
      be.encoderQuantForward!(out, tids, tq, null, tpe, B, T, C, 3, 'f16');
      expect(Array.from((await be.download(out)) as Float32Array), name).toEqual(Array.from(want));
      for (const t of [tq, tids, tpe, out]) be.free(t);
    }
  });

  it('the embedding widens every finite half exactly, on every backend', async () => {
    // the 63,488 bit patterns with an exponent below 31, as a [992, 64] table, each row looked up once;
    // adding wpe's -0 keeps every value, -0 included
    const C = 64;
    const finite = Array.from({ length: 0x10000 }, (_, bits) => bits).filter((bits) => (bits & 0x7c00) !== 0x7c00);
    const V = finite.length / C;
    const bytes = new Uint8Array(Uint16Array.from(finite).buffer);
    const [B, T] = [V / 8, 8];
    const ids = Int32Array.from({ length: V }, (_, i) => i);
    const wpe = new Float32Array(T * C).fill(-0);
    const want = Float32Array.from(finite, float16BitsToFloat32);
    expect(Number.isInteger(T) && want.every(Number.isFinite)).toBe(true);
    for (const [name, be] of backends) {
      const tq = be.alloc(bytes.length / 4, 'i32');
      const tids = be.alloc(B * T, 'i32');
      const tpe = be.alloc(wpe.length);
      const out = be.alloc(B * T * C);
      be.upload(tq, words(bytes));
      be.upload(tids, ids);
      be.upload(tpe, wpe);
      be.encoderQuantForward!(out, tids, tq, null, tpe, B, T, C, 0, 'f16');
      const got = new Uint32Array(((await be.download(out)) as Float32Array).buffer);
      const mismatch = got.findIndex((bits, i) => bits !== new Uint32Array(want.buffer)[i]);
      expect(mismatch, `${name}: half 0x${(finite[mismatch] ?? 0).toString(16)}`).toBe(-1);
      for (const t of [tq, tids, tpe, out]) be.free(t);
    }
  });

  const shapes = [
    { M: 1, K: 32, N: 1 },
    { M: 1, K: 384, N: 1152 },
    { M: 5, K: 96, N: 37 },
    { M: 7, K: 160, N: 19 },
    { M: 9, K: 256, N: 64 },
  ];
  for (const { M, K, N } of shapes) {
    it(`M ${M}, K ${K}, N ${N}: matmulQuantForward against the float64 products of the f16 and of the f32 weights`, async () => {
      const rng = new Rng(M * 1000 + K + N);
      const x = new Float32Array(M * K).map(() => rng.normal());
      const w = new Float32Array(N * K).map(() => rng.normal() * 0.1);
      const bias = new Float32Array(N).map(() => rng.normal());
      const q = quantizeMatrix(w, N, K, 'f16');
      const half = dequantizeMatrix(q);
      // float64 products of the rounded (half) and of the original (w) weights, and sum |x w|
      const wantHalf = new Float64Array(M * N);
      const wantFloat = new Float64Array(M * N);
      const magnitude = new Float64Array(M * N);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let [a, b, s] = [bias[n], bias[n], Math.abs(bias[n])];
          for (let k = 0; k < K; k++) {
            a += x[m * K + k] * half[n * K + k];
            b += x[m * K + k] * w[n * K + k];
            s += Math.abs(x[m * K + k] * w[n * K + k]);
          }
          [wantHalf[m * N + n], wantFloat[m * N + n], magnitude[m * N + n]] = [a, b, s];
        }
      const results: Float32Array[] = [];
      for (const [name, be] of backends) {
        const tx = be.alloc(M * K);
        const tq = be.alloc(q.quants.length / 4, 'i32');
        const tb = be.alloc(N);
        const out = be.alloc(M * N);
        be.upload(tx, x);
        be.upload(tq, words(q.quants));
        be.upload(tb, bias);
        be.matmulQuantForward!(out, tx, tq, null, tb, M, K, N, 'f16');
        const got = (await be.download(out)) as Float32Array;
        for (let i = 0; i < M * N; i++) {
          // f32 summation of the rounded weights' products: ~2^-22 of sum |x w| at these K
          expect(Math.abs(got[i] - wantHalf[i]), `${name} [${i}] against the f16 weights`).toBeLessThanOrEqual(1e-6 * magnitude[i]);
          // against the f32 weights: each weight moved by at most 2^-11 of itself (all are normal halves here)
          const stated = (HALF_ROUNDOFF + 1e-6) * magnitude[i];
          expect(Math.abs(got[i] - wantFloat[i]), `${name} [${i}] against the f32 weights`).toBeLessThanOrEqual(stated);
        }
        results.push(got);
        for (const t of [tx, tq, tb, out]) be.free(t);
      }
      // wasm's threads split the columns: each column is summed as on one thread, bit for bit
      expect(results[2]).toEqual(results[1]);
    });
  }

  it('names a scales argument that does not fit the format', () => {
    for (const [name, be] of backends) {
      const x = be.alloc(32);
      const q = be.alloc(16, 'i32');
      const s = be.alloc(1);
      const out = be.alloc(1);
      expect(() => be.matmulQuantForward!(out, x, q, s, null, 1, 32, 1, 'f16'), name).toThrow(/scales must be null for the 'f16' format/);
      expect(() => be.matmulQuantForward!(out, x, q, null, null, 1, 32, 1, 'q8_0'), name).toThrow(
        /scales must be a tensor for the 'q8_0' format/,
      );
      for (const t of [x, q, s, out]) be.free(t);
    }
  });
});
