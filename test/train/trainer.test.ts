import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { NonFiniteError, train, Trainer } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { poisonParameter } from '../helpers/poison.js';

const tiny: GPTConfigInput = { vocabSize: 13, maxSeqLen: 8, dModel: 16, nLayers: 2, nHeads: 2, seed: 5, backend: 'js' };

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed, 99);
  return Int32Array.from({ length: n }, () => rng.nextInt(vocab));
}

function randomSequences(count: number, vocab: number, maxLen: number, seed: number): number[][] {
  const rng = new Rng(seed, 98);
  return Array.from({ length: count }, () => Array.from({ length: 2 + rng.nextInt(maxLen - 1) }, () => rng.nextInt(vocab)));
}

/** The exact gradient of the mean loss over `batch` at the model's current parameters (dropout off). */
async function gradientsAt(model: GPTModel, inputs: Int32Array, targets: Int32Array, B: number): Promise<Record<string, Float32Array>> {
  await model.zeroGrad();
  await model.forward(inputs, targets, B);
  await model.backward();
  return model.getGradients();
}

function globalNorm(record: Record<string, ArrayLike<number>>): number {
  let sum = 0;
  for (const data of Object.values(record)) for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
  return Math.sqrt(sum);
}

function maxAbsDiff(a: Record<string, ArrayLike<number>>, b: Record<string, ArrayLike<number>>): number {
  let worst = 0;
  for (const name of Object.keys(a)) for (let i = 0; i < a[name].length; i++) worst = Math.max(worst, Math.abs(a[name][i] - b[name][i]));
  return worst;
}

describe('Trainer: one AdamW step against a hand-computed reference', () => {
  it('two steps equal AdamW computed in float64 from the model’s own gradients, decay only where entry.decay', async () => {
    const model = await createModel(tiny);
    const data = randomTokens(tiny.maxSeqLen + 1, tiny.vocabSize, 1); // one window: every batch is this window
    const inputs = Int32Array.from(data.subarray(0, 8));
    const targets = Int32Array.from(data.subarray(1, 9));
    const hp = { learningRate: 0.01, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.3 };
    const trainer = await Trainer.create(model, {
      data,
      batchSize: 1,
      steps: 2,
      warmupSteps: 0,
      schedule: 'constant',
      maxGradNorm: Infinity,
      ...hp,
    });

    const decays = new Map(model.paramLayout.map((e) => [e.name, e.decay]));
    expect(decays.get('wte.weight')).toBe(true);
    expect(decays.get('h.0.ln_1.bias')).toBe(false);
    const m: Record<string, Float64Array> = {};
    const v: Record<string, Float64Array> = {};
    let reference: Record<string, Float64Array> = {};
    const p0 = await model.getParameters();
    for (const [name, data] of Object.entries(p0)) {
      m[name] = new Float64Array(data.length);
      v[name] = new Float64Array(data.length);
      reference[name] = Float64Array.from(data);
    }
    for (let t = 1; t <= 2; t++) {
      const g = await gradientsAt(model, inputs, targets, 1);
      const next: Record<string, Float64Array> = {};
      for (const name of Object.keys(reference)) {
        const p = Float64Array.from((await model.getParameters())[name]);
        const wd = decays.get(name) ? hp.weightDecay : 0;
        for (let i = 0; i < p.length; i++) {
          m[name][i] = hp.beta1 * m[name][i] + (1 - hp.beta1) * g[name][i];
          v[name][i] = hp.beta2 * v[name][i] + (1 - hp.beta2) * g[name][i] ** 2;
          const mhat = m[name][i] / (1 - hp.beta1 ** t);
          const vhat = v[name][i] / (1 - hp.beta2 ** t);
          p[i] -= hp.learningRate * (mhat / (Math.sqrt(vhat) + hp.eps) + wd * p[i]);
        }
        next[name] = p;
      }
      reference = next;
      const metrics = await trainer.step();
      expect(metrics.learningRate).toBe(hp.learningRate);
      expect(metrics.gradNorm).toBeCloseTo(globalNorm(g), 4);
      expect(maxAbsDiff(await model.getParameters(), reference)).toBeLessThan(2e-6);
    }
    // the update moved every decayed weight: a no-op optimizer would fail the comparison above
    expect(maxAbsDiff(await model.getParameters(), p0)).toBeGreaterThan(1e-3);
  });
});

