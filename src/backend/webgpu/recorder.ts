/**
 * WebGPU command recording: ops are recorded into one command encoder (one compute pass between
 * copies) and submitted on `flush` (download flushes) and every `submitEvery` dispatches, so that
 * the GPU runs the first ops of a training step or a decoded token while the host records the
 * rest. Each dispatch's offsets and scalars go into its own 256-byte slot of one uniform buffer
 * (bound with a dynamic offset), written just before the submission. An op whose views
 * exceed one storage binding runs as several dispatches over pieces of its iteration space
 * (`inPieces`, pieces.ts).
 */
/// <reference types="@webgpu/types" />
import type { DType } from '../contract.js';
import { BUFFER_USAGE, type PooledBuffer } from './buffers.js';
import type { FaultLog } from './faults.js';
import { UNIFORM_SLOT_BYTES, grid, type BindingPlan, type KernelDef } from './kernel.js';
import { BindingTooSmallError, planPieces, touched, type Box } from './pieces.js';
import { PipelineCache, type BindingWindow } from './pipelines.js';
import { segmentOf, WebGPUTensor, type GpuMemory, type GpuStorage, type Segment } from './storage.js';
import { ELEMENTWISE_WORKGROUP } from './wgsl/elementwise.js';

/** dispatches recorded before an early submission frees the uniform slots (1 MiB of uniforms) */
const UNIFORM_SLOTS = 4096;

/**
 * How an op's iteration box (see pieces.ts) reaches into a tensor: the element step per unit of each
 * box dimension, the elements one item touches, and whether the op writes it.
 */
export interface PieceAccess {
  readonly tensor: WebGPUTensor;
  readonly strides: readonly number[];
  readonly extent: number;
  readonly write?: boolean;
}

/** For an op cut along one dimension: item i touches `elems` elements of `tensor` from i * elems. */
export function perItem(tensor: WebGPUTensor, elems: number, write = false): PieceAccess {
  return { tensor, strides: [elems], extent: elems, write };
}

/** For an op cut along one dimension: every item touches the same first `elems` elements. */
export function sharedByAll(tensor: WebGPUTensor, elems: number, write = false): PieceAccess {
  return { tensor, strides: [0], extent: elems, write };
}

/** A dispatch: the kernel's tensors and scalars by name, and the workgroup grid. */
export interface Dispatch {
  tensors: Record<string, WebGPUTensor>;
  scalars?: Record<string, number>;
  /** workgroups along x, y and (default 1) z */
  groups: readonly [number, number] | readonly [number, number, number];
  /** selects a generated variant of the kernel (part of the pipeline key) */
  variant?: string;
}

export class Recorder {
  /** queue submissions so far */
  submissions = 0;
  /** compute dispatches recorded so far */
  dispatches = 0;
  readonly pipelines: PipelineCache;
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

  /**
   * `checkUsable(op)` throws once the backend is disposed; `afterSubmit` destroys buffers released
   * while the submitted commands still used them.
   */
  constructor(
    readonly device: GPUDevice,
    readonly memory: GpuMemory,
    private readonly faults: FaultLog,
    private readonly checkUsable: (op: string) => void,
    private readonly afterSubmit: () => void,
    /** elements one binding may span, and the alignment (in elements) of a binding's start */
    readonly maxBindingElems: number,
    private readonly bindingAlignElems: number,
    /** dispatches after which the recording is submitted without waiting for a read-back (0: never) */
    private readonly submitEvery = 0,
  ) {
    this.pipelines = new PipelineCache(device, (scope, what) => faults.track(scope, what));
    this.uniformBuffer = {
      id: 0,
      buffer: device.createBuffer({ size: UNIFORM_SLOTS * UNIFORM_SLOT_BYTES, usage: BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST }),
      bytes: UNIFORM_SLOTS * UNIFORM_SLOT_BYTES,
    };
  }

  get maxWorkgroupsPerDim(): number {
    return this.device.limits.maxComputeWorkgroupsPerDimension;
  }

