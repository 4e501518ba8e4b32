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
 * - attention-ops.ts, encoder-ops.ts, fused-ops.ts, quant-ops.ts: how those op families are recorded.
 *
 * It runs past 700 lines because the backend class has one method per contract op (each binding its
 * views to a pipeline); the shaders and the recording of the larger op families live in the files above.
 */
/// <reference types="@webgpu/types" />
import {
  dropoutThreshold,
  type Activation,
  type AdamWParams,
  type BackendLimits,
  type DType,
  type QuantFormat,
  type SplitPoints,
  type Tensor,
  type TokenSampling,
} from '../contract.js';
import { CheckedBackend } from '../checked.js';
import { BUFFER_USAGE, BufferPool } from './buffers.js';
import { acquireDevice, type WebGPUOptions } from './device.js';
import { FaultLog } from './faults.js';
import { recordAttentionBackward, recordAttentionCached, recordAttentionForward } from './attention-ops.js';
import { recordEncoderBackward, recordEncoderForward } from './encoder-ops.js';
import { columnChunks, product } from './products.js';
import { recordLayerNormMatmul, recordMatmulGelu, recordMatmulGeluInputGrad, recordMatmulResidual } from './fused-ops.js';
import { recordEncoderQuant, recordMatmulQuant } from './quant-ops.js';
import { recordSampleTokens } from './sample-ops.js';
import { perItem, Recorder, sharedByAll, type PieceAccess } from './recorder.js';
import { GpuMemory, MAX_SPLIT_TENSOR_LENGTH, segmentParts, WebGPUTensor, type GpuStorage } from './storage.js';
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
import { layerNormBackwardInputKernel, layerNormForwardKernel } from './wgsl/layernorm.js';
import type { MatmulBlock } from './wgsl/matmul.js';
import { SQNORM_PARTIALS, SQNORM_WORKGROUP, squaredNormFinalKernel, squaredNormPartialKernel } from './wgsl/reduce.js';

export { segmentLayout } from './storage.js';
export type { WebGPUOptions } from './device.js';
export { requestAdapter, softwareAdapterReason } from './device.js';

const MAP_MODE_READ = 0x1;

/**
 * Dispatches per early submission: on an H200, recording GPT-2 small's decoded token (111
 * dispatches) took the host ~2.5 ms, before which the GPU sat idle; a submission costs the host
 * far less than the GPU time of 32 dispatches it lets start.
 */
const DEFAULT_SUBMIT_EVERY = 32;

export interface WebGPUBackendOptions {
  /**
   * Register block of the matmul kernel: 4 (64x64 tiles) or 8 (128x128 tiles). 'auto' (default)
   * takes 8 once a product has at least LARGE_TILE_MIN_TILES tiles of 128x128, enough to fill a
   * large GPU; smaller products keep more workgroups with 4.
   */
  matmulBlock?: 'auto' | MatmulBlock;
  /**
   * Dispatches recorded before they are submitted without waiting for a read-back, so that the GPU
   * starts on a training step or a decoded token while the host records the rest (default 32;
   * 0 submits only at a read-back or a flush, and every 4096 dispatches).
   */
  submitEvery?: number;
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
  /**
   * The most bytes this backend's tensors and scratch may hold (default Infinity: WebGPU reports no
   * memory size). Every allocation is checked against it before allocating (MemoryLimitError), and
   * freed buffers are kept for reuse only within it. See CreateModelOptions.memoryLimit.
   */
  memoryLimit?: number;
}

export async function createWebGPUBackend(opts: WebGPUOptions & WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const { device, adapterName } = await acquireDevice(opts);
  return new WebGPUBackend(device, adapterName, opts);
}

export class WebGPUBackend extends CheckedBackend {
  readonly name = 'webgpu' as const;
  /** this backend does not split work over threads */
  readonly threads = 1;
  readonly threadsNote = '';
  readonly limits: BackendLimits;
  /** resolves when the device is lost (including by `dispose`); downloads reject from then on */
  readonly lost: Promise<GPUDeviceLostInfo>;
  readonly adapterName: string;
  /** the device every op runs on (for interop; destroying it makes every later download reject) */
  readonly device: GPUDevice;
  /** queue submissions so far: one per download or flush, plus one per `submitEvery` (or 4096) dispatches */
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
  private sqnormPartials: WebGPUTensor | null = null;

