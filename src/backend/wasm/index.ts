/**
 * The WebAssembly backend: AssemblyScript SIMD kernels (assembly/) over one linear memory that an
 * Arena hands out. Ops run synchronously in call order; `download` copies out of the memory.
 *
 * With threads (thread-pool.ts, loaded when threads start), the memory is shared and the matmul
 * products, attention, LayerNorm, cross-entropy, the encoder, gelu and AdamW are split over workers
 * by output columns, rows, (batch, head) pairs or element ranges, and decoding's products by halves
 * of K: every output element is still computed in the same order as on one thread, so results are
 * bit-identical to one thread's. The small elementwise ops (residual, dropout, scale, copies) run on
 * the calling thread. createWasmBackend (create.ts) loads the kernels and chooses the threads.
 */
import {
  IGNORE_INDEX,
  LAYER_NORM_EPS,
  dropoutThreshold,
  type AdamWParams,
  type BackendLimits,
  type DType,
  type QuantFormat,
  type Tensor,
  type TokenSampling,
} from '../contract.js';
import { chooseToken } from '../../generate/choose.js';
import { alignUp, Arena } from './arena.js';
import type { Kernels, SplitKernel } from './loader.js';
import type { ThreadPool } from './thread-pool.js';
import { CheckedBackend } from '../checked.js';

export { Arena, ArenaLimitError, WASM32_MAX_BYTES } from './arena.js';
export type { WasmSource } from './loader.js';

const BYTES_PER_ELEMENT = 4;
/**
 * By default a kernel call is split only when each share gets at least this many multiply-adds
 * (~13 us on one core at ~40 GFLOP/s): handing a share to a worker that is spinning between calls
 * (WORKER_SPINS in thread-pool.ts) costs ~2-3 us (measured in Node 20 on 2 cores, 5 December 2026).
 * At 1 << 20 (chosen when every call woke a sleeping worker, tens of us) none of config B's
 * quantized decoding products was split, and two threads decoded Q8_0 no faster than one.
 */
export const MIN_MACS_PER_SHARE = 1 << 18;
/** matmul shares split columns in multiples of the micro-kernel's 8-column slivers */
const COLUMN_BLOCK = 8;
/**
 * elementwise shares split in multiples of the kernels' f32x4 width, so every element takes the
 * same (vector or tail) path as on one thread
 */
const ELEMENT_BLOCK = 4;
/**
 * rough multiply-add equivalents per element of gelu, AdamW, LayerNorm and cross-entropy (exp,
 * divisions, square root, several passes over a row)
 */
const ELEMENTWISE_COST = 8;
/**
 * a multiply-add of the unpacked row path (forward with M < 4, as in token-by-token generation)
 * costs about this many of the packed kernel's (~20 G multiply-adds/s): it streams W from memory or
 * a large L3, config B's 42 MB per token at ~27 GB/s on one core, ~7 G multiply-adds/s (Node 20, 2
 * cores, 5 December 2026; L2-resident products ran at ~11)
 */
const ROW_PATH_COST = 3;
/**
 * a multiply-add of the quantized decoding kernels (Q8_0, Q4_0: ~2.5 ns per block of 32, compute
 * bound) costs about this many of the packed kernel's
 */
const QUANTIZED_MAC_COST = 1.5;
/** the kernels take the row path below this many rows (assembly/matmul.ts MR) */
const ROW_PATH_MAX_M = 3;
/** the most floats of fused-op temporaries kept between calls (256 KiB): decoding's, not training's */
const KEPT_TEMPORARY_FLOATS = 1 << 16;
/** packing buffers start on a cache line */
const SCRATCH_ALIGN = 64;

/**
 * Stops a backend's workers if it is garbage-collected without dispose(), so that forgotten backends
 * do not keep worker threads (each a JS engine instance) alive for the life of the process.
 */
const forgottenPools = new FinalizationRegistry<ThreadPool>((pool) => pool.dispose());

/** One allocation; tensors are views into it. */
interface WasmBlock {
  readonly ptr: number;
  readonly owner: WasmBackend;
  live: boolean;
}

class WasmTensor implements Tensor {
  constructor(
    readonly dtype: DType,
    readonly offset: number,
    readonly length: number,
    readonly block: WasmBlock,
  ) {}

  /** byte address of element 0 of the view */
  get ptr(): number {
    return this.block.ptr + this.offset * BYTES_PER_ELEMENT;
  }
}

