import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  composeProcessors,
  minNewTokens,
  minP,
  noRepeatNgram,
  repetitionPenalty,
  temperature,
  topK,
  topP,
} from '../../src/generate/processors.js';

const NEG = -Infinity;
const f32 = (xs: number[]) => Float32Array.from(xs);
/** expected values as float32, computed by hand */
const expectArray = (actual: Float32Array, expected: number[]) => expect(Array.from(actual)).toEqual(expected.map(Math.fround));

describe('temperature', () => {
  it('divides every logit by t', () => {
    expectArray(temperature(2)(f32([2, -1, 0.5, 4]), []), [1, -0.5, 0.25, 2]);
    expectArray(temperature(0.5)(f32([2, -1, 0.5, 4]), []), [4, -2, 1, 8]);
  });
  it('t = 0 keeps only the argmax, lowest id among ties', () => {
    expectArray(temperature(0)(f32([3, 1, 3]), []), [3, NEG, NEG]);
    expectArray(temperature(0)(f32([0, 5, 1]), []), [NEG, 5, NEG]);
  });
  it('rejects t < 0 and non-finite t, naming the option', () => {
    expect(() => temperature(-1)).toThrow(/temperature.*-1/);
    expect(() => temperature(NaN)).toThrow(/temperature/);
    expect(() => temperature(Infinity)).toThrow(/temperature/);
  });
});

describe('topK', () => {
  it('keeps the k highest', () => {
    expectArray(topK(2)(f32([1, 3, 2, 5, 4]), []), [NEG, NEG, NEG, 5, 4]);
    expectArray(topK(1)(f32([1, 3, 2, 5, 4]), []), [NEG, NEG, NEG, 5, NEG]);
  });
  it('keeps every token tied with the k-th (so more than k may survive)', () => {
    expectArray(topK(2)(f32([1, 3, 3, 5]), []), [NEG, 3, 3, 5]);
  });
  it('k = 0 and k >= V leave the logits alone', () => {
    expectArray(topK(0)(f32([1, 2, 3]), []), [1, 2, 3]);
    expectArray(topK(5)(f32([1, 2, 3]), []), [1, 2, 3]);
  });
  it('rejects negative and fractional k', () => {
    expect(() => topK(-1)).toThrow(/topK.*-1/);
    expect(() => topK(1.5)).toThrow(/topK.*1\.5/);
  });
});

describe('topP', () => {
  // probabilities of [2, 1, 1, 0]: e^2, e, e, 1 over 7.389 + 2.718 + 2.718 + 1 = 13.826
  // = 0.5344, 0.1966, 0.1966, 0.0723; cumulative 0.5344, 0.7311, 0.9277, 1
  it('keeps the smallest prefix reaching p', () => {
    expectArray(topP(0.5)(f32([2, 1, 1, 0]), []), [2, NEG, NEG, NEG]);
    expectArray(topP(0.95)(f32([2, 1, 1, 0]), []), [2, 1, 1, 0]);
  });
  it('keeps tokens tied with the last one needed (0.6 needs one of the two 0.1966 tokens: both stay)', () => {
    expectArray(topP(0.6)(f32([2, 1, 1, 0]), []), [2, 1, 1, NEG]);
    // [1, 1, 1, 0]: each 1 has e / (3e + 1) = 0.297; p = 0.2 needs one of them: all three stay
    expectArray(topP(0.2)(f32([1, 1, 1, 0]), []), [1, 1, 1, NEG]);
    // tie order does not depend on ids: the same set with the ties in other places
    expectArray(topP(0.6)(f32([1, 0, 2, 1]), []), [1, NEG, 2, 1]);
  });
  it('p = 1 keeps everything; banned tokens stay banned', () => {
    expectArray(topP(1)(f32([5, 0, -5]), []), [5, 0, -5]);
    expectArray(topP(0.9)(f32([NEG, 0, 0]), []), [NEG, 0, 0]);
  });
  it('rejects p outside (0, 1]', () => {
    expect(() => topP(0)).toThrow(/topP.*\(0, 1\].*0/);
    expect(() => topP(1.5)).toThrow(/topP.*1\.5/);
    expect(() => topP(NaN)).toThrow(/topP/);
  });
});

