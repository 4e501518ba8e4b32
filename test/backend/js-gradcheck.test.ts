/**
 * The js reference backend against independent answers: every backward op against central finite
 * differences of L = sum(out * R) in float64, and forward ops against hand-worked values or naive
 * formulas written differently from the backend's loops.
 */
import { describe, expect, it } from 'vitest';
import { dropoutKeep, type Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { dot, numericGradient } from '../helpers/gradcheck.js';
import { Rng, assertClose, maxRelErr, normal64, uniform64 } from '../helpers/random.js';

const be = new JsBackend({ precision: 'f64' });

/** finite differences in float64 agree with analytic gradients far below these */
const GRAD_TOL = { rtol: 1e-6, atol: 1e-8 };

function floats(data: ArrayLike<number>): Tensor {
  const t = be.alloc(data.length);
  be.write(t, data);
  return t;
}

function int32s(data: ArrayLike<number>): Tensor {
  const t = be.alloc(data.length, 'i32');
  be.write(t, data);
  return t;
}

function read(t: Tensor): Float64Array {
  return Float64Array.from(be.read(t));
}

/** A gradient buffer pre-filled with random values, so checks also prove backward accumulates. */
class GradBuffer {
  readonly tensor: Tensor;
  private readonly initial: Float64Array;
  constructor(rng: Rng, n: number) {
    this.initial = uniform64(rng, n);
    this.tensor = floats(this.initial);
  }
  /** what backward added */
  added(): Float64Array {
    const now = read(this.tensor);
    return now.map((x, i) => x - this.initial[i]);
  }
}

/**
 * For each named input: the finite-difference gradient of `objective` (which reads every input
 * from `values`) against `analytic[name]`.
 */
function expectGradients(values: Record<string, Float64Array>, objective: () => number, analytic: Record<string, Float64Array>): void {
  for (const name of Object.keys(analytic)) {
    const original = values[name];
    const numeric = numericGradient((x) => {
      values[name] = x;
      const loss = objective();
      values[name] = original;
      return loss;
    }, original);
    assertClose(analytic[name], numeric, GRAD_TOL, `d${name}`);
  }
}

describe('encoder', () => {
  const B = 2,
    T = 5,
    C = 6,
    V = 7,
    maxT = 8;

  it('forward adds the token row and the position row at posOffset', () => {
    const rng = new Rng(1);
    const ids = [3, 0, 6, 3, 1, 2, 2, 5, 4, 0];
    const wte = uniform64(rng, V * C);
    const wpe = uniform64(rng, maxT * C);
    const out = be.alloc(B * T * C);
    const posOffset = 3;
    be.encoderForward(out, int32s(ids), floats(wte), floats(wpe), B, T, C, posOffset);
    const got = read(out);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const id = ids[b * T + t];
        for (let c = 0; c < C; c++) {
          expect(got[(b * T + t) * C + c]).toBe(wte[id * C + c] + wpe[(posOffset + t) * C + c]);
        }
      }
    }
  });

  it('backward matches finite differences, with repeated ids', () => {
    const rng = new Rng(2);
    const ids = int32s([3, 0, 6, 3, 1, 2, 2, 5, 4, 3]);
    const values = { wte: uniform64(rng, V * C), wpe: uniform64(rng, maxT * C) };
    const R = uniform64(rng, B * T * C);
    const out = be.alloc(B * T * C);
    const wte = be.alloc(V * C);
    const wpe = be.alloc(maxT * C);
    const objective = () => {
      be.write(wte, values.wte);
      be.write(wpe, values.wpe);
      be.encoderForward(out, ids, wte, wpe, B, T, C);
      return dot(read(out), R);
    };
    const dwte = new GradBuffer(rng, V * C);
    const dwpe = new GradBuffer(rng, maxT * C);
    be.encoderBackward(dwte.tensor, dwpe.tensor, floats(R), ids, B, T, C);
    expectGradients(values, objective, { wte: dwte.added(), wpe: dwpe.added() });
  });

  it('rejects a token id outside the embedding table', () => {
    const out = be.alloc(C);
    expect(() => be.encoderForward(out, int32s([V]), be.alloc(V * C), be.alloc(maxT * C), 1, 1, C)).toThrow(
      /inp\[0\] = 7 is outside \[0, 7\)/,
    );
  });
});

