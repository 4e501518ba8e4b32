/**
 * The WebGPU backend: every op of src/backend/contract.ts as a WGSL compute shader.
 *
 * This file holds the backend's storage API and its ops; the concerns they rest on have files of
 * their own:
 * - storage.ts: allocations as pooled buffers, cut into several past maxBufferSize where alloc's
 *   `splitAt` allows; tensors are views into them.
 * - recorder.ts: ops are recorded into one command encoder and submitted together on `download` or
 *   `flush()`, so a training step is one submission and reads back only what the caller downloads;
 *   an op whose views exceed one storage binding runs in pieces (pieces.ts).
 * - products.ts: how a matrix product is planned into dispatches.
 * - faults.ts: device loss (see `lost`), shader, validation and out-of-memory errors make the next
 *   `download` reject with a message that says what happened. After device loss every download
 *   rejects with a DeviceLostError; the host should rebuild the backend from its last downloaded or
 *   saved state.
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
import { adamwArgs, dims, dropoutArgs, finite, headSize, nonNegativeInteger, viewRange } from '../checks.js';
import { BUFFER_USAGE, BufferPool } from './buffers.js';
import { acquireDevice, type WebGPUOptions } from './device.js';
import { FaultLog } from './faults.js';
import { recordAttentionBackward, recordAttentionCached, recordAttentionForward } from './attention-ops.js';
import { columnChunks, product } from './products.js';
import { perItem, Recorder, sharedByAll } from './recorder.js';
import { GpuMemory, MAX_SPLIT_TENSOR_LENGTH, overlaps, segmentParts, WebGPUTensor } from './storage.js';
import { adamwKernel } from './wgsl/adamw.js';
import { COLUMN_GROUP, columnFinalKernel, columnPartialKernel, layerNormParamsPartialKernel } from './wgsl/columns.js';
import { crossEntropyBackwardKernel, crossEntropyForwardKernel } from './wgsl/crossentropy.js';
import {
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
import type { MatmulBlock } from './wgsl/matmul.js';
import { SQNORM_PARTIALS, SQNORM_WORKGROUP, squaredNormFinalKernel, squaredNormPartialKernel } from './wgsl/reduce.js';

export { segmentLayout } from './storage.js';
export type { WebGPUOptions } from './device.js';
export { requestAdapter, softwareAdapterReason } from './device.js';

const MAP_MODE_READ = 0x1;

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
    return this.rec.submissions;
  }
  /** compute dispatches recorded so far (an op on tensors larger than one binding takes several) */
  get dispatches(): number {
    return this.rec.dispatches;
  }

  private readonly memory: GpuMemory;
  private readonly rec: Recorder;
  private readonly faults: FaultLog;
  private readonly readbackPool: BufferPool;
  private readonly matmulBlock: 'auto' | MatmulBlock;
  private disposed = false;
  private sqnormPartials: WebGPUTensor | null = null;

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
    if (!Number.isInteger(bindingCap) || bindingCap < smallest || bindingCap > deviceBinding) {
      throw new RangeError(
        `WebGPUBackend: maxBindingBytes must be an integer in [${smallest}, ${deviceBinding}] ` +
          `(this device's largest storage binding, and no more than a buffer), got ${String(options.maxBindingBytes)}`,
      );
    }
    this.limits = { maxTensorLength: Math.floor(bufferCap / 4), maxTotalBytes: Infinity };
    this.faults = new FaultLog(device, () => this.disposed);
    this.lost = this.faults.lost;
    const track = (scope: Promise<GPUError | null>, what: string) => this.faults.track(scope, what);
    const clear = (buffer: GPUBuffer, bytes: number) => this.rec.copyEncoder().clearBuffer(buffer, 0, bytes);
    this.memory = new GpuMemory(device, this, bufferCap, clear, track);
    this.readbackPool = new BufferPool(
      device,
      BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
      device.limits.maxBufferSize,
      64 * 1024 * 1024,
    );
    this.rec = new Recorder(
      device,
      this.memory,
      this.faults,
      (op) => this.checkUsable(op),
      () => {
        this.memory.destroyReleased();
        this.readbackPool.destroyReleased();
      },
      Math.floor(bindingCap / 4),
      device.limits.minStorageBufferOffsetAlignment / 4,
    );
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
    return this.memory.allocate(length, dtype, true, splitAt);
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
      // nothing recorded yet: the queue write lands before anything that is recorded next;
      // else ops already recorded must see the old contents: copy in command order
      if (this.rec.idle) this.device.queue.writeBuffer(segment.pooled.buffer, byteOffset, part.buffer, part.byteOffset, part.byteLength);
      else this.rec.stage(segment.pooled.buffer, byteOffset, part);
    }
  }

  async download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = this.tensor('download', 't', t);
    if (this.faults.lostError) throw this.faults.lostError;
    // one readback buffer per segment the view touches (one, unless the tensor spans several buffers)
    const readbacks = segmentParts(source.storage, source.offset, source.length).map(({ segment, from, to }) => {
      const bytes = (to - from) * 4;
      const { pooled } = this.readbackPool.acquire(bytes);
      this.rec.copyEncoder().copyBufferToBuffer(segment.pooled.buffer, (from - segment.start) * 4, pooled.buffer, 0, bytes);
      return { pooled, bytes, at: from - source.offset };
    });
    this.flush();
    const checks = this.faults.take();
    try {
      if (readbacks.length > 0)
        await this.faults.unlessLost(Promise.all(readbacks.map((r) => r.pooled.buffer.mapAsync(MAP_MODE_READ, 0, r.bytes))));
      else await this.faults.unlessLost(this.device.queue.onSubmittedWorkDone());
    } catch (error) {
      // set by the lost handler while this awaited (TypeScript still holds the null it saw before)
      if (this.faults.lostError) throw this.faults.lostError as Error;
      throw new Error(`download: reading the result back failed: ${(error as Error).message}`, { cause: error });
    }
    const errors = await this.faults.unlessLost(checks);
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
    this.rec.flush();
  }

  free(t: Tensor): void {
    const own = this.owned('free', 't', t);
    if (!own.storage.live) throw new Error('free: t belongs to a buffer that was already freed');
    this.memory.free(own);
  }

  bytesInUse(): number {
    return this.memory.bytesInUse();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.memory.destroyAll();
    this.rec.destroy();
    this.readbackPool.destroyAll();
    this.device.destroy();
  }

  // ---- elementwise helpers ----

  zero(t: Tensor): void {
    const target = this.tensor('zero', 't', t);
    if (target.length === 0) return;
    for (const { segment, from, to } of segmentParts(target.storage, target.offset, target.length)) {
      this.rec.copyEncoder().clearBuffer(segment.pooled.buffer, (from - segment.start) * 4, (to - from) * 4);
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
          this.rec
            .copyEncoder()
            .copyBufferToBuffer(
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
    this.rec.elementwise(copyKernel, from.length, { dst: to, src: from });
  }

  scale(t: Tensor, s: number): void {
    finite('scale', 's', s);
    const x = this.floats('scale', 't', t, t.length);
    this.rec.elementwise(scaleKernel, x.length, { t: x }, { s });
  }

  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    dims(op, { rows, cols });
    const o = this.floats(op, 'out', out, rows * cols);
    const x = this.floats(op, 'inp', inp, rows * cols);
    if (overlaps(o, x, rows * cols))
      throw new RangeError(`${op}: out and inp overlap in the same buffer; transpose needs separate storage`);
    // [cols (rows of out), rows (rows of inp)]
    this.rec.inPieces(
      op,
      [cols, rows],
      { out: { tensor: o, strides: [rows, 1], extent: 1, write: true }, inp: { tensor: x, strides: [1, cols], extent: 1 } },
      (piece, views) => {
        const [pieceCols, pieceRows] = piece.size;
        this.rec.dispatchElementwise(transposeKernel, pieceRows * pieceCols, views, { rows: pieceRows, outStride: rows, inpStride: cols });
      },
    );
  }

  squaredNorm(out: Tensor, t: Tensor): void {
    const result = this.floats('squaredNorm', 'out', out, 1);
    const x = this.floats('squaredNorm', 't', t, t.length);
    const partials = (this.sqnormPartials ??= this.rec.scratch(SQNORM_PARTIALS));
    // a tensor past one binding is summed in pieces, each piece's total added onto out in order
    this.rec.inPieces('squaredNorm', [x.length], { t: perItem(x, 1) }, (piece, views) => {
      const n = piece.size[0];
      const groups = Math.max(1, Math.min(SQNORM_PARTIALS, Math.ceil(n / SQNORM_WORKGROUP)));
      this.rec.dispatch(squaredNormPartialKernel, { tensors: { partials, t: views.t }, scalars: { n }, groups: [groups, 1] });
      this.rec.dispatch(squaredNormFinalKernel, {
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
    this.rec.inPieces(
      op,
      [B * T, V],
      {
        out: { tensor: o, strides: [C, 0], extent: C, write: true },
        inp: { tensor: ids, strides: [1, 0], extent: 1 },
        wte: { tensor: tokenTable, strides: [0, C], extent: C },
        wpe: { tensor: positionTable, strides: [0, 0], extent: (posOffset + T) * C },
      },
      (piece, views) => {
        this.rec.dispatchElementwise(encoderForwardKernel, piece.size[0] * C, views, {
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
    this.rec.inPieces(
      op,
      [B * T, V],
      {
        dwte: { tensor: dTokenTable, strides: [0, C], extent: C, write: true },
        dout: { tensor: d, strides: [C, 0], extent: C },
        inp: { tensor: ids, strides: [1, 0], extent: 1 },
      },
      (piece, views) => {
        const positions = piece.size[0];
        const links = this.rec.scratch(2 * positions, 'i32');
        this.rec.dispatch(encoderLinkTokensKernel, {
          tensors: { links, inp: views.inp },
          scalars: { BT: positions },
          groups: this.rec.grid(positions),
        });
        this.rec.dispatch(encoderBackwardTokensKernel, {
          tensors: { ...views, links },
          scalars: { BT: positions, C, vBase: piece.start[1], vCount: piece.size[1] },
          groups: this.rec.grid(positions),
        });
        this.rec.release(links);
      },
    );
    // [T*C, B]: dwpe[i] += sum over b of dout[b*T*C + i]
    this.rec.inPieces(
      op,
      [T * C, B],
      { dwpe: { tensor: dPositionTable, strides: [1, 0], extent: 1, write: true }, dout: { tensor: d, strides: [1, T * C], extent: 1 } },
      (piece, views) => this.rec.dispatchElementwise(encoderBackwardPositionsKernel, piece.size[0], views, { B: piece.size[1], TC: T * C }),
    );
  }

  // ---- layer norm ----

  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const op = 'layerNormForward';
    dims(op, { N, C });
    // [N rows]
    this.rec.inPieces(
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
        this.rec.dispatch(layerNormForwardKernel, {
          tensors: views,
          scalars: { N: piece.size[0], C },
          groups: this.rec.grid(piece.size[0]),
        }),
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
    this.rec.inPieces(
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
        this.rec.dispatch(layerNormBackwardInputKernel, {
          tensors: { dinp: dx, dout: d, inp: x, weight: w, mean: means, rstd: rstds },
          scalars: { N: rows, C },
          groups: this.rec.grid(rows),
        });
        const { chunks, rowsPerChunk } = columnChunks(rows);
        const partials = this.rec.scratch(chunks * 2 * C);
        this.rec.dispatch(layerNormParamsPartialKernel, {
          tensors: { partials, dout: d, inp: x, mean: means, rstd: rstds },
          scalars: { M: rows, N: C, rowsPerChunk },
          groups: [Math.ceil(C / COLUMN_GROUP), chunks],
        });
        const columnGroups: [number, number] = [Math.ceil(C / COLUMN_GROUP), 1];
        this.rec.dispatch(columnFinalKernel, {
          tensors: { sums: dw, partials },
          scalars: { N: C, chunks, stride: 2 * C },
          groups: columnGroups,
        });
        this.rec.dispatch(columnFinalKernel, {
          tensors: { sums: db, partials: this.rec.shifted(partials, C) },
          scalars: { N: C, chunks, stride: 2 * C },
          groups: columnGroups,
        });
        this.rec.release(partials);
      },
    );
  }

  // ---- matmul ----

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const op = 'matmulForward';
    dims(op, { M, K, N });
    const o = this.floats(op, 'out', out, M * N);
    const b = bias === null ? null : this.floats(op, 'bias', bias, N);
    product(this.rec, this.matmulBlock, o, this.floats(op, 'inp', inp, M * K), this.floats(op, 'weight', weight, K * N), b, false, {
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
    if (dx !== null) product(this.rec, this.matmulBlock, dx, d, w, null, true, { M, N: K, K: N, sAm: N, sAk: 1, sBk: 1, sBn: N });
    // dweight[K,N] += inp^T @ dout: A(k,m) = inp[m*K + k]
    product(this.rec, this.matmulBlock, dw, x, d, null, true, { M: K, N, K: M, sAm: 1, sAk: K, sBk: N, sBn: 1 });
    if (db !== null) {
      // [M rows]; each piece adds its rows' column sums into dbias
      this.rec.inPieces(op, [M], { dbias: sharedByAll(db, N, true), dout: perItem(d, N) }, (piece, views) => {
        const rows = piece.size[0];
        const { chunks, rowsPerChunk } = columnChunks(rows);
        const partials = this.rec.scratch(chunks * N);
        const groups: [number, number] = [Math.ceil(N / COLUMN_GROUP), chunks];
        this.rec.dispatch(columnPartialKernel, { tensors: { partials, x: views.dout }, scalars: { M: rows, N, rowsPerChunk }, groups });
        this.rec.dispatch(columnFinalKernel, {
          tensors: { sums: views.dbias, partials },
          scalars: { N, chunks, stride: N },
          groups: [groups[0], 1],
        });
        this.rec.release(partials);
      });
    }
  }

  // ---- attention ----

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionForward';
    headSize(op, B, T, C, NH);
    recordAttentionForward(
      this.rec,
      {
        out: this.floats(op, 'out', out, B * T * C),
        lse: this.floats(op, 'lse', lse, B * NH * T),
        qkv: this.floats(op, 'qkv', qkv, B * T * 3 * C),
      },
      { B, T, C, NH },
    );
  }

  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionBackward';
    headSize(op, B, T, C, NH);
    recordAttentionBackward(
      this.rec,
      {
        dqkv: this.floats(op, 'dqkv', dqkv, B * T * 3 * C),
        dout: this.floats(op, 'dout', dout, B * T * C),
        qkv: this.floats(op, 'qkv', qkv, B * T * 3 * C),
        out: this.floats(op, 'out', out, B * T * C),
        lse: this.floats(op, 'lse', lse, B * NH * T),
      },
      { B, T, C, NH },
    );
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
    headSize(op, B, Tn, C, NH);
    dims(op, { cacheLen });
    nonNegativeInteger(op, 'startPos', startPos);
    if (startPos + Tn > cacheLen) throw new RangeError(`${op}: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    recordAttentionCached(
      this.rec,
      {
        out: this.floats(op, 'out', out, B * Tn * C),
        qkv: this.floats(op, 'qkv', qkv, B * Tn * 3 * C),
        kCache: this.floats(op, 'kCache', kCache, B * cacheLen * C),
        vCache: this.floats(op, 'vCache', vCache, B * cacheLen * C),
      },
      { B, Tn, C, NH, startPos, cacheLen },
    );
  }

  // ---- gelu ----

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    dims('geluForward', { N });
    this.rec.elementwise(geluForwardKernel, N, {
      out: this.floats('geluForward', 'out', out, N),
      inp: this.floats('geluForward', 'inp', inp, N),
    });
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const op = 'geluBackward';
    dims(op, { N });
    this.rec.elementwise(geluBackwardKernel, N, {
      dinp: this.floats(op, 'dinp', dinp, N),
      inp: this.floats(op, 'inp', inp, N),
      dout: this.floats(op, 'dout', dout, N),
    });
  }

  // ---- residual ----

  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const op = 'residualForward';
    dims(op, { N });
    this.rec.elementwise(residualKernel, N, {
      out: this.floats(op, 'out', out, N),
      a: this.floats(op, 'a', a, N),
      b: this.floats(op, 'b', b, N),
    });
  }

  accumulate(dst: Tensor, src: Tensor, N: number): void {
    const op = 'accumulate';
    dims(op, { N });
    this.rec.elementwise(accumulateKernel, N, { dst: this.floats(op, 'dst', dst, N), src: this.floats(op, 'src', src, N) });
  }

  // ---- dropout ----

  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutForward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    this.rec.elementwise(
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
    this.rec.elementwise(
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
    this.rec.inPieces(op, [N], access, (piece, tensors) => {
      this.rec.dispatch(crossEntropyForwardKernel, { tensors, scalars: { N: piece.size[0], V }, groups: this.rec.grid(piece.size[0]) });
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
    this.rec.inPieces(op, [N], access, (piece, tensors) => {
      this.rec.dispatchElementwise(crossEntropyBackwardKernel, piece.size[0] * V, tensors, { V, dlossScale });
    });
  }

  // ---- optimizer ----

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const op = 'adamwUpdate';
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    adamwArgs(op, opts);
    const n = params.length;
    if (n === 0) return;
    this.rec.elementwise(
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
