/**
 * One token per Unicode code point, for tiny corpora (names, short texts): the vocabulary is the
 * corpus's distinct code points in code point order, then the special tokens.
 */
import type { StreamDecoder, Tokenizer, TokenizerJSON } from './types.js';
import { describe } from '../util/describe.js';
import { parseJsonObject } from './loaders.js';
import { END_OF_TEXT, specialMatcher } from './specials.js';

export interface CharTokenizerJSON extends TokenizerJSON {
  kind: 'char';
  version: 1;
  /** id -> the code point (as a string) for ids below chars.length */
  chars: string[];
  /** special token text -> id (ids from chars.length on) */
  specialTokens: Record<string, number>;
}

export class CharTokenizer implements Tokenizer {
  readonly kind = 'char' as const;
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;

  private readonly tokens: readonly string[];
  private readonly charIds = new Map<string, number>();
  private readonly specialIds = new Map<string, number>();
  private readonly specialMatchers = new Map<string, RegExp>();

  private constructor(chars: readonly string[], specials: readonly string[]) {
    chars.forEach((ch, id) => {
      if (typeof ch !== 'string' || [...ch].length !== 1) {
        throw new TypeError(`chars[${id}]: expected a single code point, got ${describe(ch)}`);
      }
      if (this.charIds.has(ch)) throw new Error(`chars[${id}]: ${JSON.stringify(ch)} is also chars[${this.charIds.get(ch)}]`);
      this.charIds.set(ch, id);
    });
    specials.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') {
        throw new TypeError(`specialTokens[${i}]: expected a non-empty string, got ${describe(s)}`);
      }
      if (this.specialIds.has(s)) throw new Error(`specialTokens[${i}]: ${JSON.stringify(s)} is listed twice`);
      this.specialIds.set(s, chars.length + i);
    });
    this.tokens = [...chars, ...specials];
    this.vocabSize = this.tokens.length;
    this.eosTokenId = this.specialIds.get(END_OF_TEXT);
  }

  /** The distinct code points of the text(s), sorted, then the special tokens (never learned). */
  static train(textOrTexts: string | readonly string[], options: { specialTokens?: readonly string[] } = {}): CharTokenizer {
    const texts: readonly unknown[] = typeof textOrTexts === 'string' ? [textOrTexts] : textOrTexts;
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new TypeError('train: expected a string or an array of strings');
    }
    if (options === null || typeof options !== 'object') throw new TypeError(`train: options must be an object, got ${describe(options)}`);
    const givenSpecials: unknown = options.specialTokens ?? [];
    if (!Array.isArray(givenSpecials)) throw new TypeError(`specialTokens: expected an array of strings, got ${describe(givenSpecials)}`);
    const specials = givenSpecials as readonly string[];
    const seen = new Set<number>();
    for (const text of texts as readonly string[]) {
      let remaining = text;
      for (const s of specials) if (typeof s === 'string' && s !== '') remaining = remaining.split(s).join('');
      for (const ch of remaining) seen.add(ch.codePointAt(0)!);
    }
    const chars = [...seen].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp));
    return new CharTokenizer(chars, specials);
  }

  static fromJSON(json: string | object): CharTokenizer {
    const data = parseJsonObject(json, 'tokenizer');
    if (data.kind !== 'char') throw new Error(`tokenizer: kind is ${describe(data.kind)}; expected "char"`);
    if (data.version !== 1) throw new Error(`tokenizer: version is ${describe(data.version)}; only 1 is supported`);
    if (!Array.isArray(data.chars)) throw new TypeError(`tokenizer: chars must be an array, got ${describe(data.chars)}`);
    const chars = data.chars as string[];
    const specialsIn = data.specialTokens ?? {};
    if (typeof specialsIn !== 'object' || specialsIn === null || Array.isArray(specialsIn)) {
      throw new TypeError(`tokenizer: specialTokens must be an object of text -> id, got ${describe(specialsIn)}`);
    }
    const specials: string[] = [];
    for (const [content, id] of Object.entries(specialsIn as Record<string, unknown>)) {
      const slot = typeof id === 'number' ? id - chars.length : -1;
      if (!Number.isInteger(slot) || slot < 0 || slot >= Object.keys(specialsIn).length) {
        throw new RangeError(
          `tokenizer: specialTokens ${JSON.stringify(content)} has id ${describe(id)}; ids must be in [${chars.length}, ${chars.length + Object.keys(specialsIn).length})`,
        );
      }
      if (specials[slot] !== undefined) throw new Error(`tokenizer: specialTokens id ${describe(id)} is given twice`);
      specials[slot] = content;
    }
    return new CharTokenizer(chars, specials);
  }

  toJSON(): CharTokenizerJSON {
    return {
      kind: 'char',
      version: 1,
      chars: this.tokens.slice(0, this.vocabSize - this.specialIds.size),
      specialTokens: Object.fromEntries(this.specialIds),
    };
  }

  tokenToId(token: string): number | undefined {
    return this.specialIds.get(token) ?? this.charIds.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.tokens[id] : undefined;
  }

  /** the special tokens and their ids */
  get specialTokens(): Record<string, number> {
    return Object.fromEntries(this.specialIds);
  }

  /** throws for a character the vocabulary lacks, naming it and where it is */
  encode(text: string, options?: { allowedSpecial?: 'all' | readonly string[] }): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: text must be a string, got ${describe(text)}`);
    const out: number[] = [];
    const matcher =
      options?.allowedSpecial === undefined ? null : specialMatcher(this.specialIds, options.allowedSpecial, this.specialMatchers);
    let last = 0;
    if (matcher !== null) {
      matcher.lastIndex = 0;
      for (let m = matcher.exec(text); m !== null; m = matcher.exec(text)) {
        this.encodeChars(text, last, m.index, out);
        out.push(this.specialIds.get(m[0])!);
        last = m.index + m[0].length;
      }
    }
    this.encodeChars(text, last, text.length, out);
    return out;
  }

  private encodeChars(text: string, start: number, end: number, out: number[]): void {
    for (let i = start; i < end;) {
      const cp = text.codePointAt(i)!;
      const width = cp > 0xffff && i + 1 < end ? 2 : 1;
      const ch = text.slice(i, i + width);
      const id = this.charIds.get(ch);
      if (id === undefined) {
        throw new Error(
          `encode: character ${JSON.stringify(ch)} (U+${cp.toString(16).toUpperCase().padStart(4, '0')}) at index ${i} is not in the vocabulary`,
        );
      }
      out.push(id);
      i += width;
    }
  }

  private checkId(id: number, where: string, index: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new RangeError(`${where}: id ${describe(id)} at index ${index} is outside [0, ${this.vocabSize})`);
    }
  }

  decode(ids: ArrayLike<number>): string {
    let text = '';
    for (let i = 0; i < ids.length; i++) {
      this.checkId(ids[i], 'decode', i);
      text += this.tokens[ids[i]];
    }
    return text;
  }

  /** every token is whole code points, so each push gives its text at once */
  createStreamDecoder(): StreamDecoder {
    let index = 0;
    return {
      push: (id: number): string => {
        this.checkId(id, 'createStreamDecoder().push', index++);
        return this.tokens[id];
      },
      flush: (): string => '',
    };
  }
}