describe('layerNorm', () => {
  const N = 10,
    C = 6; // B=2, T=5

  it('normalises each row to mean 0, variance 1 before the affine part; mean and rstd are the naive ones', () => {
    const rng = new Rng(3);
    const x = normal64(rng, N * C, 2, 0.5);
    const out = be.alloc(N * C);
    const mean = be.alloc(N);
    const rstd = be.alloc(N);
    be.layerNormForward(out, mean, rstd, floats(x), floats(new Array(C).fill(1)), be.alloc(C), N, C);
    const y = read(out);
    for (let n = 0; n < N; n++) {
      const row = Array.from(x.subarray(n * C, (n + 1) * C));
      const mu = row.reduce((s, v) => s + v, 0) / C;
      const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / C;
      expect(read(mean)[n]).toBeCloseTo(mu, 12);
      expect(read(rstd)[n]).toBeCloseTo(1 / Math.sqrt(variance + 1e-5), 10);
      const normed = Array.from(y.subarray(n * C, (n + 1) * C));
      const outMean = normed.reduce((s, v) => s + v, 0) / C;
      const outVariance = normed.reduce((s, v) => s + (v - outMean) ** 2, 0) / C;
      expect(Math.abs(outMean)).toBeLessThan(1e-12);
      // eps 1e-5 inside the square root: the variance is var / (var + eps), within 1e-4 of 1 here
      expect(outVariance).toBeCloseTo(variance / (variance + 1e-5), 12);
      expect(Math.abs(outVariance - 1)).toBeLessThan(1e-4);
    }
  });

  it('applies weight and bias per channel', () => {
    const x = [1, 2, 3, 4];
    const out = be.alloc(4);
    be.layerNormForward(out, be.alloc(1), be.alloc(1), floats(x), floats([2, 2, 2, 2]), floats([0, 1, 0, 1]), 1, 4);
    // mean 2.5, variance 1.25
    const rstd = 1 / Math.sqrt(1.25 + 1e-5);
    assertClose(read(out), [-1.5 * rstd * 2, -0.5 * rstd * 2 + 1, 0.5 * rstd * 2, 1.5 * rstd * 2 + 1], { rtol: 1e-14, atol: 0 });
  });

  it('backward matches finite differences for inp, weight and bias', () => {
    const rng = new Rng(4);
    const values = { inp: normal64(rng, N * C), weight: uniform64(rng, C, 0.5, 1.5), bias: uniform64(rng, C) };
    const R = uniform64(rng, N * C);
    const out = be.alloc(N * C);
    const mean = be.alloc(N);
    const rstd = be.alloc(N);
    const inp = be.alloc(N * C);
    const weight = be.alloc(C);
    const bias = be.alloc(C);
    const objective = () => {
      be.write(inp, values.inp);
      be.write(weight, values.weight);
      be.write(bias, values.bias);
      be.layerNormForward(out, mean, rstd, inp, weight, bias, N, C);
      return dot(read(out), R);
    };
    objective();
    const dinp = new GradBuffer(rng, N * C);
    const dweight = new GradBuffer(rng, C);
    const dbias = new GradBuffer(rng, C);
    be.layerNormBackward(dinp.tensor, dweight.tensor, dbias.tensor, floats(R), inp, weight, mean, rstd, N, C);
    expectGradients(values, objective, { inp: dinp.added(), weight: dweight.added(), bias: dbias.added() });
  });
});

describe('matmul', () => {
  const M = 3,
    K = 5,
    N = 7;

  it('forward equals a hand-worked product', () => {
    const out = be.alloc(4);
    be.matmulForward(out, floats([1, 2, 3, 4]), floats([5, 6, 7, 8]), floats([1, -1]), 2, 2, 2);
    expect(Array.from(read(out))).toEqual([20, 21, 44, 49]);
    be.matmulForward(out, floats([1, 2, 3, 4]), floats([5, 6, 7, 8]), null, 2, 2, 2);
    expect(Array.from(read(out))).toEqual([19, 22, 43, 50]);
  });

  for (const withBias of [true, false]) {
    it(`backward matches finite differences ${withBias ? 'with' : 'without'} bias`, () => {
      const rng = new Rng(withBias ? 5 : 6);
      const values: Record<string, Float64Array> = { inp: uniform64(rng, M * K), weight: uniform64(rng, K * N) };
      if (withBias) values.bias = uniform64(rng, N);
      const R = uniform64(rng, M * N);
      const out = be.alloc(M * N);
      const inp = be.alloc(M * K);
      const weight = be.alloc(K * N);
      const bias = withBias ? be.alloc(N) : null;
      const objective = () => {
        be.write(inp, values.inp);
        be.write(weight, values.weight);
        if (bias) be.write(bias, values.bias);
        be.matmulForward(out, inp, weight, bias, M, K, N);
        return dot(read(out), R);
      };
      objective();
      const dinp = new GradBuffer(rng, M * K);
      const dweight = new GradBuffer(rng, K * N);
      const dbias = withBias ? new GradBuffer(rng, N) : null;
      be.matmulBackward(dinp.tensor, dweight.tensor, dbias?.tensor ?? null, floats(R), inp, weight, M, K, N);
      const analytic: Record<string, Float64Array> = { inp: dinp.added(), weight: dweight.added() };
      if (dbias) analytic.bias = dbias.added();
      expectGradients(values, objective, analytic);
    });
  }

  it('backward with dinp null still accumulates dweight and dbias, identical to the full call', () => {
    const rng = new Rng(7);
    const inp = floats(uniform64(rng, M * K));
    const weight = floats(uniform64(rng, K * N));
    const dout = floats(uniform64(rng, M * N));
    const full = { dinp: be.alloc(M * K), dweight: be.alloc(K * N), dbias: be.alloc(N) };
    be.matmulBackward(full.dinp, full.dweight, full.dbias, dout, inp, weight, M, K, N);
    const dweight = new GradBuffer(rng, K * N);
    const dbias = new GradBuffer(rng, N);
    be.matmulBackward(null, dweight.tensor, dbias.tensor, dout, inp, weight, M, K, N);
    assertClose(dweight.added(), read(full.dweight), { rtol: 1e-14, atol: 1e-15 });
    assertClose(dbias.added(), read(full.dbias), { rtol: 1e-14, atol: 1e-15 });
  });
});