describe('Trainer: gradient accumulation', () => {
  // eps 1e-3 keeps AdamW's update a smooth function of the gradient: with a tiny eps the first step is
  // lr * sign(g), which turns rounding noise in near-zero gradients into full-size differences.
  const hp = { learningRate: 0.01, eps: 1e-3, warmupSteps: 0, schedule: 'constant' as const, maxGradNorm: Infinity, weightDecay: 0.1 };

  it('3 micro-batches of 2 windows give the update of one batch of 6 (to 1e-5)', async () => {
    const data = randomTokens(200, tiny.vocabSize, 2);
    const a = await createModel(tiny);
    const b = await createModel(tiny);
    const ta = await Trainer.create(a, { data, seqLen: 8, batchSize: 2, gradientAccumulationSteps: 3, steps: 2, ...hp });
    const tb = await Trainer.create(b, { data, seqLen: 8, batchSize: 6, steps: 2, ...hp });
    for (let s = 0; s < 2; s++) {
      const [ma, mb] = [await ta.step(), await tb.step()];
      expect(ma.trainLoss).toBeCloseTo(mb.trainLoss, 5);
      expect(ma.gradNorm).toBeCloseTo(mb.gradNorm, 5);
      expect(maxAbsDiff(await a.getGradients(), await b.getGradients())).toBeLessThan(1e-5);
      expect(maxAbsDiff(await a.getParameters(), await b.getParameters())).toBeLessThan(1e-5);
    }
  });

  it('padded sequences of uneven length are weighted by their target counts, as one big batch', async () => {
    const sequences = randomSequences(40, tiny.vocabSize, 9, 3);
    const a = await createModel(tiny);
    const b = await createModel(tiny);
    const ta = await Trainer.create(a, { sequences, batchSize: 3, gradientAccumulationSteps: 4, steps: 2, ...hp });
    const tb = await Trainer.create(b, { sequences, batchSize: 12, steps: 2, ...hp });
    for (let s = 0; s < 2; s++) {
      const [ma, mb] = [await ta.step(), await tb.step()];
      expect(ma.trainLoss).toBeCloseTo(mb.trainLoss, 5);
      expect(maxAbsDiff(await a.getGradients(), await b.getGradients())).toBeLessThan(1e-5);
      expect(maxAbsDiff(await a.getParameters(), await b.getParameters())).toBeLessThan(1e-5);
    }
  });
});

describe('Trainer: global-norm clipping', () => {
  it('scales the gradients to a norm of exactly maxGradNorm and reports the pre-clip norm', async () => {
    const model = await createModel(tiny);
    const data = randomTokens(9, tiny.vocabSize, 4);
    const g = await gradientsAt(model, Int32Array.from(data.subarray(0, 8)), Int32Array.from(data.subarray(1)), 1);
    const preClip = globalNorm(g);
    const maxGradNorm = preClip / 7;
    const trainer = await Trainer.create(model, { data, batchSize: 1, steps: 1, maxGradNorm });
    const metrics = await trainer.step();
    expect(metrics.gradNorm / preClip).toBeCloseTo(1, 5);
    const clipped = await model.getGradients();
    expect(globalNorm(clipped) / maxGradNorm).toBeCloseTo(1, 5);
    for (const name of Object.keys(g)) {
      for (let i = 0; i < g[name].length; i++) expect(clipped[name][i]).toBeCloseTo(g[name][i] / 7, 6);
    }
  });

  it('leaves gradients under the limit untouched', async () => {
    const model = await createModel(tiny);
    const data = randomTokens(9, tiny.vocabSize, 4);
    const g = await gradientsAt(model, Int32Array.from(data.subarray(0, 8)), Int32Array.from(data.subarray(1)), 1);
    const trainer = await Trainer.create(model, { data, batchSize: 1, steps: 1, maxGradNorm: globalNorm(g) * 2 });
    await trainer.step();
    expect(maxAbsDiff(await model.getGradients(), g)).toBe(0);
  });
});

