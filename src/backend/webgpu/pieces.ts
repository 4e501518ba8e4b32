/**
 * Cutting an op into pieces whose tensors each fit one storage binding and one buffer.
 *
 * A tensor may be larger than `maxStorageBufferBindingSize` (GPT-2's token embedding is 154 MB, the
 * WebGPU default binding is 128 MiB). A dispatch binds only a window of each buffer, so an op is
 * run as several dispatches over sub-boxes of its iteration space, each touching a window that
 * fits. The box is cut in halves along the dimension that spreads the windows most, until every
 * window fits or an indivisible item does not.
 *
 * A tensor larger than `maxBufferSize` lives in several buffers (segments); a window must then also
 * stay inside one segment, and a box across a segment boundary is cut at the boundary.
 */

/** How an op's iteration box reaches into one tensor. */
export interface BoxAccess {
  /** which buffer: accesses with the same key share one binding, so their windows are joined */
  readonly buffer: unknown;
  /** element offset of the item at the box origin */
  readonly offset: number;
  /** element step per unit along each dimension of the box (0: the dimension does not move it) */
  readonly strides: readonly number[];
  /** elements one item (one index along every dimension) touches from its start */
  readonly extent: number;
  /** where the tensor's storage starts a new buffer (ascending, all > 0): no window may span one */
  readonly segmentStarts?: readonly number[];
}

export interface Box {
  readonly start: readonly number[];
  readonly size: readonly number[];
}

/** the elements [first, end) that `box` touches through `access` */
export function touched(access: BoxAccess, box: Box): { first: number; end: number } {
  let first = access.offset;
  let last = access.offset;
  access.strides.forEach((stride, d) => {
    first += box.start[d] * stride;
    last += (box.start[d] + box.size[d] - 1) * stride;
  });
  return { first, end: last + access.extent };
}

/**
 * Elements a binding must span to cover these accesses, its start rounded down to `alignElems`
 * within the segment (Infinity when they span a segment boundary: no binding can).
 */
function windowElems(accesses: readonly BoxAccess[], box: Box, alignElems: number): number {
  const { first, end } = unionRange(accesses, box);
  let segmentStart = 0;
  for (const start of accesses[0].segmentStarts ?? []) {
    if (start > first && start < end) return Infinity;
    if (start <= first) segmentStart = start;
  }
  return end - (segmentStart + Math.floor((first - segmentStart) / alignElems) * alignElems);
}

export class BindingTooSmallError extends RangeError {}

/** the union [first, end) of what `box` touches through accesses of one buffer */
function unionRange(accesses: readonly BoxAccess[], box: Box): { first: number; end: number } {
  let first = Infinity;
  let end = 0;
  for (const access of accesses) {
    const range = touched(access, box);
    first = Math.min(first, range.first);
    end = Math.max(end, range.end);
  }
  return { first, end };
}

/**
 * How many leading indices along `dim` keep the accesses before the first buffer boundary inside
 * their window (0 when even one crosses it): binary search, the end grows with the count.
 */
function itemsBeforeBoundary(accesses: readonly BoxAccess[], box: Box, dim: number): number {
  const { first, end } = unionRange(accesses, box);
  const boundary = (accesses[0].segmentStarts ?? []).find((start) => start > first && start < end);
  if (boundary === undefined) return 0;
  let fits = 0;
  let crosses = box.size[dim];
  while (crosses - fits > 1) {
    const count = Math.floor((fits + crosses) / 2);
    const size = box.size.map((s, d) => (d === dim ? count : s));
    if (unionRange(accesses, { start: box.start, size }).end <= boundary) fits = count;
    else crosses = count;
  }
  return fits;
}

/**
 * The boxes, in order, that cover `sizes` with every buffer's window at most `maxElems`. Boxes that
 * differ only along a later dimension come in increasing order of it (a matmul cut along K relies on
 * this to accumulate onto its first part).
 */
export function planPieces(sizes: readonly number[], accesses: readonly BoxAccess[], maxElems: number, alignElems: number): Box[] {
  const buffers = new Map<unknown, BoxAccess[]>();
  for (const access of accesses) {
    const group = buffers.get(access.buffer);
    if (group) group.push(access);
    else buffers.set(access.buffer, [access]);
  }
  const groups = [...buffers.values()];
  const pieces: Box[] = [];
  const cut = (box: Box): void => {
    const oversized = groups.filter((group) => windowElems(group, box, alignElems) > maxElems);
    if (oversized.length === 0) {
      pieces.push(box);
      return;
    }
    // halve the dimension along which the oversized windows spread most
    let widest = -1;
    let widestSpread = 0;
    box.size.forEach((size, d) => {
      if (size < 2) return;
      let spread = 0;
      for (const group of oversized) for (const access of group) spread += (size - 1) * access.strides[d];
      if (spread > widestSpread) {
        widest = d;
        widestSpread = spread;
      }
    });
    if (widest < 0) {
      const elems = windowElems(oversized[0], box, alignElems);
      if (elems === Infinity)
        throw new BindingTooSmallError('a single item spans two of the buffers that hold a tensor larger than one buffer');
      throw new BindingTooSmallError(
        `needs ${elems * 4} bytes in one binding for a single item, more than the ${maxElems * 4} the device binds`,
      );
    }
    // a window across a buffer boundary is cut at the boundary, not in half: one extra piece, not log n
    const crossing = oversized.find((group) => windowElems(group, box, alignElems) === Infinity);
    const half = (crossing && itemsBeforeBoundary(crossing, box, widest)) || Math.ceil(box.size[widest] / 2);
    const firstSize = box.size.map((s, d) => (d === widest ? half : s));
    const secondStart = box.start.map((s, d) => (d === widest ? s + half : s));
    const secondSize = box.size.map((s, d) => (d === widest ? s - half : s));
    cut({ start: box.start, size: firstSize });
    cut({ start: secondStart, size: secondSize });
  };
  cut({ start: sizes.map(() => 0), size: sizes });
  return pieces;
}
