/**
 * The WebGPU backend: every op of src/backend/contract.ts as a WGSL compute shader.
 *
 * Execution model: ops are recorded into one command encoder (one compute pass between copies) and
 * submitted together on `download` or `flush()`, so a training step is one submission and reads back
 * only what the caller downloads. Each dispatch's offsets and scalars go into its own 256-byte slot
 * of one uniform buffer (bound with a dynamic offset), written just before the submission.
 *
 * Size limits: a dispatch binds only the window of each buffer its views touch, and an op whose
 * windows would exceed maxStorageBufferBindingSize runs as several dispatches over pieces of its
 * iteration space (`inPieces`, pieces.ts). An allocation past maxBufferSize is several buffers, cut
 * where alloc's `splitAt` allows; pieces never span two of them.
 *
 * Faults never hang and never pass silently: device loss (see `lost`), shader, validation and
 * out-of-memory errors make the next `download` reject with a message that says what happened.
 * After device loss every download rejects; the host should rebuild the backend from its last
 * downloaded or saved state.
 */
/// <reference types="@webgpu/types" />
import {
  dropoutThreshold,
  type AdamWParams,
  type Backend,
  type BackendLimits,
  type DType,
  type OpName,
  type SplitPoints,
  type Tensor,
} from '../contract.js';
import { BUFFER_USAGE, BufferPool, type PooledBuffer } from './buffers.js';
import { acquireDevice, type WebGPUOptions } from './device.js';
import { UNIFORM_SLOT_BYTES, grid, type BindingPlan, type KernelDef } from './kernel.js';
import { BindingTooSmallError, planPieces, touched, type Box } from './pieces.js';
import { PipelineCache, type BindingWindow } from './pipelines.js';
import { adamwKernel } from './wgsl/adamw.js';
import {
  attentionBackwardKeyValueKernel,
  attentionBackwardQueryKernel,
  attentionCombineKernel,
  attentionForwardKernel,
  headLanes,
  kvAppendKernel,
} from './wgsl/attention.js';
import {
  ATTENTION_TILE,
  ATTENTION_TILED_MAX_HEAD,
  attentionBackwardKeyValueTiledKernel,
  attentionBackwardQueryTiledKernel,
  attentionForwardTiledKernel,
} from './wgsl/attention-tiled.js';
import {
  COLUMN_CHUNK_ROWS,
  COLUMN_GROUP,
  COLUMN_MAX_CHUNKS,
  columnFinalKernel,
  columnPartialKernel,
  layerNormParamsPartialKernel,
} from './wgsl/columns.js';
import { crossEntropyBackwardKernel, crossEntropyForwardKernel } from './wgsl/crossentropy.js';
import {
  ELEMENTWISE_WORKGROUP,
  accumulateKernel,
  copyKernel,
  dropoutBackwardKernel,
  dropoutForwardKernel,
  geluBackwardKernel,
  geluForwardKernel,
  residualKernel,
  scaleKernel,
  transposeKernel,
} from './wgsl/elementwise.js';
import {
  encoderBackwardPositionsKernel,
  encoderBackwardTokensKernel,
  encoderForwardKernel,
  encoderLinkTokensKernel,
} from './wgsl/encoder.js';
import { layerNormBackwardInputKernel, layerNormForwardKernel } from './wgsl/layernorm.js';
import {
  GEMV_COLUMNS,
  GEMV_MAX_ROWS,
  kChunkSumKernel,
  gemvPartialKernel,
  matmulKernel,
  matmulTile,
  matmulVariant,
  type MatmulBlock,
  type MatmulLayout,
} from './wgsl/matmul.js';
import { SQNORM_PARTIALS, SQNORM_WORKGROUP, squaredNormFinalKernel, squaredNormPartialKernel } from './wgsl/reduce.js';
import { adamwArgs, dims, dropoutArgs, finite, headSize, nonNegativeInteger, viewRange } from '../checks.js';

/** longest tensor alloc takes when it may be split into several buffers (offsets stay exact in f64 and u32 per buffer) */
const MAX_SPLIT_TENSOR_LENGTH = 2 ** 40;

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

export type { WebGPUOptions } from './device.js';
export { requestAdapter, softwareAdapterReason } from './device.js';

const MAP_MODE_READ = 0x1;
/** dispatches recorded before an early submission frees the uniform slots (1 MiB of uniforms) */
const UNIFORM_SLOTS = 4096;
/** idle storage kept for reuse after `free` */
const POOL_RETAIN_BYTES = 512 * 1024 * 1024;

/** One buffer of an allocation: its elements [start, start + length). */
interface Segment {
  readonly pooled: PooledBuffer;
  readonly start: number;
  readonly length: number;
}

/**
 * One allocation; tensors are views into it. Past the adapter's maxBufferSize it is several
 * buffers (segments), cut where alloc's splitAt allows; an op's view must lie in one of them, which
 * inPieces sees to.
 */
interface GpuStorage {
  readonly segments: readonly Segment[];
  /** starts of the segments after the first (for pieces.ts) */
  readonly segmentStarts: readonly number[];
  readonly dtype: DType;
  live: boolean;
}

/** the parts of [offset, offset + length) that fall in each segment, in order */
function segmentParts(storage: GpuStorage, offset: number, length: number): { segment: Segment; from: number; to: number }[] {
  const parts = [];
  for (const segment of storage.segments) {
    const from = Math.max(offset, segment.start);
    const to = Math.min(offset + length, segment.start + segment.length);
    if (from < to) parts.push({ segment, from, to });
  }
  return parts;
}

/** the segment that holds all of the view (a view of length 0 belongs to the segment at its offset) */
function segmentOf(t: WebGPUTensor): Segment {
  const { segments } = t.storage;
  const segment =
    segments.find((s) => t.offset >= s.start && t.offset + t.length <= s.start + s.length) ??
    (t.length === 0 ? segments.find((s) => t.offset <= s.start + s.length) : undefined);
  if (!segment) throw new Error(`internal: a view [${t.offset}, ${t.offset + t.length}) spans two buffers of one tensor`);
  return segment;
}

class WebGPUTensor implements Tensor {
  constructor(
    readonly dtype: DType,
    readonly offset: number,
    readonly length: number,
    readonly storage: GpuStorage,
    readonly owner: WebGPUBackend,
  ) {}
}

/**
 * How an op's iteration box (see pieces.ts) reaches into a tensor: the element step per unit of each
 * box dimension, the elements one item touches, and whether the op writes it.
 */
interface PieceAccess {
  readonly tensor: WebGPUTensor;
  readonly strides: readonly number[];
  readonly extent: number;
  readonly write?: boolean;
}

/** For an op cut along one dimension: item i touches `elems` elements of `tensor` from i * elems. */
function perItem(tensor: WebGPUTensor, elems: number, write = false): PieceAccess {
  return { tensor, strides: [elems], extent: elems, write };
}

/** For an op cut along one dimension: every item touches the same first `elems` elements. */
function sharedByAll(tensor: WebGPUTensor, elems: number, write = false): PieceAccess {
  return { tensor, strides: [0], extent: elems, write };
}

/** A dispatch: the kernel's tensors and scalars by name, and the workgroup grid. */
interface Dispatch {
  tensors: Record<string, WebGPUTensor>;
  scalars?: Record<string, number>;
  /** workgroups along x, y and (default 1) z */
  groups: readonly [number, number] | readonly [number, number, number];
  /** selects a generated variant of the kernel (part of the pipeline key) */
  variant?: string;
}

