import { describe, expect, it } from 'vitest';
import { composeProcessors, temperature, topK, topP, minP, type LogitsProcessor } from '../../src/generate/processors.js';
import { greedy, logSoftmax, sample, samplingRng, softmax } from '../../src/generate/samplers.js';
import { Rng, RngStream } from '../../src/util/rng.js';

/**
 * Pearson's chi-square of observed counts against expected probabilities (cells with probability 0
 * must be empty: any draw there fails the caller's separate check).
 */
function chiSquare(counts: number[], probs: number[], draws: number): { stat: number; df: number } {
  let stat = 0;
  let cells = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    const expected = probs[i] * draws;
    stat += (counts[i] - expected) ** 2 / expected;
    cells++;
  }
  return { stat, df: cells - 1 };
}

/** chi-square critical values at significance 0.001, by degrees of freedom */
const CRITICAL_0_001: Record<number, number> = { 1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515 };

const BASE_PROBS = [0.3, 0.25, 0.2, 0.1, 0.08, 0.07];
const BASE_LOGITS = Float32Array.from(BASE_PROBS.map(Math.log));
const DRAWS = 20000;

function drawCounts(process: LogitsProcessor, seed: number): number[] {
  const rng = samplingRng(seed);
  const counts = new Array(BASE_PROBS.length).fill(0);
  for (let i = 0; i < DRAWS; i++) counts[sample(process(Float32Array.from(BASE_LOGITS), []), rng)]++;
  return counts;
}

function normalise(weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

describe('softmax / logSoftmax', () => {
  it('match hand-worked values', () => {
    const p = softmax([0, Math.log(3)]);
    expect(p[0]).toBeCloseTo(0.25, 12);
    expect(p[1]).toBeCloseTo(0.75, 12);
    const lp = logSoftmax([0, Math.log(3), -Infinity]);
    expect(lp[0]).toBeCloseTo(Math.log(0.25), 12);
    expect(lp[1]).toBeCloseTo(Math.log(0.75), 12);
    expect(lp[2]).toBe(-Infinity);
  });
  it('are stable for large logits', () => {
    const p = softmax([1000, 1000]);
    expect(Array.from(p)).toEqual([0.5, 0.5]);
  });
});

describe('greedy', () => {
  it('takes the argmax, lowest id among ties', () => {
    expect(greedy([1, 5, 2])).toBe(1);
    expect(greedy([4, 1, 4])).toBe(0);
    expect(greedy([-Infinity, -3, -3])).toBe(1);
  });
  it('rejects NaN and rows with no possible token', () => {
    expect(() => greedy([0, NaN])).toThrow(/NaN at id 1/);
    expect(() => greedy([-Infinity, -Infinity])).toThrow(/banned/);
  });
});

describe('sample', () => {
  it('uses the sampling stream of the seed: same seed, same draws; another seed differs', () => {
    const draws = (seed: number) =>
      Array.from(
        { length: 200 },
        (
          (rng) => () =>
            sample(BASE_LOGITS, rng)
        )(samplingRng(seed)),
      );
    expect(draws(7)).toEqual(draws(7));
    expect(draws(7)).not.toEqual(draws(8));
    // the stream is RngStream.sampling of the user's seed
    const rng = new Rng(7, RngStream.sampling);
    expect(draws(7).slice(0, 5)).toEqual(Array.from({ length: 5 }, () => sample(BASE_LOGITS, rng)));
  });

  it('matches the untouched distribution (chi-square, seed 1, df 5, critical 20.515 at 0.001)', () => {
    const counts = drawCounts((l) => l, 1);
    const { stat, df } = chiSquare(counts, BASE_PROBS, DRAWS);
    expect(df).toBe(5);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
  });

  it('under top-k 3 draws only the top 3, renormalised (chi-square, seed 2)', () => {
    const counts = drawCounts(topK(3), 2);
    const expected = normalise([0.3, 0.25, 0.2, 0, 0, 0]);
    expect(counts.slice(3)).toEqual([0, 0, 0]);
    const { stat, df } = chiSquare(counts, expected, DRAWS);
    expect(df).toBe(2);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
  });

  it('under top-p 0.5 draws only the nucleus {0.3, 0.25}, renormalised (chi-square, seed 3)', () => {
    const counts = drawCounts(topP(0.5), 3);
    const expected = normalise([0.3, 0.25, 0, 0, 0, 0]);
    expect(counts.slice(2)).toEqual([0, 0, 0, 0]);
    const { stat, df } = chiSquare(counts, expected, DRAWS);
    expect(df).toBe(1);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
  });

  it('under temperature 0.5 draws p^2 renormalised (chi-square, seed 4)', () => {
    const counts = drawCounts(temperature(0.5), 4);
    const expected = normalise(BASE_PROBS.map((p) => p * p));
    const { stat, df } = chiSquare(counts, expected, DRAWS);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
    // the test has power: the same counts reject the untempered distribution
    expect(chiSquare(counts, BASE_PROBS, DRAWS).stat).toBeGreaterThan(CRITICAL_0_001[5]);
  });

  it('under temperature 2 then top-p 0.6 draws sqrt(p) truncated to the nucleus (chi-square, seed 5)', () => {
    // sqrt(p) normalised: 0.2322, 0.2120, 0.1896, 0.1341, 0.1199, 0.1122 (cumulative 0.2322, 0.4442, 0.6338)
    const counts = drawCounts(composeProcessors([temperature(2), topP(0.6)]), 5);
    const roots = BASE_PROBS.map(Math.sqrt);
    const expected = normalise([roots[0], roots[1], roots[2], 0, 0, 0]);
    expect(counts.slice(3)).toEqual([0, 0, 0]);
    const { stat, df } = chiSquare(counts, expected, DRAWS);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
  });

  it('under min-p 0.5 keeps tokens with p >= 0.15 (chi-square, seed 6)', () => {
    const counts = drawCounts(minP(0.5), 6);
    const expected = normalise([0.3, 0.25, 0.2, 0, 0, 0]);
    expect(counts.slice(3)).toEqual([0, 0, 0]);
    const { stat, df } = chiSquare(counts, expected, DRAWS);
    expect(stat).toBeLessThan(CRITICAL_0_001[df]);
  });

  it('never draws a banned token', () => {
    const rng = samplingRng(9);
    for (let i = 0; i < 2000; i++) expect(sample([-Infinity, 0, -Infinity, 0], rng) % 2).toBe(1);
  });
});
