import { describe, expect, it } from 'vitest';
import { generate, generateStream, type StreamToken } from '../../src/generate/generate.js';
import type { GenerateResult, GenerateSequences } from '../../src/generate/options.js';
import { windowKeep } from '../../src/generate/window.js';
import { byteTokenizer, charTokenizer, fakeModel, markovLogits, type LogitsFn } from './fake-model.js';

// A chain where greedy is myopic. Tokens: S 0 (start), A 1, B 2, X 3, Y 4, E 5 (eos).
// From S: A 0.5, B 0.4, X 0.05, Y 0.05. From A: X 0.35, Y 0.25, A 0.2, B 0.2. From B: X 0.9, Y 0.1.
// Greedy: S A X (0.5 * 0.35 = 0.175). Best of length 2: S B X (0.4 * 0.9 = 0.36).
// Every sequence of length 2, by probability: B X .36, A X .175, A Y .125, A A .1, A B .1, B Y .04, ...
const S = 0,
  A = 1,
  B = 2,
  X = 3,
  Y = 4,
  E = 5;
const MYOPIC = {
  [S]: { [A]: 0.5, [B]: 0.4, [X]: 0.05, [Y]: 0.05 },
  [A]: { [X]: 0.35, [Y]: 0.25, [A]: 0.2, [B]: 0.2 },
  [B]: { [X]: 0.9, [Y]: 0.1 },
  [X]: { [E]: 1 },
  [Y]: { [E]: 1 },
  [E]: { [E]: 1 },
};
const myopicModel = (maxSeqLen = 32) => fakeModel(6, maxSeqLen, markovLogits(MYOPIC, 6));

/** a fixed, seeded pseudo-random table of logits keyed by the last two tokens (a second-order chain) */
function secondOrderLogits(vocabSize: number, seed: number): LogitsFn {
  const table = new Map<string, Float64Array>();
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  for (let a = 0; a < vocabSize; a++)
    for (let b = 0; b < vocabSize; b++)
      table.set(
        `${a},${b}`,
        Float64Array.from({ length: vocabSize }, () => 3 * uniform()),
      );
  return (row) => table.get(`${row[row.length - 2] ?? 0},${row[row.length - 1]}`)!;
}

function logSoftmax(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[id] - max - Math.log(sum);
}

/** total log-probability of `ids` after `prompt` under a logits function of the whole row */
function sequenceLogprob(logitsOf: LogitsFn, prompt: number[], ids: number[]): number {
  const row = [...prompt];
  let total = 0;
  for (const id of ids) {
    total += logSoftmax(logitsOf(row), id);
    row.push(id);
  }
  return total;
}

const many = (r: GenerateResult | GenerateSequences) => (r as GenerateSequences).sequences;

