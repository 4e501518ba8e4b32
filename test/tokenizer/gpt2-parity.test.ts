/**
 * GPT-2's vocabulary loaded three ways (vocab.json + merges.txt, the r50k_base tiktoken file, and
 * the copy shipped in tinygpt/gpt2) must give js-tiktoken's GPT-2 ids exactly, on a whole book and
 * on hard strings.
 */
import { describe, expect, it } from 'vitest';
import { encode as gptTokenizerEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { gpt2Tokenizer } from '../../src/gpt2.js';
import { HARD_STRINGS, jsTiktokenGPT2, loadFromGPT2, loadFromTiktoken, mobyDick } from './fixtures.js';

const reference = jsTiktokenGPT2();
/** js-tiktoken with special tokens treated as plain text (our default) */
const referenceIds = (text: string): number[] => reference.encode(text, [], []);

const viaGPT2 = loadFromGPT2();
const viaTiktoken = loadFromTiktoken();
const shipped = await gpt2Tokenizer();
const book = mobyDick();
const bookIds = referenceIds(book);

describe.each([
  ['fromGPT2 (encoder.json + vocab.bpe)', viaGPT2],
  ['fromTiktoken (r50k_base.tiktoken)', viaTiktoken],
  ["gpt2Tokenizer() (tinygpt/gpt2's own copy)", shipped],
] as const)('GPT-2 via %s', (_name, tokenizer) => {
  it('has GPT-2 vocabulary size and end-of-text id', () => {
    expect(tokenizer.vocabSize).toBe(50257);
    expect(tokenizer.eosTokenId).toBe(50256);
    expect(tokenizer.tokenToId('<|endoftext|>')).toBe(50256);
    expect(tokenizer.tokenToId('Ġthe')).toBe(262);
    expect(tokenizer.idToToken(262)).toBe('Ġthe');
    expect(tokenizer.idToToken(50257)).toBeUndefined();
  });

  it('gives js-tiktoken ids on the whole of Moby Dick, and decodes back to the text', () => {
    const ids = tokenizer.encode(book);
    expect(ids.length).toBe(bookIds.length);
    expect(ids).toEqual(bookIds);
    expect(tokenizer.decode(ids)).toBe(book);
    expect(ids).toEqual(gptTokenizerEncode(book));
  });

  it('gives js-tiktoken ids on hard strings, and decodes back', () => {
    for (const text of HARD_STRINGS) {
      const ids = tokenizer.encode(text);
      expect({ text, ids }).toEqual({ text, ids: referenceIds(text) });
      expect(tokenizer.decode(ids)).toBe(text);
    }
  });

  it('agrees with gpt-tokenizer (r50k_base) on hard strings joined into one text', () => {
    const text = HARD_STRINGS.filter((s) => !s.includes('<|endoftext|>')).join(' | ');
    expect(tokenizer.encode(text)).toEqual(gptTokenizerEncode(text));
  });

  it('recognises <|endoftext|> only when allowed, as js-tiktoken does', () => {
    const text = 'one<|endoftext|> two <|endoftext|><|endoftext|>';
    const allowed = tokenizer.encode(text, { allowedSpecial: 'all' });
    expect(allowed).toEqual(reference.encode(text, 'all'));
    expect(allowed.filter((id) => id === 50256)).toHaveLength(3);
    expect(tokenizer.encode(text, { allowedSpecial: ['<|endoftext|>'] })).toEqual(allowed);
    const plain = tokenizer.encode(text);
    expect(plain).toEqual(referenceIds(text));
    expect(plain).not.toContain(50256);
    expect(tokenizer.encode(text, { allowedSpecial: [] })).toEqual(plain);
    expect(tokenizer.decode(allowed)).toBe(text);
    expect(tokenizer.decode(plain)).toBe(text);
  });
});

it("gives js-tiktoken ids on Moby Dick in upper case (contractions like DON'T, 'S throughout)", () => {
  const upper = book.toUpperCase();
  expect(viaTiktoken.encode(upper)).toEqual(referenceIds(upper));
});

it('stays exact while its pre-token cache fills up and is emptied', () => {
  // 70,000 distinct pre-tokens (" 0" ... " 69999") overflow the 65,536-entry cache
  const text = Array.from({ length: 70_000 }, (_, i) => ` ${i}`).join('');
  const expected = referenceIds(text);
  expect(viaTiktoken.encode(text)).toEqual(expected);
  expect(viaTiktoken.encode(text)).toEqual(expected);
});

it('the three loaders build the same vocabulary', () => {
  expect(viaTiktoken.toJSON().tokens).toEqual(viaGPT2.toJSON().tokens);
  expect(viaTiktoken.specialTokens).toEqual(viaGPT2.specialTokens);
  // the shipped copy is the files' merges, in their order
  expect(shipped.toJSON()).toEqual(viaGPT2.toJSON());
});

it('gpt2Tokenizer() builds once and resolves to the same instance afterwards', async () => {
  expect(await gpt2Tokenizer()).toBe(shipped);
});
