/**
 * sampleTokens on every backend. The js backend is checked against generation's host path (the plan's
 * logits processors, then greedy or a draw with the same uniform); wasm must give exactly its ids;
 * WebGPU (float32 on the device) must give the same greedy ids and, drawing, agree on nearly every
 * row, and its draws must follow the exact probabilities of a hand-worked row.
 *
 * Float32 on the device against float64 on the host: greedy ids are identical (the argmax of the
 * same float32 logits); a drawn id differs only where rounding moves a cut (top-p's running sum,
 * min-p's exp) or the draw's boundary by an ulp, so nearly every row agrees.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, TokenSampling } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { planGeneration, type GenerateOptions } from '../../src/generate/options.js';
import { greedy, sampleAt } from '../../src/generate/samplers.js';
import type { GPTModel } from '../../src/model/types.js';
import { Rng, normal32 } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const gpu = await createNodeWebGPU();
const js = new JsBackend();
const wasm = await createWasmBackend({ threads: 1 });
afterAll(() => [js, wasm, gpu.backend].forEach((b) => b?.dispose()));

const PLAIN: TokenSampling = { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0, allowed: 0 };

/** the plans tried, as generate options (sampling read from planGeneration, as generation does) */
const STRATEGIES: Record<string, GenerateOptions> = {
  greedy: {},
  sampled: { doSample: true },
  temperature: { doSample: true, temperature: 0.7 },
  'top-k': { doSample: true, topK: 5 },
  'top-p': { doSample: true, topP: 0.8 },
  'min-p': { doSample: true, minP: 0.1 },
  'all four': { doSample: true, temperature: 1.3, topK: 40, topP: 0.9, minP: 0.02 },
};

function plan(V: number, options: GenerateOptions) {
  const model = { config: { vocabSize: V } } as GPTModel;
  const p = planGeneration(model, [0], { ...options, seed: 1 });
  if (p.sampling === null) throw new Error('no device sampling in this plan');
  return { sampling: p.sampling, process: p.process, doSample: p.doSample };
}

async function sampleOn(backend: Backend, logits: Float32Array, uniforms: Float64Array, B: number, V: number, sampling: TokenSampling) {
  const z = backend.alloc(B * V);
  const ids = backend.alloc(B, 'i32');
  try {
    backend.upload(z, logits);
    backend.sampleTokens(ids, z, uniforms, B, V, sampling);
    return Array.from(await backend.download(ids));
  } finally {
    backend.free(z);
    backend.free(ids);
  }
}

/** rows of logits with ties (multiples of 1/8) and a spread that leaves several likely tokens */
function rows(seed: number, B: number, V: number): Float32Array {
  return normal32(new Rng(seed), B * V, 2).map((x) => Math.round(x * 8) / 8);
}

function uniformsOf(seed: number, B: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: B }, () => rng.next());
}

describe('sampleTokens on js is generation host path, and wasm gives exactly its ids', () => {
  const [B, V] = [24, 300];
  for (const [name, options] of Object.entries(STRATEGIES)) {
    it(name, async () => {
      const { sampling, process, doSample } = plan(V, options);
      const logits = rows(3, B, V);
      const uniforms = uniformsOf(4, B);
      const expected = Array.from({ length: B }, (_, b) => {
        const row = process(logits.slice(b * V, (b + 1) * V), [0]);
        return doSample ? sampleAt(row, uniforms[b]) : greedy(row);
      });
      const onJs = await sampleOn(js, logits, uniforms, B, V, sampling);
      expect(onJs).toEqual(expected);
      expect(await sampleOn(wasm, logits, uniforms, B, V, sampling)).toEqual(expected);
    });
  }

  it('bans ids from `allowed` on, and gives -1 for a row with NaN, +Infinity or nothing left', async () => {
    const V = 4;
    const logits = Float32Array.of(0, 1, 5, 9, 0, NaN, 1, 2, 0, Infinity, 1, 2, -Infinity, -Infinity, -Infinity, 3);
    for (const backend of [js, wasm]) {
      for (const greedy of [true, false]) {
        const sampling = { ...PLAIN, greedy, allowed: 3 };
        expect(await sampleOn(backend, logits, Float64Array.of(0.99, 0.5, 0.5, 0.5), 4, V, sampling)).toEqual([2, -1, -1, -1]);
      }
    }
  });

  it('refuses a bad plan or uniform, naming the field and the range', () => {
    const z = js.alloc(6);
    const ids = js.alloc(2, 'i32');
    const call =
      (sampling: Partial<TokenSampling>, uniforms: ArrayLike<number> = [0.5, 0.5]) =>
      () =>
        js.sampleTokens(ids, z, uniforms, 2, 3, { ...PLAIN, allowed: 3, ...sampling });
    expect(call({ temperature: 0 })).toThrow(/sampleTokens: sampling.temperature must be a finite number > 0, got 0/);
    expect(call({ topP: 0 })).toThrow(/sampling.topP must be in \(0, 1\], got 0/);
    expect(call({ minP: 2 })).toThrow(/sampling.minP must be in \[0, 1\], got 2/);
    expect(call({ topK: 1.5 })).toThrow(/sampling.topK must be an integer >= 0/);
    expect(call({ allowed: 4 })).toThrow(/sampling.allowed must be an integer in \[1, V = 3\], got 4/);
    expect(call({}, [0.5, 1])).toThrow(/uniforms\[1\] must be in \[0, 1\), got 1/);
    expect(call({}, [0.5])).toThrow(/uniforms must hold at least B = 2 numbers, got 1/);
    expect(call({ greedy: true }, [])).not.toThrow();
  });
});