describe('greedy on a hand-built chain', () => {
  it('follows the known path and stops at eos (eos included in ids)', async () => {
    const model = myopicModel();
    const r = await generate(model, [S], { maxNewTokens: 10, eosTokenId: E, returnLogprobs: true });
    expect(r.ids).toEqual([A, X, E]);
    expect(r.finishReason).toBe('eos');
    expect(r.logprobs!.map((x) => Math.exp(x))).toEqual([expect.closeTo(0.5, 6), expect.closeTo(0.35, 6), expect.closeTo(1, 6)]);
    expect(model.liveCaches).toBe(0);
  });

  it('feeds the prompt in one pass, then one position per step', async () => {
    const model = myopicModel();
    await generate(model, [S, A, B, S], { maxNewTokens: 3 });
    expect(model.calls.map((c) => c.Tn)).toEqual([4, 1, 1]);
    expect(model.calls.map((c) => c.startLength)).toEqual([0, 4, 5]);
  });

  it('stops at maxNewTokens with finishReason length', async () => {
    const r = await generate(myopicModel(), [S], { maxNewTokens: 2, eosTokenId: E });
    expect(r).toEqual({ ids: [A, X], finishReason: 'length' });
  });

  it('repetition penalty and n-gram blocking give the hand-worked paths', async () => {
    // stationary logits [3, 2, 1, 0] after any token
    const model = () => fakeModel(4, 64, () => [3, 2, 1, 0]);
    expect((await generate(model(), [3], { maxNewTokens: 4 })).ids).toEqual([0, 0, 0, 0]);
    // penalty 2: step 1 [3, 2, 1, 0/2] -> 0; step 2 [1.5, 2, 1, 0] -> 1; then [1.5, 1, 1, 0] -> 0, 0
    expect((await generate(model(), [3], { maxNewTokens: 4, repetitionPenalty: 2 })).ids).toEqual([0, 1, 0, 0]);
    // bigram blocking: 3 0 | 0 (0 0 is new) | 0 followed by 0 before: 1 | 1 -> 0 is new: 0 | 0 0 and 0 1 used: 2
    expect((await generate(model(), [3], { maxNewTokens: 5, noRepeatNgramSize: 2 })).ids).toEqual([0, 0, 1, 0, 2]);
  });

  it('minNewTokens bans eos until reached', async () => {
    // eos (2) is the most likely token everywhere
    const model = fakeModel(3, 16, () => [1, 0, 2]);
    expect((await generate(model, [0], { maxNewTokens: 5, eosTokenId: 2 })).ids).toEqual([2]);
    const r = await generate(model, [0], { maxNewTokens: 5, eosTokenId: 2, minNewTokens: 3 });
    expect(r.ids).toEqual([0, 0, 0, 2]);
  });

  it('an empty prompt starts from bosTokenId, or from eos', async () => {
    const model = myopicModel();
    expect((await generate(model, [], { maxNewTokens: 2, bosTokenId: S })).ids).toEqual([A, X]);
    // from eos the chain stays at eos
    expect((await generate(model, [], { maxNewTokens: 2, eosTokenId: E })).ids).toEqual([E]);
  });
});