describe('Trainer: non-finite loss', () => {
  async function modelAndData(): Promise<{ model: GPTModel; data: Int32Array }> {
    return { model: await createModel(tiny), data: randomTokens(100, tiny.vocabSize, 5) };
  }

  it('stops with an error naming the step and leaves the parameters as they were before it', async () => {
    const { model, data } = await modelAndData();
    const trainer = await Trainer.create(model, { data, batchSize: 2, steps: 10 });
    await trainer.step();
    await trainer.step();
    await poisonParameter(model, 'h.1.mlp.c_fc.weight', 3, NaN);
    const before = await model.getParameters();
    const err = await trainer.step().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as NonFiniteError).step).toBe(3);
    expect((err as Error).message).toMatch(/^training diverged at step 3: loss NaN/);
    expect(await model.getParameters()).toEqual(before);
  });

  it("nonFinite: 'skip' drops the update, records the skip and carries on", async () => {
    const { model, data } = await modelAndData();
    await poisonParameter(model, 'ln_f.bias', 0, Infinity);
    const before = await model.getParameters();
    const result = await train(model, { data, batchSize: 2, steps: 3, nonFinite: 'skip', logInterval: 3 });
    expect(result.steps).toBe(3);
    expect(result.history).toHaveLength(1);
    expect(result.history[0].skippedSteps).toBe(3);
    expect(await model.getParameters()).toEqual(before);
  });

  it('train() rejects with the error naming the step', async () => {
    const { model, data } = await modelAndData();
    await poisonParameter(model, 'wte.weight', 0, NaN);
    await expect(train(model, { data, batchSize: 2, steps: 5 })).rejects.toThrow(/step 1/);
  });
});