describe('minP', () => {
  // exp(l - 3) for [3, 2, 1, 0] = 1, 0.3679, 0.1353, 0.0498
  it('keeps tokens with p >= minP * p_max', () => {
    expectArray(minP(0.3)(f32([3, 2, 1, 0]), []), [3, 2, NEG, NEG]);
    expectArray(minP(0.1)(f32([3, 2, 1, 0]), []), [3, 2, 1, NEG]);
    expectArray(minP(0.37)(f32([3, 2, 1, 0]), []), [3, NEG, NEG, NEG]);
    expectArray(minP(1)(f32([3, 3, 1]), []), [3, 3, NEG]);
    expectArray(minP(0)(f32([3, 2, 1, 0]), []), [3, 2, 1, 0]);
  });
  it('rejects minP outside [0, 1]', () => {
    expect(() => minP(-0.1)).toThrow(/minP.*-0\.1/);
    expect(() => minP(2)).toThrow(/minP.*2/);
  });
});

describe('repetitionPenalty (CTRL)', () => {
  it('divides positive and multiplies negative logits of tokens present, once each', () => {
    // ids 0 (logit 2), 1 (-1, twice), 3 (-3) are present; 2 and 4 are not
    expectArray(repetitionPenalty(2)(f32([2, -1, 0.5, -3, 4]), [0, 1, 1, 3]), [1, -2, 0.5, -6, 4]);
    // a penalty below 1 rewards repetition
    expectArray(repetitionPenalty(0.5)(f32([2, -1, 0.5]), [0, 1]), [4, -0.5, 0.5]);
  });
  it('rejects penalty <= 0', () => {
    expect(() => repetitionPenalty(0)).toThrow(/repetitionPenalty.*0/);
    expect(() => repetitionPenalty(-2)).toThrow(/repetitionPenalty.*-2/);
  });
});

describe('noRepeatNgram', () => {
  it('bans the token that followed each earlier occurrence of the last n-1 tokens', () => {
    // n = 3: last two tokens [1, 2] occurred at 0 followed by 3
    expectArray(noRepeatNgram(3)(f32([0, 0, 0, 0, 0]), [1, 2, 3, 1, 2]), [0, 0, 0, NEG, 0]);
    // n = 2: last token 2 was followed by 3 and by 4
    expectArray(noRepeatNgram(2)(f32([0, 0, 0, 0, 0]), [1, 2, 3, 2, 4, 2]), [0, 0, 0, NEG, NEG]);
    // n = 1: every token present
    expectArray(noRepeatNgram(1)(f32([0, 0, 0, 0, 0]), [0, 4]), [NEG, 0, 0, 0, NEG]);
  });
  it('bans nothing when the prefix never occurred or the history is too short', () => {
    expectArray(noRepeatNgram(3)(f32([1, 1, 1]), [0, 1, 2]), [1, 1, 1]);
    expectArray(noRepeatNgram(4)(f32([1, 1, 1]), [0, 1]), [1, 1, 1]);
  });
  it('rejects n < 1', () => {
    expect(() => noRepeatNgram(0)).toThrow(/noRepeatNgramSize.*0/);
  });

  /** the definition, checked at every start: O(len * n) */
  function naiveNgramBans(n: number, ids: number[], V: number): Float32Array {
    const out = new Float32Array(V);
    const len = ids.length;
    if (len < n - 1) return out;
    for (let i = 0; i + n <= len; i++) {
      let match = true;
      for (let j = 0; j < n - 1; j++) if (ids[i + j] !== ids[len - (n - 1) + j]) match = false;
      if (match) out[ids[i + n - 1]] = -Infinity;
    }
    return out;
  }

  it('bans exactly what the definition bans, on random histories over small alphabets', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 60 }), (n, ids) => {
        expect(noRepeatNgram(n)(new Float32Array(3), ids)).toEqual(naiveNgramBans(n, ids, 3));
      }),
      { numRuns: 500 },
    );
  });

  it('reads each id a bounded number of times however large n is (linear, not quadratic)', () => {
    // all-equal ids with n = len / 2 is the worst case of comparing at every start: ~len^2 / 4 reads
    const len = 4000;
    let reads = 0;
    const ids = new Proxy(new Array<number>(len).fill(0), {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const logits = noRepeatNgram(len / 2)(new Float32Array(2), ids);
    expect(logits[0]).toBe(-Infinity);
    expect(reads).toBeLessThan(8 * len);
  });
});

