/**
 * decode(encode(s)) === s, the lone-surrogate rule, parity with js-tiktoken on random text, and
 * the streaming decoder, with GPT-2's vocabulary.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { arbitraryTrickyText, jsTiktokenGPT2, loadFromTiktoken } from './fixtures.js';

const gpt2 = loadFromTiktoken();
const reference = jsTiktokenGPT2();

/** What UTF-8 can carry of s: TextEncoder turns each lone surrogate into U+FFFD. */
const throughUtf8 = (s: string): string => new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(s));

/** Everything a stream decoder emits for the ids, flush included, one string per push. */
function streamPieces(ids: readonly number[]): string[] {
  const decoder = gpt2.createStreamDecoder();
  return [...ids.map((id) => decoder.push(id)), decoder.flush()];
}

describe('round trip', () => {
  it('decode(encode(s)) === s for random well-formed Unicode strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        expect(gpt2.decode(gpt2.encode(s))).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });

  it('decode(encode(s)) === s for random graphemes, including multi-code-point ones', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (s) => {
        expect(gpt2.decode(gpt2.encode(s))).toBe(s);
      }),
      { numRuns: 1000 },
    );
  });

  it('lone surrogates come back as U+FFFD, since UTF-8 cannot carry them', () => {
    expect(gpt2.decode(gpt2.encode('a\ud800b'))).toBe('a\ufffdb');
    expect(gpt2.decode(gpt2.encode('\udc00'))).toBe('\ufffd');
    expect(gpt2.decode(gpt2.encode('end\ud83d'))).toBe('end\ufffd');
    expect(gpt2.decode(gpt2.encode('\ude00\ud83d'))).toBe('\ufffd\ufffd');
    // a well-formed pair is one character
    expect(gpt2.decode(gpt2.encode('\ud83d\ude00'))).toBe('😀');
    // same ids as the text with U+FFFD written in
    expect(gpt2.encode('x\ud800y')).toEqual(gpt2.encode('x\ufffdy'));
  });

  it('for any string, decode(encode(s)) is s as UTF-8 carries it', () => {
    fc.assert(
      fc.property(arbitraryTrickyText(), (s) => {
        expect(gpt2.decode(gpt2.encode(s))).toBe(throughUtf8(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives js-tiktoken ids on random tricky text', () => {
    fc.assert(
      fc.property(arbitraryTrickyText(), (s) => {
        expect(gpt2.encode(s)).toEqual(reference.encode(s, [], []));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('stream decoder', () => {
  it('holds back a character whose bytes are split across tokens', () => {
    // '😀' (F0 9F 98 80) is GPT-2 tokens 47249 (F0 9F 98) and 222 (80)
    expect([...gpt2.tokenBytesOf(47249)]).toEqual([0xf0, 0x9f, 0x98]);
    expect([...gpt2.tokenBytesOf(222)]).toEqual([0x80]);
    const ids = gpt2.encode('a😀b');
    expect(ids).toEqual([64, 47249, 222, 65]);
    expect(streamPieces(ids)).toEqual(['a', '', '😀', 'b', '']);
    // '中文' (E4 B8 AD, E6 96 87): 40792 (E4 B8 AD), 23877 (E6 96), 229 (87)
    expect([...gpt2.decodeBytes([40792, 23877, 229])]).toEqual([0xe4, 0xb8, 0xad, 0xe6, 0x96, 0x87]);
    expect(streamPieces(gpt2.encode('中文'))).toEqual(['中', '', '文', '']);
  });

  it('turns bytes that cannot form a character into U+FFFD, at flush for an unfinished one', () => {
    expect(streamPieces([47249])).toEqual(['', '\ufffd']);
    expect(streamPieces([47249, 64])).toEqual(['', '\ufffda', '']);
    expect(streamPieces([222])).toEqual(['\ufffd', '']);
  });

  it('emits exactly decode(ids), never a broken character, for random text', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\ufffd')),
        (s) => {
          const ids = gpt2.encode(s);
          const pieces = streamPieces(ids);
          expect(pieces.join('')).toBe(gpt2.decode(ids));
          for (const piece of pieces) expect(piece).not.toContain('\ufffd');
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('is reusable after flush and rejects ids out of range', () => {
    const decoder = gpt2.createStreamDecoder();
    expect(decoder.push(47249)).toBe('');
    expect(decoder.flush()).toBe('\ufffd');
    expect(decoder.push(64)).toBe('a');
    expect(() => decoder.push(50257)).toThrow(RangeError);
    expect(() => decoder.push(50257)).toThrow(/50257.*\[0, 50257\)/);
  });
});
