/**
 * Token choice from one row of logits [V]: greedy argmax and seeded multinomial sampling, plus the
 * float64 softmax / log-softmax they share.
 */
import { Rng, RngStream } from '../util/rng.js';

/** softmax in float64: exp(l - max) / sum. A row that is all -Infinity gives all zeros. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  const out = new Float64Array(logits.length);
  const max = maxOf(logits);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** log-softmax in float64: l - max - log(sum exp(l - max)). Banned (-Infinity) logits stay -Infinity. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  const out = new Float64Array(logits.length);
  const max = maxOf(logits);
  if (max === -Infinity) return out.fill(-Infinity);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logSum = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logSum;
  return out;
}

/** argmax, lowest id among ties. Throws when no token is possible (all -Infinity) or a logit is NaN. */
export function greedy(logits: ArrayLike<number>): number {
  checkRow(logits);
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Draw one id from softmax(logits) with one uniform from `rng` (inverse CDF in id order).
 * Tokens at -Infinity are never drawn.
 */
export function sample(logits: ArrayLike<number>, rng: Rng): number {
  checkRow(logits);
  return sampleAt(logits, rng.next());
}

/**
 * The draw of `sample` with its uniform u in [0, 1) given: the first id (in id order) whose
 * cumulative probability exceeds u. The row must pass `rowProblem`.
 */
export function sampleAt(logits: ArrayLike<number>, u: number): number {
  const probs = softmax(logits);
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  // u fell in the rounding gap just below 1: the last possible token
  return last;
}

/** the sampling stream of a user's seed (RngStream.sampling), so it never disturbs init or data order */
export function samplingRng(seed: number): Rng {
  return new Rng(seed, RngStream.sampling);
}

function maxOf(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  return max;
}

function checkRow(logits: ArrayLike<number>): void {
  const problem = rowProblem(logits);
  if (problem !== null) throw new RangeError(`logits: ${problem}`);
}

/** why no token can be chosen from the row (empty, a NaN or +Infinity, every token -Infinity), or null */
export function rowProblem(logits: ArrayLike<number>): string | null {
  if (logits.length === 0) return 'the row is empty';
  let possible = false;
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i];
    if (Number.isNaN(l)) return `NaN at id ${i}`;
    if (l === Infinity) return `+Infinity at id ${i}`;
    if (l !== -Infinity) possible = true;
  }
  return possible ? null : 'every token is banned (-Infinity); no token can be chosen';
}