describe('beam search', () => {
  it('with 3 beams finds a more probable sequence than greedy', async () => {
    const greedy = await generate(myopicModel(), [S], { maxNewTokens: 2 });
    const model = myopicModel();
    const beam = await generate(model, [S], { maxNewTokens: 2, numBeams: 3 });
    expect(greedy.ids).toEqual([A, X]);
    expect(beam.ids).toEqual([B, X]);
    const logitsOf = markovLogits(MYOPIC, 6);
    expect(Math.exp(sequenceLogprob(logitsOf, [S], beam.ids))).toBeCloseTo(0.36, 6);
    expect(Math.exp(sequenceLogprob(logitsOf, [S], greedy.ids))).toBeCloseTo(0.175, 6);
    // HF's score: sum of log-probabilities / length^1
    expect(beam.score).toBeCloseTo(Math.log(0.36) / 2, 6);
    // every returned beam: HF's score from the table's probabilities, best first
    const all = (await generate(myopicModel(), [S], { maxNewTokens: 2, numBeams: 3, numReturnSequences: 3 })) as GenerateSequences;
    expect(all.sequences[0].ids).toEqual(beam.ids);
    for (const sequence of all.sequences) {
      expect(sequence.score).toBeCloseTo(sequenceLogprob(logitsOf, [S], sequence.ids) / sequence.ids.length, 6);
    }
    expect(all.sequences.map((s) => s.score!)).toEqual([...all.sequences.map((s) => s.score!)].sort((a, b) => b - a));
    expect(model.calls.every((c) => c.batchSize === 3)).toBe(true);
    expect(model.liveCaches).toBe(0);
  });

  it('numReturnSequences comes back ranked, best first', async () => {
    const r = await generate(myopicModel(), [S], { maxNewTokens: 2, numBeams: 3, numReturnSequences: 3, returnLogprobs: true });
    const seqs = many(r);
    expect(seqs.map((s) => s.ids)).toEqual([
      [B, X],
      [A, X],
      [A, Y],
    ]);
    expect(seqs.map((s) => s.score)).toEqual(
      [Math.log(0.36) / 2, Math.log(0.175) / 2, Math.log(0.125) / 2].map((v) => expect.closeTo(v, 6)),
    );
    for (const s of seqs) expect(s.logprobs!.reduce((a, b) => a + b, 0) / 2).toBeCloseTo(s.score!, 9);
  });

  it('with enough beams equals exhaustive search over every sequence (second-order chain, so reordering matters)', async () => {
    const V = 3,
      steps = 3,
      prompt = [0, 2, 1, 2];
    const logitsOf = secondOrderLogits(V, 11);
    // all 27 continuations of length 3, ranked by total log-probability
    const all: { ids: number[]; logprob: number }[] = [];
    for (let a = 0; a < V; a++)
      for (let b = 0; b < V; b++)
        for (let c = 0; c < V; c++) all.push({ ids: [a, b, c], logprob: sequenceLogprob(logitsOf, prompt, [a, b, c]) });
    all.sort((p, q) => q.logprob - p.logprob);
    const expected = all.slice(0, 9);
    // 9 beams hold every prefix of length 2, so the last step ranks all 27 sequences; maxSeqLen 4
    // makes the context slide at every step (the chain only looks at the last two tokens, which stay)
    for (const maxSeqLen of [16, 4]) {
      const model = fakeModel(V, maxSeqLen, logitsOf);
      const seqs = many(await generate(model, prompt, { maxNewTokens: steps, numBeams: 9, numReturnSequences: 9, eosTokenId: null }));
      expect(seqs.map((s) => s.ids)).toEqual(expected.map((e) => e.ids));
      seqs.forEach((s, i) => expect(s.score).toBeCloseTo(expected[i].logprob / steps, 5));
      expect(model.liveCaches).toBe(0);
    }
  });

  it('lengthPenalty decides between a short finished hypothesis and a long one', async () => {
    // S: eos 0.3, A 0.7; A: A 0.6, B 0.4; B: A 0.6, B 0.4
    const chain = { 0: { 5: 0.3, 1: 0.7 }, 1: { 1: 0.6, 2: 0.4 }, 2: { 1: 0.6, 2: 0.4 } };
    const model = () => fakeModel(6, 16, markovLogits(chain, 6));
    // sum only: [eos] (log 0.3 = -1.204) beats A A A (log 0.252 = -1.378)
    const sumOnly = many(
      await generate(model(), [0], { maxNewTokens: 3, numBeams: 2, numReturnSequences: 2, eosTokenId: 5, lengthPenalty: 0 }),
    );
    expect(sumOnly.map((s) => s.ids)).toEqual([[5], [1, 1, 1]]);
    expect(sumOnly.map((s) => s.finishReason)).toEqual(['eos', 'length']);
    expect(sumOnly[0].score).toBeCloseTo(Math.log(0.3), 6);
    // per token: A A A (-1.378 / 3 = -0.459) beats [eos] (-1.204)
    const perToken = await generate(model(), [0], { maxNewTokens: 3, numBeams: 2, eosTokenId: 5, lengthPenalty: 1 });
    expect(perToken.ids).toEqual([1, 1, 1]);
    expect(perToken.score).toBeCloseTo(Math.log(0.252) / 3, 6);
  });

  it('earlyStopping stops at numBeams finished; without it the search goes on while a beam can still win', async () => {
    // S: eos 0.3, A 0.7; A: eos 0.2, B 0.8; B: C 1; C: C 1. Two finished after step 2: [eos] (log 0.3)
    // and [A, eos] (log 0.14), while [A, B] (log 0.56) runs on to [A, B, C, C] (log 0.56).
    const chain = { 0: { 5: 0.3, 1: 0.7 }, 1: { 5: 0.2, 2: 0.8 }, 2: { 3: 1 }, 3: { 3: 1 } };
    const model = () => fakeModel(6, 16, markovLogits(chain, 6));
    const options = { maxNewTokens: 4, numBeams: 2, eosTokenId: 5, lengthPenalty: 0 };
    const early = await generate(model(), [0], { ...options, earlyStopping: true });
    expect(early.ids).toEqual([5]);
    const patient = await generate(model(), [0], { ...options, earlyStopping: false });
    expect(patient.ids).toEqual([1, 2, 3, 3]);
    expect(patient.score).toBeCloseTo(Math.log(0.56), 6);
  });
});