export interface WebGPUBackendOptions {
  /**
   * Register block of the matmul kernel: 4 (64x64 tiles) or 8 (128x128 tiles). 'auto' (default)
   * takes 8 once a product has at least LARGE_TILE_MIN_TILES tiles of 128x128, enough to fill a
   * large GPU; smaller products keep more workgroups with 4.
   */
  matmulBlock?: 'auto' | MatmulBlock;
  /**
   * Bytes one storage binding may span, at most the device's `maxStorageBufferBindingSize` (the
   * default). Ops on tensors larger than this run as several dispatches over windows that fit;
   * a lower cap makes that happen on small tensors (tests use it).
   */
  maxBindingBytes?: number;
  /**
   * Bytes one buffer may hold, at most the device's `maxBufferSize` (the default). A tensor larger
   * than this is stored in several buffers where alloc's `splitAt` allows; a lower cap makes that
   * happen on small tensors (tests use it).
   */
  maxBufferBytes?: number;
}

/** the row-by-row attention kernel's scalars when it walks every key of a row itself */
const ALL_KEYS_IN_ONE_SPLIT = { splits: 1, keysPerSplit: 0xffffffff } as const;
/** workgroups cached attention aims for when it cuts the keys (decoding), and the fewest keys per cut */
const DECODE_TARGET_WORKGROUPS = 256;
const DECODE_MIN_KEYS_PER_SPLIT = 32;

/**
 * Split K: products with fewer output tiles than this are cut along K, aiming for this many
 * workgroups, each chunk at least this long (see wgsl/matmul.ts)
 */
const SPLIT_K_MAX_TILES = 128;
const SPLIT_K_TARGET_WORKGROUPS = 512;
const SPLIT_K_MIN_CHUNK = 512;

/** workgroups the few-rows product aims for, and the fewest k per chunk it cuts K into */
const GEMV_TARGET_WORKGROUPS = 512;
const GEMV_MIN_CHUNK = 32;

/** 128x128 tiles of C from which the 8x8 register block pays (measured on an H100: 2048^2 and up) */
const LARGE_TILE_MIN_TILES = 128;

