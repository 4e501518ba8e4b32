/**
 * Storage buffers: a pool keyed by (rounded) byte size so that a training loop that allocates the
 * same activations every step reuses buffers instead of creating them, and readback staging
 * buffers pooled the same way.
 */
/// <reference types="@webgpu/types" />

export const BUFFER_USAGE = {
  MAP_READ: 0x1,
  MAP_WRITE: 0x2,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;

/** a GPUBuffer with a stable id for bind-group caching */
export interface PooledBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
  readonly bytes: number;
  /** the device refused its memory (out-of-memory scope): never handed out again */
  unusable?: boolean;
}

let nextBufferId = 1;

export class BufferPool {
  private readonly idle = new Map<number, PooledBuffer[]>();
  private idleBytes = 0;
  private readonly all = new Set<PooledBuffer>();
  /** released past the retain limit; destroyed by `destroyReleased` once recorded work is submitted */
  private overflow: PooledBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
    /** the largest buffer this pool may create */
    private readonly maxBytes: number,
    /** idle bytes kept for reuse; buffers released beyond this are destroyed */
    private readonly retainBytes: number,
  ) {}

  /** a buffer of at least `bytes`; `reused` means it may hold old data */
  acquire(bytes: number): { pooled: PooledBuffer; reused: boolean } {
    const size = this.roundedSize(bytes);
    const idle = this.idle.get(size);
    const pooled = idle?.pop();
    if (pooled) {
      this.idleBytes -= size;
      return { pooled, reused: true };
    }
    const created: PooledBuffer = { id: nextBufferId++, buffer: this.device.createBuffer({ size, usage: this.usage }), bytes: size };
    this.all.add(created);
    return { pooled: created, reused: false };
  }

  /** the size `acquire(bytes)` hands out */
  sizeFor(bytes: number): number {
    return this.roundedSize(bytes);
  }

  /** whether `acquire` of this rounded size reuses an idle buffer instead of creating one */
  hasIdle(size: number): boolean {
    return (this.idle.get(size)?.length ?? 0) > 0;
  }

  /** idle bytes kept for reuse */
  get idleTotal(): number {
    return this.idleBytes;
  }

  /** keep a released buffer for reuse while idle buffers stay within the retain limit and `maxIdleBytes`; else destroy it */
  release(pooled: PooledBuffer, maxIdleBytes = Infinity): void {
    if (pooled.unusable || this.idleBytes + pooled.bytes > Math.min(this.retainBytes, maxIdleBytes)) {
      this.discard(pooled);
      return;
    }
    const list = this.idle.get(pooled.bytes);
    if (list) list.push(pooled);
    else this.idle.set(pooled.bytes, [pooled]);
    this.idleBytes += pooled.bytes;
  }

  /** destroy idle buffers (largest first) until at most `maxIdleBytes` stay idle */
  trimIdle(maxIdleBytes: number): void {
    const sizes = [...this.idle.keys()].sort((a, b) => b - a);
    for (const size of sizes) {
      const list = this.idle.get(size)!;
      while (this.idleBytes > maxIdleBytes && list.length > 0) {
        this.idleBytes -= size;
        this.discard(list.pop()!);
      }
      if (list.length === 0) this.idle.delete(size);
    }
  }

  /** destroyed after the next submission: commands recorded but not yet submitted may still use it */
  private discard(pooled: PooledBuffer): void {
    this.all.delete(pooled);
    this.overflow.push(pooled);
  }

  /** call after a submission: buffers released past the retain limit are no longer needed */
  destroyReleased(): void {
    for (const pooled of this.overflow) pooled.buffer.destroy();
    this.overflow = [];
  }

  destroyAll(): void {
    this.destroyReleased();
    for (const pooled of this.all) pooled.buffer.destroy();
    this.all.clear();
    this.idle.clear();
    this.idleBytes = 0;
  }

  private roundedSize(bytes: number): number {
    // 256-byte granularity lets nearby sizes share buffers; never past the binding limit
    return Math.min(Math.max(256, Math.ceil(bytes / 256) * 256), Math.max(this.maxBytes - (this.maxBytes % 4), 4));
  }
}