describe('sampling through generate', () => {
  // the same distribution after every token: 0.3, 0.25, 0.2, 0.1, 0.08, 0.07
  const probs = [0.3, 0.25, 0.2, 0.1, 0.08, 0.07];
  const stationary = (maxSeqLen: number) => fakeModel(6, maxSeqLen, () => probs.map(Math.log));

  it('frequencies under top-k 3 match the truncated renormalised distribution (chi-square, seed 42, df 2, critical 13.816 at 0.001)', async () => {
    const model = stationary(64);
    const n = 3000;
    const r = await generate(model, [0], { maxNewTokens: n, doSample: true, topK: 3, seed: 42 });
    const counts = new Array(6).fill(0);
    for (const id of r.ids) counts[id]++;
    expect(counts.slice(3)).toEqual([0, 0, 0]);
    const kept = probs.slice(0, 3);
    const total = kept.reduce((a, b) => a + b, 0);
    const stat = kept.reduce((acc, p, i) => acc + (counts[i] - (n * p) / total) ** 2 / ((n * p) / total), 0);
    expect(stat).toBeLessThan(13.816);
    // the 3001-token context slid through a 64-position window: rebuilt with the last 48 tokens each time
    expect(windowKeep(64)).toBe(48);
    const rebuilds = model.calls.filter((c) => c.Tn > 1);
    expect(rebuilds.every((c) => c.Tn === 48 && c.startLength === 0)).toBe(true);
    expect(model.calls.every((c) => c.startLength + c.Tn <= 64)).toBe(true);
    // the history (prompt 1 + 2999 fed) first needs a 65th position at 65 tokens; each rebuild leaves
    // 16 free positions, so the next comes 17 tokens later
    expect(rebuilds.length).toBe(Math.floor((n - 65) / 17) + 1);
  });

  it('same seed, same output; another seed, another output', async () => {
    const run = (seed: number) => generate(stationary(16), [0], { maxNewTokens: 40, doSample: true, topP: 0.9, temperature: 1.3, seed });
    const [a, b, c] = await Promise.all([run(5), run(5), run(6)]);
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
  });

  it('temperature 0 while sampling is greedy', async () => {
    const r = await generate(myopicModel(), [S], { maxNewTokens: 2, doSample: true, temperature: 0, seed: 3 });
    expect(r.ids).toEqual([A, X]);
  });

  it('numReturnSequences samples ranked by total log-probability', async () => {
    const model = stationary(16);
    const seqs = many(
      await generate(model, [0], { maxNewTokens: 6, doSample: true, numReturnSequences: 4, seed: 1, returnLogprobs: true }),
    );
    expect(seqs).toHaveLength(4);
    for (const s of seqs) {
      expect(s.ids).toHaveLength(6);
      expect(s.score).toBeCloseTo(
        s.ids.reduce((acc, id) => acc + Math.log(probs[id]), 0),
        5,
      );
    }
    for (let i = 1; i < 4; i++) expect(seqs[i - 1].score!).toBeGreaterThanOrEqual(seqs[i].score!);
    expect(model.calls[0].batchSize).toBe(4);
  });
});

