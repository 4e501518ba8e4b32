/**
 * JsBackend's two storage precisions run the same float64 arithmetic and differ only in where
 * results are rounded. With float32-representable inputs, a forward op's f32 result is therefore
 * exactly the f64 result rounded once (Math.fround); backward ops, which accumulate into storage
 * repeatedly, agree to float32 accuracy. This pins the default 'f32' path to the path the gradient
 * checks prove correct.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { Rng, assertClose, ints, normal32, uniform32 } from '../helpers/random.js';

const B = 2, T = 5, C = 6, NH = 3, V = 7, M = 3, K = 5, N = 7;

/** A scenario allocates its inputs from the same seed on a backend, runs ops and names outputs. */
type Scenario = (be: JsBackend, rng: Rng) => Record<string, Tensor>;

function f32(be: JsBackend, data: Float32Array): Tensor {
  const t = be.alloc(data.length);
  be.upload(t, data);
  return t;
}

function i32(be: JsBackend, data: Int32Array): Tensor {
  const t = be.alloc(data.length, 'i32');
  be.upload(t, data);
  return t;
}

const forwardScenarios: Record<string, Scenario> = {
  encoder: (be, rng) => {
    const out = be.alloc(B * T * C);
    be.encoderForward(out, i32(be, ints(rng, B * T, 0, V)), f32(be, normal32(rng, V * C)), f32(be, normal32(rng, 8 * C)), B, T, C, 2);
    return { out };
  },
  layerNorm: (be, rng) => {
    const out = be.alloc(B * T * C);
    const mean = be.alloc(B * T);
    const rstd = be.alloc(B * T);
    be.layerNormForward(out, mean, rstd, f32(be, normal32(rng, B * T * C)), f32(be, normal32(rng, C)), f32(be, normal32(rng, C)), B * T, C);
    return { out, mean, rstd };
  },
  matmul: (be, rng) => {
    const out = be.alloc(M * N);
    be.matmulForward(out, f32(be, normal32(rng, M * K)), f32(be, normal32(rng, K * N)), f32(be, normal32(rng, N)), M, K, N);
    return { out };
  },
  attention: (be, rng) => {
    const out = be.alloc(B * T * C);
    const lse = be.alloc(B * NH * T);
    be.attentionForward(out, lse, f32(be, normal32(rng, B * T * 3 * C)), B, T, C, NH);
    return { out, lse };
  },
  gelu: (be, rng) => {
    const out = be.alloc(31);
    be.geluForward(out, f32(be, uniform32(rng, 31, -5, 5)), 31);
    return { out };
  },
  dropout: (be, rng) => {
    const out = be.alloc(64);
    be.dropoutForward(out, f32(be, normal32(rng, 64)), 64, 0.3, 11);
    return { out };
  },
  crossEntropy: (be, rng) => {
    const losses = be.alloc(B * T);
    const probs = be.alloc(B * T * V);
    const targets = ints(rng, B * T, 0, V);
    targets[3] = -1;
    be.crossEntropyForward(losses, probs, f32(be, normal32(rng, B * T * V, 3)), i32(be, targets), B * T, V);
    return { losses, probs };
  },
  transpose: (be, rng) => {
    const out = be.alloc(M * K);
    be.transpose(out, f32(be, normal32(rng, M * K)), M, K);
    return { out };
  },
};

const backwardScenarios: Record<string, Scenario> = {
  encoder: (be, rng) => {
    const dwte = f32(be, normal32(rng, V * C));
    const dwpe = f32(be, normal32(rng, T * C));
    be.encoderBackward(dwte, dwpe, f32(be, normal32(rng, B * T * C)), i32(be, ints(rng, B * T, 0, V)), B, T, C);
    return { dwte, dwpe };
  },
  layerNorm: (be, rng) => {
    const inp = f32(be, normal32(rng, B * T * C));
    const weight = f32(be, normal32(rng, C));
    const mean = be.alloc(B * T);
    const rstd = be.alloc(B * T);
    be.layerNormForward(be.alloc(B * T * C), mean, rstd, inp, weight, be.alloc(C), B * T, C);
    const dinp = be.alloc(B * T * C);
    const dweight = be.alloc(C);
    const dbias = be.alloc(C);
    be.layerNormBackward(dinp, dweight, dbias, f32(be, normal32(rng, B * T * C)), inp, weight, mean, rstd, B * T, C);
    return { dinp, dweight, dbias };
  },
  matmul: (be, rng) => {
    const dinp = be.alloc(M * K);
    const dweight = be.alloc(K * N);
    const dbias = be.alloc(N);
    be.matmulBackward(dinp, dweight, dbias, f32(be, normal32(rng, M * N)), f32(be, normal32(rng, M * K)), f32(be, normal32(rng, K * N)), M, K, N);
    return { dinp, dweight, dbias };
  },
  attention: (be, rng) => {
    const qkv = f32(be, normal32(rng, B * T * 3 * C));
    const out = be.alloc(B * T * C);
    const lse = be.alloc(B * NH * T);
    be.attentionForward(out, lse, qkv, B, T, C, NH);
    const dqkv = be.alloc(B * T * 3 * C);
    be.attentionBackward(dqkv, f32(be, normal32(rng, B * T * C)), qkv, out, lse, B, T, C, NH);
    return { dqkv };
  },
  gelu: (be, rng) => {
    const dinp = be.alloc(31);
    be.geluBackward(dinp, f32(be, uniform32(rng, 31, -5, 5)), f32(be, normal32(rng, 31)), 31);
    return { dinp };
  },
  crossEntropy: (be, rng) => {
    const probs = be.alloc(B * T * V);
    const targets = i32(be, ints(rng, B * T, -1, V));
    be.crossEntropyForward(be.alloc(B * T), probs, f32(be, normal32(rng, B * T * V, 3)), targets, B * T, V);
    const dlogits = be.alloc(B * T * V);
    be.crossEntropyBackward(dlogits, probs, targets, 1 / (B * T), B * T, V);
    return { dlogits };
  },
  adamw: (be, rng) => {
    const params = f32(be, normal32(rng, 40));
    const m = be.alloc(40);
    const v = be.alloc(40);
    for (let step = 1; step <= 3; step++) {
      be.adamwUpdate(params, f32(be, normal32(rng, 40)), m, v, { learningRate: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step });
    }
    return { params, m, v };
  },
};

function runBoth(scenario: Scenario, seed: number) {
  const single = new JsBackend();
  const double = new JsBackend({ precision: 'f64' });
  const a = scenario(single, new Rng(seed));
  const b = scenario(double, new Rng(seed));
  return Object.keys(a).map((name) => ({ name, f32: single.read(a[name]), f64: double.read(b[name]) }));
}

describe('JsBackend f32 storage against f64 storage', () => {
  let seed = 100;
  for (const [op, scenario] of Object.entries(forwardScenarios)) {
    const opSeed = seed++;
    it(`${op} forward: f32 results are the f64 results rounded once`, () => {
      for (const { name, f32: single, f64: double } of runBoth(scenario, opSeed)) {
        expect(single, name).toBeInstanceOf(Float32Array);
        expect(double, name).toBeInstanceOf(Float64Array);
        expect(Array.from(single), name).toEqual(Array.from(double, Math.fround));
      }
    });
  }
  for (const [op, scenario] of Object.entries(backwardScenarios)) {
    const opSeed = seed++;
    it(`${op} backward: f32 agrees with f64 to float32 accuracy`, () => {
      for (const { name, f32: single, f64: double } of runBoth(scenario, opSeed)) {
        assertClose(single, double, { rtol: 1e-5, atol: 1e-6 }, name);
      }
    });
  }
});