const suite =
  gpu.backend === null ? `sampleTokens on webgpu (skipped: ${gpu.skipReason})` : `sampleTokens on webgpu (${gpu.backend.adapterName})`;
describe.skipIf(gpu.backend === null)(suite, () => {
  const backend = gpu.backend!;
  // V past the 256 lanes of a workgroup, so lanes own chunks of several ids (SwiftShader is slow: few rows)
  const [B, V] = [16, 300];

  for (const [name, options] of Object.entries(STRATEGIES)) {
    it(`${name}: the reference's ids on seeded rows`, async () => {
      const { sampling } = plan(V, options);
      let agree = 0;
      let total = 0;
      for (const seed of [1, 2]) {
        const logits = rows(seed, B, V);
        const uniforms = uniformsOf(seed + 100, B);
        const expected = await sampleOn(js, logits, uniforms, B, V, sampling);
        const actual = await sampleOn(backend, logits, uniforms, B, V, sampling);
        if (sampling.greedy) expect(actual).toEqual(expected);
        actual.forEach((id, b) => (agree += id === expected[b] ? 1 : 0));
        total += B;
      }
      // float32 rounding may move a cut or a draw's boundary: a rare row may differ
      expect(agree / total).toBeGreaterThanOrEqual(0.97);
    }, 120_000);
  }

  it('bans ids from `allowed` on, and gives -1 for a row with NaN, +Infinity or nothing left', async () => {
    const logits = Float32Array.of(0, 1, 5, 9, 0, NaN, 1, 2, 0, Infinity, 1, 2, -Infinity, -Infinity, -Infinity, 3);
    for (const greedy of [true, false]) {
      const sampling = { ...PLAIN, greedy, allowed: 3 };
      expect(await sampleOn(backend, logits, Float64Array.of(0.99, 0.5, 0.5, 0.5), 4, 4, sampling)).toEqual([2, -1, -1, -1]);
    }
  }, 60_000);

  it('draws follow the exact probabilities of a hand-worked row (temperature 2, top-k 4 with a tie, top-p 0.75)', async () => {
    // logits / 2 = [1, 0, 2, 0, -1, 0.5, 0, -3]; top-k 4 keeps 2, 1, 0.5 and all three 0s (the 4th
    // highest is a tie): weights e^2, e, e^0.5, 1, 1, 1 (ids 2, 0, 5, 1, 3, 6), total 14.75. Top-p
    // keeps the fewest from the top reaching 0.75 of it: e^2 + e = 10.1 (0.685) falls short, adding
    // e^0.5 gives 11.75 (0.797). So ids 2, 0, 5 stay with p_i = w_i / 11.75.
    const logits = Float32Array.of(2, 0, 4, 0, -2, 1, 0, -6);
    const kept = new Map([
      [2, Math.exp(2)],
      [0, Math.exp(1)],
      [5, Math.exp(0.5)],
    ]);
    const S = [...kept.values()].reduce((a, b) => a + b, 0);
    // uniforms on an even grid: each id's share of the grid is its probability, to within 1/n
    const n = 64;
    const many = new Float32Array(n * 8);
    for (let r = 0; r < n; r++) many.set(logits, r * 8);
    const grid = Float64Array.from({ length: n }, (_, j) => (j + 0.5) / n);
    const sampling: TokenSampling = { greedy: false, temperature: 2, topK: 4, topP: 0.75, minP: 0, allowed: 8 };
    const ids = await sampleOn(backend, many, grid, n, 8, sampling);
    expect(ids).toEqual(await sampleOn(js, many, grid, n, 8, sampling));
    const counts = new Array<number>(8).fill(0);
    for (const id of ids) counts[id]++;
    for (let id = 0; id < 8; id++) {
      const p = (kept.get(id) ?? 0) / S;
      expect(Math.abs(counts[id] / n - p), `id ${id}: ${counts[id]} of ${n}, p = ${p}`).toBeLessThanOrEqual(1 / n);
    }
  }, 120_000);
});
