/**
 * GPT-2 pre-tokenization: text is cut into pieces (contractions, letter runs, number runs, runs of
 * other symbols, whitespace) before BPE, and merges never cross a piece boundary.
 *
 * `GPT2_PATTERN` is GPT-2's regular expression. `gpt2PieceEnd` is a hand-written scanner that
 * gives exactly the same pieces several times faster; its character classes come from the same
 * regex escapes (`\s`, `\p{L}`, `\p{N}` with the `u` flag), so the two agree by construction on
 * what a letter, number or space is.
 */

export const GPT2_PATTERN_SOURCE = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-2's pre-tokenizer regex (global, Unicode). */
export function gpt2Pattern(): RegExp {
  return new RegExp(GPT2_PATTERN_SOURCE, 'gu');
}

/** Pieces by the regex itself: the reference that the scanner is tested against. */
export function splitGPT2WithRegex(text: string): string[] {
  return text.match(gpt2Pattern()) ?? [];
}

const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const OTHER = 4;

/** Character classes of code points, filled 256 code points at a time on first use. */
const classBlocks = new Array<Uint8Array | undefined>(0x110000 >> 8);

function fillBlock(block: number): Uint8Array {
  const table = new Uint8Array(256);
  const letter = /\p{L}/u;
  const number = /\p{N}/u;
  const space = /\s/u;
  for (let i = 0; i < 256; i++) {
    const ch = String.fromCodePoint((block << 8) | i);
    table[i] = letter.test(ch) ? LETTER : number.test(ch) ? NUMBER : space.test(ch) ? SPACE : OTHER;
  }
  classBlocks[block] = table;
  return table;
}

const ASCII_CLASS: Uint8Array = fillBlock(0);

function classOf(cp: number): number {
  if (cp < 128) return ASCII_CLASS[cp];
  const table = classBlocks[cp >> 8] ?? fillBlock(cp >> 8);
  return table[cp & 0xff];
}

/** Code point at index i of text (a lone surrogate stands for itself, as in the `u` regex). */
function codePointAt(text: string, i: number, end: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
    const low = text.charCodeAt(i + 1);
    if (low >= 0xdc00 && low <= 0xdfff) return 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
  }
  return c;
}

/** End of the run of code points of class cls that starts at i. */
function runEnd(text: string, i: number, end: number, cls: number): number {
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      if (ASCII_CLASS[c] !== cls) return i;
      i++;
    } else {
      const cp = codePointAt(text, i, end);
      if (classOf(cp) !== cls) return i;
      i += cp > 0xffff ? 2 : 1;
    }
  }
  return i;
}

const APOSTROPHE = 0x27;
const SPACE_CHAR = 0x20;

/**
 * End of the GPT-2 piece that starts at `start` (< end) in text[.., end): the regex's
 * alternatives in order, each decided without backtracking.
 */
export function gpt2PieceEnd(text: string, start: number, end: number): number {
  const c = text.charCodeAt(start);
  if (c === APOSTROPHE && start + 1 < end) {
    // 's 't 'm 'd 're 've 'll (lower case only, as in GPT-2)
    const c1 = text.charCodeAt(start + 1);
    if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return start + 2;
    if (start + 2 < end) {
      const c2 = text.charCodeAt(start + 2);
      if ((c1 === 0x72 || c1 === 0x76) && c2 === 0x65) return start + 3;
      if (c1 === 0x6c && c2 === 0x6c) return start + 3;
    }
  }
  const cp = c < 128 ? c : codePointAt(text, start, end);
  const cls = classOf(cp);
  if (cls !== SPACE) return runEnd(text, start + (cp > 0xffff ? 2 : 1), end, cls);
  if (c === SPACE_CHAR && start + 1 < end) {
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': one space joins the run that follows it
    const nextCp = codePointAt(text, start + 1, end);
    const nextCls = classOf(nextCp);
    if (nextCls !== SPACE) return runEnd(text, start + 1, end, nextCls);
  }
  // '\s+(?!\S)' then '\s+': a whitespace run that is followed by more text leaves its last
  // character to start the next piece (all \s characters are single UTF-16 units)
  const wsEnd = runEnd(text, start + 1, end, SPACE);
  if (wsEnd === end || wsEnd - start === 1) return wsEnd;
  return wsEnd - 1;
}

/** Pieces by the scanner (same result as splitGPT2WithRegex). */
export function splitGPT2(text: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length;) {
    const j = gpt2PieceEnd(text, i, text.length);
    pieces.push(text.slice(i, j));
    i = j;
  }
  return pieces;
}
