/**
 * Byte-level BPE, as GPT-2: text is cut into pre-tokens by GPT-2's pattern, each pre-token's UTF-8
 * bytes start as one token each, and the adjacent pair of lowest rank is merged until no pair
 * is mergeable (leftmost first among equal ranks, as tiktoken). Merge i has rank i, except that
 * consecutive merges that make the same token share a rank (tiktoken files give every split of a
 * token as a merge at that token's rank).
 *
 * Encoding speed comes from: the hand-written pre-tokenizer, a bounded cache of pre-token -> ids,
 * a direct path for one-character ASCII pre-tokens, pair ranks in an open-addressing table of
 * integer pairs, and a merge loop over a small typed array (a heap for long pre-tokens, so no
 * input is quadratic).
 *
 * Lone surrogates cannot be carried by UTF-8: they are encoded as U+FFFD, so
 * decode(encode(s)) === s for every well-formed s, and s with lone surrogates replaced otherwise.
 */
import type { StreamDecoder, Tokenizer, TokenizerJSON } from './types.js';
import { BYTE_TO_CHAR, encodeUtf8Into, tokenStringToBytes, utf8Bytes } from './bytes.js';
import { gpt2PieceEnd } from './pretokenize.js';
import { countPieces, FIRST_MERGE_ID, learnMerges } from './train.js';
import { type BPEModel, MAX_VOCAB_SIZE, parseGPT2, parseHuggingFace, parseJsonObject, parseTiktoken, toHuggingFace } from './loaders.js';
import { describe } from '../util/describe.js';
import { END_OF_TEXT, specialMatcher } from './specials.js';
import { PairHeap } from './pair-heap.js';

export { MAX_VOCAB_SIZE };

export interface BPETrainOptions {
  /** total vocabulary: 256 bytes + learned tokens + special tokens */
  vocabSize: number;
  /** e.g. ['<|endoftext|>']; they get the last ids and are never learned from the text */
  specialTokens?: readonly string[];
  /** stop when the most frequent pair occurs fewer times than this (default 2) */
  minFrequency?: number;
}

export interface BPETokenizerJSON extends TokenizerJSON {
  kind: 'bpe';
  version: 1;
  /** the pre-tokenizer; GPT-2's is the only one */
  pattern: 'gpt2';
  /** id -> token: GPT-2 byte spelling (as in vocab.json) for ordinary tokens, the text for specials */
  tokens: string[];
  /** merges in priority order as flat (left id, right id) pairs */
  merges: number[];
  /** special token text -> id */
  specialTokens: Record<string, number>;
}

const NO_RANK = 0x7fffffff;
/** the pre-token cache is emptied when it holds this many entries or characters */
const CACHE_ENTRY_LIMIT = 1 << 16;
const CACHE_CHAR_LIMIT = 1 << 20;
/** longer pre-tokens are not cached */
const CACHEABLE_LENGTH = 1024;
/** pre-tokens of more bytes than this merge with a heap instead of a linear min-rank scan */
const SCAN_MERGE_LIMIT = 96;