  constructor(device: GPUDevice, adapterName = 'unknown adapter', options: WebGPUBackendOptions = {}) {
    super();
    const matmulBlock = options.matmulBlock ?? 'auto';
    if (matmulBlock !== 'auto' && matmulBlock !== 4 && matmulBlock !== 8) {
      throw new RangeError(`WebGPUBackend: matmulBlock must be 'auto', 4 or 8, got ${String(matmulBlock)}`);
    }
    this.matmulBlock = matmulBlock;
    const submitEvery = options.submitEvery ?? DEFAULT_SUBMIT_EVERY;
    if (!Number.isInteger(submitEvery) || submitEvery < 0) {
      throw new RangeError(
        `WebGPUBackend: submitEvery must be an integer >= 0 (dispatches; 0: only at a read-back), got ${String(submitEvery)}`,
      );
    }
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
    this.faults = new FaultLog(device, () => this.isDisposed);
    this.lost = this.faults.lost;
    const track = (scope: Promise<GPUError | null>, what: string, onOutOfMemory: () => void) =>
      this.faults.track(scope, what, onOutOfMemory);
    const clear = (buffer: GPUBuffer, bytes: number) => this.rec.copyEncoder().clearBuffer(buffer, 0, bytes);
    this.memory = new GpuMemory(
      device,
      this,
      bufferCap,
      clear,
      track,
      () => this.memoryLimit,
      (what, bytes) => this.checkMemoryLimitFor(what, bytes),
    );
    if (options.memoryLimit !== undefined) this.setMemoryLimit(options.memoryLimit);
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
      submitEvery,
    );
  }

  protected readonly maxAllocLength = MAX_SPLIT_TENSOR_LENGTH;

  protected storageOf(t: Tensor): GpuStorage | undefined {
    return t instanceof WebGPUTensor && t.owner === this ? t.storage : undefined;
  }

  // ---- storage ----

  /** buffers are pooled in sizes rounded up to 256 bytes; a tensor past maxBufferSize is several */
  protected override allocationBytes(length: number, _dtype: DType, splitAt?: SplitPoints): number {
    return this.memory.allocationBytes(length, splitAt);
  }

  /**
   * Resolves once every allocation and submission so far is known to have succeeded; rejects as
   * the next download would (a MemoryLimitError when the device ran out of memory, naming the
   * allocation). createModel calls it, so a model the GPU cannot hold fails there, not at first use.
   */
  async settle(): Promise<void> {
    if (this.faults.lostError) throw this.faults.lostError;
    const error = FaultLog.errorOf(await this.faults.unlessLost(this.faults.take()));
    if (error !== null) throw error;
  }

  protected _alloc(length: number, dtype: DType, splitAt?: SplitPoints): Tensor {
    return this.memory.allocate(length, dtype, true, splitAt);
  }

  protected _view(t: Tensor, offset: number, length: number): Tensor {
    const parent = gpu(t);
    return new WebGPUTensor(parent.dtype, parent.offset + offset, length, parent.storage, this);
  }

  protected _upload(t: Tensor, data: Float32Array | Int32Array): void {
    const target = gpu(t);
    for (const { segment, from, to } of segmentParts(target.storage, target.offset, data.length)) {
      const part = data.subarray(from - target.offset, to - target.offset);
      const byteOffset = (from - segment.start) * 4;
      // nothing recorded yet: the queue write lands before anything that is recorded next;
      // else ops already recorded must see the old contents: copy in command order
      if (this.rec.idle) this.device.queue.writeBuffer(segment.pooled.buffer, byteOffset, part.buffer, part.byteOffset, part.byteLength);
      else this.rec.stage(segment.pooled.buffer, byteOffset, part);
    }
  }

  protected async _download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = gpu(t);
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
    const faults = await this.faults.unlessLost(checks);
    try {
      const error = FaultLog.errorOf(faults);
      if (error !== null) throw error;
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

  protected _free(t: Tensor): void {
    this.memory.free(gpu(t));
  }

  bytesInUse(): number {
    return this.memory.bytesInUse();
  }

  protected _dispose(): void {
    this.memory.destroyAll();
    this.rec.destroy();
    this.readbackPool.destroyAll();
    this.device.destroy();
  }

  // ---- elementwise helpers ----

  protected _zero(t: Tensor): void {
    const target = gpu(t);
    if (target.length === 0) return;
    for (const { segment, from, to } of segmentParts(target.storage, target.offset, target.length)) {
      this.rec.copyEncoder().clearBuffer(segment.pooled.buffer, (from - segment.start) * 4, (to - from) * 4);
    }
  }

  protected _copy(dst: Tensor, src: Tensor): void {
    const from = gpu(src);
    const to = gpu(dst);
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

  protected _scale(t: Tensor, s: number): void {
    const x = gpu(t);
    this.rec.elementwise(scaleKernel, x.length, { t: x }, { s });
  }

  protected _transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    const o = gpu(out);
    const x = gpu(inp);
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

  protected _squaredNorm(out: Tensor, t: Tensor): void {
    const result = gpu(out);
    const x = gpu(t);
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

  protected _encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    recordEncoderForward(this.rec, { out: gpu(out), inp: gpu(inp), wte: gpu(wte), wpe: gpu(wpe) }, { B, T, C, posOffset });
  }

  protected _encoderBackward(dwte: Tensor | null, dwpe: Tensor | null, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    recordEncoderBackward(this.rec, { dwte: dwte && gpu(dwte), dwpe: dwpe && gpu(dwpe), dout: gpu(dout), inp: gpu(inp) }, { B, T, C });
  }

  // ---- layer norm ----

  protected _layerNormForward(
    out: Tensor,
    mean: Tensor,
    rstd: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor,
    N: number,
    C: number,
  ): void {
    const op = 'layerNormForward';
    // [N rows]
    this.rec.inPieces(
      op,
      [N],
      {
        out: perItem(gpu(out), C, true),
        mean: perItem(gpu(mean), 1, true),
        rstd: perItem(gpu(rstd), 1, true),
        inp: perItem(gpu(inp), C),
        weight: sharedByAll(gpu(weight), C),
        bias: sharedByAll(gpu(bias), C),
      },
      (piece, views) =>
        this.rec.dispatch(layerNormForwardKernel, {
          tensors: views,
          scalars: { N: piece.size[0], C },
          groups: this.rec.grid(piece.size[0]),
        }),
    );
  }

  protected _layerNormBackward(
    dinp: Tensor,
    dweight: Tensor | null,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    mean: Tensor,
    rstd: Tensor,
    N: number,
    C: number,
  ): void {
    const op = 'layerNormBackward';
    const access: Record<string, PieceAccess> = {
      dinp: perItem(gpu(dinp), C, true),
      dout: perItem(gpu(dout), C),
      inp: perItem(gpu(inp), C),
      weight: sharedByAll(gpu(weight), C),
      mean: perItem(gpu(mean), 1),
      rstd: perItem(gpu(rstd), 1),
    };
    // a null dweight or dbias is frozen: its column sums are not made
    if (dweight !== null) access.dweight = sharedByAll(gpu(dweight), C, true);
    if (dbias !== null) access.dbias = sharedByAll(gpu(dbias), C, true);
    // [N rows]; each piece adds its rows' share into dweight and dbias
    this.rec.inPieces(
      op,
      [N],
      access,
      (piece, { dinp: dx, dweight: dw, dbias: db, dout: d, inp: x, weight: w, mean: means, rstd: rstds }) => {
        const rows = piece.size[0];
        this.rec.dispatch(layerNormBackwardInputKernel, {
          tensors: { dinp: dx, dout: d, inp: x, weight: w, mean: means, rstd: rstds },
          scalars: { N: rows, C },
          groups: this.rec.grid(rows),
        });
        if (dweight === null && dbias === null) return;
        const { chunks, rowsPerChunk } = columnChunks(rows);
        const partials = this.rec.scratch(chunks * 2 * C);
        this.rec.dispatch(layerNormParamsPartialKernel, {
          tensors: { partials, dout: d, inp: x, mean: means, rstd: rstds },
          scalars: { M: rows, N: C, rowsPerChunk },
          groups: [Math.ceil(C / COLUMN_GROUP), chunks],
        });
        const columnGroups: [number, number] = [Math.ceil(C / COLUMN_GROUP), 1];
        if (dweight !== null) {
          this.rec.dispatch(columnFinalKernel, {
            tensors: { sums: dw, partials },
            scalars: { N: C, chunks, stride: 2 * C },
            groups: columnGroups,
          });
        }
        if (dbias !== null) {
          this.rec.dispatch(columnFinalKernel, {
            tensors: { sums: db, partials: this.rec.shifted(partials, C) },
            scalars: { N: C, chunks, stride: 2 * C },
            groups: columnGroups,
          });
        }
        this.rec.release(partials);
      },
    );
  }

  // ---- matmul ----

  protected _matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const o = gpu(out);
    const b = bias === null ? null : gpu(bias);
    product(this.rec, this.matmulBlock, o, gpu(inp), gpu(weight), b, false, {
      M,
      N,
      K,
      sAm: K,
      sAk: 1,
      sBk: N,
      sBn: 1,
    });
  }

  // ---- quantized inference (quant-ops.ts) ----

  matmulQuantForward(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    bias: Tensor | null,
    M: number,
    K: number,
    N: number,
    format: QuantFormat,
  ): void {
    const [o, x, q, d, b] = this.matmulQuantArgs(out, inp, quants, scales, bias, M, K, N, format);
    const tensors = { out: gpu(o), inp: gpu(x), quants: gpu(q), scales: d && gpu(d), bias: b && gpu(b) };
    recordMatmulQuant(this.rec, tensors, { M, K, N, format });
  }

  encoderQuantForward(
    out: Tensor,
    inp: Tensor,
    quants: Tensor,
    scales: Tensor | null,
    wpe: Tensor,
    B: number,
    T: number,
    C: number,
    posOffset: number,
    format: QuantFormat,
  ): void {
    const [o, ids, q, d, positions, V] = this.encoderQuantArgs(out, inp, quants, scales, wpe, B, T, C, posOffset, format);
    const tensors = { out: gpu(o), inp: gpu(ids), quants: gpu(q), scales: d && gpu(d), wpe: gpu(positions) };
    recordEncoderQuant(this.rec, tensors, { B, T, C, V, posOffset, format });
  }

  protected _matmulBackward(
    dinp: Tensor | null,
    dweight: Tensor | null,
    dbias: Tensor | null,
    dout: Tensor,
    inp: Tensor,
    weight: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    const op = 'matmulBackward';
    const dx = dinp === null ? null : gpu(dinp);
    const dw = dweight === null ? null : gpu(dweight);
    const db = dbias === null ? null : gpu(dbias);
    const d = gpu(dout);
    const x = gpu(inp);
    const w = gpu(weight);
    // dinp[M,K] += dout[M,N] @ weight^T: B(n,k) = weight[k*N + n]
    if (dx !== null) product(this.rec, this.matmulBlock, dx, d, w, null, true, { M, N: K, K: N, sAm: N, sAk: 1, sBk: 1, sBn: N });
    // dweight[K,N] += inp^T @ dout: A(k,m) = inp[m*K + k]; a frozen weight or bias (null) gets no gradient work
    if (dw !== null) product(this.rec, this.matmulBlock, dw, x, d, null, true, { M: K, N, K: M, sAm: 1, sAk: K, sBk: N, sBn: 1 });
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

  // ---- fused products (fused-ops.ts; composed as CheckedBackend defines them where they cannot fuse) ----

  protected override _matmulGeluForward(
    o: Tensor,
    pre: Tensor | null,
    x: Tensor,
    w: Tensor,
    b: Tensor | null,
    M: number,
    K: number,
    N: number,
  ) {
    const t = { out: gpu(o), pre: pre && gpu(pre), inp: gpu(x), weight: gpu(w), bias: b && gpu(b) };
    if (!recordMatmulGelu(this.rec, this.matmulBlock, t, M, K, N)) super._matmulGeluForward(o, pre, x, w, b, M, K, N);
  }

  protected override _matmulResidualForward(o: Tensor, x: Tensor, w: Tensor, b: Tensor | null, r: Tensor, M: number, K: number, N: number) {
    const t = { out: gpu(o), inp: gpu(x), weight: gpu(w), bias: b && gpu(b), residual: gpu(r) };
    if (!recordMatmulResidual(this.rec, this.matmulBlock, t, M, K, N)) super._matmulResidualForward(o, x, w, b, r, M, K, N);
  }

  protected override _matmulGeluBackward(
    dpre: Tensor,
    dw: Tensor | null,
    db: Tensor | null,
    d: Tensor,
    x: Tensor,
    w: Tensor,
    pre: Tensor,
    M: number,
    K: number,
    N: number,
  ): void {
    const t = { dpre: gpu(dpre), dout: gpu(d), weight: gpu(w), pre: gpu(pre) };
    if (recordMatmulGeluInputGrad(this.rec, this.matmulBlock, t, M, K, N)) this._matmulBackward(null, dw, db, d, x, w, M, K, N);
    else super._matmulGeluBackward(dpre, dw, db, d, x, w, pre, M, K, N);
  }

  protected override _layerNormMatmulForward(
    o: Tensor,
    x: Tensor,
    g: Tensor,
    beta: Tensor,
    w: Tensor,
    b: Tensor | null,
    M: number,
    K: number,
    N: number,
    activation: Activation,
  ): void {
    const t = { out: gpu(o), inp: gpu(x), lnWeight: gpu(g), lnBias: gpu(beta), weight: gpu(w), bias: b && gpu(b) };
    if (!recordLayerNormMatmul(this.rec, this.matmulBlock, t, M, K, N, activation)) {
      super._layerNormMatmulForward(o, x, g, beta, w, b, M, K, N, activation);
    }
  }

  // ---- attention ----

  protected _attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    recordAttentionForward(
      this.rec,
      {
        out: gpu(out),
        lse: gpu(lse),
        qkv: gpu(qkv),
      },
      { B, T, C, NH },
    );
  }

  protected _attentionBackward(
    dqkv: Tensor,
    dout: Tensor,
    qkv: Tensor,
    out: Tensor,
    lse: Tensor,
    B: number,
    T: number,
    C: number,
    NH: number,
  ): void {
    recordAttentionBackward(
      this.rec,
      {
        dqkv: gpu(dqkv),
        dout: gpu(dout),
        qkv: gpu(qkv),
        out: gpu(out),
        lse: gpu(lse),
      },
      { B, T, C, NH },
    );
  }

  protected _attentionCached(
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
    recordAttentionCached(
      this.rec,
      {
        out: gpu(out),
        qkv: gpu(qkv),
        kCache: gpu(kCache),
        vCache: gpu(vCache),
      },
      { B, Tn, C, NH, startPos, cacheLen },
    );
  }

  // ---- gelu ----

  protected _geluForward(out: Tensor, inp: Tensor, N: number): void {
    this.rec.elementwise(geluForwardKernel, N, {
      out: gpu(out),
      inp: gpu(inp),
    });
  }

  protected _geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    this.rec.elementwise(geluBackwardKernel, N, {
      dinp: gpu(dinp),
      inp: gpu(inp),
      dout: gpu(dout),
    });
  }

  // ---- residual ----

  protected _residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    this.rec.elementwise(residualKernel, N, {
      out: gpu(out),
      a: gpu(a),
      b: gpu(b),
    });
  }

  protected _accumulate(dst: Tensor, src: Tensor, N: number): void {
    this.rec.elementwise(accumulateKernel, N, { dst: gpu(dst), src: gpu(src) });
  }

  // ---- dropout ----

  protected _dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    this.rec.elementwise(
      dropoutForwardKernel,
      N,
      { out: gpu(out), inp: gpu(inp) },
      { seed, threshold: dropoutThreshold(p), keptScale: 1 / (1 - p) },
    );
  }

  protected _dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    this.rec.elementwise(
      dropoutBackwardKernel,
      N,
      { dinp: gpu(dinp), dout: gpu(dout) },
      { seed, threshold: dropoutThreshold(p), keptScale: 1 / (1 - p) },
    );
  }

  // ---- softmax + cross-entropy ----

  protected _crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    // [N rows]
    const access = {
      losses: perItem(gpu(losses), 1, true),
      probs: perItem(gpu(probs), V, true),
      logits: perItem(gpu(logits), V),
      targets: perItem(gpu(targets), 1),
    };
    this.rec.inPieces(op, [N], access, (piece, tensors) => {
      this.rec.dispatch(crossEntropyForwardKernel, { tensors, scalars: { N: piece.size[0], V }, groups: this.rec.grid(piece.size[0]) });
    });
  }

  protected _crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    // [N rows]
    const access = {
      dlogits: perItem(gpu(dlogits), V, true),
      probs: perItem(gpu(probs), V),
      targets: perItem(gpu(targets), 1),
    };
    this.rec.inPieces(op, [N], access, (piece, tensors) => {
      this.rec.dispatchElementwise(crossEntropyBackwardKernel, piece.size[0] * V, tensors, { V, dlossScale });
    });
  }

  // ---- optimizer ----

  protected _sampleTokens(ids: Tensor, logits: Tensor, uniforms: ArrayLike<number>, B: number, V: number, sampling: TokenSampling): void {
    recordSampleTokens(this.rec, (t, data) => this._upload(t, data), { ids: gpu(ids), logits: gpu(logits) }, { B, V, uniforms, sampling });
  }

  protected _adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    const n = params.length;
    if (n === 0) return;
    this.rec.elementwise(
      adamwKernel,
      n,
      {
        params: gpu(params),
        grads: gpu(grads),
        m: gpu(m),
        v: gpu(v),
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
}

/** a checked tensor of this backend (see CheckedBackend) */
function gpu(t: Tensor): WebGPUTensor {
  return t as WebGPUTensor;
}
