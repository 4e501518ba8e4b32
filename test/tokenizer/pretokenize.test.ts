/** The hand-written GPT-2 pre-tokenizer must cut text exactly where GPT-2's regex does. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { splitGPT2, splitGPT2WithRegex } from '../../src/tokenizer/index.js';
import { arbitraryTrickyText, HARD_STRINGS, mobyDick } from './fixtures.js';

describe('GPT-2 pre-tokenizer scanner', () => {
  it('matches the regex on a hand-worked case', () => {
    // a whitespace run followed by text leaves its last character to the next piece
    expect(splitGPT2("I'm   here  \n\nDON'T 42x 😀!")).toEqual([
      'I',
      "'m",
      '  ',
      ' here',
      '  \n',
      '\n',
      'DON',
      "'",
      'T',
      ' 42',
      'x',
      ' 😀!',
    ]);
    expect(splitGPT2WithRegex("I'm   here  \n\nDON'T 42x 😀!")).toEqual(splitGPT2("I'm   here  \n\nDON'T 42x 😀!"));
  });

  it('matches the regex on the whole of Moby Dick', () => {
    const text = mobyDick();
    const pieces = splitGPT2(text);
    expect(pieces.length).toBeGreaterThan(200_000);
    expect(pieces).toEqual(splitGPT2WithRegex(text));
  });

  it('matches the regex on the hard strings', () => {
    for (const text of HARD_STRINGS) expect({ text, pieces: splitGPT2(text) }).toEqual({ text, pieces: splitGPT2WithRegex(text) });
  });

  it('matches the regex on random tricky text', () => {
    fc.assert(
      fc.property(arbitraryTrickyText(), (text) => {
        expect(splitGPT2(text)).toEqual(splitGPT2WithRegex(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('matches the regex on random Unicode text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        expect(splitGPT2(text)).toEqual(splitGPT2WithRegex(text));
      }),
      { numRuns: 2000 },
    );
  });
});