/** Non-streaming decodes keep no state, so one decoder serves all; BOMs are text, not markers. */
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class BPETokenizer implements Tokenizer {
  readonly kind = 'bpe' as const;
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;

  private readonly tokens: readonly string[];
  private readonly merges: Int32Array;
  private readonly specialIds: Map<string, number>;
  private readonly ordinaryIds: Map<string, number>;
  private readonly byteToId = new Int32Array(256);
  /** bytes of token id are tokenBytes[tokenStart[id] .. tokenStart[id + 1]) */
  private readonly tokenBytes: Uint8Array;
  private readonly tokenStart: Int32Array;

  /** open-addressing table: (left, right) -> merged id and rank; left is -1 in empty slots */
  private readonly pairLeft: Int32Array;
  private readonly pairRight: Int32Array;
  private readonly pairOut: Int32Array;
  private readonly pairRank: Int32Array;
  private readonly pairMask: number;

  private readonly cache = new Map<string, number | number[]>();
  private cachedChars = 0;
  private readonly specialMatchers = new Map<string, RegExp>();
  /** scratch for one pre-token: its UTF-8 bytes, then its ids and pair ranks while merging */
  private pieceBytes = new Uint8Array(256);
  private workIds = new Int32Array(SCAN_MERGE_LIMIT);
  private workRanks = new Int32Array(SCAN_MERGE_LIMIT);

  private constructor(model: BPEModel) {
    const { tokens, merges, specialTokens } = model;
    const n = tokens.length;
    this.vocabSize = n;
    this.tokens = tokens;
    if (n > MAX_VOCAB_SIZE) {
      throw new RangeError(`tokens: ${n} tokens; at most ${MAX_VOCAB_SIZE} are supported`);
    }

    this.specialIds = new Map();
    const isSpecial = new Uint8Array(n);
    for (const [content, id] of Object.entries(specialTokens)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= n) {
        throw new RangeError(`specialTokens: ${JSON.stringify(content)} has id ${describe(id)}; ids must be integers in [0, ${n})`);
      }
      if (content === '' || tokens[id] !== content) {
        throw new Error(`specialTokens: ${JSON.stringify(content)} has id ${id}, but tokens[${id}] is ${JSON.stringify(tokens[id])}`);
      }
      this.specialIds.set(content, id);
      isSpecial[id] = 1;
    }

    this.ordinaryIds = new Map();
    const bytesById = new Array<Uint8Array>(n);
    let totalBytes = 0;
    for (let id = 0; id < n; id++) {
      const token = tokens[id];
      if (typeof token !== 'string' || token === '') {
        throw new TypeError(`tokens[${id}]: expected a non-empty string, got ${describe(token)}`);
      }
      let bytes: Uint8Array | null;
      if (isSpecial[id]) {
        bytes = utf8Bytes(token);
      } else {
        bytes = tokenStringToBytes(token);
        if (bytes === null) {
          throw new Error(`tokens[${id}]: ${JSON.stringify(token)} is not spelled in GPT-2's byte alphabet and is not a special token`);
        }
        if (this.ordinaryIds.has(token)) {
          throw new Error(`tokens[${id}]: ${JSON.stringify(token)} is also tokens[${this.ordinaryIds.get(token)}]`);
        }
        this.ordinaryIds.set(token, id);
      }
      bytesById[id] = bytes;
      totalBytes += bytes.length;
    }
    this.tokenBytes = new Uint8Array(totalBytes);
    this.tokenStart = new Int32Array(n + 1);
    for (let id = 0, at = 0; id < n; id++) {
      this.tokenBytes.set(bytesById[id], at);
      at += bytesById[id].length;
      this.tokenStart[id + 1] = at;
    }
    for (let b = 0; b < 256; b++) {
      const id = this.ordinaryIds.get(BYTE_TO_CHAR[b]);
      if (id === undefined) {
        throw new Error(
          `tokens: no token for byte 0x${b.toString(16).padStart(2, '0')} (spelled ${JSON.stringify(BYTE_TO_CHAR[b])}); a byte-level vocabulary needs all 256 bytes`,
        );
      }
      this.byteToId[b] = id;
    }

    if (merges.length % 2 !== 0) {
      throw new Error(`merges: expected (left, right) id pairs, got an odd length ${merges.length}`);
    }
    const mergeCount = merges.length / 2;
    let capacity = 16;
    while (capacity < mergeCount * 2) capacity *= 2;
    this.pairMask = capacity - 1;
    this.pairLeft = new Int32Array(capacity).fill(-1);
    this.pairRight = new Int32Array(capacity);
    this.pairOut = new Int32Array(capacity);
    this.pairRank = new Int32Array(capacity);
    this.merges = Int32Array.from(merges);
    let previousOut = -1;
    let rank = 0;
    for (let i = 0; i < mergeCount; i++) {
      const a = merges[2 * i];
      const b = merges[2 * i + 1];
      for (const id of [a, b]) {
        if (!Number.isInteger(id) || id < 0 || id >= n || isSpecial[id]) {
          throw new RangeError(`merges[${i}]: id ${describe(id)} is not an ordinary token id in [0, ${n})`);
        }
      }
      const out = this.ordinaryIds.get(tokens[a] + tokens[b]);
      if (out === undefined) {
        throw new Error(`merges[${i}]: the merged token ${JSON.stringify(tokens[a] + tokens[b])} is not in the vocabulary`);
      }
      if (out !== previousOut) rank = i;
      previousOut = out;
      this.insertPair(a, b, out, rank);
    }
    this.eosTokenId = this.specialIds.get(END_OF_TEXT);
  }

  // ---- construction ---------------------------------------------------------------------------

  /** Learns a byte-level BPE vocabulary from text (deterministic: same input, same tokenizer). */
  static train(textOrTexts: string | readonly string[], options: BPETrainOptions): BPETokenizer {
    const texts = typeof textOrTexts === 'string' ? [textOrTexts] : textOrTexts;
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new TypeError('train: expected a string or an array of strings');
    }
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`train: options must be an object with vocabSize, got ${describe(options)}`);
    }
    const givenSpecials: unknown = options.specialTokens ?? [];
    if (!Array.isArray(givenSpecials)) throw new TypeError(`specialTokens: expected an array of strings, got ${describe(givenSpecials)}`);
    const specials = givenSpecials as readonly string[];
    specials.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') {
        throw new TypeError(`specialTokens[${i}]: expected a non-empty string, got ${describe(s)}`);
      }
      if (specials.indexOf(s) !== i) throw new Error(`specialTokens[${i}]: ${JSON.stringify(s)} is listed twice`);
    });
    const minVocab = FIRST_MERGE_ID + specials.length;
    const { vocabSize } = options;
    if (!Number.isInteger(vocabSize) || vocabSize < minVocab || vocabSize > MAX_VOCAB_SIZE) {
      throw new RangeError(
        `vocabSize: ${describe(vocabSize)} is out of range; byte-level BPE needs an integer in [${minVocab}, ${MAX_VOCAB_SIZE}] (256 bytes + ${specials.length} special tokens at least)`,
      );
    }
    const minFrequency = options.minFrequency ?? 2;
    if (!Number.isInteger(minFrequency) || minFrequency < 1) {
      throw new RangeError(`minFrequency: ${describe(minFrequency)} is out of range; expected an integer >= 1`);
    }
    const learned = learnMerges(countPieces(texts, specials), vocabSize - minVocab, minFrequency);
    const tokens = [...BYTE_TO_CHAR];
    for (const key of learned.newTokens) {
      let spelled = '';
      for (let i = 0; i < key.length; i++) spelled += BYTE_TO_CHAR[key.charCodeAt(i)];
      tokens.push(spelled);
    }
    const specialTokens: Record<string, number> = {};
    for (const s of specials) {
      specialTokens[s] = tokens.length;
      tokens.push(s);
    }
    return new BPETokenizer({ tokens, merges: learned.merges, specialTokens });
  }

  /**
   * GPT-2's vocab.json (text or parsed object) and merges.txt. Tokens that are neither a byte nor
   * made by a merge are special tokens (GPT-2: `<|endoftext|>`).
   */
  static fromGPT2(vocab: string | Record<string, number>, merges: string): BPETokenizer {
    return new BPETokenizer(parseGPT2(vocab, merges));
  }

  /**
   * A tiktoken rank file (base64 token and rank per line), e.g. r50k_base (GPT-2). Special tokens
   * are not in such files: by default `<|endoftext|>` takes the id after the last rank.
   */
  static fromTiktoken(text: string, options?: { specialTokens?: Record<string, number> }): BPETokenizer {
    return new BPETokenizer(parseTiktoken(text, options?.specialTokens));
  }

  /**
   * A Hugging Face tokenizer.json (text or parsed) whose model is byte-level BPE with GPT-2's
   * ByteLevel pre-tokenizer. Its added_tokens become special tokens, recognised only when allowed.
   * Anything this tokenizer would not reproduce exactly (normalizers, add_prefix_space, other
   * pre-tokenizers, dropout, byte fallback) is rejected with the field named.
   */
  static fromHuggingFace(json: string | object): BPETokenizer {
    return new BPETokenizer(parseHuggingFace(json));
  }

  /** The inverse of toJSON. */
  static fromJSON(json: string | object): BPETokenizer {
    const data = parseJsonObject(json, 'tokenizer');
    if (data.kind !== 'bpe') throw new Error(`tokenizer: kind is ${describe(data.kind)}; expected "bpe"`);
    if (data.version !== 1) throw new Error(`tokenizer: version is ${describe(data.version)}; only 1 is supported`);
    if (data.pattern !== 'gpt2') throw new Error(`tokenizer: pattern is ${describe(data.pattern)}; only "gpt2" is supported`);
    if (!Array.isArray(data.tokens)) throw new TypeError(`tokenizer: tokens must be an array, got ${describe(data.tokens)}`);
    if (!Array.isArray(data.merges)) throw new TypeError(`tokenizer: merges must be an array, got ${describe(data.merges)}`);
    const specials = data.specialTokens ?? {};
    if (typeof specials !== 'object' || specials === null || Array.isArray(specials)) {
      throw new TypeError(`tokenizer: specialTokens must be an object of text -> id, got ${describe(specials)}`);
    }
    return new BPETokenizer({
      tokens: data.tokens as string[],
      merges: data.merges as number[],
      specialTokens: specials as Record<string, number>,
    });
  }

  toJSON(): BPETokenizerJSON {
    return {
      kind: 'bpe',
      version: 1,
      pattern: 'gpt2',
      tokens: [...this.tokens],
      merges: Array.from(this.merges),
      specialTokens: Object.fromEntries(this.specialIds),
    };
  }

  /** A Hugging Face tokenizer.json object (GPT-2 layout: ByteLevel pre-tokenizer and decoder). */
  toHuggingFaceJSON(): Record<string, unknown> {
    return toHuggingFace({
      tokens: [...this.tokens],
      merges: Array.from(this.merges),
      specialTokens: Object.fromEntries(this.specialIds),
    });
  }

  // ---- vocabulary -----------------------------------------------------------------------------

  /** id of a token as spelled in GPT-2's vocab.json (byte alphabet), or of a special token */
  tokenToId(token: string): number | undefined {
    return this.specialIds.get(token) ?? this.ordinaryIds.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.tokens[id] : undefined;
  }

  /** the special tokens and their ids */
  get specialTokens(): Record<string, number> {
    return Object.fromEntries(this.specialIds);
  }

  /** The UTF-8 bytes a token stands for. */
  tokenBytesOf(id: number): Uint8Array {
    this.checkId(id, 'tokenBytesOf');
    return this.tokenBytes.slice(this.tokenStart[id], this.tokenStart[id + 1]);
  }

  // ---- encoding -------------------------------------------------------------------------------

  encode(text: string, options?: { allowedSpecial?: 'all' | readonly string[] }): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: text must be a string, got ${describe(text)}`);
    const out: number[] = [];
    const matcher =
      options?.allowedSpecial === undefined ? null : specialMatcher(this.specialIds, options.allowedSpecial, this.specialMatchers);
    if (matcher === null) {
      this.encodeOrdinary(text, 0, text.length, out);
      return out;
    }
    matcher.lastIndex = 0;
    let last = 0;
    for (let m = matcher.exec(text); m !== null; m = matcher.exec(text)) {
      this.encodeOrdinary(text, last, m.index, out);
      out.push(this.specialIds.get(m[0])!);
      last = m.index + m[0].length;
    }
    this.encodeOrdinary(text, last, text.length, out);
    return out;
  }

  /** Encodes text[start, end) with no special tokens, appending ids to out. */
  private encodeOrdinary(text: string, start: number, end: number, out: number[]): void {
    const byteToId = this.byteToId;
    const cache = this.cache;
    for (let i = start; i < end;) {
      const j = gpt2PieceEnd(text, i, end);
      const c = text.charCodeAt(i);
      if (j === i + 1 && c < 0x80) {
        out.push(byteToId[c]);
      } else {
        const piece = text.slice(i, j);
        const hit = cache.get(piece);
        if (hit === undefined) {
          const ids = this.encodePiece(text, i, j);
          for (let k = 0; k < ids.length; k++) out.push(ids[k]);
          if (j - i <= CACHEABLE_LENGTH) {
            if (cache.size >= CACHE_ENTRY_LIMIT || this.cachedChars >= CACHE_CHAR_LIMIT) {
              cache.clear();
              this.cachedChars = 0;
            }
            cache.set(piece, ids.length === 1 ? ids[0] : ids);
            this.cachedChars += j - i;
          }
        } else if (typeof hit === 'number') {
          out.push(hit);
        } else {
          for (let k = 0; k < hit.length; k++) out.push(hit[k]);
        }
      }
      i = j;
    }
  }

  /** BPE of one pre-token text[start, end). */
  private encodePiece(text: string, start: number, end: number): number[] {
    if (this.pieceBytes.length < (end - start) * 3) this.pieceBytes = new Uint8Array((end - start) * 3);
    const byteCount = encodeUtf8Into(text, start, end, this.pieceBytes);
    return byteCount <= SCAN_MERGE_LIMIT ? this.mergeByScan(byteCount) : this.mergeByHeap(byteCount);
  }

  /** slot of pair (a, b) in the pair table, or -1 */
  private findPair(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77);
    h = (h ^ (h >>> 15)) & this.pairMask;
    const left = this.pairLeft;
    for (;;) {
      const l = left[h];
      if (l === a && this.pairRight[h] === b) return h;
      if (l === -1) return -1;
      h = (h + 1) & this.pairMask;
    }
  }

  private rankOf(a: number, b: number): number {
    const slot = this.findPair(a, b);
    return slot < 0 ? NO_RANK : this.pairRank[slot];
  }

  /** Adds a merge unless the pair already has one (the first, higher-priority one wins). */
  private insertPair(a: number, b: number, out: number, rank: number): void {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77);
    h = (h ^ (h >>> 15)) & this.pairMask;
    while (this.pairLeft[h] !== -1) {
      if (this.pairLeft[h] === a && this.pairRight[h] === b) return;
      h = (h + 1) & this.pairMask;
    }
    this.pairLeft[h] = a;
    this.pairRight[h] = b;
    this.pairOut[h] = out;
    this.pairRank[h] = rank;
  }

  /** Merges the pre-token's n bytes by repeatedly scanning for the lowest-ranked pair. */
  private mergeByScan(n: number): number[] {
    const ids = this.workIds;
    const ranks = this.workRanks;
    const bytes = this.pieceBytes;
    for (let k = 0; k < n; k++) ids[k] = this.byteToId[bytes[k]];
    for (let k = 0; k < n - 1; k++) ranks[k] = this.rankOf(ids[k], ids[k + 1]);
    let len = n;
    while (len > 1) {
      let best = NO_RANK;
      let at = -1;
      for (let k = 0; k < len - 1; k++) {
        if (ranks[k] < best) {
          best = ranks[k];
          at = k;
        }
      }
      if (at < 0) break;
      ids[at] = this.pairOut[this.findPair(ids[at], ids[at + 1])];
      // drop ids[at + 1] and the rank of the pair that started there
      for (let k = at + 1; k < len - 1; k++) ids[k] = ids[k + 1];
      for (let k = at + 1; k < len - 2; k++) ranks[k] = ranks[k + 1];
      len--;
      if (at > 0) ranks[at - 1] = this.rankOf(ids[at - 1], ids[at]);
      if (at < len - 1) ranks[at] = this.rankOf(ids[at], ids[at + 1]);
    }
    const result = new Array<number>(len);
    for (let k = 0; k < len; k++) result[k] = ids[k];
    return result;
  }

  /**
   * The same merges for long pre-tokens in O(n log n): symbols in a linked list, candidate pairs
   * in a min-heap keyed by (rank, position); entries made stale by earlier merges are skipped.
   */
  private mergeByHeap(n: number): number[] {
    const ids = new Int32Array(n);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      ids[k] = this.byteToId[this.pieceBytes[k]];
      next[k] = k + 1 < n ? k + 1 : -1;
      prev[k] = k - 1;
    }
    // the lowest rank first, the leftmost position among equal ranks
    const heap = new PairHeap('min', 3 * n);
    for (let k = 0; k < n - 1; k++) {
      const rank = this.rankOf(ids[k], ids[k + 1]);
      if (rank !== NO_RANK) heap.push(rank, k);
    }
    while (heap.size > 0) {
      const rank = heap.topPrimary();
      const p = heap.topSecondary();
      heap.pop();
      const q = next[p];
      if (ids[p] < 0 || q < 0) continue;
      const slot = this.findPair(ids[p], ids[q]);
      if (slot < 0 || this.pairRank[slot] !== rank) continue;
      ids[p] = this.pairOut[slot];
      ids[q] = -1;
      const after = next[q];
      next[p] = after;
      if (after >= 0) {
        prev[after] = p;
        const r = this.rankOf(ids[p], ids[after]);
        if (r !== NO_RANK) heap.push(r, p);
      }
      const before = prev[p];
      if (before >= 0) {
        const r = this.rankOf(ids[before], ids[p]);
        if (r !== NO_RANK) heap.push(r, before);
      }
    }
    const result: number[] = [];
    for (let k = 0; k >= 0; k = next[k]) result.push(ids[k]);
    return result;
  }

  // ---- decoding -------------------------------------------------------------------------------

  private checkId(id: number, where: string, index?: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      const at = index === undefined ? '' : ` at index ${index}`;
      throw new RangeError(`${where}: id ${describe(id)}${at} is outside [0, ${this.vocabSize})`);
    }
  }

  /** The UTF-8 bytes of a token sequence. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.checkId(id, 'decode', i);
      total += this.tokenStart[id + 1] - this.tokenStart[id];
    }
    const out = new Uint8Array(total);
    for (let i = 0, at = 0; i < ids.length; i++) {
      const from = this.tokenStart[ids[i]];
      const to = this.tokenStart[ids[i] + 1];
      out.set(this.tokenBytes.subarray(from, to), at);
      at += to - from;
    }
    return out;
  }

  /** Text of the ids; byte sequences that are not valid UTF-8 become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  createStreamDecoder(): StreamDecoder {
    // TextDecoder's stream mode holds back an incomplete UTF-8 sequence until its end arrives
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let index = 0;
    return {
      push: (id: number): string => {
        this.checkId(id, 'createStreamDecoder().push', index++);
        return decoder.decode(this.tokenBytes.subarray(this.tokenStart[id], this.tokenStart[id + 1]), {
          stream: true,
        });
      },
      flush: (): string => decoder.decode(),
    };
  }
}
