/**
 * The planner that cuts an op into pieces whose windows fit one storage binding (no GPU needed):
 * hand-worked cuts, then random matmul-shaped boxes checked for exact cover, fitting windows and
 * the K order a cut matmul relies on.
 */
import { describe, expect, it } from 'vitest';
import { BindingTooSmallError, planPieces, touched, type Box, type BoxAccess } from '../../src/backend/webgpu/pieces.js';
import { Rng } from '../helpers/random.js';

const spans = (boxes: Box[]) => boxes.map((b) => [b.start[0], b.start[0] + b.size[0]]);

describe('planPieces', () => {
  it('keeps an op that fits whole as one piece', () => {
    const access: BoxAccess = { buffer: 'x', offset: 0, strides: [1], extent: 1 };
    expect(planPieces([64], [access], 64, 1)).toEqual([{ start: [0], size: [64] }]);
  });

  it('halves a run of 10 elements into windows of at most 4: 3, 2, 3, 2', () => {
    const access: BoxAccess = { buffer: 'x', offset: 0, strides: [1], extent: 1 };
    expect(spans(planPieces([10], [access], 4, 1))).toEqual([
      [0, 3],
      [3, 5],
      [5, 8],
      [8, 10],
    ]);
  });

  it('counts the binding from its aligned start', () => {
    // elements [6, 9) bind from 4 (alignment 4): 5 elements, over 4, so the run is cut
    const access: BoxAccess = { buffer: 'x', offset: 6, strides: [1], extent: 1 };
    expect(spans(planPieces([2], [access], 4, 4))).toEqual([[0, 2]]);
    expect(spans(planPieces([3], [access], 4, 4))).toEqual([
      [0, 2],
      [2, 3],
    ]);
  });

  it('joins the windows of tensors in one buffer', () => {
    // rows of 3 at offsets 0 and 30 of one buffer: together they span 33 elements for one row
    const a: BoxAccess = { buffer: 'shared', offset: 0, strides: [3], extent: 3 };
    const b: BoxAccess = { buffer: 'shared', offset: 30, strides: [3], extent: 3 };
    expect(() => planPieces([2], [a, b], 32, 1)).toThrow(BindingTooSmallError);
    expect(planPieces([2], [a, { ...b, buffer: 'other' }], 32, 1)).toHaveLength(1);
  });

  it('refuses an item larger than the binding, with the bytes it needs', () => {
    const row: BoxAccess = { buffer: 'x', offset: 0, strides: [100], extent: 100 };
    expect(() => planPieces([4], [row], 64, 1)).toThrow(/needs 400 bytes in one binding for a single item, more than the 256/);
  });

  it('cuts a run that spans buffers exactly at their boundaries', () => {
    const access: BoxAccess = { buffer: 'x', offset: 0, strides: [1], extent: 1, segmentStarts: [37, 80] };
    expect(spans(planPieces([100], [access], 1000, 1))).toEqual([
      [0, 37],
      [37, 80],
      [80, 100],
    ]);
    // rows of 10 cut between rows: the boundary at 40 falls between rows 3 and 4
    const rows: BoxAccess = { buffer: 'x', offset: 0, strides: [10], extent: 10, segmentStarts: [40] };
    expect(spans(planPieces([8], [rows], 1000, 1))).toEqual([
      [0, 4],
      [4, 8],
    ]);
    // a row across the boundary cannot be cut
    expect(() => planPieces([8], [{ ...rows, segmentStarts: [45] }], 1000, 1)).toThrow(/a single item spans two of the buffers/);
  });

  it('covers random matmul boxes exactly once, every window fits, K pieces in order', () => {
    const rng = new Rng(5);
    let checked = 0;
    for (let trial = 0; trial < 200; trial++) {
      const M = 1 + rng.nextInt(9);
      const N = 1 + rng.nextInt(9);
      const K = 1 + rng.nextInt(9);
      const bTransposed = rng.nextInt(2) === 1;
      const accesses: BoxAccess[] = [
        { buffer: 'c', offset: rng.nextInt(50), strides: [N, 1, 0], extent: 1 },
        { buffer: 'a', offset: rng.nextInt(50), strides: [K, 0, 1], extent: 1 },
        { buffer: 'b', offset: rng.nextInt(50), strides: bTransposed ? [0, K, 1] : [0, 1, N], extent: 1 },
      ];
      // sometimes b is stored in two buffers: no window may span their boundary
      const bStart = accesses[2].offset;
      const boundary = rng.nextInt(2) === 1 ? bStart + 1 + rng.nextInt(K * N) : undefined;
      if (boundary !== undefined) accesses[2] = { ...accesses[2], segmentStarts: [boundary] };
      const maxElems = 4 + rng.nextInt(40);
      const align = [1, 4, 16][rng.nextInt(3)];
      let pieces: Box[];
      try {
        pieces = planPieces([M, N, K], accesses, maxElems, align);
      } catch (error) {
        // only when even one element's window, after alignment, cannot fit
        expect(error).toBeInstanceOf(BindingTooSmallError);
        expect(align).toBeGreaterThan(1);
        continue;
      }
      const seen = new Map<string, number[]>();
      for (const piece of pieces) {
        for (const access of accesses) {
          const { first, end } = touched(access, piece);
          const segmentStart = (access.segmentStarts ?? []).filter((start) => start <= first).at(-1) ?? 0;
          expect(end - (segmentStart + Math.floor((first - segmentStart) / align) * align)).toBeLessThanOrEqual(maxElems);
          for (const start of access.segmentStarts ?? []) expect(start <= first || start >= end).toBe(true);
        }
        for (let m = piece.start[0]; m < piece.start[0] + piece.size[0]; m++) {
          for (let n = piece.start[1]; n < piece.start[1] + piece.size[1]; n++) {
            const ks = seen.get(`${m},${n}`) ?? [];
            for (let k = piece.start[2]; k < piece.start[2] + piece.size[2]; k++) ks.push(k);
            seen.set(`${m},${n}`, ks);
          }
        }
      }
      expect(seen.size).toBe(M * N);
      // every output element meets its K range exactly once, from 0 upwards across the pieces
      for (const ks of seen.values()) expect(ks).toEqual([...Array(K).keys()]);
      if (pieces.length > 1) checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });
});