export async function createWebGPUBackend(opts: WebGPUOptions & WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const { device, adapterName } = await acquireDevice(opts);
  return new WebGPUBackend(device, adapterName, opts);
}

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly limits: BackendLimits;
  /** resolves when the device is lost (including by `dispose`); downloads reject from then on */
  readonly lost: Promise<GPUDeviceLostInfo>;
  readonly adapterName: string;
  /** the device every op runs on (for interop; destroying it makes every later download reject) */
  readonly device: GPUDevice;
  /** queue submissions so far: one per download or flush, plus one per 4096 dispatches */
  get submissions(): number {
    return this.submissionCount;
  }
  /** compute dispatches recorded so far (an op on tensors larger than one binding takes several) */
  get dispatches(): number {
    return this.dispatchCount;
  }

  private readonly storagePool: BufferPool;
  private readonly readbackPool: BufferPool;
  private readonly pipelines: PipelineCache;
  private readonly liveStorage = new Set<GpuStorage>();
  private readonly maxWorkgroupsPerDim: number;
  /** elements one binding may span, and the alignment (in elements) of a binding's start */
  private readonly maxBindingElems: number;
  private readonly bindingAlignElems: number;
  private readonly matmulBlock: 'auto' | MatmulBlock;

  private readonly uniformBuffer: PooledBuffer;
  private readonly uniformBytes = new ArrayBuffer(UNIFORM_SLOTS * UNIFORM_SLOT_BYTES);
  private readonly uniformU32 = new Uint32Array(this.uniformBytes);
  private readonly uniformI32 = new Int32Array(this.uniformBytes);
  private readonly uniformF32 = new Float32Array(this.uniformBytes);
  private uniformSlotsUsed = 0;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** upload staging buffers of the recording encoder, destroyed once it is submitted */
  private stagingToDestroy: GPUBuffer[] = [];
  /** error-scope results not yet reported by a download */
  private pendingChecks: Promise<string | null>[] = [];
  /** errors reported by the device outside any scope, waiting for the next download */
  private uncaptured: string[] = [];
  private lostError: Error | null = null;
  private disposed = false;
  private sqnormPartials: WebGPUTensor | null = null;
  private submissionCount = 0;
  private dispatchCount = 0;

  constructor(device: GPUDevice, adapterName = 'unknown adapter', options: WebGPUBackendOptions = {}) {
    const matmulBlock = options.matmulBlock ?? 'auto';
    if (matmulBlock !== 'auto' && matmulBlock !== 4 && matmulBlock !== 8) {
      throw new RangeError(`WebGPUBackend: matmulBlock must be 'auto', 4 or 8, got ${String(matmulBlock)}`);
    }
    this.matmulBlock = matmulBlock;
    this.device = device;
    this.adapterName = adapterName;
    const smallest = 16 * device.limits.minStorageBufferOffsetAlignment;
    const bufferCap = options.maxBufferBytes ?? device.limits.maxBufferSize;
    if (!Number.isInteger(bufferCap) || bufferCap < smallest || bufferCap > device.limits.maxBufferSize) {
      throw new RangeError(
        `WebGPUBackend: maxBufferBytes must be an integer in [${smallest}, ${device.limits.maxBufferSize}] (this device's largest buffer), ` +
          `got ${String(options.maxBufferBytes)}`,
      );
    }
    const deviceBinding = Math.min(device.limits.maxStorageBufferBindingSize, bufferCap);
    const bindingCap = options.maxBindingBytes ?? deviceBinding;
    this.bindingAlignElems = device.limits.minStorageBufferOffsetAlignment / 4;
    if (!Number.isInteger(bindingCap) || bindingCap < smallest || bindingCap > deviceBinding) {
      throw new RangeError(
        `WebGPUBackend: maxBindingBytes must be an integer in [${smallest}, ${deviceBinding}] ` +
          `(this device's largest storage binding, and no more than a buffer), got ${String(options.maxBindingBytes)}`,
      );
    }
    this.maxBindingElems = Math.floor(bindingCap / 4);
    const maxBytes = bufferCap;
    this.limits = { maxTensorLength: Math.floor(maxBytes / 4), maxTotalBytes: Infinity };
    this.maxWorkgroupsPerDim = device.limits.maxComputeWorkgroupsPerDimension;
    this.storagePool = new BufferPool(
      device,
      BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST,
      maxBytes,
      POOL_RETAIN_BYTES,
    );
    this.readbackPool = new BufferPool(
      device,
      BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
      device.limits.maxBufferSize,
      64 * 1024 * 1024,
    );
    this.pipelines = new PipelineCache(device, (scope, what) => this.track(scope, what));
    this.uniformBuffer = {
      id: 0,
      buffer: device.createBuffer({ size: UNIFORM_SLOTS * UNIFORM_SLOT_BYTES, usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST }),
      bytes: UNIFORM_SLOTS * UNIFORM_SLOT_BYTES,
    };
    this.lost = device.lost.then((info) => {
      this.lostError = this.disposed
        ? new Error('WebGPU backend was disposed')
        : new Error(`WebGPU device lost (reason: ${info.reason ?? 'unknown'}): ${info.message || 'no message'}`);
      return info;
    });
    device.addEventListener('uncapturederror', (event) => {
      this.uncaptured.push(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
    });
  }

  supports(_op: OpName): boolean {
    return true;
  }

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32', splitAt?: SplitPoints): Tensor {
    this.checkUsable('alloc');
    if (!Number.isInteger(length) || length < 1 || length > MAX_SPLIT_TENSOR_LENGTH) {
      throw new RangeError(`alloc: length must be an integer in [1, ${MAX_SPLIT_TENSOR_LENGTH}], got ${length}`);
    }
    if (dtype !== 'f32' && dtype !== 'i32') throw new TypeError(`alloc: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
    return this.allocate(length, dtype, true, splitAt);
  }

  /** an allocation that ops fill completely before reading: no zero fill, so no break in the compute pass */
  private scratch(length: number, dtype: DType = 'f32'): WebGPUTensor {
    if (length > this.limits.maxTensorLength) {
      throw new RangeError(`scratch buffer of ${length} elements exceeds the adapter's largest buffer (${this.limits.maxTensorLength})`);
    }
    return this.allocate(length, dtype, false);
  }

  private allocate(length: number, dtype: DType, zeroFill: boolean, splitAt?: SplitPoints): WebGPUTensor {
    const segments: Segment[] = [];
    for (const { start, length: segmentLength } of segmentLayout(length, this.limits.maxTensorLength, splitAt)) {
      this.device.pushErrorScope('out-of-memory');
      const { pooled, reused } = this.storagePool.acquire(segmentLength * 4);
      this.track(this.device.popErrorScope(), `alloc of ${length} ${dtype} elements ran out of GPU memory`);
      // a fresh buffer is zero-filled by WebGPU; a reused one is cleared in command order
      if (reused && zeroFill) this.copyEncoder().clearBuffer(pooled.buffer, 0, pooled.bytes);
      segments.push({ pooled, start, length: segmentLength });
    }
    const storage: GpuStorage = { segments, segmentStarts: segments.slice(1).map((s) => s.start), dtype, live: true };
    this.liveStorage.add(storage);
    return new WebGPUTensor(dtype, 0, length, storage, this);
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    const parent = this.tensor('view', 't', t);
    viewRange(parent.length, offset, length);
    return new WebGPUTensor(parent.dtype, parent.offset + offset, length, parent.storage, this);
  }

  upload(t: Tensor, data: Float32Array | Int32Array): void {
    const target = this.tensor('upload', 't', t);
    const expected = target.dtype === 'f32' ? Float32Array : Int32Array;
    if (!(data instanceof expected)) {
      throw new TypeError(`upload: a ${target.dtype} tensor takes a ${expected.name}, got ${data?.constructor?.name ?? typeof data}`);
    }
    if (data.length > target.length) {
      throw new RangeError(`upload: data has ${data.length} elements, the tensor view holds ${target.length}`);
    }
    for (const { segment, from, to } of segmentParts(target.storage, target.offset, data.length)) {
      const part = data.subarray(from - target.offset, to - target.offset);
      const byteOffset = (from - segment.start) * 4;
      if (this.encoder === null) {
        // nothing recorded yet: the queue write lands before anything that is recorded next
        this.device.queue.writeBuffer(segment.pooled.buffer, byteOffset, part.buffer, part.byteOffset, part.byteLength);
        continue;
      }
      // ops already recorded must see the old contents: copy in command order from a staging buffer
      const staging = this.device.createBuffer({ size: part.byteLength, usage: BUFFER_USAGE.COPY_SRC, mappedAtCreation: true });
      new Uint8Array(staging.getMappedRange()).set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
      staging.unmap();
      this.copyEncoder().copyBufferToBuffer(staging, 0, segment.pooled.buffer, byteOffset, part.byteLength);
      this.stagingToDestroy.push(staging);
    }
  }

  async download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = this.tensor('download', 't', t);
    if (this.lostError) throw this.lostError;
    // one readback buffer per segment the view touches (one, unless the tensor spans several buffers)
    const readbacks = segmentParts(source.storage, source.offset, source.length).map(({ segment, from, to }) => {
      const bytes = (to - from) * 4;
      const { pooled } = this.readbackPool.acquire(bytes);
      this.copyEncoder().copyBufferToBuffer(segment.pooled.buffer, (from - segment.start) * 4, pooled.buffer, 0, bytes);
      return { pooled, bytes, at: from - source.offset };
    });
    this.flush();
    const checks = this.takeChecks();
    try {
      if (readbacks.length > 0)
        await this.unlessLost(Promise.all(readbacks.map((r) => r.pooled.buffer.mapAsync(MAP_MODE_READ, 0, r.bytes))));
      else await this.unlessLost(this.device.queue.onSubmittedWorkDone());
    } catch (error) {
      // set by the lost handler while this awaited (TypeScript still holds the null it saw before)
      if (this.lostError) throw this.lostError as Error;
      throw new Error(`download: reading the result back failed: ${(error as Error).message}`, { cause: error });
    }
    const errors = await this.unlessLost(checks);
    try {
      if (errors.length > 0) throw new Error(errors.join('\n'));
      const result = new Uint8Array(source.length * 4);
      for (const { pooled, bytes, at } of readbacks) result.set(new Uint8Array(pooled.buffer.getMappedRange(0, bytes)), at * 4);
      return source.dtype === 'f32' ? new Float32Array(result.buffer) : new Int32Array(result.buffer);
    } finally {
      for (const { pooled } of readbacks) {
        pooled.buffer.unmap();
        this.readbackPool.release(pooled);
      }
    }
  }

  /** submit everything recorded so far (download does this itself) */
  flush(): void {
    if (this.encoder === null) return;
    this.endPass();
    if (this.uniformSlotsUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer.buffer, 0, this.uniformBytes, 0, this.uniformSlotsUsed * UNIFORM_SLOT_BYTES);
    }
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.device.queue.submit([this.encoder.finish()]);
    this.submissionCount++;
    this.track(this.device.popErrorScope(), 'submitted commands failed validation');
    this.track(this.device.popErrorScope(), 'submitted commands ran out of GPU memory');
    for (const staging of this.stagingToDestroy) staging.destroy();
    this.stagingToDestroy = [];
    this.storagePool.destroyReleased();
    this.readbackPool.destroyReleased();
    this.encoder = null;
    this.uniformSlotsUsed = 0;
  }

  free(t: Tensor): void {
    const own = this.owned('free', 't', t);
    if (!own.storage.live) throw new Error('free: t belongs to a buffer that was already freed');
    own.storage.live = false;
    this.liveStorage.delete(own.storage);
    for (const segment of own.storage.segments) this.storagePool.release(segment.pooled);
  }

  bytesInUse(): number {
    let bytes = 0;
    for (const storage of this.liveStorage) for (const segment of storage.segments) bytes += segment.pooled.bytes;
    return bytes;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const storage of this.liveStorage) storage.live = false;
    this.liveStorage.clear();
    this.pipelines.clearBindGroups();
    this.storagePool.destroyAll();
    this.readbackPool.destroyAll();
    this.uniformBuffer.buffer.destroy();
    this.device.destroy();
  }

  // ---- elementwise helpers ----

  zero(t: Tensor): void {
    const target = this.tensor('zero', 't', t);
    if (target.length === 0) return;
    for (const { segment, from, to } of segmentParts(target.storage, target.offset, target.length)) {
      this.copyEncoder().clearBuffer(segment.pooled.buffer, (from - segment.start) * 4, (to - from) * 4);
    }
  }

  copy(dst: Tensor, src: Tensor): void {
    const from = this.tensor('copy', 'src', src);
    const to = this.tensor('copy', 'dst', dst);
    if (to.dtype !== from.dtype) throw new TypeError(`copy: dst is ${to.dtype} but src is ${from.dtype}`);
    if (to.length < from.length) throw new RangeError(`copy: dst has ${to.length} elements, needs at least src.length = ${from.length}`);
    if (overlaps(to, from, from.length)) {
      throw new RangeError(
        `copy: dst [${to.offset}, ${to.offset + from.length}) overlaps src [${from.offset}, ${from.offset + from.length}) in the same buffer`,
      );
    }
    if (from.length === 0) return;
    if (to.storage !== from.storage) {
      // per stretch that lies in one buffer on both sides
      for (const source of segmentParts(from.storage, from.offset, from.length)) {
        const shift = to.offset - from.offset;
        for (const target of segmentParts(to.storage, source.from + shift, source.to - source.from)) {
          this.copyEncoder().copyBufferToBuffer(
            source.segment.pooled.buffer,
            (target.from - shift - source.segment.start) * 4,
            target.segment.pooled.buffer,
            (target.from - target.segment.start) * 4,
            (target.to - target.from) * 4,
          );
        }
      }
      return;
    }
    // copyBufferToBuffer refuses one buffer as both source and destination
    this.elementwise(copyKernel, from.length, { dst: to, src: from });
  }

  scale(t: Tensor, s: number): void {
    finite('scale', 's', s);
    const x = this.floats('scale', 't', t, t.length);
    this.elementwise(scaleKernel, x.length, { t: x }, { s });
  }

  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    dims(op, { rows, cols });
    const o = this.floats(op, 'out', out, rows * cols);
    const x = this.floats(op, 'inp', inp, rows * cols);
    if (overlaps(o, x, rows * cols))
      throw new RangeError(`${op}: out and inp overlap in the same buffer; transpose needs separate storage`);
    // [cols (rows of out), rows (rows of inp)]
    this.inPieces(
      op,
      [cols, rows],
      { out: { tensor: o, strides: [rows, 1], extent: 1, write: true }, inp: { tensor: x, strides: [1, cols], extent: 1 } },
      (piece, views) => {
        const [pieceCols, pieceRows] = piece.size;
        this.dispatchElementwise(transposeKernel, pieceRows * pieceCols, views, { rows: pieceRows, outStride: rows, inpStride: cols });
      },
    );
  }

  squaredNorm(out: Tensor, t: Tensor): void {
    const result = this.floats('squaredNorm', 'out', out, 1);
    const x = this.floats('squaredNorm', 't', t, t.length);
    const partials = (this.sqnormPartials ??= this.scratch(SQNORM_PARTIALS));
    // a tensor past one binding is summed in pieces, each piece's total added onto out in order
    this.inPieces('squaredNorm', [x.length], { t: perItem(x, 1) }, (piece, views) => {
      const n = piece.size[0];
      const groups = Math.max(1, Math.min(SQNORM_PARTIALS, Math.ceil(n / SQNORM_WORKGROUP)));
      this.dispatch(squaredNormPartialKernel, { tensors: { partials, t: views.t }, scalars: { n }, groups: [groups, 1] });
      this.dispatch(squaredNormFinalKernel, {
        tensors: { out: result, partials },
        scalars: { count: groups, accumulate: piece.start[0] > 0 ? 1 : 0 },
        groups: [1, 1],
      });
    });
  }

  // ---- encoder ----

  encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    const o = this.floats(op, 'out', out, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const V = Math.floor(this.tensor(op, 'wte', wte).length / C);
    const tokenTable = this.floats(op, 'wte', wte, V * C);
    const positionTable = this.floats(op, 'wpe', wpe, (posOffset + T) * C);
    // [BT rows, V token ids]: a piece writes the rows whose token falls in its slice of wte
    this.inPieces(
      op,
      [B * T, V],
      {
        out: { tensor: o, strides: [C, 0], extent: C, write: true },
        inp: { tensor: ids, strides: [1, 0], extent: 1 },
        wte: { tensor: tokenTable, strides: [0, C], extent: C },
        wpe: { tensor: positionTable, strides: [0, 0], extent: (posOffset + T) * C },
      },
      (piece, views) => {
        this.dispatchElementwise(encoderForwardKernel, piece.size[0] * C, views, {
          T,
          C,
          V,
          posOffset,
          rowBase: piece.start[0],
          vBase: piece.start[1],
          vCount: piece.size[1],
        });
      },
    );
  }

  encoderBackward(dwte: Tensor, dwpe: Tensor, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    dims(op, { B, T, C });
    const V = Math.floor(this.tensor(op, 'dwte', dwte).length / C);
    const dTokenTable = this.floats(op, 'dwte', dwte, V * C);
    const dPositionTable = this.floats(op, 'dwpe', dwpe, T * C);
    const d = this.floats(op, 'dout', dout, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    // [BT positions, V token ids]: a piece links the positions in its range that share a token and
    // adds their dout into the rows of its slice of dwte
    this.inPieces(
      op,
      [B * T, V],
      {
        dwte: { tensor: dTokenTable, strides: [0, C], extent: C, write: true },
        dout: { tensor: d, strides: [C, 0], extent: C },
        inp: { tensor: ids, strides: [1, 0], extent: 1 },
      },
      (piece, views) => {
        const positions = piece.size[0];
        const links = this.scratch(2 * positions, 'i32');
        this.dispatch(encoderLinkTokensKernel, {
          tensors: { links, inp: views.inp },
          scalars: { BT: positions },
          groups: this.grid(positions),
        });
        this.dispatch(encoderBackwardTokensKernel, {
          tensors: { ...views, links },
          scalars: { BT: positions, C, vBase: piece.start[1], vCount: piece.size[1] },
          groups: this.grid(positions),
        });
        this.free(links);
      },
    );
    // [T*C, B]: dwpe[i] += sum over b of dout[b*T*C + i]
    this.inPieces(
      op,
      [T * C, B],
      { dwpe: { tensor: dPositionTable, strides: [1, 0], extent: 1, write: true }, dout: { tensor: d, strides: [1, T * C], extent: 1 } },
      (piece, views) => this.dispatchElementwise(encoderBackwardPositionsKernel, piece.size[0], views, { B: piece.size[1], TC: T * C }),
    );
  }

  // ---- layer norm ----

  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const op = 'layerNormForward';
    dims(op, { N, C });
    // [N rows]
    this.inPieces(
      op,
      [N],
      {
        out: perItem(this.floats(op, 'out', out, N * C), C, true),
        mean: perItem(this.floats(op, 'mean', mean, N), 1, true),
        rstd: perItem(this.floats(op, 'rstd', rstd, N), 1, true),
        inp: perItem(this.floats(op, 'inp', inp, N * C), C),
        weight: sharedByAll(this.floats(op, 'weight', weight, C), C),
        bias: sharedByAll(this.floats(op, 'bias', bias, C), C),
      },
      (piece, views) =>
        this.dispatch(layerNormForwardKernel, { tensors: views, scalars: { N: piece.size[0], C }, groups: this.grid(piece.size[0]) }),
    );
  }

  layerNormBackward(
    dinp: Tensor,
    dweight: Tensor,
    dbias: Tensor,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    mean: Tensor,
    rstd: Tensor,
    N: number,
    C: number,
  ): void {
    const op = 'layerNormBackward';
    dims(op, { N, C });
    // [N rows]; each piece adds its rows' share into dweight and dbias
    this.inPieces(
      op,
      [N],
      {
        dinp: perItem(this.floats(op, 'dinp', dinp, N * C), C, true),
        dweight: sharedByAll(this.floats(op, 'dweight', dweight, C), C, true),
        dbias: sharedByAll(this.floats(op, 'dbias', dbias, C), C, true),
        dout: perItem(this.floats(op, 'dout', dout, N * C), C),
        inp: perItem(this.floats(op, 'inp', inp, N * C), C),
        weight: sharedByAll(this.floats(op, 'weight', weight, C), C),
        mean: perItem(this.floats(op, 'mean', mean, N), 1),
        rstd: perItem(this.floats(op, 'rstd', rstd, N), 1),
      },
      (piece, { dinp: dx, dweight: dw, dbias: db, dout: d, inp: x, weight: w, mean: means, rstd: rstds }) => {
        const rows = piece.size[0];
        this.dispatch(layerNormBackwardInputKernel, {
          tensors: { dinp: dx, dout: d, inp: x, weight: w, mean: means, rstd: rstds },
          scalars: { N: rows, C },
          groups: this.grid(rows),
        });
        const { chunks, rowsPerChunk } = columnChunks(rows);
        const partials = this.scratch(chunks * 2 * C);
        this.dispatch(layerNormParamsPartialKernel, {
          tensors: { partials, dout: d, inp: x, mean: means, rstd: rstds },
          scalars: { M: rows, N: C, rowsPerChunk },
          groups: [Math.ceil(C / COLUMN_GROUP), chunks],
        });
        const columnGroups: [number, number] = [Math.ceil(C / COLUMN_GROUP), 1];
        this.dispatch(columnFinalKernel, {
          tensors: { sums: dw, partials },
          scalars: { N: C, chunks, stride: 2 * C },
          groups: columnGroups,
        });
        this.dispatch(columnFinalKernel, {
          tensors: { sums: db, partials: this.shifted(partials, C) },
          scalars: { N: C, chunks, stride: 2 * C },
          groups: columnGroups,
        });
        this.free(partials);
      },
    );
  }

  // ---- matmul ----

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const op = 'matmulForward';
    dims(op, { M, K, N });
    const o = this.floats(op, 'out', out, M * N);
    const b = bias === null ? null : this.floats(op, 'bias', bias, N);
    this.product(o, this.floats(op, 'inp', inp, M * K), this.floats(op, 'weight', weight, K * N), b, false, {
      M,
      N,
      K,
      sAm: K,
      sAk: 1,
      sBk: N,
      sBn: 1,
    });
  }

  matmulBackward(
    dinp: Tensor | null,
    dweight: Tensor,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    const op = 'matmulBackward';
    dims(op, { M, K, N });
    const dx = dinp === null ? null : this.floats(op, 'dinp', dinp, M * K);
    const dw = this.floats(op, 'dweight', dweight, K * N);
    const db = dbias === null ? null : this.floats(op, 'dbias', dbias, N);
    const d = this.floats(op, 'dout', dout, M * N);
    const x = this.floats(op, 'inp', inp, M * K);
    const w = this.floats(op, 'weight', weight, K * N);
    // dinp[M,K] += dout[M,N] @ weight^T: B(n,k) = weight[k*N + n]
    if (dx !== null) this.product(dx, d, w, null, true, { M, N: K, K: N, sAm: N, sAk: 1, sBk: 1, sBn: N });
    // dweight[K,N] += inp^T @ dout: A(k,m) = inp[m*K + k]
    this.product(dw, x, d, null, true, { M: K, N, K: M, sAm: 1, sAk: K, sBk: N, sBn: 1 });
    if (db !== null) {
      // [M rows]; each piece adds its rows' column sums into dbias
      this.inPieces(op, [M], { dbias: sharedByAll(db, N, true), dout: perItem(d, N) }, (piece, views) => {
        const rows = piece.size[0];
        const { chunks, rowsPerChunk } = columnChunks(rows);
        const partials = this.scratch(chunks * N);
        const groups: [number, number] = [Math.ceil(N / COLUMN_GROUP), chunks];
        this.dispatch(columnPartialKernel, { tensors: { partials, x: views.dout }, scalars: { M: rows, N, rowsPerChunk }, groups });
        this.dispatch(columnFinalKernel, {
          tensors: { sums: views.dbias, partials },
          scalars: { N, chunks, stride: N },
          groups: [groups[0], 1],
        });
        this.free(partials);
      });
    }
  }

  // ---- attention ----

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionForward';
    const HS = headSize(op, B, T, C, NH);
    // [B sequences]
    const access = {
      out: perItem(this.floats(op, 'out', out, B * T * C), T * C, true),
      lse: perItem(this.floats(op, 'lse', lse, B * NH * T), NH * T, true),
      qkv: perItem(this.floats(op, 'qkv', qkv, B * T * 3 * C), T * 3 * C),
    };
    this.inPieces(op, [B], access, (piece, { out: o, lse: logSumExps, qkv: x }) => {
      const pieceB = piece.size[0];
      if (HS <= ATTENTION_TILED_MAX_HEAD) {
        this.dispatch(attentionForwardTiledKernel(HS), {
          tensors: { out: o, lse: logSumExps, qkv: x },
          scalars: { T, NH, HS, scale: 1 / Math.sqrt(HS) },
          groups: this.rowsByHeads(op, Math.ceil(T / ATTENTION_TILE), pieceB * NH),
          variant: `hs${HS}`,
        });
        return;
      }
      const lanes = headLanes(HS);
      this.dispatch(attentionForwardKernel(lanes), {
        tensors: { out: o, lse: logSumExps, q: x, k: this.shifted(x, C), v: this.shifted(x, 2 * C) },
        scalars: {
          T,
          NH,
          HS,
          scale: 1 / Math.sqrt(HS),
          qBatch: T * 3 * C,
          qRow: 3 * C,
          kBatch: T * 3 * C,
          kRow: 3 * C,
          posStart: 0,
          hasLse: 1,
          BNH: pieceB * NH,
          ...ALL_KEYS_IN_ONE_SPLIT,
        },
        groups: this.rowsByHeads(op, T, pieceB * NH),
        variant: `lanes${lanes}`,
      });
    });
  }

  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionBackward';
    const HS = headSize(op, B, T, C, NH);
    // [B sequences]
    const access = {
      dqkv: perItem(this.floats(op, 'dqkv', dqkv, B * T * 3 * C), T * 3 * C, true),
      dout: perItem(this.floats(op, 'dout', dout, B * T * C), T * C),
      qkv: perItem(this.floats(op, 'qkv', qkv, B * T * 3 * C), T * 3 * C),
      out: perItem(this.floats(op, 'out', out, B * T * C), T * C),
      lse: perItem(this.floats(op, 'lse', lse, B * NH * T), NH * T),
    };
    const scalars = { T, NH, HS, scale: 1 / Math.sqrt(HS) };
    this.inPieces(op, [B], access, (piece, tensors) => {
      const pieceB = piece.size[0];
      if (HS <= ATTENTION_TILED_MAX_HEAD) {
        const groups = this.rowsByHeads(op, Math.ceil(T / ATTENTION_TILE), pieceB * NH);
        // dout . out per row [B,NH,T], from the dq kernel to the dk/dv kernel
        const rowDots = this.scratch(pieceB * NH * T);
        this.dispatch(attentionBackwardQueryTiledKernel(HS), { tensors: { ...tensors, rowDots }, scalars, groups, variant: `hs${HS}` });
        this.dispatch(attentionBackwardKeyValueTiledKernel(HS), { tensors: { ...tensors, rowDots }, scalars, groups, variant: `hs${HS}` });
        // freed at once: whatever reuses the buffer writes it in command order, after these reads
        this.free(rowDots);
        return;
      }
      const lanes = headLanes(HS);
      const groups = this.rowsByHeads(op, T, pieceB * NH);
      this.dispatch(attentionBackwardQueryKernel(lanes), { tensors, scalars, groups, variant: `lanes${lanes}` });
      this.dispatch(attentionBackwardKeyValueKernel(lanes), { tensors, scalars, groups, variant: `lanes${lanes}` });
    });
  }

  attentionCached(
    out: Tensor,
    qkv: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    B: number,
    Tn: number,
    C: number,
    NH: number,
    startPos: number,
    cacheLen: number,
  ): void {
    const op = 'attentionCached';
    const HS = headSize(op, B, Tn, C, NH);
    dims(op, { cacheLen });
    nonNegativeInteger(op, 'startPos', startPos);
    if (startPos + Tn > cacheLen) throw new RangeError(`${op}: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    // [B sequences]
    const access = {
      out: perItem(this.floats(op, 'out', out, B * Tn * C), Tn * C, true),
      qkv: perItem(this.floats(op, 'qkv', qkv, B * Tn * 3 * C), Tn * 3 * C),
      kCache: perItem(this.floats(op, 'kCache', kCache, B * cacheLen * C), cacheLen * C, true),
      vCache: perItem(this.floats(op, 'vCache', vCache, B * cacheLen * C), cacheLen * C, true),
    };
    this.inPieces(op, [B], access, (piece, { out: o, qkv: x, kCache: keys, vCache: values }) => {
      const pieceB = piece.size[0];
      this.dispatchElementwise(kvAppendKernel, pieceB * Tn * C, { kCache: keys, vCache: values, qkv: x }, { Tn, C, startPos, cacheLen });
      const lanes = headLanes(HS);
      const BNH = pieceB * NH;
      const geometry = {
        T: Tn,
        NH,
        HS,
        scale: 1 / Math.sqrt(HS),
        qBatch: Tn * 3 * C,
        qRow: 3 * C,
        kBatch: cacheLen * C,
        kRow: C,
        posStart: startPos,
        hasLse: 0,
        BNH,
      };
      // few query rows (decoding): cut the keys across workgroups, then merge (wgsl/attention.ts)
      const keyCount = startPos + Tn;
      const splits = Math.min(Math.ceil(DECODE_TARGET_WORKGROUPS / (Tn * BNH)), Math.ceil(keyCount / DECODE_MIN_KEYS_PER_SPLIT));
      if (splits > 1) {
        const keysPerSplit = Math.ceil(keyCount / splits);
        const partials = this.scratch(Tn * BNH * splits * (HS + 2));
        this.dispatch(attentionForwardKernel(lanes, true), {
          tensors: { out: partials, lse: partials, q: x, k: keys, v: values },
          scalars: { ...geometry, splits, keysPerSplit },
          groups: this.rowsByHeads(op, Tn * splits, BNH),
          variant: `lanes${lanes}`,
        });
        this.dispatch(attentionCombineKernel(lanes), {
          tensors: { out: o, partials },
          scalars: { T: Tn, NH, HS, BNH, splits },
          groups: this.rowsByHeads(op, Tn, BNH),
          variant: `lanes${lanes}`,
        });
        this.free(partials);
        return;
      }
      this.dispatch(attentionForwardKernel(lanes), {
        // no lse on this path: `out` fills the binding and hasLse = 0 leaves it alone
        tensors: { out: o, lse: o, q: x, k: keys, v: values },
        scalars: { ...geometry, ...ALL_KEYS_IN_ONE_SPLIT },
        groups: this.rowsByHeads(op, Tn, BNH),
        variant: `lanes${lanes}`,
      });
    });
  }

  // ---- gelu ----

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    dims('geluForward', { N });
    this.elementwise(geluForwardKernel, N, {
      out: this.floats('geluForward', 'out', out, N),
      inp: this.floats('geluForward', 'inp', inp, N),
    });
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const op = 'geluBackward';
    dims(op, { N });
    this.elementwise(geluBackwardKernel, N, {
      dinp: this.floats(op, 'dinp', dinp, N),
      inp: this.floats(op, 'inp', inp, N),
      dout: this.floats(op, 'dout', dout, N),
    });
  }

  // ---- residual ----

  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const op = 'residualForward';
    dims(op, { N });
    this.elementwise(residualKernel, N, {
      out: this.floats(op, 'out', out, N),
      a: this.floats(op, 'a', a, N),
      b: this.floats(op, 'b', b, N),
    });
  }

  accumulate(dst: Tensor, src: Tensor, N: number): void {
    const op = 'accumulate';
    dims(op, { N });
    this.elementwise(accumulateKernel, N, { dst: this.floats(op, 'dst', dst, N), src: this.floats(op, 'src', src, N) });
  }

  // ---- dropout ----

  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutForward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    this.elementwise(
      dropoutForwardKernel,
      N,
      { out: this.floats(op, 'out', out, N), inp: this.floats(op, 'inp', inp, N) },
      { seed, threshold: dropoutThreshold(p), keptScale: 1 / (1 - p) },
    );
  }

  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutBackward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    this.elementwise(
      dropoutBackwardKernel,
      N,
      { dinp: this.floats(op, 'dinp', dinp, N), dout: this.floats(op, 'dout', dout, N) },
      { seed, threshold: dropoutThreshold(p), keptScale: 1 / (1 - p) },
    );
  }

  // ---- softmax + cross-entropy ----

  crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    dims(op, { N, V });
    // [N rows]
    const access = {
      losses: perItem(this.floats(op, 'losses', losses, N), 1, true),
      probs: perItem(this.floats(op, 'probs', probs, N * V), V, true),
      logits: perItem(this.floats(op, 'logits', logits, N * V), V),
      targets: perItem(this.ints(op, 'targets', targets, N), 1),
    };
    this.inPieces(op, [N], access, (piece, tensors) => {
      this.dispatch(crossEntropyForwardKernel, { tensors, scalars: { N: piece.size[0], V }, groups: this.grid(piece.size[0]) });
    });
  }

  crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    dims(op, { N, V });
    finite(op, 'dlossScale', dlossScale);
    // [N rows]
    const access = {
      dlogits: perItem(this.floats(op, 'dlogits', dlogits, N * V), V, true),
      probs: perItem(this.floats(op, 'probs', probs, N * V), V),
      targets: perItem(this.ints(op, 'targets', targets, N), 1),
    };
    this.inPieces(op, [N], access, (piece, tensors) => {
      this.dispatchElementwise(crossEntropyBackwardKernel, piece.size[0] * V, tensors, { V, dlossScale });
    });
  }

  // ---- optimizer ----

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const op = 'adamwUpdate';
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    adamwArgs(op, opts);
    const n = params.length;
    if (n === 0) return;
    this.elementwise(
      adamwKernel,
      n,
      {
        params: this.floats(op, 'params', params, n),
        grads: this.floats(op, 'grads', grads, n),
        m: this.floats(op, 'm', m, n),
        v: this.floats(op, 'v', v, n),
      },
      {
        learningRate,
        beta1,
        beta2,
        eps,
        weightDecay,
        biasCorrection1: 1 - beta1 ** step,
        biasCorrection2: 1 - beta2 ** step,
      },
    );
  }

  // ---- recording ----

  /**
   * C[M,N] (+)= A @ B (+ bias) through strides; see wgsl/matmul.ts. Where the operands exceed one
   * binding, it runs over blocks of [M, N, K]; a block past the first along K adds onto C.
   */
  private product(
    c: WebGPUTensor,
    a: WebGPUTensor,
    b: WebGPUTensor,
    bias: WebGPUTensor | null,
    accumulate: boolean,
    shape: { M: number; N: number; K: number; sAm: number; sAk: number; sBk: number; sBn: number },
  ): void {
    const { M, N, K, sAm, sAk, sBk, sBn } = shape;
    const access = {
      c: { tensor: c, strides: [N, 1, 0], extent: 1, write: true },
      a: { tensor: a, strides: [sAm, 0, sAk], extent: 1 },
      b: { tensor: b, strides: [0, sBn, sBk], extent: 1 },
      bias: { tensor: bias ?? c, strides: bias ? [0, 1, 0] : [N, 1, 0], extent: 1, write: bias === null },
    };
    this.inPieces('matmul', [M, N, K], access, (piece, views) => {
      const [pieceM, pieceN, pieceK] = piece.size;
      const firstAlongK = piece.start[2] === 0;
      if (pieceM <= GEMV_MAX_ROWS && sAk === 1 && sBn === 1) {
        this.fewRowsProduct(views, bias !== null && firstAlongK, accumulate || !firstAlongK, {
          M: pieceM,
          N: pieceN,
          K: pieceK,
          sCm: N,
          sAm,
          sBk,
        });
        return;
      }
      const largeTiles = Math.ceil(pieceM / matmulTile(8)) * Math.ceil(pieceN / matmulTile(8));
      const block = this.matmulBlock === 'auto' ? (largeTiles >= LARGE_TILE_MIN_TILES ? 8 : 4) : this.matmulBlock;
      const layout: MatmulLayout = { aAlongK: sAk === 1, bAlongN: sBn === 1, block };
      const tile = matmulTile(block);
      const rowTiles = Math.ceil(pieceM / tile);
      if (rowTiles > this.maxWorkgroupsPerDim) {
        throw new RangeError(
          `matmul: M = ${pieceM} needs ${rowTiles} row tiles, more than the adapter's ${this.maxWorkgroupsPerDim} workgroups per dimension`,
        );
      }
      const hasBias = bias !== null && firstAlongK;
      const addOnto = accumulate || !firstAlongK;
      const columnTiles = Math.ceil(pieceN / tile);
      const shape = { M: pieceM, N: pieceN, K: pieceK, sAm, sAk, sBk, sBn };
      // few output tiles over a long K: cut K across workgroups (z) into partial sums, then add them
      const tiles = columnTiles * rowTiles;
      const splits =
        tiles >= SPLIT_K_MAX_TILES
          ? 1
          : Math.min(
              Math.ceil(SPLIT_K_TARGET_WORKGROUPS / tiles),
              Math.floor(pieceK / SPLIT_K_MIN_CHUNK),
              Math.floor(this.maxBindingElems / (pieceM * pieceN)),
            );
      if (splits > 1) {
        const kChunk = Math.ceil(pieceK / splits / 16) * 16;
        const slices = Math.ceil(pieceK / kChunk);
        const partials = this.scratch(slices * pieceM * pieceN);
        this.dispatch(matmulKernel(layout), {
          tensors: { c: partials, a: views.a, b: views.b, bias: partials },
          scalars: { ...shape, sCm: pieceN, hasBias: 0, accumulate: 0, kChunk, splitStride: pieceM * pieceN },
          groups: [columnTiles, rowTiles, slices],
          variant: matmulVariant(layout),
        });
        this.dispatchElementwise(
          kChunkSumKernel,
          pieceM * pieceN,
          { c: views.c, partials, bias: hasBias ? views.bias : views.c },
          { N: pieceN, sCm: N, chunks: slices, hasBias: hasBias ? 1 : 0, accumulate: addOnto ? 1 : 0 },
        );
        this.free(partials);
        return;
      }
      this.dispatch(matmulKernel(layout), {
        // without a bias the output fills the bias binding; hasBias = 0 leaves it unread
        tensors: { c: views.c, a: views.a, b: views.b, bias: hasBias ? views.bias : views.c },
        scalars: { ...shape, sCm: N, hasBias: hasBias ? 1 : 0, accumulate: addOnto ? 1 : 0, kChunk: pieceK, splitStride: 0 },
        groups: [columnTiles, rowTiles],
        variant: matmulVariant(layout),
      });
    });
  }

  /** the few-rows product of wgsl/matmul.ts: partial sums over chunks of K, then their sum into C */
  private fewRowsProduct(
    views: { c: WebGPUTensor; a: WebGPUTensor; b: WebGPUTensor; bias: WebGPUTensor },
    hasBias: boolean,
    accumulate: boolean,
    shape: { M: number; N: number; K: number; sCm: number; sAm: number; sBk: number },
  ): void {
    const { M, N, K } = shape;
    const columnGroups = Math.ceil(N / GEMV_COLUMNS);
    // enough workgroups to fill a large GPU, each chunk still worth a loop
    const wantedChunks = Math.min(Math.ceil(GEMV_TARGET_WORKGROUPS / columnGroups), Math.ceil(K / GEMV_MIN_CHUNK));
    const kChunk = Math.ceil(K / Math.max(1, wantedChunks));
    const chunks = Math.ceil(K / kChunk);
    const partials = this.scratch(chunks * M * N);
    this.dispatch(gemvPartialKernel(M), {
      tensors: { partials, a: views.a, b: views.b },
      scalars: { N, K, sAm: shape.sAm, sBk: shape.sBk, kChunk },
      groups: [columnGroups, chunks],
      variant: `rows${M}`,
    });
    this.dispatchElementwise(
      kChunkSumKernel,
      M * N,
      { c: views.c, partials, bias: hasBias ? views.bias : views.c },
      { N, sCm: shape.sCm, chunks, hasBias: hasBias ? 1 : 0, accumulate: accumulate ? 1 : 0 },
    );
    this.free(partials);
  }

  /**
   * A kernel over n elements at the same index of every tensor, in pieces where they exceed one
   * binding; a kernel that declares the scalar `base` gets each piece's first index in it.
   */
  private elementwise(kernel: KernelDef, n: number, tensors: Record<string, WebGPUTensor>, scalars: Record<string, number> = {}): void {
    const access: Record<string, PieceAccess> = {};
    for (const { name, write } of kernel.tensors) access[name] = perItem(tensors[name], 1, write);
    const indexed = kernel.scalars.some((s) => s.name === 'base');
    this.inPieces(kernel.name, [n], access, (piece, views) => {
      this.dispatchElementwise(kernel, piece.size[0], views, indexed ? { ...scalars, base: piece.start[0] } : scalars);
    });
  }

  /** one dispatch of an elementwise-shaped kernel over n invocations */
  private dispatchElementwise(
    kernel: KernelDef,
    n: number,
    tensors: Record<string, WebGPUTensor>,
    scalars: Record<string, number> = {},
  ): void {
    this.dispatch(kernel, { tensors, scalars: { n, ...scalars }, groups: this.grid(Math.ceil(n / ELEMENTWISE_WORKGROUP)) });
  }

  private dispatch(kernel: KernelDef, call: Dispatch): void {
    this.checkUsable(kernel.name);
    // A buffer the dispatch writes gets one binding for all its tensors (see kernel.ts); a tensor
    // in a buffer that is only read gets its own, so that far-apart views (wte and wpe in the flat
    // parameters) each bind a window of their own.
    const segmentOfTensor = kernel.tensors.map(({ name }) => {
      const tensor = call.tensors[name];
      if (tensor === undefined) throw new Error(`internal: kernel ${kernel.name} called without tensor ${name}`);
      return segmentOf(tensor);
    });
    const written = new Set(kernel.tensors.flatMap((t, i) => (t.write ? [segmentOfTensor[i].pooled] : [])));
    const bindings: { segment: Segment; tensors: WebGPUTensor[] }[] = [];
    const slots: { dtype: DType; write: boolean }[] = [];
    const slotOfTensor = kernel.tensors.map(({ name, write }, i) => {
      const tensor = call.tensors[name];
      const segment = segmentOfTensor[i];
      let slot = written.has(segment.pooled) ? bindings.findIndex((b) => b.segment === segment) : -1;
      if (slot < 0) {
        slot = bindings.push({ segment, tensors: [] }) - 1;
        slots.push({ dtype: tensor.dtype, write: false });
      }
      bindings[slot].tensors.push(tensor);
      if (write) slots[slot].write = true;
      return slot;
    });
    const plan: BindingPlan = { slotOfTensor, slots };
    const compiled = this.pipelines.get(kernel, plan, call.variant ?? '');
    const windows = bindings.map(({ segment, tensors }) => this.bindingWindow(kernel.name, segment, tensors));

    if (this.uniformSlotsUsed === UNIFORM_SLOTS) this.flush();
    const slot = this.uniformSlotsUsed++;
    let word = (slot * UNIFORM_SLOT_BYTES) / 4;
    kernel.tensors.forEach(({ name }, i) => {
      // offsets count from the start of the tensor's binding window in its buffer
      this.uniformU32[word++] = call.tensors[name].offset - segmentOfTensor[i].start - windows[slotOfTensor[i]].offset / 4;
    });
    for (const { name, type } of kernel.scalars) {
      const value = call.scalars?.[name];
      if (value === undefined) throw new Error(`internal: kernel ${kernel.name} called without scalar ${name}`);
      if (type === 'f32') this.uniformF32[word++] = value;
      else if (type === 'i32') this.uniformI32[word++] = value;
      else this.uniformU32[word++] = value;
    }

    const pass = this.computePass();
    pass.setPipeline(compiled.pipeline);
    pass.setBindGroup(0, this.pipelines.bindGroup(compiled, this.uniformBuffer.buffer, this.uniformBuffer.id, windows), [
      slot * UNIFORM_SLOT_BYTES,
    ]);
    pass.dispatchWorkgroups(call.groups[0], call.groups[1], call.groups[2] ?? 1);
    this.dispatchCount++;
  }

  /** the byte range of the segment's buffer that covers the views `tensors` (all in it), start aligned */
  private bindingWindow(kernel: string, segment: Segment, tensors: readonly WebGPUTensor[]): BindingWindow {
    const { pooled } = segment;
    let first = Infinity;
    let end = 0;
    for (const t of tensors) {
      first = Math.min(first, t.offset - segment.start);
      end = Math.max(end, t.offset - segment.start + t.length);
    }
    const start = Math.floor(first / this.bindingAlignElems) * this.bindingAlignElems;
    const elems = Math.max(end - start, 1);
    if (elems > this.maxBindingElems) {
      throw new Error(`internal: kernel ${kernel} would bind ${elems * 4} bytes, over the ${this.maxBindingElems * 4}-byte binding limit`);
    }
    return { id: pooled.id, buffer: pooled.buffer, offset: start * 4, size: elems * 4 };
  }

  /**
   * Runs `record` once per piece of the op's iteration box (`sizes`), each piece small enough that
   * every tensor's window fits one binding (see pieces.ts); `record` gets the piece and the views of
   * the accessed tensors that it touches. Nearly always one piece: the whole op.
   */
  private inPieces<K extends string>(
    op: string,
    sizes: readonly number[],
    access: Record<K, PieceAccess>,
    record: (piece: Box, views: Record<K, WebGPUTensor>) => void,
  ): void {
    const names = Object.keys(access) as K[];
    // One window per written buffer, one per read-only tensor, as `dispatch` binds them. A written
    // tensor stored in several buffers is keyed by the buffer its accesses start in: LayerNorm's
    // dweight and dbias may sit on either side of a boundary in the flat gradients.
    const whole: Box = { start: sizes.map(() => 0), size: sizes };
    const writtenStorages = new Set(names.filter((name) => access[name].write).map((name) => access[name].tensor.storage));
    const bufferKeys = new Map<GpuStorage, Map<number, object>>();
    const boxAccesses = names.map((name) => {
      const { tensor, strides, extent } = access[name];
      const placed = { offset: tensor.offset, strides, extent, segmentStarts: tensor.storage.segmentStarts };
      if (!writtenStorages.has(tensor.storage)) return { ...placed, buffer: {} };
      const first = touched({ ...placed, buffer: null }, whole).first;
      const segment = tensor.storage.segmentStarts.filter((start) => start <= first).length;
      const keys = bufferKeys.get(tensor.storage) ?? new Map<number, object>();
      bufferKeys.set(tensor.storage, keys);
      if (!keys.has(segment)) keys.set(segment, {});
      return { ...placed, buffer: keys.get(segment)! };
    });
    let pieces: Box[];
    try {
      pieces = planPieces(sizes, boxAccesses, this.maxBindingElems, this.bindingAlignElems);
    } catch (error) {
      if (error instanceof BindingTooSmallError) throw new RangeError(`${op}: ${error.message}`, { cause: error });
      throw error;
    }
    for (const piece of pieces) {
      const views = {} as Record<K, WebGPUTensor>;
      names.forEach((name, i) => {
        const { first, end } = touched(boxAccesses[i], piece);
        const tensor = access[name].tensor;
        views[name] = new WebGPUTensor(tensor.dtype, first, end - first, tensor.storage, this);
      });
      record(piece, views);
    }
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** the encoder outside any compute pass, for copies and clears */
  private copyEncoder(): GPUCommandEncoder {
    this.endPass();
    return this.commandEncoder();
  }

  private computePass(): GPUComputePassEncoder {
    this.pass ??= this.commandEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private grid(workgroups: number): [number, number] {
    return grid(workgroups, this.maxWorkgroupsPerDim);
  }

  /** grid for the attention kernels: x = query row (or tile of rows), y = batch * head */
  private rowsByHeads(op: string, rows: number, BNH: number): [number, number] {
    if (rows > this.maxWorkgroupsPerDim || BNH > this.maxWorkgroupsPerDim) {
      throw new RangeError(
        `${op}: ${rows} query rows or tiles and B*NH = ${BNH} must each be <= ${this.maxWorkgroupsPerDim} (workgroups per dimension)`,
      );
    }
    return [rows, BNH];
  }

  /** a view that starts `by` elements later and may run past the view's end (for strided reads) */
  private shifted(t: WebGPUTensor, by: number): WebGPUTensor {
    return new WebGPUTensor(t.dtype, t.offset + by, Math.max(0, t.length - by), t.storage, this);
  }

  // ---- faults ----

  private track(scope: Promise<GPUError | null>, what: string): void {
    this.pendingChecks.push(scope.then((error) => (error ? `WebGPU: ${what}: ${error.message}` : null)));
  }

  /** error messages of everything submitted so far, in order, then the uncaptured ones */
  private async takeChecks(): Promise<string[]> {
    const checks = this.pendingChecks;
    this.pendingChecks = [];
    const messages = (await Promise.all(checks)).filter((m): m is string => m !== null);
    messages.push(...this.uncaptured.splice(0));
    return messages;
  }

  /** `work`, or a rejection with the loss reason if the device is lost first */
  private unlessLost<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.lost.then(() => Promise.reject(this.lostError ?? new Error('WebGPU device lost')))]);
  }

  private checkUsable(op: string): void {
    if (this.disposed) throw new Error(`${op}: this WebGPU backend was disposed`);
  }

  // ---- tensor access and validation ----

  private owned(op: string, name: string, t: Tensor): WebGPUTensor {
    if (!(t instanceof WebGPUTensor) || t.owner !== this) throw new TypeError(`${op}: ${name} is not a tensor of this webgpu backend`);
    return t;
  }

  private tensor(op: string, name: string, t: Tensor): WebGPUTensor {
    this.checkUsable(op);
    const own = this.owned(op, name, t);
    if (!own.storage.live) throw new Error(`${op}: ${name} belongs to a buffer that was freed`);
    return own;
  }

  /** `t` checked as f32 with at least `need` elements, as a view of its first `need` (what the op binds) */
  private floats(op: string, name: string, t: Tensor, need: number): WebGPUTensor {
    return this.typed(op, name, t, need, 'f32');
  }

  private ints(op: string, name: string, t: Tensor, need: number): WebGPUTensor {
    return this.typed(op, name, t, need, 'i32');
  }

  private typed(op: string, name: string, t: Tensor, need: number, dtype: DType): WebGPUTensor {
    const own = this.tensor(op, name, t);
    if (own.dtype !== dtype) throw new TypeError(`${op}: ${name} must be an ${dtype} tensor, got ${own.dtype}`);
    if (own.length < need) throw new RangeError(`${op}: ${name} has ${own.length} elements, needs at least ${need}`);
    return own.length === need ? own : new WebGPUTensor(own.dtype, own.offset, need, own.storage, this);
  }
}

/** how column sums over `rows` rows split into chunks (see wgsl/columns.ts) */
function columnChunks(rows: number): { chunks: number; rowsPerChunk: number } {
  const chunks = Math.min(COLUMN_MAX_CHUNKS, Math.ceil(rows / COLUMN_CHUNK_ROWS));
  return { chunks, rowsPerChunk: Math.ceil(rows / chunks) };
}

function overlaps(a: WebGPUTensor, b: WebGPUTensor, length: number): boolean {
  return a.storage === b.storage && a.offset < b.offset + length && b.offset < a.offset + length;
}