/** Attention written the textbook way: a full masked score matrix, softmax = exp / sum. */
function naiveAttention(qkv: Float64Array, B: number, T: number, C: number, NH: number): { out: Float64Array; lse: Float64Array } {
  const HS = C / NH;
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const at = (b: number, t: number, part: number, h: number, i: number) => qkv[(b * T + t) * 3 * C + part * C + h * HS + i];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const weights: number[] = [];
        for (let s = 0; s < T; s++) {
          let score = 0;
          for (let i = 0; i < HS; i++) score += at(b, t, 0, h, i) * at(b, s, 1, h, i);
          weights.push(s <= t ? Math.exp(score / Math.sqrt(HS)) : 0);
        }
        const total = weights.reduce((x, y) => x + y, 0);
        lse[(b * NH + h) * T + t] = Math.log(total);
        for (let i = 0; i < HS; i++) {
          let sum = 0;
          for (let s = 0; s < T; s++) sum += (weights[s] / total) * at(b, s, 2, h, i);
          out[(b * T + t) * C + h * HS + i] = sum;
        }
      }
    }
  }
  return { out, lse };
}

describe('attention', () => {
  const B = 2,
    T = 5,
    C = 6;

  for (const NH of [2, 3]) {
    it(`forward equals the textbook masked softmax (NH=${NH}), and position 0 outputs its own v`, () => {
      const rng = new Rng(10 + NH);
      const qkv = normal64(rng, B * T * 3 * C);
      const out = be.alloc(B * T * C);
      const lse = be.alloc(B * NH * T);
      be.attentionForward(out, lse, floats(qkv), B, T, C, NH);
      const expected = naiveAttention(qkv, B, T, C, NH);
      assertClose(read(out), expected.out, { rtol: 1e-12, atol: 1e-14 });
      assertClose(read(lse), expected.lse, { rtol: 1e-12, atol: 1e-14 });
      const got = read(out);
      for (let b = 0; b < B; b++) {
        const v0 = qkv.subarray(b * T * 3 * C + 2 * C, b * T * 3 * C + 3 * C);
        expect(Array.from(got.subarray(b * T * C, b * T * C + C))).toEqual(Array.from(v0));
      }
    });

    it(`backward matches finite differences (NH=${NH})`, () => {
      const rng = new Rng(20 + NH);
      const values = { qkv: normal64(rng, B * T * 3 * C) };
      const R = uniform64(rng, B * T * C);
      const qkv = be.alloc(B * T * 3 * C);
      const out = be.alloc(B * T * C);
      const lse = be.alloc(B * NH * T);
      const objective = () => {
        be.write(qkv, values.qkv);
        be.attentionForward(out, lse, qkv, B, T, C, NH);
        return dot(read(out), R);
      };
      objective();
      const dqkv = new GradBuffer(rng, B * T * 3 * C);
      be.attentionBackward(dqkv.tensor, floats(R), qkv, out, lse, B, T, C, NH);
      expectGradients(values, objective, { qkv: dqkv.added() });
    });
  }

  it('rejects C not divisible by NH', () => {
    expect(() => be.attentionForward(be.alloc(B * T * C), be.alloc(B * 4 * T), be.alloc(B * T * 3 * C), B, T, C, 4)).toThrow(
      /C = 6 must be divisible by NH = 4/,
    );
  });

  it('attentionCached fed the prompt in chunks of 3, 1, 1 equals attentionForward over the whole sequence', () => {
    const NH = 3;
    const cacheLen = 7;
    const rng = new Rng(30);
    const qkvAll = normal64(rng, B * T * 3 * C);
    const fullOut = be.alloc(B * T * C);
    be.attentionForward(fullOut, be.alloc(B * NH * T), floats(qkvAll), B, T, C, NH);
    const expected = read(fullOut);
    const kCache = be.alloc(B * cacheLen * C);
    const vCache = be.alloc(B * cacheLen * C);
    let startPos = 0;
    for (const Tn of [3, 1, 1]) {
      // qkv rows [b, startPos : startPos + Tn, :] as a [B, Tn, 3C] tensor
      const chunk = new Float64Array(B * Tn * 3 * C);
      for (let b = 0; b < B; b++) {
        chunk.set(qkvAll.subarray((b * T + startPos) * 3 * C, (b * T + startPos + Tn) * 3 * C), b * Tn * 3 * C);
      }
      const out = be.alloc(B * Tn * C);
      be.attentionCached(out, floats(chunk), kCache, vCache, B, Tn, C, NH, startPos, cacheLen);
      const got = read(out);
      for (let b = 0; b < B; b++) {
        const want = expected.subarray((b * T + startPos) * C, (b * T + startPos + Tn) * C);
        assertClose(got.subarray(b * Tn * C, (b + 1) * Tn * C), want, { rtol: 1e-12, atol: 1e-14 }, `chunk at ${startPos}, row ${b}`);
      }
      startPos += Tn;
    }
    // the cache now holds every position's k and v; positions past T stay zero
    const keys = read(kCache);
    const vals = read(vCache);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < cacheLen; t++) {
        for (let c = 0; c < C; c++) {
          const k = t < T ? qkvAll[(b * T + t) * 3 * C + C + c] : 0;
          const v = t < T ? qkvAll[(b * T + t) * 3 * C + 2 * C + c] : 0;
          expect(keys[(b * cacheLen + t) * C + c]).toBe(k);
          expect(vals[(b * cacheLen + t) * C + c]).toBe(v);
        }
      }
    }
  });

  it('attentionCached rejects positions past the cache', () => {
    expect(() => be.attentionCached(be.alloc(C), be.alloc(3 * C), be.alloc(4 * C), be.alloc(4 * C), 1, 1, C, 2, 4, 4)).toThrow(
      /startPos \+ Tn = 4 \+ 1 exceeds cacheLen 4/,
    );
  });
});