  /** bytes of workgroup memory a kernel may declare on this device */
  get maxWorkgroupBytes(): number {
    return this.device.limits.maxComputeWorkgroupStorageSize;
  }

  /** whether nothing is recorded since the last submission (a queue write then lands first) */
  get idle(): boolean {
    return this.encoder === null;
  }

  scratch(length: number, dtype: DType = 'f32'): WebGPUTensor {
    return this.memory.scratch(length, dtype);
  }

  /** free a scratch tensor: whatever reuses its buffer writes it in command order, after the reads recorded here */
  release(t: WebGPUTensor): void {
    this.memory.free(t);
  }

  /** record a copy of host bytes into `buffer` at `byteOffset`, in command order */
  stage(buffer: GPUBuffer, byteOffset: number, part: Float32Array | Int32Array): void {
    const staging = this.device.createBuffer({ size: part.byteLength, usage: BUFFER_USAGE.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    staging.unmap();
    this.copyEncoder().copyBufferToBuffer(staging, 0, buffer, byteOffset, part.byteLength);
    this.stagingToDestroy.push(staging);
  }

  /** submit everything recorded so far */
  flush(): void {
    if (this.encoder === null) return;
    this.endPass();
    if (this.uniformSlotsUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer.buffer, 0, this.uniformBytes, 0, this.uniformSlotsUsed * UNIFORM_SLOT_BYTES);
    }
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    this.device.queue.submit([this.encoder.finish()]);
    this.submissions++;
    this.faults.track(this.device.popErrorScope(), 'submitted commands failed validation');
    this.faults.track(this.device.popErrorScope(), 'submitted commands ran out of GPU memory');
    for (const staging of this.stagingToDestroy) staging.destroy();
    this.stagingToDestroy = [];
    this.afterSubmit();
    this.encoder = null;
    this.uniformSlotsUsed = 0;
  }

  destroy(): void {
    this.pipelines.clearBindGroups();
    this.uniformBuffer.buffer.destroy();
  }

  /**
   * A kernel over n elements at the same index of every tensor, in pieces where they exceed one
   * binding; a kernel that declares the scalar `base` gets each piece's first index in it.
   */
  elementwise(kernel: KernelDef, n: number, tensors: Record<string, WebGPUTensor>, scalars: Record<string, number> = {}): void {
    const access: Record<string, PieceAccess> = {};
    for (const { name, write } of kernel.tensors) access[name] = perItem(tensors[name], 1, write);
    const indexed = kernel.scalars.some((s) => s.name === 'base');
    this.inPieces(kernel.name, [n], access, (piece, views) => {
      this.dispatchElementwise(kernel, piece.size[0], views, indexed ? { ...scalars, base: piece.start[0] } : scalars);
    });
  }

  /** one dispatch of an elementwise-shaped kernel over n invocations */
  dispatchElementwise(kernel: KernelDef, n: number, tensors: Record<string, WebGPUTensor>, scalars: Record<string, number> = {}): void {
    this.dispatch(kernel, { tensors, scalars: { n, ...scalars }, groups: this.grid(Math.ceil(n / ELEMENTWISE_WORKGROUP)) });
  }

  dispatch(kernel: KernelDef, call: Dispatch): void {
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
    this.dispatches++;
    // the GPU starts on what is recorded while the host records the rest
    if (this.uniformSlotsUsed === this.submitEvery) this.flush();
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
   * the accessed tensors that it touches. Nearly always one piece: the whole op. With `wholeOnly`
   * (an op that cannot be cut: a fused product's epilogue) it records nothing and returns false
   * when the op would need more than one piece.
   */
  inPieces<K extends string>(
    op: string,
    sizes: readonly number[],
    access: Record<K, PieceAccess>,
    record: (piece: Box, views: Record<K, WebGPUTensor>) => void,
    wholeOnly = false,
  ): boolean {
    const names = Object.keys(access) as K[];
    const whole: Box = { start: sizes.map(() => 0), size: sizes };
    const wholeViews = this.wholeOpViews(names, access, sizes);
    if (wholeViews !== null) {
      record(whole, wholeViews);
      return true;
    }
    // One window per written buffer, one per read-only tensor, as `dispatch` binds them. A written
    // tensor stored in several buffers is keyed by the buffer its accesses start in: LayerNorm's
    // dweight and dbias may sit on either side of a boundary in the flat gradients.
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
      if (error instanceof BindingTooSmallError) {
        if (wholeOnly) return false;
        throw new RangeError(`${op}: ${error.message}`, { cause: error });
      }
      throw error;
    }
    if (wholeOnly && pieces.length > 1) return false;
    for (const piece of pieces) {
      const views = {} as Record<K, WebGPUTensor>;
      names.forEach((name, i) => {
        const { first, end } = touched(boxAccesses[i], piece);
        const tensor = access[name].tensor;
        views[name] = new WebGPUTensor(tensor.dtype, first, end - first, tensor.storage, tensor.owner);
      });
      record(piece, views);
    }
    return true;
  }

  /**
   * inPieces' common case, checked without its general planning (which cost a decoded token on an
   * H200 about a quarter of its host time): every tensor in one buffer and every window, joined per
   * written buffer as `dispatch` binds them, within one binding. Then the views over the whole box;
   * else null.
   */
  private wholeOpViews<K extends string>(
    names: readonly K[],
    access: Record<K, PieceAccess>,
    sizes: readonly number[],
  ): Record<K, WebGPUTensor> | null {
    const joined = new Map<GpuStorage, { first: number; end: number }>();
    for (const name of names) {
      const { tensor, write } = access[name];
      if (tensor.storage.segmentStarts.length > 0) return null;
      if (write) joined.set(tensor.storage, { first: Infinity, end: -Infinity });
    }
    const views = {} as Record<K, WebGPUTensor>;
    for (const name of names) {
      const { tensor, strides, extent } = access[name];
      // touched() over the whole box
      let last = tensor.offset;
      for (let d = 0; d < sizes.length; d++) last += (sizes[d] - 1) * strides[d];
      const first = tensor.offset;
      const end = last + extent;
      views[name] = new WebGPUTensor(tensor.dtype, first, end - first, tensor.storage, tensor.owner);
      // a tensor in a written buffer shares that buffer's binding; any other has its own
      const window = joined.get(tensor.storage);
      if (window === undefined) {
        if (this.windowTooLarge(first, end)) return null;
      } else {
        window.first = Math.min(window.first, first);
        window.end = Math.max(window.end, end);
      }
    }
    for (const { first, end } of joined.values()) if (this.windowTooLarge(first, end)) return null;
    return views;
  }

  /** whether elements [first, end) of a one-buffer tensor need more than one binding, its start aligned down (pieces.ts windowElems) */
  private windowTooLarge(first: number, end: number): boolean {
    return end - Math.floor(first / this.bindingAlignElems) * this.bindingAlignElems > this.maxBindingElems;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** the encoder outside any compute pass, for copies and clears */
  copyEncoder(): GPUCommandEncoder {
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

  grid(workgroups: number): [number, number] {
    return grid(workgroups, this.maxWorkgroupsPerDim);
  }

  /** grid for the attention kernels: x = query row (or tile of rows), y = batch * head */
  rowsByHeads(op: string, rows: number, BNH: number): [number, number] {
    if (rows > this.maxWorkgroupsPerDim || BNH > this.maxWorkgroupsPerDim) {
      throw new RangeError(
        `${op}: ${rows} query rows or tiles and B*NH = ${BNH} must each be <= ${this.maxWorkgroupsPerDim} (workgroups per dimension)`,
      );
    }
    return [rows, BNH];
  }

  /** a view that starts `by` elements later and may run past the view's end (for strided reads) */
  shifted(t: WebGPUTensor, by: number): WebGPUTensor {
    return new WebGPUTensor(t.dtype, t.offset + by, Math.max(0, t.length - by), t.storage, t.owner);
  }
}
