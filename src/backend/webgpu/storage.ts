/**
 * WebGPU storage: allocations as one or more pooled buffers (segments), and the tensors (views)
 * into them. Past the adapter's maxBufferSize an allocation is several buffers, cut where alloc's
 * splitAt allows; an op's view must lie in one of them, which the recorder's inPieces sees to.
 */
/// <reference types="@webgpu/types" />
import type { DType, SplitPoints, Tensor } from '../contract.js';
import { BUFFER_USAGE, BufferPool, type PooledBuffer } from './buffers.js';

/** longest tensor alloc takes when it may be split into several buffers (offsets stay exact in f64 and u32 per buffer) */
export const MAX_SPLIT_TENSOR_LENGTH = 2 ** 40;

/**
 * How `length` elements go into buffers of at most `maxElems`: one buffer when they fit, else cut
 * at the last allowed point (splitAt) that keeps each buffer within the limit.
 */
export function segmentLayout(length: number, maxElems: number, splitAt?: SplitPoints): { start: number; length: number }[] {
  if (length <= maxElems) return [{ start: 0, length }];
  if (splitAt === undefined) {
    throw new RangeError(
      `alloc: ${length} elements is more than one buffer of this adapter holds (${maxElems}); pass splitAt (where the tensor may be cut) to store it in several`,
    );
  }
  const layout: { start: number; length: number }[] = [];
  let start = 0;
  while (length - start > maxElems) {
    let cut: number;
    if (typeof splitAt === 'number') {
      cut = Math.floor((start + maxElems) / splitAt) * splitAt;
    } else {
      cut = start;
      for (const point of splitAt) if (point > start && point <= start + maxElems) cut = point;
    }
    if (!(cut > start)) {
      throw new RangeError(
        `alloc: no allowed split point (splitAt) within ${maxElems} elements after element ${start}, so ${length} elements cannot be stored in buffers of ${maxElems}`,
      );
    }
    layout.push({ start, length: cut - start });
    start = cut;
  }
  layout.push({ start, length: length - start });
  return layout;
}

/** One buffer of an allocation: its elements [start, start + length). */
export interface Segment {
  readonly pooled: PooledBuffer;
  readonly start: number;
  readonly length: number;
}

/** One allocation; tensors are views into it. */
export interface GpuStorage {
  readonly segments: readonly Segment[];
  /** starts of the segments after the first (for pieces.ts) */
  readonly segmentStarts: readonly number[];
  readonly dtype: DType;
  live: boolean;
}

/** the parts of [offset, offset + length) that fall in each segment, in order */
export function segmentParts(storage: GpuStorage, offset: number, length: number): { segment: Segment; from: number; to: number }[] {
  const parts = [];
  for (const segment of storage.segments) {
    const from = Math.max(offset, segment.start);
    const to = Math.min(offset + length, segment.start + segment.length);
    if (from < to) parts.push({ segment, from, to });
  }
  return parts;
}

/** the segment that holds all of the view (a view of length 0 belongs to the segment at its offset) */
export function segmentOf(t: WebGPUTensor): Segment {
  const { segments } = t.storage;
  const segment =
    segments.find((s) => t.offset >= s.start && t.offset + t.length <= s.start + s.length) ??
    (t.length === 0 ? segments.find((s) => t.offset <= s.start + s.length) : undefined);
  if (!segment) throw new Error(`internal: a view [${t.offset}, ${t.offset + t.length}) spans two buffers of one tensor`);
  return segment;
}

export class WebGPUTensor implements Tensor {
  constructor(
    readonly dtype: DType,
    readonly offset: number,
    readonly length: number,
    readonly storage: GpuStorage,
    /** the backend that made it: a tensor of another backend is refused */
    readonly owner: object,
  ) {}
}

/** idle storage kept for reuse after `free` */
const POOL_RETAIN_BYTES = 512 * 1024 * 1024;

/** The live allocations of one backend, in buffers from one pool. */
export class GpuMemory {
  private readonly pool: BufferPool;
  /** the most elements one buffer holds */
  readonly maxTensorLength: number;
  private readonly live = new Set<GpuStorage>();