describe('gelu', () => {
  it('matches known values of the tanh form, and gelu(-x) = gelu(x) - x', () => {
    const x = [0, 1, -1, 2, 10, -10];
    const out = be.alloc(x.length);
    be.geluForward(out, floats(x), x.length);
    const y = read(out);
    expect(y[0]).toBe(0);
    expect(y[1]).toBeCloseTo(0.8411919906082768, 15);
    expect(y[2]).toBeCloseTo(0.8411919906082768 - 1, 15);
    expect(y[3]).toBeCloseTo(1.954597694087775, 14);
    expect(y[4]).toBeCloseTo(10, 12);
    expect(y[5]).toBeCloseTo(0, 12);
  });

  it('may write in place', () => {
    const t = floats([1, -1]);
    be.geluForward(t, t, 2);
    assertClose(read(t), [0.8411919906082768, 0.8411919906082768 - 1], { rtol: 1e-15, atol: 1e-16 });
  });

  it('backward matches finite differences', () => {
    const rng = new Rng(40);
    const N = 23;
    const values = { inp: uniform64(rng, N, -4, 4) };
    const R = uniform64(rng, N);
    const inp = be.alloc(N);
    const out = be.alloc(N);
    const objective = () => {
      be.write(inp, values.inp);
      be.geluForward(out, inp, N);
      return dot(read(out), R);
    };
    const dinp = new GradBuffer(rng, N);
    be.write(inp, values.inp);
    be.geluBackward(dinp.tensor, inp, floats(R), N);
    expectGradients(values, objective, { inp: dinp.added() });
  });
});

describe('residual and accumulate', () => {
  it('forward adds, in place too', () => {
    const a = floats([1, 2, 3]);
    be.residualForward(a, a, floats([10, 20, 30]), 3);
    expect(Array.from(read(a))).toEqual([11, 22, 33]);
  });

  it('accumulate is the backward of residual: finite differences for both inputs', () => {
    const rng = new Rng(41);
    const N = 17;
    const values = { a: uniform64(rng, N), b: uniform64(rng, N) };
    const R = uniform64(rng, N);
    const a = be.alloc(N);
    const b = be.alloc(N);
    const out = be.alloc(N);
    const objective = () => {
      be.write(a, values.a);
      be.write(b, values.b);
      be.residualForward(out, a, b, N);
      return dot(read(out), R);
    };
    const da = new GradBuffer(rng, N);
    const db = new GradBuffer(rng, N);
    const dout = floats(R);
    be.accumulate(da.tensor, dout, N);
    be.accumulate(db.tensor, dout, N);
    expectGradients(values, objective, { a: da.added(), b: db.added() });
  });
});

