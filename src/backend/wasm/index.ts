/**
 * The WebAssembly backend: AssemblyScript SIMD kernels (assembly/) over one linear memory that an
 * Arena hands out. Ops run synchronously in call order; `download` copies out of the memory.
 */
import {
  IGNORE_INDEX,
  LAYER_NORM_EPS,
  dropoutThreshold,
  type AdamWParams,
  type Backend,
  type BackendLimits,
  type DType,
  type OpName,
  type Tensor,
} from '../contract.js';
import { Arena } from './arena.js';
import { loadKernels, type Kernels, type WasmSource } from './loader.js';

export { Arena, ArenaLimitError, WASM32_MAX_BYTES } from './arena.js';
export type { WasmSource } from './loader.js';

const BYTES_PER_ELEMENT = 4;

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

export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  readonly limits: BackendLimits;
  private readonly arena: Arena;
  private readonly blocks = new Set<WasmBlock>();
  /** attention's score scratch for one (batch, head): T*T floats forward, 2*T*T backward */
  private scratch: { ptr: number; floats: number } | null = null;
  private heapF32: Float32Array;
  private heapI32: Int32Array;

  constructor(private readonly k: Kernels) {
    this.arena = new Arena(k.memory, k.heapBase());
    this.limits = { maxTensorLength: Math.floor(this.arena.maxBlockBytes / BYTES_PER_ELEMENT), maxTotalBytes: this.arena.maxBlockBytes };
    this.heapF32 = new Float32Array(k.memory.buffer);
    this.heapI32 = new Int32Array(k.memory.buffer);
  }

  supports(_op: OpName): boolean {
    return true;
  }

  // ---- storage ----

  alloc(length: number, dtype: DType = 'f32'): Tensor {
    if (!Number.isSafeInteger(length) || length < 1) throw new RangeError(`alloc: length must be a positive integer, got ${length}`);
    if (dtype !== 'f32' && dtype !== 'i32') throw new TypeError(`alloc: dtype must be 'f32' or 'i32', got ${String(dtype)}`);
    const bytes = length * BYTES_PER_ELEMENT;
    const ptr = this.arena.allocate(bytes);
    this.k.zeroBytes(ptr, bytes);
    const block: WasmBlock = { ptr, owner: this, live: true };
    this.blocks.add(block);
    return new WasmTensor(dtype, 0, length, block);
  }

  view(t: Tensor, offset: number, length: number): Tensor {
    const parent = this.tensor('view', 't', t);
    if (!Number.isInteger(offset) || offset < 0 || offset > parent.length) {
      throw new RangeError(`view: offset must be an integer in [0, ${parent.length}], got ${offset}`);
    }
    if (!Number.isInteger(length) || length < 0 || offset + length > parent.length) {
      throw new RangeError(
        `view: length must be an integer in [0, ${parent.length - offset}] (view of ${parent.length} elements at offset ${offset}), got ${length}`,
      );
    }
    return new WasmTensor(parent.dtype, parent.offset + offset, length, parent.block);
  }

  upload(t: Tensor, data: Float32Array | Int32Array): void {
    const target = this.tensor('upload', 't', t);
    const expected = target.dtype === 'f32' ? Float32Array : Int32Array;
    if (!(data instanceof expected)) {
      throw new TypeError(`upload: a ${target.dtype} tensor takes a ${expected.name}, got ${describe(data)}`);
    }
    if (data.length > target.length) {
      throw new RangeError(`upload: data has ${data.length} elements, the tensor view holds ${target.length}`);
    }
    const heap = target.dtype === 'f32' ? this.f32() : this.i32();
    heap.set(data, target.ptr / BYTES_PER_ELEMENT);
  }

  download(t: Tensor): Promise<Float32Array | Int32Array> {
    const source = this.tensor('download', 't', t);
    const start = source.ptr / BYTES_PER_ELEMENT;
    const heap = source.dtype === 'f32' ? this.f32() : this.i32();
    return Promise.resolve(heap.slice(start, start + source.length));
  }

  free(t: Tensor): void {
    const own = this.owned('free', 't', t);
    // freeing twice, or after dispose, is a no-op as in the reference backend
    if (!own.block.live) return;
    own.block.live = false;
    this.blocks.delete(own.block);
    this.arena.release(own.block.ptr);
  }

  bytesInUse(): number {
    return this.arena.bytesInUse() - (this.scratch ? this.arena.sizeOf(this.scratch.ptr) : 0);
  }

  dispose(): void {
    for (const block of this.blocks) block.live = false;
    this.blocks.clear();
    this.scratch = null;
    this.arena.reset();
  }

  // ---- elementwise helpers ----

  zero(t: Tensor): void {
    const own = this.tensor('zero', 't', t);
    this.k.zeroBytes(own.ptr, own.length * BYTES_PER_ELEMENT);
  }

  copy(dst: Tensor, src: Tensor): void {
    const from = this.tensor('copy', 'src', src);
    const to = this.tensor('copy', 'dst', dst);
    if (to.dtype !== from.dtype) throw new TypeError(`copy: dst is ${to.dtype} but src is ${from.dtype}`);
    if (to.length < from.length) throw new RangeError(`copy: dst has ${to.length} elements, needs at least src.length = ${from.length}`);
    if (to.block === from.block && to.offset < from.offset + from.length && from.offset < to.offset + from.length) {
      throw new RangeError(
        `copy: dst [${to.offset}, ${to.offset + from.length}) overlaps src [${from.offset}, ${from.offset + from.length}) in the same buffer`,
      );
    }
    this.k.copyBytes(to.ptr, from.ptr, from.length * BYTES_PER_ELEMENT);
  }

  scale(t: Tensor, s: number): void {
    finite('scale', 's', s);
    const x = this.floats('scale', 't', t, t.length);
    this.k.scale(x, s, t.length);
  }

  transpose(out: Tensor, inp: Tensor, rows: number, cols: number): void {
    const op = 'transpose';
    dims(op, { rows, cols });
    const o = this.floats(op, 'out', out, rows * cols);
    const x = this.floats(op, 'inp', inp, rows * cols);
    const a = out as WasmTensor;
    const b = inp as WasmTensor;
    if (a.block === b.block && a.offset < b.offset + rows * cols && b.offset < a.offset + rows * cols) {
      throw new RangeError(`${op}: out and inp overlap in the same buffer; transpose needs separate storage`);
    }
    this.k.transpose(o, x, rows, cols);
  }

  squaredNorm(out: Tensor, t: Tensor): void {
    const result = this.floats('squaredNorm', 'out', out, 1);
    const x = this.floats('squaredNorm', 't', t, t.length);
    this.f32()[result / BYTES_PER_ELEMENT] = this.k.squaredNorm(x, t.length);
  }

  // ---- encoder ----

  encoderForward(out: Tensor, inp: Tensor, wte: Tensor, wpe: Tensor, B: number, T: number, C: number, posOffset = 0): void {
    const op = 'encoderForward';
    dims(op, { B, T, C });
    nonNegativeInteger(op, 'posOffset', posOffset);
    const o = this.floats(op, 'out', out, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const V = Math.floor(wte.length / C); // wte [V,C]: V is its number of rows
    const tokenTable = this.floats(op, 'wte', wte, V * C);
    const positionTable = this.floats(op, 'wpe', wpe, (posOffset + T) * C);
    const bad = this.k.encoderForward(o, ids, tokenTable, positionTable, B, T, C, V, posOffset);
    if (bad !== -1) this.badId(op, inp, bad, V);
  }

  encoderBackward(dwte: Tensor, dwpe: Tensor, dout: Tensor, inp: Tensor, B: number, T: number, C: number): void {
    const op = 'encoderBackward';
    dims(op, { B, T, C });
    const V = Math.floor(dwte.length / C);
    const dTokenTable = this.floats(op, 'dwte', dwte, V * C);
    const dPositionTable = this.floats(op, 'dwpe', dwpe, T * C);
    const d = this.floats(op, 'dout', dout, B * T * C);
    const ids = this.ints(op, 'inp', inp, B * T);
    const bad = this.k.encoderBackward(dTokenTable, dPositionTable, d, ids, B, T, C, V);
    if (bad !== -1) this.badId(op, inp, bad, V);
  }

  // ---- layer norm ----

  layerNormForward(out: Tensor, mean: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, bias: Tensor, N: number, C: number): void {
    const op = 'layerNormForward';
    dims(op, { N, C });
    this.k.layerNormForward(
      this.floats(op, 'out', out, N * C),
      this.floats(op, 'mean', mean, N),
      this.floats(op, 'rstd', rstd, N),
      this.floats(op, 'inp', inp, N * C),
      this.floats(op, 'weight', weight, C),
      this.floats(op, 'bias', bias, C),
      N,
      C,
      LAYER_NORM_EPS,
    );
  }

  layerNormBackward(
    dinp: Tensor, dweight: Tensor, dbias: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, N: number, C: number,
  ): void {
    const op = 'layerNormBackward';
    dims(op, { N, C });
    this.k.layerNormBackward(
      this.floats(op, 'dinp', dinp, N * C),
      this.floats(op, 'dweight', dweight, C),
      this.floats(op, 'dbias', dbias, C),
      this.floats(op, 'dout', dout, N * C),
      this.floats(op, 'inp', inp, N * C),
      this.floats(op, 'weight', weight, C),
      this.floats(op, 'mean', mean, N),
      this.floats(op, 'rstd', rstd, N),
      N,
      C,
    );
  }

  // ---- matmul ----

  matmulForward(out: Tensor, inp: Tensor, weight: Tensor, bias: Tensor | null, M: number, K: number, N: number): void {
    const op = 'matmulForward';
    dims(op, { M, K, N });
    this.k.matmulForward(
      this.floats(op, 'out', out, M * N),
      this.floats(op, 'inp', inp, M * K),
      this.floats(op, 'weight', weight, K * N),
      bias === null ? 0 : this.floats(op, 'bias', bias, N),
      M,
      K,
      N,
    );
  }

  matmulBackward(
    dinp: Tensor | null, dweight: Tensor, dbias: Tensor | null, dout: Tensor, inp: Tensor, weight: Tensor, M: number, K: number, N: number,
  ): void {
    const op = 'matmulBackward';
    dims(op, { M, K, N });
    this.k.matmulBackward(
      dinp === null ? 0 : this.floats(op, 'dinp', dinp, M * K),
      this.floats(op, 'dweight', dweight, K * N),
      dbias === null ? 0 : this.floats(op, 'dbias', dbias, N),
      this.floats(op, 'dout', dout, M * N),
      this.floats(op, 'inp', inp, M * K),
      this.floats(op, 'weight', weight, K * N),
      M,
      K,
      N,
    );
  }

  // ---- attention ----

  attentionForward(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionForward';
    headSize(op, B, T, C, NH);
    const o = this.floats(op, 'out', out, B * T * C);
    const l = this.floats(op, 'lse', lse, B * NH * T);
    const x = this.floats(op, 'qkv', qkv, B * T * 3 * C);
    this.k.attentionForward(o, l, x, this.scratchFloats(T * T), B, T, C, NH);
  }

  attentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, C: number, NH: number): void {
    const op = 'attentionBackward';
    headSize(op, B, T, C, NH);
    const dx = this.floats(op, 'dqkv', dqkv, B * T * 3 * C);
    const d = this.floats(op, 'dout', dout, B * T * C);
    const x = this.floats(op, 'qkv', qkv, B * T * 3 * C);
    const o = this.floats(op, 'out', out, B * T * C);
    const l = this.floats(op, 'lse', lse, B * NH * T);
    this.k.attentionBackward(dx, d, x, o, l, this.scratchFloats(2 * T * T), B, T, C, NH);
  }

  attentionCached(
    out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, B: number, Tn: number, C: number, NH: number, startPos: number, cacheLen: number,
  ): void {
    const op = 'attentionCached';
    headSize(op, B, Tn, C, NH);
    dims(op, { cacheLen });
    nonNegativeInteger(op, 'startPos', startPos);
    if (startPos + Tn > cacheLen) throw new RangeError(`${op}: startPos + Tn = ${startPos} + ${Tn} exceeds cacheLen ${cacheLen}`);
    const o = this.floats(op, 'out', out, B * Tn * C);
    const x = this.floats(op, 'qkv', qkv, B * Tn * 3 * C);
    const keys = this.floats(op, 'kCache', kCache, B * cacheLen * C);
    const values = this.floats(op, 'vCache', vCache, B * cacheLen * C);
    this.k.attentionCached(o, x, keys, values, this.scratchFloats(Tn * (startPos + Tn)), B, Tn, C, NH, startPos, cacheLen);
  }

  // ---- gelu ----

  geluForward(out: Tensor, inp: Tensor, N: number): void {
    const op = 'geluForward';
    dims(op, { N });
    this.k.geluForward(this.floats(op, 'out', out, N), this.floats(op, 'inp', inp, N), N);
  }

  geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor, N: number): void {
    const op = 'geluBackward';
    dims(op, { N });
    this.k.geluBackward(this.floats(op, 'dinp', dinp, N), this.floats(op, 'inp', inp, N), this.floats(op, 'dout', dout, N), N);
  }

  // ---- residual ----

  residualForward(out: Tensor, a: Tensor, b: Tensor, N: number): void {
    const op = 'residualForward';
    dims(op, { N });
    this.k.residualForward(this.floats(op, 'out', out, N), this.floats(op, 'a', a, N), this.floats(op, 'b', b, N), N);
  }

  accumulate(dst: Tensor, src: Tensor, N: number): void {
    const op = 'accumulate';
    dims(op, { N });
    this.k.accumulate(this.floats(op, 'dst', dst, N), this.floats(op, 'src', src, N), N);
  }

  // ---- dropout ----

  dropoutForward(out: Tensor, inp: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutForward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const o = this.floats(op, 'out', out, N);
    const x = this.floats(op, 'inp', inp, N);
    this.k.dropoutForward(o, x, N, seed, dropoutThreshold(p), 1 / (1 - p));
  }

  dropoutBackward(dinp: Tensor, dout: Tensor, N: number, p: number, seed: number): void {
    const op = 'dropoutBackward';
    dims(op, { N });
    dropoutArgs(op, p, seed);
    const dx = this.floats(op, 'dinp', dinp, N);
    const d = this.floats(op, 'dout', dout, N);
    this.k.dropoutBackward(dx, d, N, seed, dropoutThreshold(p), 1 / (1 - p));
  }

  // ---- softmax + cross-entropy ----

  crossEntropyForward(losses: Tensor, probs: Tensor, logits: Tensor, targets: Tensor, N: number, V: number): void {
    const op = 'crossEntropyForward';
    dims(op, { N, V });
    const l = this.floats(op, 'losses', losses, N);
    const p = this.floats(op, 'probs', probs, N * V);
    const z = this.floats(op, 'logits', logits, N * V);
    const y = this.ints(op, 'targets', targets, N);
    const bad = this.k.crossEntropyForward(l, p, z, y, N, V);
    if (bad !== -1) this.badTarget(op, targets, bad, V);
  }

  crossEntropyBackward(dlogits: Tensor, probs: Tensor, targets: Tensor, dlossScale: number, N: number, V: number): void {
    const op = 'crossEntropyBackward';
    dims(op, { N, V });
    finite(op, 'dlossScale', dlossScale);
    const dz = this.floats(op, 'dlogits', dlogits, N * V);
    const p = this.floats(op, 'probs', probs, N * V);
    const y = this.ints(op, 'targets', targets, N);
    const bad = this.k.crossEntropyBackward(dz, p, y, dlossScale, N, V);
    if (bad !== -1) this.badTarget(op, targets, bad, V);
  }

  // ---- optimizer ----

  adamwUpdate(params: Tensor, grads: Tensor, m: Tensor, v: Tensor, opts: AdamWParams): void {
    const op = 'adamwUpdate';
    const { learningRate, beta1, beta2, eps, weightDecay, step } = opts;
    inRange(op, 'learningRate', learningRate, 0, Infinity, '[0, Infinity)');
    inRange(op, 'beta1', beta1, 0, 1, '[0, 1)');
    inRange(op, 'beta2', beta2, 0, 1, '[0, 1)');
    inRange(op, 'eps', eps, 0, Infinity, '[0, Infinity)');
    inRange(op, 'weightDecay', weightDecay, 0, Infinity, '[0, Infinity)');
    if (!Number.isInteger(step) || step < 1) throw new RangeError(`${op}: step must be an integer >= 1 (1-based), got ${step}`);
    const n = params.length;
    this.k.adamwUpdate(
      this.floats(op, 'params', params, n),
      this.floats(op, 'grads', grads, n),
      this.floats(op, 'm', m, n),
      this.floats(op, 'v', v, n),
      n,
      learningRate,
      beta1,
      beta2,
      eps,
      weightDecay,
      1 - beta1 ** step,
      1 - beta2 ** step,
    );
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

  /** byte address of a scratch area of at least `floats` floats, kept between calls */
  private scratchFloats(floats: number): number {
    if (this.scratch === null || this.scratch.floats < floats) {
      if (this.scratch !== null) this.arena.release(this.scratch.ptr);
      this.scratch = null;
      const size = Math.max(floats, 1024);
      this.scratch = { ptr: this.arena.allocate(size * BYTES_PER_ELEMENT), floats: size };
    }
    return this.scratch.ptr;
  }

  private owned(op: string, name: string, t: Tensor): WasmTensor {
    if (!(t instanceof WasmTensor) || t.block.owner !== this) throw new TypeError(`${op}: ${name} is not a tensor of this wasm backend`);
    return t;
  }

  private tensor(op: string, name: string, t: Tensor): WasmTensor {
    const own = this.owned(op, name, t);
    if (!own.block.live) throw new Error(`${op}: ${name} belongs to a buffer that was freed`);
    return own;
  }

  /** byte address of an f32 tensor that holds at least `need` elements */
  private floats(op: string, name: string, t: Tensor, need: number): number {
    const own = this.tensor(op, name, t);
    if (own.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be an f32 tensor, got ${own.dtype}`);
    if (own.length < need) throw new RangeError(`${op}: ${name} has ${own.length} elements, needs at least ${need}`);
    return own.ptr;
  }

  /** byte address of an i32 tensor that holds at least `need` elements */
  private ints(op: string, name: string, t: Tensor, need: number): number {
    const own = this.tensor(op, name, t);
    if (own.dtype !== 'i32') throw new TypeError(`${op}: ${name} must be an i32 tensor, got ${own.dtype}`);
    if (own.length < need) throw new RangeError(`${op}: ${name} has ${own.length} elements, needs at least ${need}`);
    return own.ptr;
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

/**
 * Loads tinygpt.wasm (see loader.ts for the sources it accepts) and returns a backend over it.
 * On edge runtimes pass `module` (compiling from bytes is refused there).
 */
export async function createWasmBackend(opts: WasmSource = {}): Promise<WasmBackend> {
  return new WasmBackend(await loadKernels(opts));
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  return (value as object).constructor?.name ?? typeof value;
}

function dims(op: string, named: Record<string, number>): void {
  for (const [name, value] of Object.entries(named)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${value}`);
  }
}

function nonNegativeInteger(op: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${op}: ${name} must be an integer >= 0, got ${value}`);
}

function finite(op: string, name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${op}: ${name} must be a finite number, got ${value}`);
}

function inRange(op: string, name: string, value: number, lo: number, hi: number, shown: string): void {
  if (!Number.isFinite(value) || value < lo || value >= hi) throw new RangeError(`${op}: ${name} must be in ${shown}, got ${value}`);
}

function headSize(op: string, B: number, T: number, C: number, NH: number): number {
  dims(op, { B, T, C, NH });
  if (C % NH !== 0) throw new RangeError(`${op}: C = ${C} must be divisible by NH = ${NH}`);
  return C / NH;
}

function dropoutArgs(op: string, p: number, seed: number): void {
  inRange(op, 'p', p, 0, 1, '[0, 1)');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
}
