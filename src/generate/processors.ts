/**
 * Logits processors: small pieces that each rewrite one row of logits [V] in place, given the ids
 * so far (prompt + generated). Banned tokens become -Infinity. Each is usable alone:
 *
 *   const p = topK(5);
 *   p(logits, ids);
 *
 * Generation applies them in Hugging Face's order: repetition penalty, no-repeat n-gram,
 * min-new-tokens (these three for every strategy), then, when sampling, temperature, top-k, top-p,
 * min-p.
 */

import { greedy, softmax } from './samplers.js';
import { fail } from '../util/describe.js';

/** Rewrites `logits` [V] in place and returns it. `ids` are all tokens so far, prompt included. */
export type LogitsProcessor = (logits: Float32Array, ids: ArrayLike<number>) => Float32Array;

function requireNonNegativeInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) fail(name, 'an integer >= 0', value);
}

/** Apply processors left to right. */
export function composeProcessors(processors: readonly LogitsProcessor[]): LogitsProcessor {
  if (!Array.isArray(processors as unknown) || !processors.every((p) => typeof p === 'function')) {
    throw new TypeError('composeProcessors: processors must be an array of functions (logits, ids) => logits');
  }
  return (logits, ids) => {
    for (const p of processors) p(logits, ids);
    return logits;
  };
}

/**
 * Divide logits by `t` (t > 0). t = 0 is the greedy limit: the argmax (lowest id among ties) keeps
 * its logit and every other token becomes -Infinity. t = 1 leaves logits unchanged.
 */
export function temperature(t: number): LogitsProcessor {
  if (!Number.isFinite(t) || t < 0) fail('temperature', 'a finite number >= 0', t);
  if (t === 0) {
    return (logits) => {
      const keep = greedy(logits);
      for (let i = 0; i < logits.length; i++) if (i !== keep) logits[i] = -Infinity;
      return logits;
    };
  }
  return (logits) => {
    if (t !== 1) for (let i = 0; i < logits.length; i++) logits[i] = logits[i] / t;
    return logits;
  };
}

/**
 * Keep the k highest logits. Tie rule (Hugging Face's): every token whose logit equals the k-th
 * highest is kept too, so more than k may survive. k = 0 disables the filter.
 */
export function topK(k: number): LogitsProcessor {
  requireNonNegativeInteger('topK', k);
  return (logits) => {
    if (k === 0 || k >= logits.length) return logits;
    const kth = Float32Array.from(logits).sort()[logits.length - k]; // ascending numeric sort
    for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
    return logits;
  };
}

/**
 * Nucleus filter: keep the smallest set of most probable tokens whose total probability reaches p.
 * Tie rule: tokens of equal probability are kept or dropped together — every token whose logit
 * equals the last one needed is kept, so the result never depends on token order. p = 1 keeps all.
 */
export function topP(p: number): LogitsProcessor {
  if (!(p > 0 && p <= 1)) fail('topP', 'in (0, 1]', p);
  return (logits) => {
    if (p === 1) return logits;
    const probs = softmax(logits);
    // only the probability where the total reaches p matters (ties share it), so a plain numeric
    // sort of the values is enough: no index order, O(V log V) on a typed array
    const sorted = Float64Array.from(probs).sort();
    let cumulative = 0;
    let threshold = 0;
    for (let i = sorted.length - 1; i >= 0; i--) {
      cumulative += sorted[i];
      if (cumulative >= p) {
        threshold = sorted[i];
        break;
      }
    }
    // rounding can leave the total just under p: then nothing is cut
    if (threshold === 0) return logits;
    for (let i = 0; i < logits.length; i++) if (probs[i] < threshold) logits[i] = -Infinity;
    return logits;
  };
}

/**
 * Min-p: keep tokens whose probability is at least `m` times the most probable token's
 * (p_i >= m * p_max, i.e. exp(l_i - l_max) >= m). m = 0 keeps all; m = 1 keeps the maximum and its ties.
 */