describe('train()', () => {
  it('stops after the current step when the signal aborts, returning what was done', async () => {
    const model = await createModel(tiny);
    const controller = new AbortController();
    const seen: number[] = [];
    const result = await train(model, {
      data: randomTokens(300, tiny.vocabSize, 6),
      batchSize: 2,
      steps: 50,
      signal: controller.signal,
      onStep: (m) => {
        seen.push(m.step);
        if (m.step === 3) controller.abort();
      },
    });
    expect(result.stopped).toBe('aborted');
    expect(result.steps).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    expect(result.history.map((h) => h.step)).toEqual([1, 2, 3]);
    expect(result.finalTrainLoss).toBe(result.history[2].trainLoss);

    const already = new AbortController();
    already.abort();
    const none = await train(await createModel(tiny), { data: randomTokens(300, tiny.vocabSize, 6), steps: 5, signal: already.signal });
    expect(none).toMatchObject({ stopped: 'aborted', steps: 0, history: [] });
  });

  it('evaluates on schedule, keeps the best validation loss and averages history over logInterval', async () => {
    const model = await createModel(tiny);
    const evals: number[] = [];
    const result = await train(model, {
      data: randomTokens(400, tiny.vocabSize, 7),
      valData: randomTokens(100, tiny.vocabSize, 8),
      batchSize: 4,
      steps: 12,
      evalInterval: 5,
      logInterval: 4,
      learningRate: 3e-3,
      onEval: (m) => evals.push(m.step),
    });
    expect(result.stopped).toBe('completed');
    expect(evals).toEqual([5, 10, 12]);
    expect(result.history.map((h) => h.step)).toEqual([4, 5, 8, 10, 12]);
    const withVal = result.history.filter((h) => h.valLoss !== undefined);
    expect(withVal.map((h) => h.step)).toEqual([5, 10, 12]);
    expect(result.bestValLoss).toBe(Math.min(...withVal.map((h) => h.valLoss!)));
    for (const h of withVal) expect(h.valPerplexity).toBeCloseTo(Math.exp(h.valLoss!), 10);
    // random tokens: the loss sits near ln(13) and never below what memorising could reach
    expect(result.finalTrainLoss).toBeGreaterThan(1.5);
    expect(result.finalTrainLoss).toBeLessThan(3.5);
  });

  it('evaluation is deterministic and uses no dropout', async () => {
    const model = await createModel({ ...tiny, dropout: 0.5 });
    const valData = randomTokens(60, tiny.vocabSize, 9);
    const trainer = await Trainer.create(model, { data: randomTokens(60, tiny.vocabSize, 10), valData, batchSize: 2, steps: 3 });
    const a = await trainer.evaluate();
    const b = await trainer.evaluate();
    expect(a.valLoss).toBe(b.valLoss);
    let sum = 0;
    let count = 0;
    for (let start = 0; start + 9 <= valData.length; start += 8) {
      const { loss } = await model.forward(valData.slice(start, start + 8), valData.slice(start + 1, start + 9), 1);
      sum += loss! * 8;
      count += 8;
    }
    expect(a.valLoss).toBeCloseTo(sum / count, 5);
  });

  it('dropout is active in training steps only', async () => {
    const window = randomTokens(9, tiny.vocabSize, 13); // one window: the step's batch is known
    const inputs = Int32Array.from(window.subarray(0, 8));
    const targets = Int32Array.from(window.subarray(1));
    for (const dropout of [0, 0.5]) {
      const model = await createModel({ ...tiny, dropout });
      const evalLoss = (await model.forward(inputs, targets, 1)).loss!;
      const trainer = await Trainer.create(model, { data: window, batchSize: 1, steps: 1 });
      const { trainLoss } = await trainer.step();
      if (dropout === 0) expect(trainLoss).toBeCloseTo(evalLoss, 6);
      else expect(Math.abs(trainLoss - evalLoss)).toBeGreaterThan(1e-3);
    }
  });

  it('rejects bad options with errors that name the option', async () => {
    const model = await createModel(tiny);
    const data = randomTokens(50, tiny.vocabSize, 11);
    await expect(Trainer.create(model, { data, seqLen: 9 })).rejects.toThrow("seqLen = 9 exceeds the model's maxSeqLen 8");
    await expect(Trainer.create(model, { data: [1, 2, 3], seqLen: 4 })).rejects.toThrow(
      'data has 3 tokens; it needs at least seqLen + 1 = 5',
    );
    await expect(Trainer.create(model, { data: [1, 2, 13], seqLen: 2 })).rejects.toThrow(
      "data[2] = 13 is not a token id of the model's vocabulary [0, 13)",
    );
    await expect(Trainer.create(model, { data, batchSize: 0 })).rejects.toThrow('batchSize must be an integer >= 1, got 0');
    await expect(Trainer.create(model, { data, beta2: 1 })).rejects.toThrow('beta2 must be in [0, 1), got 1');
    await expect(Trainer.create(model, { data, maxGradNorm: 0 })).rejects.toThrow(/maxGradNorm must be > 0/);
    await expect(Trainer.create(model, { data, steps: 5, epochs: 1 })).rejects.toThrow('give steps or epochs, not both');
    await expect(Trainer.create(model, {})).rejects.toThrow('give exactly one of data');
    await expect(Trainer.create(model, { data, learningRate: 0 })).rejects.toThrow('learningRate must be a finite number > 0, got 0');
    await expect(Trainer.create(model, { data, nonFinite: 'ignore' as never })).rejects.toThrow("nonFinite must be 'error' or 'skip'");
    await expect(Trainer.create(model, { data, lr: 1 } as never)).rejects.toThrow('unknown training option "lr"');
  });

  it('epochs turn into steps over the training rows', async () => {
    const model = await createModel(tiny);
    const trainer = await Trainer.create(model, {
      data: randomTokens(8 * 30 + 1, tiny.vocabSize, 12),
      batchSize: 4,
      gradientAccumulationSteps: 2,
      epochs: 2,
    });
    expect(trainer.totalSteps).toBe(Math.ceil((2 * 30) / 8));
  });
});