  /**
   * `clear` zero-fills a reused buffer in command order; `track` reports an error scope's outcome
   * with what was being done (see faults.ts); `limit` is the backend's memoryLimit, which
   * `checkRoom` enforces for the backend's own scratch (alloc checks the rest) by throwing.
   */
  constructor(
    private readonly device: GPUDevice,
    private readonly owner: object,
    maxBufferBytes: number,
    private readonly clear: (buffer: GPUBuffer, bytes: number) => void,
    private readonly track: (scope: Promise<GPUError | null>, what: string, onOutOfMemory: () => void) => void,
    private readonly limit: () => number,
    private readonly checkRoom: (what: string, bytes: number) => void,
  ) {
    this.maxTensorLength = Math.floor(maxBufferBytes / 4);
    this.pool = new BufferPool(
      device,
      BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST,
      maxBufferBytes,
      POOL_RETAIN_BYTES,
    );
  }

  /** bytes an allocation of `length` elements takes: its buffers, each rounded up to the pool's granularity */
  allocationBytes(length: number, splitAt?: SplitPoints): number {
    return segmentLayout(length, this.maxTensorLength, splitAt).reduce((sum, segment) => sum + this.pool.sizeFor(segment.length * 4), 0);
  }

  allocate(length: number, dtype: DType, zeroFill: boolean, splitAt?: SplitPoints): WebGPUTensor {
    const segments: Segment[] = [];
    for (const { start, length: segmentLength } of segmentLayout(length, this.maxTensorLength, splitAt)) {
      const size = this.pool.sizeFor(segmentLength * 4);
      // under a memoryLimit, freed buffers kept for reuse make room for a new one: live + idle stays within it
      if (this.limit() !== Infinity && !this.pool.hasIdle(size)) this.pool.trimIdle(this.limit() - this.bytesInUse() - size);
      this.device.pushErrorScope('out-of-memory');
      const { pooled, reused } = this.pool.acquire(segmentLength * 4);
      this.track(this.device.popErrorScope(), `alloc of ${length} ${dtype} elements ran out of GPU memory`, () => {
        pooled.unusable = true;
      });
      // a fresh buffer is zero-filled by WebGPU; a reused one is cleared in command order
      if (reused && zeroFill) this.clear(pooled.buffer, pooled.bytes);
      segments.push({ pooled, start, length: segmentLength });
    }
    const storage: GpuStorage = { segments, segmentStarts: segments.slice(1).map((s) => s.start), dtype, live: true };
    this.live.add(storage);
    return new WebGPUTensor(dtype, 0, length, storage, this.owner);
  }

  /** an allocation that ops fill completely before reading: no zero fill, so no break in the compute pass */
  scratch(length: number, dtype: DType = 'f32'): WebGPUTensor {
    if (length > this.maxTensorLength) {
      throw new RangeError(`scratch buffer of ${length} elements exceeds the adapter's largest buffer (${this.maxTensorLength})`);
    }
    this.checkRoom(`scratch of ${length} ${dtype} elements`, this.allocationBytes(length));
    return this.allocate(length, dtype, false);
  }

  free(t: WebGPUTensor): void {
    t.storage.live = false;
    this.live.delete(t.storage);
    // under a memoryLimit, freed buffers are kept for reuse only while live + idle stays within it
    const maxIdle = this.limit() === Infinity ? Infinity : this.limit() - this.bytesInUse();
    for (const segment of t.storage.segments) this.pool.release(segment.pooled, maxIdle);
  }

  bytesInUse(): number {
    let bytes = 0;
    for (const storage of this.live) for (const segment of storage.segments) bytes += segment.pooled.bytes;
    return bytes;
  }

  /** destroy buffers released since the last submission (they were in use by it) */
  destroyReleased(): void {
    this.pool.destroyReleased();
  }

  destroyAll(): void {
    for (const storage of this.live) storage.live = false;
    this.live.clear();
    this.pool.destroyAll();
  }
}

export type { PooledBuffer };