export class WasmBackend extends CheckedBackend {
  readonly name = 'wasm' as const;
  readonly limits: BackendLimits;
  /** why the backend runs on fewer threads than it was asked for ('' when it runs on what was asked) */
  threadsNote = '';
  private readonly arena: Arena;
  private readonly blocks = new Set<WasmBlock>();
  /**
   * attention's scratch per thread, as the kernel sizes it (attentionScratchFloats): forward the
   * (batch, head)'s packed keys and values and one tile of scores, backward two tiles (index 0 is
   * the calling thread's)
   */
  private scratch: ({ ptr: number; floats: number } | null)[] = [null];
  /**
   * quantized products' integer copy of their input and its scales (assembly/quant.ts), or
   * decoding's float32 products' second half of sums (rowPathProduct), kept between calls
   */
  private activationScratch: { ptr: number; bytes: number } | null = null;
  /** the fused ops' small temporaries (takeTemporaries), kept between calls; taken while in use */
  private temporaryRegion: { block: WasmBlock; taken: boolean } | null = null;
  /** blocks the backend holds for itself (scratch), left out of bytesInUse */
  private readonly internal = new Set<number>();
  private pool: ThreadPool | null = null;
  private minMacsPerShare = MIN_MACS_PER_SHARE;
  private heapF32: Float32Array;
  private heapI32: Int32Array;

  constructor(private readonly k: Kernels) {
    super();
    this.arena = new Arena(k.memory, k.heapBase());
    this.limits = { maxTensorLength: Math.floor(this.arena.maxBlockBytes / BYTES_PER_ELEMENT), maxTotalBytes: this.arena.maxBlockBytes };
    this.heapF32 = new Float32Array(k.memory.buffer);
    this.heapI32 = new Int32Array(k.memory.buffer);
  }

  /** past the arena's limit, the arena says how many bytes the memory would need (ArenaLimitError) */
  protected readonly maxAllocLength = Number.MAX_SAFE_INTEGER;

  protected storageOf(t: Tensor): WasmBlock | undefined {
    return t instanceof WasmTensor && t.block.owner === this ? t.block : undefined;
  }

  /** whether the kernels are the relaxed-SIMD build (fused multiply-adds; chosen where the runtime has relaxed SIMD) */
  get fusedMultiplyAdd(): boolean {
    return this.k.fusedMultiplyAdd() === 1;
  }

  /** threads the kernels run on, the calling thread included */
  get threads(): number {
    return this.pool?.running ? this.pool.size : 1;
  }

  /**
   * Starts `workers` workers over this backend's memory, which must be the shared memory of the
   * threaded module `module`. Each gets its own packing buffers from the arena.
   */
  async startThreads(module: WebAssembly.Module, workers: number, workerUrl: URL, minMacsPerShare = MIN_MACS_PER_SHARE): Promise<void> {
    if (this.pool !== null) throw new Error('startThreads: the backend already runs threads');
    // the pool's code loads only here (before anything is allocated): a backend on one thread never needs it
    const { ThreadPool } = await import('./thread-pool.js');
    this.minMacsPerShare = minMacsPerShare;
    const regions: number[] = [];
    for (let i = 0; i < workers; i++) {
      const block = this.allocInternal(this.k.matmulScratchBytes() + SCRATCH_ALIGN);
      regions.push(Math.ceil(block / SCRATCH_ALIGN) * SCRATCH_ALIGN);
    }
    this.pool = await ThreadPool.start({ module, memory: this.k.memory, local: this.k, scratch: regions, workerUrl });
    forgottenPools.register(this, this.pool, this);
    this.scratch = Array.from({ length: workers + 1 }, () => null);
  }

  // ---- storage ----

  /** the arena's blocks are 16-byte aligned */
  protected override allocationBytes(length: number): number {
    return alignUp(length * BYTES_PER_ELEMENT);
  }

  protected _alloc(length: number, dtype: DType): Tensor {
    const bytes = length * BYTES_PER_ELEMENT;
    const ptr = this.arena.allocate(bytes);
    this.k.zeroBytes(ptr, bytes);
    const block: WasmBlock = { ptr, owner: this, live: true };
    this.blocks.add(block);
    return new WasmTensor(dtype, 0, length, block);
  }