describe('minNewTokens', () => {
  it('bans eos until enough new tokens follow the prompt', () => {
    const p = minNewTokens(2, 3, 2); // eos 3, prompt of 2
    expectArray(p(f32([1, 1, 1, 1]), [0, 1]), [1, 1, 1, NEG]);
    expectArray(p(f32([1, 1, 1, 1]), [0, 1, 2]), [1, 1, 1, NEG]);
    expectArray(p(f32([1, 1, 1, 1]), [0, 1, 2, 2]), [1, 1, 1, 1]);
  });
  it('rejects negative counts', () => {
    expect(() => minNewTokens(-1, 0, 0)).toThrow(/minNewTokens.*-1/);
  });
});

describe('composeProcessors', () => {
  it('applies left to right: penalty, then temperature, then top-k', () => {
    const p = composeProcessors([repetitionPenalty(2), temperature(0.5), topK(2)]);
    // penalty on id 0: 4 -> 2; temperature 0.5: [4, 6, 2, -2]; top-2 keeps 6 and 4
    expectArray(p(f32([4, 3, 1, -1]), [0]), [4, 6, NEG, NEG]);
  });
});

describe('top-k and top-p against a plain reference on random rows with ties', () => {
  // small integer logits make ties common
  const rows = fc.array(fc.integer({ min: -4, max: 4 }), { minLength: 1, maxLength: 12 });

  /** reference: sort ids by logit (descending); keep the first k, plus ties of the k-th */
  function referenceTopK(logits: number[], k: number): number[] {
    if (k === 0 || k >= logits.length) return logits;
    const kth = [...logits].sort((a, b) => b - a)[k - 1];
    return logits.map((l) => (l >= kth ? l : -Infinity));
  }

  /** reference: walk ids by probability (descending) until the total reaches p; keep ties of the last */
  function referenceTopP(logits: number[], p: number): number[] {
    const max = Math.max(...logits);
    const weights = logits.map((l) => Math.exp(l - max));
    const total = weights.reduce((a, b) => a + b, 0);
    const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a]);
    let cumulative = 0;
    for (const id of order) {
      cumulative += weights[id] / total;
      if (cumulative >= p) return logits.map((l) => (l >= logits[id] ? l : -Infinity));
    }
    return logits;
  }

  it('topK', () => {
    fc.assert(
      fc.property(rows, fc.integer({ min: 0, max: 13 }), (logits, k) => {
        expect(Array.from(topK(k)(f32(logits), []))).toEqual(referenceTopK(logits, k));
      }),
      { seed: 5, numRuns: 500 },
    );
  });

  it('topP', () => {
    // p on a grid away from the cumulative sums' rounding
    fc.assert(
      fc.property(rows, fc.integer({ min: 1, max: 20 }), (logits, step) => {
        const p = step / 20 - 0.013;
        expect(Array.from(topP(p)(f32(logits), []))).toEqual(referenceTopP(logits, p));
      }),
      { seed: 6, numRuns: 500 },
    );
  });
});