describe('text, streaming, stop strings', () => {
  /** a model that always writes `script` (bytes) after the prompt, then eos if given */
  function scriptModel(script: string, maxSeqLen = 64, promptLength = 1) {
    const bytes = Array.from(new TextEncoder().encode(script));
    return fakeModel(256, maxSeqLen, (row) => {
      // the row holds the window; position in the script = how many bytes follow the prompt
      const logits = new Float32Array(256).fill(-10);
      const written = row.length - promptLength;
      logits[bytes[written] ?? 0] = 10;
      return logits;
    });
  }

  it('decodes the new tokens, eos excluded', async () => {
    const tokenizer = byteTokenizer(0);
    const r = await generate(scriptModel('hi there'), '>', { tokenizer, maxNewTokens: 20 });
    expect(r.text).toBe('hi there');
    expect(r.ids.at(-1)).toBe(0);
    expect(r.finishReason).toBe('eos');
  });

  it('cuts the text before the stop string and stops there', async () => {
    const tokenizer = byteTokenizer();
    const r = await generate(scriptModel('hello world\n\nbye'), '>', { tokenizer, maxNewTokens: 30, stop: ['\n\n', 'zzz'] });
    expect(r.text).toBe('hello world');
    expect(r.finishReason).toBe('stop');
    expect(r.ids).toEqual(tokenizer.encode('hello world\n\n'));
  });

  it('streams whole characters, and never shows part of a stop string', async () => {
    const tokenizer = byteTokenizer();
    const tokens: StreamToken[] = [];
    for await (const t of generateStream(scriptModel('héllo €5\nok\n\nrest'), '>', { tokenizer, maxNewTokens: 40, stop: '\n\n' }))
      tokens.push(t);
    const pieces = tokens.map((t) => t.text!);
    expect(pieces.join('')).toBe('héllo €5\nok');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    // 'é' is 2 bytes, '€' 3: the first byte of each brings no text, the last brings the character
    expect(pieces.slice(0, 3)).toEqual(['h', '', 'é']);
    // the first '\n' is held back until the next byte shows it is not the stop string
    const newline = tokens.findIndex((t) => t.id === 10);
    expect(pieces[newline]).toBe('');
    expect(pieces[newline + 1]).toBe('\no');
    expect(tokens.at(-1)!.finishReason).toBe('stop');
    expect(tokens.map((t) => t.id)).toEqual(tokenizer.encode('héllo €5\nok\n\n'));
  });

  it('a stream and generate agree token for token', async () => {
    const options = { maxNewTokens: 25, doSample: true, topK: 4, seed: 9, returnLogprobs: true };
    const model = fakeModel(8, 8, secondOrderLogits(8, 3));
    const streamed: StreamToken[] = [];
    for await (const t of generateStream(model, [1, 2, 3], options)) streamed.push(t);
    const r = await generate(fakeModel(8, 8, secondOrderLogits(8, 3)), [1, 2, 3], options);
    expect(streamed.map((t) => t.id)).toEqual(r.ids);
    expect(streamed.map((t) => t.logprob)).toEqual(r.logprobs);
    expect(model.liveCaches).toBe(0);
  });

  it('beam search finishes a hypothesis at a stop string during the search, not after', async () => {
    // S: A 0.6, B 0.4; A: ';' 1; ';': X 0.5, Y 0.5; B: X 0.9, Y 0.1; X: X 1; Y: Y 1. Sum only.
    // 'A;' ends at the stop string with log 0.6 = -0.51, beating B X X X (log 0.9 * 0.4 = -1.02); had
    // the search run on, A ; X X (log 0.3 = -1.20) would have lost to B X X X.
    const tokenizer = charTokenizer('SAB;XY');
    const chain = { 0: { 1: 0.6, 2: 0.4 }, 1: { 3: 1 }, 3: { 4: 0.5, 5: 0.5 }, 2: { 4: 0.9, 5: 0.1 }, 4: { 4: 1 }, 5: { 5: 1 } };
    const model = fakeModel(6, 16, markovLogits(chain, 6));
    const seqs = many(
      await generate(model, 'S', { tokenizer, maxNewTokens: 4, numBeams: 2, numReturnSequences: 2, lengthPenalty: 0, stop: ';' }),
    );
    expect(seqs.map((s) => s.text)).toEqual(['A', 'BXXX']);
    expect(seqs.map((s) => s.ids)).toEqual([
      [1, 3],
      [2, 4, 4, 4],
    ]);
    expect(seqs.map((s) => s.finishReason)).toEqual(['stop', 'length']);
    expect(seqs[0].score).toBeCloseTo(Math.log(0.6), 6);
  });

  it('beam results are cut at stop strings too', async () => {
    const tokenizer = byteTokenizer();
    const r = await generate(scriptModel('ab;cd'), '>', { tokenizer, maxNewTokens: 5, numBeams: 2, stop: ';' });
    expect(r.text).toBe('ab');
    expect(r.ids).toEqual(tokenizer.encode('ab;'));
    expect(r.finishReason).toBe('stop');
  });
});