  protected _view(t: Tensor, offset: number, length: number): Tensor {
    const parent = t as WasmTensor;
    return new WasmTensor(parent.dtype, parent.offset + offset, length, parent.block);
  }

  protected _upload(t: Tensor, data: Float32Array | Int32Array): void {
    const target = t as WasmTensor;
    const heap = target.dtype === 'f32' ? this.f32() : this.i32();
    heap.set(data, target.ptr / BYTES_PER_ELEMENT);
  }

  protected _download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = t as WasmTensor;
    const start = source.ptr / BYTES_PER_ELEMENT;
    const heap = source.dtype === 'f32' ? this.f32() : this.i32();
    return Promise.resolve(heap.slice(start, start + source.length));
  }

  /**
   * Decoding's fused ops (a few rows) take their temporaries from one kept region instead of an
   * alloc and a free each: some fifty of each per token of config B, ~0.4 us a pair. Larger ones
   * (training's) are allocated as usual, so the region stays small.
   */
  protected override takeTemporaries(lengths: readonly number[]): Tensor[] {
    const floats = lengths.reduce((sum, length) => sum + alignUp(length * BYTES_PER_ELEMENT) / BYTES_PER_ELEMENT, 0);
    if (floats > KEPT_TEMPORARY_FLOATS || this.temporaryRegion?.taken) return super.takeTemporaries(lengths);
    let region = this.temporaryRegion;
    if (region === null) {
      region = { block: { ptr: this.allocInternal(KEPT_TEMPORARY_FLOATS * BYTES_PER_ELEMENT), owner: this, live: true }, taken: false };
      this.temporaryRegion = region;
    }
    region.taken = true;
    this.k.zeroBytes(region.block.ptr, floats * BYTES_PER_ELEMENT);
    let offset = 0;
    return lengths.map((length) => {
      const t = new WasmTensor('f32', offset, length, region.block);
      offset += alignUp(length * BYTES_PER_ELEMENT) / BYTES_PER_ELEMENT;
      return t;
    });
  }

  protected override releaseTemporaries(temporaries: readonly Tensor[]): void {
    const region = this.temporaryRegion;
    if (region !== null && temporaries.every((t) => (t as WasmTensor).block === region.block)) region.taken = false;
    else super.releaseTemporaries(temporaries);
  }

  protected _free(t: Tensor): void {
    const own = t as WasmTensor;
    this.blocks.delete(own.block);
    this.arena.release(own.block.ptr);
  }

  bytesInUse(): number {
    let internal = 0;
    for (const ptr of this.internal) internal += this.arena.sizeOf(ptr);
    return this.arena.bytesInUse() - internal;
  }

  /** size of the linear memory the kernels run in (it only grows): what this backend holds from the system */
  get memoryBytes(): number {
    return this.k.memory.buffer.byteLength;
  }

  /** frees everything and stops the worker threads; the backend then runs on one thread */
  protected _dispose(): void {
    this.pool?.dispose();
    forgottenPools.unregister(this);
    this.pool = null;
    for (const block of this.blocks) block.live = false;
    this.blocks.clear();
    this.scratch = [null];
    this.activationScratch = null;
    this.temporaryRegion = null;
    this.internal.clear();
    this.arena.reset();
  }

  // ---- elementwise helpers ----

  protected _zero(t: Tensor): void {
    const own = t as WasmTensor;
    this.k.zeroBytes(own.ptr, own.length * BYTES_PER_ELEMENT);
  }

  protected _copy(dst: Tensor, src: Tensor): void {
    this.k.copyBytes(ptr(dst), ptr(src), src.length * BYTES_PER_ELEMENT);
  }

  protected _scale(t: Tensor, s: number): void {
    const x = ptr(t);
    this.k.scale(x, s, t.length);
  }

  protected _transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    this.k.transpose(ptr(out), ptr(inp), rows, cols);
  }

  protected _squaredNorm(out: Tensor, t: Tensor): void {
    const result = ptr(out);
    const x = ptr(t);
    this.f32()[result / BYTES_PER_ELEMENT] = this.k.squaredNorm(x, t.length);
  }

  // ---- encoder ----

  protected _encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    const o = ptr(out);
    const ids = ptr(inp);
    const V = Math.floor(wte.length / C); // wte [V,C]: V is its number of rows
    const tokenTable = ptr(wte);
    const positionTable = ptr(wpe);
    const bad = this.splitRows('encoderForwardRows', [o, ids, tokenTable, positionTable, T, C, V, posOffset], B * T, B * T * C);
    if (bad !== -1) this.badId(op, inp, bad, V);
  }

  protected _encoderBackward(dwte: Tensor | null, dwpe: Tensor | null, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    // a null table (0) is frozen: the kernel leaves it out
    const V = dwte === null ? 0 : Math.floor(dwte.length / C);
    const dTokenTable = dwte === null ? 0 : ptr(dwte);
    const dPositionTable = dwpe === null ? 0 : ptr(dwpe);
    const d = ptr(dout);
    const ids = ptr(inp);
    const bad = this.splitColumns('encoderBackwardCols', [dTokenTable, dPositionTable, d, ids, B, T, C, V], C, B * T * C, ELEMENT_BLOCK);
    if (bad !== -1) this.badId(op, inp, bad, V);
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
    const args = [ptr(out), ptr(mean), ptr(rstd), ptr(inp), ptr(weight), ptr(bias), C, LAYER_NORM_EPS];
    this.splitRows('layerNormForwardRows', args, N, N * C * ELEMENTWISE_COST);
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
    const [d, x, m, r] = [ptr(dout), ptr(inp), ptr(mean), ptr(rstd)];
    // dinp over rows (each row reduces over C); dweight and dbias over columns (each sums over rows)
    this.splitRows('layerNormBackwardInputRows', [ptr(dinp), d, x, ptr(weight), m, r, C], N, N * C * ELEMENTWISE_COST);
    // a null dweight or dbias (0) is frozen: the kernel leaves it out
    if (dweight === null && dbias === null) return;
    this.splitColumns(
      'layerNormBackwardParamsCols',
      [dweight === null ? 0 : ptr(dweight), dbias === null ? 0 : ptr(dbias), d, x, m, r, N, C],
      C,
      N * C * ELEMENTWISE_COST,
      ELEMENT_BLOCK,
    );
  }

  // ---- matmul ----

  protected _matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const o = ptr(out);
    const x = ptr(inp);
    const w = ptr(weight);
    const b = bias === null ? 0 : ptr(bias);
    if (M <= ROW_PATH_MAX_M) this.rowPathProduct(o, x, w, b, M, K, N);
    else this.splitColumns('matmulForwardCols', [o, x, w, b, M, K, N], N, M * K * N);
  }

  /**
   * out = bias + inp @ W for a few rows (decoding), K summed in two halves (assembly/matmul.ts
   * matmulRowsCols): the first into out, the second into a scratch row block added to it after, on
   * one thread as on several, so that two threads each stream one contiguous half of W and give the
   * single-threaded bits. More threads split each half's columns.
   */
  private rowPathProduct(o: number, x: number, w: number, b: number, M: number, K: number, N: number): void {
    const half = K >> 1;
    const second = this.activationArea(M * N * BYTES_PER_ELEMENT);
    const threads = this.sharesFor(2 * Math.ceil(N / COLUMN_BLOCK), M * K * N * ROW_PATH_COST);
    if (threads === 1) {
      this.k.matmulRowsCols(o, x, w, b, M, K, N, 0, half, 0, N);
      this.k.matmulRowsCols(second, x, w, 0, M, K, N, half, K, 0, N);
    } else {
      const perHalf = Math.floor(threads / 2);
      const halves = [
        [o, x, w, b, M, K, N, 0, half],
        [second, x, w, 0, M, K, N, half, K],
      ];
      const shares = halves.flatMap((args) =>
        Array.from({ length: perHalf }, (_, i) => [...args, share(N, perHalf, i, COLUMN_BLOCK), share(N, perHalf, i + 1, COLUMN_BLOCK)]),
      );
      this.runShares('matmulRowsCols', shares);
    }
    this.k.accumulate(o, second, M * N);
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
    const dx = dinp === null ? 0 : ptr(dinp);
    const dw = dweight === null ? 0 : ptr(dweight);
    const db = dbias === null ? 0 : ptr(dbias);
    const d = ptr(dout);
    const x = ptr(inp);
    const w = ptr(weight);
    // dinp[M,K] += dout @ W^T over columns of dinp; dweight[K,N] += inp^T @ dout (and dbias) over columns of dweight
    if (dx !== 0) this.splitColumns('matmulBackwardInputCols', [dx, d, w, M, K, N], K, M * K * N);
    // a frozen weight or bias (null, 0) gets no gradient work; the kernel skips either
    if (dw !== 0 || db !== 0) this.splitColumns('matmulBackwardWeightCols', [dw, db, d, x, M, K, N], N, dw !== 0 ? M * K * N : M * N);
  }

  // ---- quantized inference ----

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
    const [o, x, wq, ws, b] = this.matmulQuantArgs(out, inp, quants, scales, bias, M, K, N, format).map((t) => (t === null ? 0 : ptr(t)));
    if (format === 'f16') {
      // halves widened on the fly (assembly/half.ts): the f32 row path's multiply-adds plus the widening
      this.splitColumns('matmulF16Cols', [o, x, wq, b, M, K, N], N, M * K * N * ROW_PATH_COST);
      return;
    }
    // x as integer blocks (64 bytes per 32 elements), a scale and a code sum per block, quantized once for every share
    const xq = this.activationArea(M * K * 2 + ((M * K) / 32) * 2 * BYTES_PER_ELEMENT);
    const xs = xq + M * K * 2;
    this.k.quantizeActivations(xq, xs, x, M, K, format === 'q4_0');
    this.splitColumns(
      format === 'q8_0' ? 'matmulQ8Cols' : 'matmulQ4Cols',
      [o, xq, xs, wq, ws, b, M, K, N],
      N,
      M * K * N * QUANTIZED_MAC_COST,
    );
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
    const [o, ids, wq, ws, positions, V] = this.encoderQuantArgs(out, inp, quants, scales, wpe, B, T, C, posOffset, format);
    const bad =
      ws === null
        ? this.k.encoderF16Forward(ptr(o), ptr(ids), ptr(wq), ptr(positions), B, T, C, V, posOffset)
        : this.k.encoderQuantForward(ptr(o), ptr(ids), ptr(wq), ptr(ws), ptr(positions), B, T, C, V, posOffset, format === 'q4_0');
    if (bad !== -1) this.badId('encoderQuantForward', inp, bad, V);
  }

  /** byte address of the activation scratch, at least `bytes` long (16-byte aligned blocks follow from the arena) */
  private activationArea(bytes: number): number {
    let area = this.activationScratch;
    if (area === null || area.bytes < bytes) {
      if (area !== null) this.releaseInternal(area.ptr);
      this.activationScratch = null;
      area = { ptr: this.allocInternal(Math.max(bytes, 4096)), bytes: Math.max(bytes, 4096) };
      this.activationScratch = area;
    }
    return area.ptr;
  }

  // ---- attention ----

  protected _attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const o = ptr(out);
    const l = ptr(lse);
    const x = ptr(qkv);
    // per pair: Q K^T and P V, T*T*HS multiply-adds each
    const shares = this.sharesFor(B * NH, 2 * B * T * T * C);
    const pairs = B * NH;
    this.runShares(
      'attentionForwardPairs',
      Array.from({ length: shares }, (_, i) => [
        o,
        l,
        x,
        this.scratchFloats(i, this.k.attentionScratchFloats(T, C / NH, 0)),
        B,
        T,
        C,
        NH,
        share(pairs, shares, i, 1),
        share(pairs, shares, i + 1, 1),
      ]),
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
    const dx = ptr(dqkv);
    const d = ptr(dout);
    const x = ptr(qkv);
    const o = ptr(out);
    const l = ptr(lse);
    // per pair: five T*T*HS products (P, dP, dV, dQ, dK)
    const shares = this.sharesFor(B * NH, 5 * B * T * T * C);
    const pairs = B * NH;
    this.runShares(
      'attentionBackwardPairs',
      Array.from({ length: shares }, (_, i) => [
        dx,
        d,
        x,
        o,
        l,
        this.scratchFloats(i, this.k.attentionScratchFloats(T, C / NH, 1)),
        B,
        T,
        C,
        NH,
        share(pairs, shares, i, 1),
        share(pairs, shares, i + 1, 1),
      ]),
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
    const o = ptr(out);
    const x = ptr(qkv);
    const keys = ptr(kCache);
    const values = ptr(vCache);
    this.k.kvCacheAppend(x, keys, values, B, Tn, C, startPos, cacheLen);
    // per pair: the new rows against the L = startPos + Tn cached positions, twice (scores, values)
    const L = startPos + Tn;
    const pairs = B * NH;
    const shares = this.sharesFor(pairs, 2 * B * Tn * L * C * (Tn <= ROW_PATH_MAX_M ? ROW_PATH_COST : 1));
    this.runShares(
      'attentionCachedPairs',
      Array.from({ length: shares }, (_, i) => [
        o,
        x,
        keys,
        values,
        this.scratchFloats(i, this.k.attentionScratchFloats(L, C / NH, 0)),
        B,
        Tn,
        C,
        NH,
        startPos,
        cacheLen,
        share(pairs, shares, i, 1),
        share(pairs, shares, i + 1, 1),
      ]),
    );
  }

  // ---- gelu ----

  protected _geluForward(out: Tensor, inp: Tensor, N: number): void {
    const o = ptr(out);
    const x = ptr(inp);
    this.splitElements('geluForward', N, (at, count) => [o + at, x + at, count]);
  }

  protected _geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const dx = ptr(dinp);
    const x = ptr(inp);
    const d = ptr(dout);
    this.splitElements('geluBackward', N, (at, count) => [dx + at, x + at, d + at, count]);
  }

  // ---- residual ----

  protected _residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    this.k.residualForward(ptr(out), ptr(a), ptr(b), N);
  }

  protected _accumulate(dst: Tensor, src: Tensor, N: number): void {
    this.k.accumulate(ptr(dst), ptr(src), N);
  }

  // ---- dropout ----

  protected _dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const o = ptr(out);
    const x = ptr(inp);
    this.k.dropoutForward(o, x, N, seed, dropoutThreshold(p), 1 / (1 - p));
  }

  protected _dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const dx = ptr(dinp);
    const d = ptr(dout);
    this.k.dropoutBackward(dx, d, N, seed, dropoutThreshold(p), 1 / (1 - p));
  }

  // ---- softmax + cross-entropy ----

  protected _crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    const l = ptr(losses);
    const p = ptr(probs);
    const z = ptr(logits);
    const y = ptr(targets);
    const bad = this.splitRows('crossEntropyForwardRows', [l, p, z, y, V], N, N * V * ELEMENTWISE_COST);
    if (bad !== -1) this.badTarget(op, targets, bad, V);
  }

  protected _crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    const dz = ptr(dlogits);
    const p = ptr(probs);
    const y = ptr(targets);
    const bad = this.splitRows('crossEntropyBackwardRows', [dz, p, y, dlossScale, N, V], N, N * V);
    if (bad !== -1) this.badTarget(op, targets, bad, V);
  }

  /** generation's CPU sampler (the js reference's) over the rows in memory: no kernel, no copy out of the backend */
  protected _sampleTokens(ids: Tensor, logits: Tensor, uniforms: ArrayLike<number>, B: number, V: number, sampling: TokenSampling): void {
    const z = ptr(logits) / BYTES_PER_ELEMENT;
    const out = ptr(ids) / BYTES_PER_ELEMENT;
    for (let b = 0; b < B; b++) {
      const row = this.f32().slice(z + b * V, z + (b + 1) * V);
      this.i32()[out + b] = chooseToken(row, sampling, sampling.greedy ? 0 : uniforms[b]);
    }
  }

  // ---- optimizer ----

  protected _adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    const n = params.length;
    const p = ptr(params);
    const g = ptr(grads);
    const m1 = ptr(m);
    const m2 = ptr(v);
    const hyper = [learningRate, beta1, beta2, eps, weightDecay, 1 - beta1 ** step, 1 - beta2 ** step];
    this.splitElements('adamwUpdate', n, (at, count) => [p + at, g + at, m1 + at, m2 + at, count, ...hyper]);
  }

  // ---- memory access and validation ----

  /** a Float32Array over the whole memory, re-made after the memory grew (old views detach) */
  private f32(): Float32Array {
    if (this.heapF32.buffer !== this.k.memory.buffer) this.heapF32 = new Float32Array(this.k.memory.buffer);
    return this.heapF32;
  }

  private i32(): Int32Array {
    if (this.heapI32.buffer !== this.k.memory.buffer) this.heapI32 = new Int32Array(this.k.memory.buffer);
    return this.heapI32;
  }

  /** byte address of thread `thread`'s scratch area of at least `floats` floats, kept between calls */
  private scratchFloats(thread: number, floats: number): number {
    let area = this.scratch[thread];
    if (area === null || area.floats < floats) {
      if (area !== null) this.releaseInternal(area.ptr);
      this.scratch[thread] = null;
      const size = Math.max(floats, 1024);
      area = { ptr: this.allocInternal(size * BYTES_PER_ELEMENT), floats: size };
      this.scratch[thread] = area;
    }
    return area.ptr;
  }

  private allocInternal(bytes: number): number {
    const ptr = this.arena.allocate(bytes);
    this.internal.add(ptr);
    return ptr;
  }

  private releaseInternal(ptr: number): void {
    this.internal.delete(ptr);
    this.arena.release(ptr);
  }

  /** how many shares to cut `units` independent pieces of work (`macs` multiply-adds in all) into */
  private sharesFor(units: number, macs: number): number {
    if (this.pool === null || !this.pool.running) return 1;
    const bySize = this.minMacsPerShare === 0 ? Infinity : Math.floor(macs / this.minMacsPerShare);
    return Math.max(1, Math.min(this.pool.size, units, bySize));
  }

  /** runs one share on this thread, or several over the pool; returns each share's return value (0 for kernels without one) */
  private runShares(fn: SplitKernel, shares: number[][]): number[] {
    if (shares.length === 1) return [(this.k[fn] as (...args: number[]) => number | undefined)(...shares[0]) ?? 0];
    return this.pool!.run(fn, shares);
  }

  /** runs an elementwise kernel over n elements; `argsOf` gives a share's arguments from its byte offset and element count */
  private splitElements(fn: SplitKernel, n: number, argsOf: (byteOffset: number, count: number) => number[]): void {
    const shares = this.sharesFor(Math.ceil(n / ELEMENT_BLOCK), n * ELEMENTWISE_COST);
    this.runShares(
      fn,
      Array.from({ length: shares }, (_, i) => {
        const start = share(n, shares, i, ELEMENT_BLOCK);
        return argsOf(start * BYTES_PER_ELEMENT, share(n, shares, i + 1, ELEMENT_BLOCK) - start);
      }),
    );
  }

  /**
   * runs a column-range kernel (its last two arguments are the range) over `columns` columns, in
   * shares of whole `block`s; returns the first share's result other than -1, else -1 (for kernels
   * that report a bad row or id; shares are in order, so that is the first bad one; meaningless for
   * kernels that return nothing)
   */
  private splitColumns(fn: SplitKernel, args: number[], columns: number, macs: number, block = COLUMN_BLOCK): number {
    const shares = this.sharesFor(Math.ceil(columns / block), macs);
    // one share (every call on one thread, and the small ones on several): no share lists to build
    if (shares === 1) return (this.k[fn] as (...args: number[]) => number | undefined)(...args, 0, columns) ?? 0;
    const results = this.runShares(
      fn,
      Array.from({ length: shares }, (_, i) => [...args, share(columns, shares, i, block), share(columns, shares, i + 1, block)]),
    );
    return results.find((r) => r !== -1) ?? -1;
  }

  /** runs a row-range kernel (its last two arguments are the range) over `rows` rows; returns as splitColumns */
  private splitRows(fn: SplitKernel, args: number[], rows: number, macs: number): number {
    return this.splitColumns(fn, args, rows, macs, 1);
  }

  private badId(op: string, inp: Tensor, index: number, V: number): never {
    const id = this.i32()[(inp as WasmTensor).ptr / BYTES_PER_ELEMENT + index];
    throw new RangeError(`${op}: inp[${index}] = ${id} is outside [0, ${V}) (rows of wte)`);
  }

  private badTarget(op: string, targets: Tensor, index: number, V: number): never {
    const target = this.i32()[(targets as WasmTensor).ptr / BYTES_PER_ELEMENT + index];
    throw new RangeError(`${op}: targets[${index}] = ${target} is outside [0, ${V}) and is not the ignore index ${IGNORE_INDEX}`);
  }
}

/** byte address of element 0 of a checked tensor's view */
function ptr(t: Tensor): number {
  return (t as WasmTensor).ptr;
}

/** start of share i of n over `total` items, in whole blocks of `block` items (the last share takes the rest) */
function share(total: number, n: number, i: number, block: number): number {
  const blocks = Math.ceil(total / block);
  return Math.min(total, Math.floor((i * blocks) / n) * block);
}
