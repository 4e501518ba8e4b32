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
  const probs = softmax(logits);
  const u = rng.next();
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
  if (logits.length === 0) throw new RangeError('logits: the row is empty');
  let possible = false;
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i];
    if (Number.isNaN(l)) throw new RangeError(`logits: NaN at id ${i}`);
    if (l === Infinity) throw new RangeError(`logits: +Infinity at id ${i}`);
    if (l !== -Infinity) possible = true;
  }
  if (!possible) throw new RangeError('logits: every token is banned (-Infinity); no token can be chosen');
}
