/**
 * Byte-level BPE training.
 *
 * The corpus is reduced to its distinct pre-tokens with counts, laid out as linked lists of
 * symbols in one flat buffer. Pair counts are kept up to date incrementally: a merge touches only
 * the positions where its pair occurs (remembered per pair) and adjusts the counts of the pairs
 * around them. A max-heap over pair counts picks the next merge; entries whose count went stale
 * are fixed when they reach the top, so no merge rescans the corpus.
 *
 * Choice rule (deterministic): the pair with the highest count; ties go to the smaller
 * (left id, right id). Byte b has id b; each merge that makes a new byte string gives it the next
 * id from 256 (a merge whose bytes some earlier token already spells reuses that token's id).
 * Occurrences of the chosen pair are merged left to right without overlap ("aaa" with pair
 * (a, a) becomes "aa a").
 */
import { gpt2PieceEnd } from './pretokenize.js';
import { encodeUtf8Into } from './bytes.js';
import { alternation } from './specials.js';
import { PairHeap } from './pair-heap.js';

export const FIRST_MERGE_ID = 256;

/** Distinct GPT-2 pre-tokens of the texts with their counts; special tokens are cut out first. */
export function countPieces(texts: readonly string[], specialTokens: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const specialSplit = specialTokens.length > 0 ? alternation(specialTokens, 'u') : null;
  for (const text of texts) {
    const segments = specialSplit ? text.split(specialSplit) : [text];
    for (const segment of segments) {
      for (let i = 0; i < segment.length;) {
        const j = gpt2PieceEnd(segment, i, segment.length);
        const piece = segment.slice(i, j);
        counts.set(piece, (counts.get(piece) ?? 0) + 1);
        i = j;
      }
    }
  }
  return counts;
}

export interface LearnedMerges {
  /** merges in the order learned, flat (left id, right id) pairs */
  merges: number[];
  /** bytes of the tokens made by merges, for ids 256, 257, ... (one char per byte) */
  newTokens: string[];
}

/**
 * Learns merges from the pre-token counts until maxNewTokens tokens are made, stopping early when
 * the best pair occurs fewer than minFrequency times.
 */
export function learnMerges(pieceCounts: Map<string, number>, maxNewTokens: number, minFrequency: number): LearnedMerges {
  let totalBytes = 0;
  for (const piece of pieceCounts.keys()) totalBytes += piece.length * 3;
  // symbols of all pieces, one after another; next/prev link live symbols within a piece
  const sym = new Int32Array(totalBytes);
  const next = new Int32Array(totalBytes);
  const prev = new Int32Array(totalBytes);
  const freqAt = new Float64Array(totalBytes);
  let used = 0;
  let bytes = new Uint8Array(64);
  for (const [piece, count] of pieceCounts) {
    if (bytes.length < piece.length * 3) bytes = new Uint8Array(piece.length * 3);
    const n = encodeUtf8Into(piece, 0, piece.length, bytes);
    for (let k = 0; k < n; k++) {
      sym[used + k] = bytes[k];
      prev[used + k] = k === 0 ? -1 : used + k - 1;
      next[used + k] = k === n - 1 ? -1 : used + k + 1;
      freqAt[used + k] = count;
    }
    used += n;
  }

  const idLimit = FIRST_MERGE_ID + maxNewTokens;
  // byte string of every id (one char per byte), to tell new tokens from ones already made
  const tokenKeys: string[] = [];
  for (let b = 0; b < FIRST_MERGE_ID; b++) tokenKeys.push(String.fromCharCode(b));
  const idOfKey = new Map<string, number>(tokenKeys.map((key, id) => [key, id]));
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const touched = new Set<number>();

  const add = (key: number, f: number, pos: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + f);
    const list = where.get(key);
    if (list) list.push(pos);
    else where.set(key, [pos]);
    touched.add(key);
  };
  const remove = (key: number, f: number): void => {
    const left = (pairCount.get(key) ?? 0) - f;
    if (left === 0) pairCount.delete(key);
    else pairCount.set(key, left);
  };

  for (let p = 0; p < used; p++) {
    if (next[p] >= 0) add(sym[p] * idLimit + sym[next[p]], freqAt[p], p);
  }
  // the highest count first, the smallest pair key among equal counts
  const heap = new PairHeap('max');
  for (const key of touched) heap.push(pairCount.get(key)!, key);
  touched.clear();

  const merges: number[] = [];
  while (tokenKeys.length < idLimit) {
    // bring an exact entry to the top: stale-high entries are re-pushed with their true count
    let key = -1;
    while (heap.size > 0) {
      const k = heap.topSecondary();
      const c = heap.topPrimary();
      heap.pop();
      const actual = pairCount.get(k) ?? 0;
      if (actual === c) {
        key = k;
        break;
      }
      if (actual < c && actual > 0) heap.push(actual, k);
    }
    if (key < 0 || pairCount.get(key)! < minFrequency) break;

    const a = Math.floor(key / idLimit);
    const b = key - a * idLimit;
    const mergedKey = tokenKeys[a] + tokenKeys[b];
    let c = idOfKey.get(mergedKey);
    if (c === undefined) {
      c = tokenKeys.length;
      tokenKeys.push(mergedKey);
      idOfKey.set(mergedKey, c);
    }
    merges.push(a, b);
    const positions = Int32Array.from(where.get(key)!).sort();
    where.delete(key);
    let last = -1;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i];
      if (p === last) continue;
      last = p;
      const q = next[p];
      if (sym[p] !== a || q < 0 || sym[q] !== b) continue;
      const f = freqAt[p];
      const before = prev[p];
      const after = next[q];
      if (before >= 0) {
        remove(sym[before] * idLimit + a, f);
        add(sym[before] * idLimit + c, f, before);
      }
      if (after >= 0) {
        remove(b * idLimit + sym[after], f);
        add(c * idLimit + sym[after], f, p);
        prev[after] = p;
      }
      sym[p] = c;
      sym[q] = -1;
      next[p] = after;
    }
    // every occurrence is merged; overlaps like "aaa" may have driven its count below zero
    pairCount.delete(key);
    for (const k of touched) {
      const count = pairCount.get(k);
      if (count !== undefined && count > 0) heap.push(count, k);
    }
    touched.clear();
  }
  return { merges, newTokens: tokenKeys.slice(FIRST_MERGE_ID) };
}