describe('dropout', () => {
  it('keeps about 1-p of elements (binomial bound), scales kept ones by 1/(1-p), and follows dropoutKeep', () => {
    const N = 20000;
    const p = 0.25;
    const seed = 1234;
    const x = uniform64(new Rng(50), N, 0.5, 1.5); // never 0, so a zero output means dropped
    const out = be.alloc(N);
    be.dropoutForward(out, floats(x), N, p, seed);
    const y = read(out);
    let kept = 0;
    const wrong: number[] = [];
    for (let i = 0; i < N; i++) {
      const keep = dropoutKeep(seed, i, p);
      const expected = keep ? x[i] / (1 - p) : 0;
      if (Math.abs(y[i] - expected) > 1e-14) wrong.push(i);
      if (keep) kept++;
    }
    expect(wrong).toEqual([]);
    // Binomial(N, 1-p): mean 15000, standard deviation ~61; 6 sigma
    const sigma = Math.sqrt(N * p * (1 - p));
    expect(Math.abs(kept - N * (1 - p))).toBeLessThan(6 * sigma);
  });

  it('p = 0 is the identity; other seeds give other masks', () => {
    const x = uniform64(new Rng(51), 64, 0.5, 1.5);
    const out = be.alloc(64);
    be.dropoutForward(out, floats(x), 64, 0, 9);
    expect(Array.from(read(out))).toEqual(Array.from(x));
    const maskA = Array.from({ length: 64 }, (_, i) => dropoutKeep(1, i, 0.5));
    const maskB = Array.from({ length: 64 }, (_, i) => dropoutKeep(2, i, 0.5));
    expect(maskA).not.toEqual(maskB);
  });

  it('backward matches finite differences', () => {
    const rng = new Rng(52);
    const N = 29;
    const p = 0.3;
    const seed = 77;
    const values = { inp: uniform64(rng, N) };
    const R = uniform64(rng, N);
    const inp = be.alloc(N);
    const out = be.alloc(N);
    const objective = () => {
      be.write(inp, values.inp);
      be.dropoutForward(out, inp, N, p, seed);
      return dot(read(out), R);
    };
    const dinp = new GradBuffer(rng, N);
    be.dropoutBackward(dinp.tensor, floats(R), N, p, seed);
    expectGradients(values, objective, { inp: dinp.added() });
  });

  it('rejects p outside [0, 1)', () => {
    expect(() => be.dropoutForward(be.alloc(2), be.alloc(2), 2, 1, 0)).toThrow(/p must be in \[0, 1\), got 1/);
  });
});

describe('crossEntropy', () => {
  const N = 6,
    V = 7;
  const targetIds = [3, -1, 0, 6, -1, 2];

  it('losses are -log of a naive softmax, 0 for ignored rows; probs rows are the softmax', () => {
    const rng = new Rng(60);
    const z = normal64(rng, N * V, 2);
    const losses = be.alloc(N);
    const probs = be.alloc(N * V);
    be.crossEntropyForward(losses, probs, floats(z), int32s(targetIds), N, V);
    const l = read(losses);
    const p = read(probs);
    for (let n = 0; n < N; n++) {
      const exps = Array.from(z.subarray(n * V, (n + 1) * V), Math.exp);
      const total = exps.reduce((s, e) => s + e, 0);
      assertClose(
        p.subarray(n * V, (n + 1) * V),
        exps.map((e) => e / total),
        { rtol: 1e-13, atol: 1e-16 },
        `probs row ${n}`,
      );
      const target = targetIds[n];
      if (target === -1) expect(l[n]).toBe(0);
      else expect(l[n]).toBeCloseTo(-Math.log(exps[target] / total), 13);
    }
  });

  it('stays finite for huge logits', () => {
    const losses = be.alloc(1);
    const probs = be.alloc(3);
    be.crossEntropyForward(losses, probs, floats([1000, 0, -1000]), int32s([1]), 1, 3);
    expect(read(losses)[0]).toBeCloseTo(1000, 10);
    assertClose(read(probs), [1, Math.exp(-1000), 0], { rtol: 1e-15, atol: 1e-300 });
  });

  it('backward matches finite differences of dlossScale * sum(losses), ignored rows get no gradient', () => {
    const rng = new Rng(61);
    const dlossScale = 0.37;
    const values = { logits: normal64(rng, N * V) };
    const targets = int32s(targetIds);
    const logits = be.alloc(N * V);
    const losses = be.alloc(N);
    const probs = be.alloc(N * V);
    const objective = () => {
      be.write(logits, values.logits);
      be.crossEntropyForward(losses, probs, logits, targets, N, V);
      return dlossScale * read(losses).reduce((s, x) => s + x, 0);
    };
    objective();
    const dlogits = new GradBuffer(rng, N * V);
    be.crossEntropyBackward(dlogits.tensor, probs, targets, dlossScale, N, V);
    const added = dlogits.added();
    for (const ignoredRow of [1, 4]) expect(Array.from(added.subarray(ignoredRow * V, (ignoredRow + 1) * V))).toEqual(new Array(V).fill(0));
    expectGradients(values, objective, { logits: added });
  });

  it('rejects a target outside the vocabulary', () => {
    expect(() => be.crossEntropyForward(be.alloc(1), be.alloc(V), be.alloc(V), int32s([V]), 1, V)).toThrow(
      /targets\[0\] = 7 is outside \[0, 7\) and is not the ignore index -1/,
    );
  });
});