export function minP(m: number): LogitsProcessor {
  if (!(m >= 0 && m <= 1)) fail('minP', 'in [0, 1]', m);
  return (logits) => {
    if (m === 0) return logits;
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
    if (max === -Infinity) return logits;
    for (let i = 0; i < logits.length; i++) if (Math.exp(logits[i] - max) < m) logits[i] = -Infinity;
    return logits;
  };
}

/** ids >= first become -Infinity (a model vocabulary padded past its tokenizer's) */
export function banFrom(first: number): LogitsProcessor {
  requireNonNegativeInteger('banFrom', first);
  return (logits) => {
    logits.fill(-Infinity, first);
    return logits;
  };
}

/**
 * CTRL's repetition penalty over every distinct token already present in `ids`: a positive logit is
 * divided by `penalty`, a negative one multiplied (so penalty > 1 always makes the token less likely).
 */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  if (!Number.isFinite(penalty) || penalty <= 0) fail('repetitionPenalty', 'a finite number > 0', penalty);
  return (logits, ids) => {
    if (penalty === 1) return logits;
    const seen = new Set<number>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (seen.has(id) || id < 0 || id >= logits.length) continue;
      seen.add(id);
      const l = logits[id];
      logits[id] = l < 0 ? l * penalty : l / penalty;
    }
    return logits;
  };
}

/**
 * Forbid any n-gram from appearing twice: for every earlier occurrence of the last n-1 tokens, the
 * token that followed it is banned. With n = 1 every token already present is banned.
 *
 * The occurrences are found with Knuth-Morris-Pratt over ids (pattern: the last n-1 ids), so one
 * call costs O(ids.length) whatever n is; comparing the pattern at every start would cost
 * O(ids.length * n), quadratic when n grows with the prompt.
 */
export function noRepeatNgram(n: number): LogitsProcessor {
  if (!Number.isInteger(n) || n < 1) fail('noRepeatNgramSize', 'an integer >= 1', n);
  const ban = (logits: Float32Array, id: number) => {
    if (id >= 0 && id < logits.length) logits[id] = -Infinity;
  };
  return (logits, ids) => {
    const len = ids.length;
    const m = n - 1;
    if (m === 0) {
      for (let i = 0; i < len; i++) ban(logits, ids[i]);
      return logits;
    }
    if (len <= m) return logits;
    const start = len - m; // pattern = ids[start .. len - 1]
    // failure[i]: length of the longest proper border of pattern[0 .. i]
    const failure = new Int32Array(m);
    for (let i = 1, k = 0; i < m; i++) {
      while (k > 0 && ids[start + i] !== ids[start + k]) k = failure[k - 1];
      if (ids[start + i] === ids[start + k]) k++;
      failure[i] = k;
    }
    // a match ending at j (j <= len - 2) is followed by ids[j + 1], the token that n-gram used
    for (let j = 0, k = 0; j < len - 1; j++) {
      while (k > 0 && ids[j] !== ids[start + k]) k = failure[k - 1];
      if (ids[j] === ids[start + k]) k++;
      if (k === m) {
        ban(logits, ids[j + 1]);
        k = failure[k - 1];
      }
    }
    return logits;
  };
}

/**
 * Ban `eosTokenId` until `minNewTokens` tokens have been generated after a prompt of `promptLength`
 * ids (the count is ids.length - promptLength).
 */
export function minNewTokens(min: number, eosTokenId: number, promptLength: number): LogitsProcessor {
  requireNonNegativeInteger('minNewTokens', min);
  requireNonNegativeInteger('eosTokenId', eosTokenId);
  requireNonNegativeInteger('promptLength', promptLength);
  return (logits, ids) => {
    if (ids.length - promptLength < min && eosTokenId < logits.length) logits[eosTokenId] = -Infinity;
    return logits;
  };
}
