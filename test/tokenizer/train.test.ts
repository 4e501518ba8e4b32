/**
 * BPE training: hand-worked merges, the tie and overlap rules, special tokens, reproducibility,
 * and the incremental trainer against a plain one that recounts every pair at every merge.
 */
import { describe, expect, it } from 'vitest';
import { BPETokenizer, splitGPT2 } from '../../src/tokenizer/index.js';
import { mobyDick } from './fixtures.js';

const mergesOf = (t: BPETokenizer): number[] => t.toJSON().merges;
const newTokensOf = (t: BPETokenizer): string[] => t.toJSON().tokens.slice(256);

describe('BPETokenizer.train', () => {
  it('learns the hand-worked merges of "aaabdaaabac"', () => {
    // pairs: aa 4, ab 2, bd 1, da 1, ba 1, ac 1 -> merge (a, a) = 256
    // then (aa, a) 2 and (a, b) 2 tie: the smaller pair (97, 98) wins -> 257 "ab"
    // then (aa, ab) 2 -> 258 "aaab"; every pair left occurs once, below minFrequency 2
    const t = BPETokenizer.train('aaabdaaabac', { vocabSize: 300 });
    expect(mergesOf(t)).toEqual([97, 97, 97, 98, 256, 257]);
    expect(newTokensOf(t)).toEqual(['aa', 'ab', 'aaab']);
    expect(t.vocabSize).toBe(259);
    expect(t.encode('aaabdaaabac')).toEqual([258, 100, 258, 97, 99]);
    expect(t.eosTokenId).toBeUndefined();
  });

  it('counts each pre-token with its frequency and keeps the leading space', () => {
    // pre-tokens "ab" x1, " ab" x2, " cd" x1: (a, b) 3, (' ', ab) 2, then (' ', c) and (c, d) 1 each
    const twoMerges = BPETokenizer.train('ab ab ab cd', { vocabSize: 1000 });
    expect(mergesOf(twoMerges)).toEqual([97, 98, 32, 256]);
    expect(newTokensOf(twoMerges)).toEqual(['ab', 'Ġab']);
    // minFrequency 1 goes on: the tie (' ', c) vs (c, d) goes to the smaller pair (32, 99)
    const all = BPETokenizer.train('ab ab ab cd', { vocabSize: 1000, minFrequency: 1 });
    expect(newTokensOf(all)).toEqual(['ab', 'Ġab', 'Ġc', 'Ġcd']);
    expect(all.encode(' cd ab')).toEqual([259, 257]);
    // vocabSize caps the number of learned tokens
    expect(newTokensOf(BPETokenizer.train('ab ab ab cd', { vocabSize: 257, minFrequency: 1 }))).toEqual(['ab']);
  });

  it('merges overlapping occurrences left to right ("aaa" -> "aa" "a")', () => {
    // "aaa" and " aaa": (a, a) occurs 4 times -> "aa"; each word is then [aa, a]: (aa, a) 2 -> "aaa"
    const t = BPETokenizer.train('aaa aaa', { vocabSize: 1000 });
    expect(newTokensOf(t)).toEqual(['aa', 'aaa']);
    expect(t.encode('aaaa')).toEqual([256, 256]);
    // "aaaaa": every (a, a) first -> aa aa a, then (aa, a) -> aa aaa
    expect(t.encode('aaaaa')).toEqual([256, 257]);
  });

  it('never learns from special tokens and gives them the last ids', () => {
    const text = '<|endoftext|>ab<|endoftext|>ab<|endoftext|>';
    const t = BPETokenizer.train([text, 'ab'], { vocabSize: 400, specialTokens: ['<|endoftext|>'] });
    expect(newTokensOf(t)).toEqual(['ab', '<|endoftext|>']);
    expect(t.eosTokenId).toBe(257);
    expect(t.vocabSize).toBe(258);
    expect(t.encode(text, { allowedSpecial: 'all' })).toEqual([257, 256, 257, 256, 257]);
    expect(t.decode(t.encode(text, { allowedSpecial: 'all' }))).toBe(text);
  });

  it('is reproducible', () => {
    const text = mobyDick().slice(0, 150_000);
    const a = BPETokenizer.train(text, { vocabSize: 800, specialTokens: ['<|endoftext|>'] });
    const b = BPETokenizer.train(text, { vocabSize: 800, specialTokens: ['<|endoftext|>'] });
    expect(a.vocabSize).toBe(800);
    expect(b.toJSON()).toEqual(a.toJSON());
  });

  it('learns the same merges as a plain trainer that recounts all pairs at every merge', () => {
    const text = mobyDick().slice(0, 30_000);
    const t = BPETokenizer.train(text, { vocabSize: 256 + 300 });
    const plain = plainTrain(text, 300, 2);
    expect(mergesOf(t)).toEqual(plain.merges);
    // encoding the corpus reproduces the training's final segmentation
    expect(t.encode(text).length).toBe(plain.finalSymbolCount);
    expect(t.decode(t.encode(text))).toBe(text);
  });

  it('rejects bad options with errors naming the field and the allowed range', () => {
    expect(() => BPETokenizer.train('abc', { vocabSize: 255 })).toThrow(RangeError);
    expect(() => BPETokenizer.train('abc', { vocabSize: 255 })).toThrow(/vocabSize: 255 .*\[256, 2097152\]/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 256, specialTokens: ['<|endoftext|>'] })).toThrow(/vocabSize: 256 .*\[257,/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 300.5 })).toThrow(/vocabSize: 300.5/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 300, minFrequency: 0 })).toThrow(/minFrequency: 0 .*>= 1/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 300, specialTokens: ['x', 'x'] })).toThrow(/specialTokens\[1\]/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 300, specialTokens: [''] })).toThrow(/specialTokens\[0\]/);
    expect(() => BPETokenizer.train([1 as unknown as string], { vocabSize: 300 })).toThrow(TypeError);
    expect(() => BPETokenizer.train('abc', undefined as unknown as { vocabSize: number })).toThrow(
      /train: options must be an object with vocabSize/,
    );
  });
});

/**
 * Textbook BPE: count every adjacent pair over all distinct pre-tokens, merge the most frequent
 * (ties: smaller (left id, right id)) everywhere left to right, repeat.
 */
function plainTrain(text: string, maxNewTokens: number, minFrequency: number) {
  const counts = new Map<string, number>();
  for (const piece of splitGPT2(text)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const encoder = new TextEncoder();
  const words = [...counts].map(([piece, count]) => ({ ids: [...encoder.encode(piece)], count }));
  const keys: string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
  const merges: number[] = [];
  while (keys.length < 256 + maxNewTokens) {
    const pairCounts = new Map<string, number>();
    for (const { ids, count } of words) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const key = `${ids[i]},${ids[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [key, count] of pairCounts) {
      const [a, b] = key.split(',').map(Number);
      if (count > bestCount || (count === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = count;
      }
    }
    if (!best || bestCount < minFrequency) break;
    const [a, b] = best;
    const mergedKey = keys[a] + keys[b];
    let merged = keys.indexOf(mergedKey);
    if (merged < 0) merged = keys.push(mergedKey) - 1;
    merges.push(a, b);
    for (const word of words) {
      const out: number[] = [];
      for (let i = 0; i < word.ids.length; i++) {
        if (i + 1 < word.ids.length && word.ids[i] === a && word.ids[i + 1] === b) {
          out.push(merged);
          i++;
        } else {
          out.push(word.ids[i]);
        }
      }
      word.ids = out;
    }
  }
  const finalSymbolCount = words.reduce((sum, w) => sum + w.ids.length * w.count, 0);
  return { merges, finalSymbolCount };
}