describe('adamwUpdate', () => {
  const common = { learningRate: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

  function update(p: number[], g: number[], m: number[], v: number[], weightDecay: number, step: number) {
    const tensors = { p: floats(p), g: floats(g), m: floats(m), v: floats(v) };
    be.adamwUpdate(tensors.p, tensors.g, tensors.m, tensors.v, { ...common, weightDecay, step });
    return { p: read(tensors.p), m: read(tensors.m), v: read(tensors.v) };
  }

  it('step 1 from zero moments: p -= lr * (g / (|g| + eps) + wd * p)', () => {
    // mhat = g, vhat = g^2: 0.5 - 0.1 * 0.2 / (0.2 + 1e-8) = 0.400000005
    const plain = update([0.5, -2], [0.2, 0], [0, 0], [0, 0], 0, 1);
    expect(plain.p[0]).toBeCloseTo(0.400000005, 15);
    expect(plain.p[1]).toBe(-2); // zero gradient, no decay: unchanged
    expect(plain.m[0]).toBeCloseTo(0.02, 15);
    expect(plain.v[0]).toBeCloseTo(0.00004, 17);
    // decay subtracts lr * wd * p = 0.1 * 0.1 * 0.5 = 0.005 more, and pulls -2 towards 0 by 0.02
    const decayed = update([0.5, -2], [0.2, 0], [0, 0], [0, 0], 0.1, 1);
    expect(decayed.p[0]).toBeCloseTo(0.395000005, 15);
    expect(decayed.p[1]).toBeCloseTo(-1.98, 15);
  });

  it('step 3 with prior moments uses bias corrections 1 - b^3', () => {
    // m = 0.9*0.1 + 0.1*(-0.3) = 0.06; v = 0.999*0.01 + 0.001*0.09 = 0.01008
    // mhat = 0.06 / 0.271 = 0.2214022140; vhat = 0.01008 / 0.002997001 = 3.3633622411, sqrt 1.8339471751
    // p = 0.5 - 0.1 * 0.2214022140 / 1.8339471751 = 0.4879275578 (and - 0.005 with wd 0.1)
    const plain = update([0.5], [-0.3], [0.1], [0.01], 0, 3);
    expect(plain.m[0]).toBeCloseTo(0.06, 15);
    expect(plain.v[0]).toBeCloseTo(0.01008, 15);
    expect(plain.p[0]).toBeCloseTo(0.4879275578, 10);
    const decayed = update([0.5], [-0.3], [0.1], [0.01], 0.1, 3);
    expect(decayed.p[0]).toBeCloseTo(0.4829275578, 10);
  });

  it('rejects a step below 1 and betas outside [0, 1)', () => {
    const t = floats([1]);
    expect(() => be.adamwUpdate(t, t, t, t, { ...common, weightDecay: 0, step: 0 })).toThrow(/step must be an integer >= 1/);
    expect(() => be.adamwUpdate(t, t, t, t, { ...common, beta2: 1, weightDecay: 0, step: 1 })).toThrow(/beta2 must be in \[0, 1\), got 1/);
  });
});

describe('squaredNorm, scale, transpose', () => {
  it('squaredNorm of [3, 4] is 25 and of a random vector is the naive sum', () => {
    const out = be.alloc(1);
    be.squaredNorm(out, floats([3, 4]));
    expect(read(out)[0]).toBe(25);
    const x = normal64(new Rng(70), 101);
    be.squaredNorm(out, floats(x));
    expect(read(out)[0]).toBeCloseTo(dot(x, x), 12);
  });

  it('squaredNorm accumulates in float64 on float32 storage', () => {
    const f32 = new JsBackend();
    const n = 1_000_000;
    const t = f32.alloc(n);
    f32.upload(t, new Float32Array(n).fill(0.1));
    const out = f32.alloc(1);
    f32.squaredNorm(out, t);
    // exact: n * fround(0.1)^2 = 10000.000298...; a float32 running sum drifts by ~1e-3 relative
    const exact = n * Math.fround(0.1) ** 2;
    expect(maxRelErr(f32.read(out), [exact])).toBeLessThan(1e-7);
    f32.dispose();
  });

  it('scale multiplies only the view it is given', () => {
    const base = floats([1, 2, 3, 4, 5]);
    be.scale(be.view(base, 1, 3), -2);
    expect(Array.from(read(base))).toEqual([1, -4, -6, -8, 5]);
  });

  it('transpose of a hand-written [2,3] matrix', () => {
    const out = be.alloc(6);
    be.transpose(out, floats([1, 2, 3, 4, 5, 6]), 2, 3);
    expect(Array.from(read(out))).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('storage: views, copy, upload/download, free', () => {
  it('views address the parent buffer at their offset, and views of views compose', () => {
    const base = floats([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const mid = be.view(base, 2, 5); // elements 2..6
    const inner = be.view(mid, 1, 2); // elements 3..4
    expect(mid.offset).toBe(2);
    expect(inner.offset).toBe(3);
    expect(Array.from(read(inner))).toEqual([3, 4]);
    be.write(inner, [30, 40]);
    expect(Array.from(read(base))).toEqual([0, 1, 2, 30, 40, 5, 6, 7, 8, 9]);
    expect(() => be.view(mid, 4, 2)).toThrow(/length must be an integer in \[0, 1\]/);
    expect(() => be.view(mid, 6, 0)).toThrow(/offset must be an integer in \[0, 5\], got 6/);
    expect(() => be.view(mid, -1, 1)).toThrow(/offset/);
  });

  it('ops read and write through views at their offsets', () => {
    const base = floats([9, 1, 2, 3, 9, 9, 9, 9]);
    be.residualForward(be.view(base, 5, 3), be.view(base, 1, 3), be.view(base, 1, 3), 3);
    expect(Array.from(read(base))).toEqual([9, 1, 2, 3, 9, 2, 4, 6]);
  });

  it('copy between views, rejecting overlap, wrong dtype and a short destination', () => {
    const a = floats([1, 2, 3, 4]);
    const b = be.alloc(6);
    be.copy(be.view(b, 2, 4), be.view(a, 1, 3));
    expect(Array.from(read(b))).toEqual([0, 0, 2, 3, 4, 0]);
    expect(() => be.copy(be.view(a, 1, 3), be.view(a, 0, 3))).toThrow(/overlaps/);
    expect(() => be.copy(be.alloc(4, 'i32'), a)).toThrow(/dst is i32 but src is f32/);
    expect(() => be.copy(be.alloc(2), a)).toThrow(/dst has 2 elements, needs at least src.length = 4/);
  });

  it('rejects the aliasing the contract forbids and allows the in-place forms it permits', () => {
    const buf = floats(uniform64(new Rng(80), 40));
    const at = (offset: number, length: number) => be.view(buf, offset, length);
    // matmul out [2,2] over its own input [2,2]
    expect(() => be.matmulForward(at(0, 4), at(2, 4), at(20, 4), null, 2, 2, 2)).toThrow(/matmulForward: out overlaps inp/);
    expect(() => be.accumulate(at(0, 4), at(0, 4), 4)).toThrow(/accumulate: dst overlaps src/);
    expect(() => be.layerNormForward(at(0, 4), at(4, 2), at(5, 2), at(10, 4), at(20, 2), at(22, 2), 2, 2)).toThrow(/mean overlaps rstd/);
    expect(() => be.crossEntropyBackward(at(0, 6), at(3, 6), int32s([0, 1]), 1, 2, 3)).toThrow(/dlogits overlaps probs/);
    // in place is fine for gelu, dropout and residual's first operand; a shifted overlap is not
    expect(() => be.geluForward(at(0, 4), at(0, 4), 4)).not.toThrow();
    expect(() => be.dropoutForward(at(0, 4), at(0, 4), 4, 0.5, 3)).not.toThrow();
    expect(() => be.residualForward(at(0, 4), at(0, 4), at(8, 4), 4)).not.toThrow();
    expect(() => be.geluForward(at(1, 4), at(0, 4), 4)).toThrow(/geluForward: out partly overlaps inp/);
    expect(() => be.residualForward(at(0, 4), at(8, 4), at(0, 4), 4)).toThrow(/residualForward: out overlaps b/);
  });

  it('upload takes the matching typed array; download returns float32 even from float64 storage', async () => {
    const t = be.alloc(3);
    be.upload(t, new Float32Array([0.1, 2, 3]));
    const down = await be.download(t);
    expect(down).toBeInstanceOf(Float32Array);
    expect(Array.from(down)).toEqual([Math.fround(0.1), 2, 3]);
    expect(() => be.upload(t, new Int32Array(3))).toThrow(/f32 tensor takes a Float32Array, got an Int32Array/);
    expect(() => be.upload(t, new Float32Array(4))).toThrow(/data has 4 elements, the tensor view holds 3/);
    const ids = be.alloc(2, 'i32');
    be.upload(ids, new Int32Array([5, -1]));
    expect(await be.download(ids)).toEqual(new Int32Array([5, -1]));
  });

  it('alloc rejects non-positive or fractional lengths and unknown dtypes', () => {
    expect(() => be.alloc(0)).toThrow(/length must be an integer in \[1, \d+\], got 0/);
    expect(() => be.alloc(1.5)).toThrow(/got 1.5/);
    expect(() => be.alloc(2, 'f16' as never)).toThrow(/dtype must be 'f32' or 'i32', got f16/);
  });

  it('free releases the whole buffer (also through a view), double free is harmless, use after free throws', () => {
    const local = new JsBackend();
    const t = local.alloc(10);
    const u = local.alloc(4, 'i32');
    expect(local.bytesInUse()).toBe(10 * 4 + 4 * 4);
    local.free(local.view(t, 2, 3));
    expect(local.bytesInUse()).toBe(4 * 4);
    local.free(t);
    expect(local.bytesInUse()).toBe(4 * 4);
    expect(() => local.zero(t)).toThrow(/zero: t belongs to a buffer that was freed/);
    expect(() => local.scale(be.alloc(1), 2)).toThrow(/not a tensor of this js backend/);
    local.dispose();
    expect(local.bytesInUse()).toBe(0);
    expect(() => local.read(u)).toThrow('read: this js backend was disposed');
  });

  it('f64 precision stores 8 bytes per float; ops reject too-short tensors by name', () => {
    const local = new JsBackend({ precision: 'f64' });
    local.alloc(3);
    expect(local.bytesInUse()).toBe(24);
    expect(() => local.matmulForward(local.alloc(5), local.alloc(6), local.alloc(6), null, 2, 3, 3)).toThrow(
      /matmulForward: out has 5 elements, needs at least 6/,
    );
    expect(() => local.geluForward(local.alloc(2), local.alloc(2), 0)).toThrow(/N must be a positive integer, got 0/);
    expect(() => new JsBackend({ precision: 'f16' as never })).toThrow(/precision must be 'f32' or 'f64'/);
  });
});

describe('backward ops with frozen outputs (null)', () => {
  // each call with some gradient outputs null must add exactly what the full call adds to the others
  const rng = new Rng(41);
  const [B, T, C, V, M, K, N] = [2, 3, 4, 5, 3, 4, 5];
  const random = (n: number) => floats(uniform64(rng, n));
  const added = (run: (outs: (Tensor | null)[]) => void, lengths: number[], keep: boolean[]): Float64Array[] => {
    const outs = lengths.map((n, i) => (keep[i] ? be.alloc(n) : null));
    run(outs);
    return outs.filter((t): t is Tensor => t !== null).map(read);
  };
  const expectSameAsFull = (run: (outs: (Tensor | null)[]) => void, lengths: number[], keeps: boolean[][]) => {
    const full = added(
      run,
      lengths,
      lengths.map(() => true),
    );
    for (const keep of keeps) {
      const partial = added(run, lengths, keep);
      expect(partial, keep.join()).toEqual(full.filter((_, i) => keep[i]));
    }
  };

  it('encoderBackward: dwte or dwpe alone', () => {
    const ids = int32s([4, 0, 3, 4, 1, 2]);
    const dout = random(B * T * C);
    expectSameAsFull(
      ([dwte, dwpe]) => be.encoderBackward(dwte, dwpe, dout, ids, B, T, C),
      [V * C, T * C],
      [
        [true, false],
        [false, true],
      ],
    );
  });

  it('layerNormBackward: dweight, dbias or both null', () => {
    const rows = B * T;
    const [inp, weight, bias, dout] = [random(rows * C), random(C), random(C), random(rows * C)];
    const [mean, rstd] = [be.alloc(rows), be.alloc(rows)];
    be.layerNormForward(be.alloc(rows * C), mean, rstd, inp, weight, bias, rows, C);
    expectSameAsFull(
      ([dinp, dweight, dbias]) => be.layerNormBackward(dinp!, dweight, dbias, dout, inp, weight, mean, rstd, rows, C),
      [rows * C, C, C],
      [
        [true, true, false],
        [true, false, true],
        [true, false, false],
      ],
    );
  });

  it('matmulBackward and matmulGeluBackward: dweight null with or without dbias', () => {
    const [inp, weight, dout, pre] = [random(M * K), random(K * N), random(M * N), random(M * K)];
    const keeps = [
      [true, false, true],
      [true, false, false],
      [false, false, true],
    ];
    expectSameAsFull(
      ([dinp, dweight, dbias]) => be.matmulBackward(dinp, dweight, dbias, dout, inp, weight, M, K, N),
      [M * K, K * N, N],
      keeps,
    );
    expectSameAsFull(
      ([dpre, dweight, dbias]) => be.matmulGeluBackward(dpre!, dweight, dbias, dout, inp, weight, pre, M, K, N),
      [M * K, K * N, N],
      keeps.slice(0, 2),
    );
  });
});