describe('abort', () => {
  it('an aborted signal rejects before any work', async () => {
    const model = myopicModel();
    const controller = new AbortController();
    controller.abort();
    await expect(generate(model, [S], { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(model.calls).toHaveLength(0);
  });

  it('aborting mid-way rejects generate with the reason and frees the cache', async () => {
    const controller = new AbortController();
    let calls = 0;
    const model = fakeModel(4, 64, () => {
      if (++calls === 5) controller.abort(new Error('user stopped'));
      return [0, 1, 2, 3];
    });
    await expect(generate(model, [0], { maxNewTokens: 50, signal: controller.signal })).rejects.toThrow('user stopped');
    expect(calls).toBe(5);
    expect(model.liveCaches).toBe(0);
  });

  it('aborting a stream throws from the iterator after the tokens already given; breaking out frees the cache', async () => {
    const controller = new AbortController();
    const model = fakeModel(4, 64, () => [0, 1, 2, 3]);
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const t of generateStream(model, [0], { maxNewTokens: 50, signal: controller.signal })) {
          seen.push(t.id);
          if (seen.length === 3) controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual([3, 3, 3]);
    expect(model.liveCaches).toBe(0);

    for await (const t of generateStream(model, [0], { maxNewTokens: 50 })) if (t.id === 3) break;
    expect(model.liveCaches).toBe(0);
  });
});

describe('bad input', () => {
  const model = myopicModel();
  const cases: [string, () => unknown, RegExp][] = [
    ['prompt id out of range', () => generate(model, [0, 6], {}), /prompt\[1\].*\[0, vocabSize = 6\).*6/],
    ['negative prompt id', () => generate(model, [-1], {}), /prompt\[0\].*-1/],
    ['empty prompt without a start token', () => generate(model, [], {}), /prompt is empty.*bosTokenId/],
    ['text prompt without tokenizer', () => generate(model, 'hi', {}), /tokenizer/],
    ['temperature < 0', () => generate(model, [0], { temperature: -0.5 }), /temperature.*-0\.5/],
    ['topP 0', () => generate(model, [0], { topP: 0 }), /topP.*\(0, 1\].*0/],
    ['topP > 1', () => generate(model, [0], { topP: 1.2 }), /topP.*1\.2/],
    ['topK < 0', () => generate(model, [0], { topK: -3 }), /topK.*-3/],
    ['minP > 1', () => generate(model, [0], { minP: 1.5 }), /minP.*1\.5/],
    ['repetitionPenalty 0', () => generate(model, [0], { repetitionPenalty: 0 }), /repetitionPenalty.*0/],
    ['numBeams 0', () => generate(model, [0], { numBeams: 0 }), /numBeams.*0/],
    ['maxNewTokens 0', () => generate(model, [0], { maxNewTokens: 0 }), /maxNewTokens.*0/],
    [
      'numReturnSequences > numBeams',
      () => generate(model, [0], { numBeams: 2, numReturnSequences: 3 }),
      /numReturnSequences.*numBeams = 2.*3/,
    ],
    ['greedy with several sequences', () => generate(model, [0], { numReturnSequences: 2 }), /numReturnSequences = 2 needs doSample/],
    ['eosTokenId out of range', () => generate(model, [0], { eosTokenId: 9 }), /eosTokenId.*9/],
    ['stop without tokenizer', () => generate(model, [0], { stop: 'x' }), /stop strings need options.tokenizer/],
    ['unknown option', () => generate(model, [0], { top_k: 3 } as never), /unknown generate option "top_k"/],
    ['beam sampling', () => generate(model, [0], { numBeams: 2, doSample: true }), /beam sampling/],
  ];
  for (const [name, call, message] of cases) {
    it(`rejects ${name}`, async () => {
      await expect(Promise.resolve().then(call)).rejects.toThrow(message);
    });
  }

  it('rejects NaN logits from the model instead of choosing from them', async () => {
    const broken = () => fakeModel(3, 8, () => [0, NaN, 1]);
    await expect(generate(broken(), [0], {})).rejects.toThrow(/NaN at id 1/);
    await expect(generate(broken(), [0], { doSample: true, seed: 1 })).rejects.toThrow(/NaN at id 1/);
    await expect(generate(broken(), [0], { numBeams: 2 })).rejects.toThrow(/beam 0: NaN at id 1/);
  });

  it('generateStream checks options when called, before iterating', () => {
    expect(() => generateStream(model, [0], { topK: -1 })).toThrow(/topK/);
    expect(() => generateStream(model, [0], { numBeams: 2 })).toThrow(/numBeams must be 1/);
  });
});
