/**
 * One allocator over the kernels' linear memory. Blocks are 16-byte aligned (f32x4 loads); freed
 * blocks go to an address-ordered free list and merge with their neighbours; a request no free block
 * can hold takes fresh space at the top, growing the memory as needed. wasm32 addresses at most
 * 4 GiB, so a request that would need more is refused before anything is allocated or grown.
 */
import { MemoryLimitError } from '../errors.js';

export const WASM_PAGE_BYTES = 65536;
/** wasm32's address space: 65536 pages of 64 KiB */
export const WASM32_MAX_BYTES = 65536 * WASM_PAGE_BYTES;
const ALIGN = 16;

interface FreeBlock {
  ptr: number;
  bytes: number;
}

/** past wasm32's 4 GiB, or a memory the runtime would not grow: a MemoryLimitError of the arena's own */
export class ArenaLimitError extends MemoryLimitError {
  override name = 'ArenaLimitError';
}

export class Arena {
  /** live blocks: pointer -> size in bytes */
  private readonly live = new Map<number, number>();
  /** free blocks below `top`, sorted by address, never adjacent to one another nor to `top` */
  private readonly freeList: FreeBlock[] = [];
  /** first byte never handed out */
  private top: number;
  private inUse = 0;

  /**
   * @param memory the module's memory
   * @param base first byte the arena may use (the module's heap base; everything below is static data)
   */
  constructor(
    private readonly memory: WebAssembly.Memory,
    readonly base: number,
  ) {
    this.top = alignUp(base);
  }

  /** bytes in live blocks (sizes rounded up to the 16-byte alignment) */
  bytesInUse(): number {
    return this.inUse;
  }

  /** the largest single block that could ever be allocated */
  get maxBlockBytes(): number {
    return WASM32_MAX_BYTES - alignUp(this.base);
  }

  /** Allocates `bytes` (> 0) and returns the block's byte address; the caller zeroes it if needed. */
  allocate(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 1) {
      throw new RangeError(`wasm arena: bytes must be a positive integer, got ${bytes}`);
    }
    const size = alignUp(bytes);
    const fromFree = this.takeFree(size);
    if (fromFree !== -1) return this.markLive(fromFree, size);
    // fresh space at the top (no free block touches the top: release folds those into it)
    const start = this.top;
    const end = start + size;
    if (end > WASM32_MAX_BYTES) {
      throw new ArenaLimitError(
        `wasm arena: cannot allocate ${bytes} bytes: linear memory would need ${end} bytes, over wasm32's limit of ${WASM32_MAX_BYTES} bytes (4 GiB)` +
          ` (${this.inUse} bytes are in use)`,
      );
    }
    this.ensureCapacity(end);
    this.top = end;
    return this.markLive(start, size);
  }

  /** Returns a block to the free list. */
  release(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm arena: no live block at address ${ptr} (already freed?)`);
    this.live.delete(ptr);
    this.inUse -= size;
    if (ptr + size === this.top) {
      // the top block: give its space back to the top, with a free block just below it
      this.top = ptr;
      const last = this.freeList[this.freeList.length - 1];
      if (last !== undefined && last.ptr + last.bytes === this.top) {
        this.top = last.ptr;
        this.freeList.pop();
      }
      return;
    }
    this.insertFree(ptr, size);
  }

  /** size in bytes of the live block at `ptr` */
  sizeOf(ptr: number): number {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm arena: no live block at address ${ptr}`);
    return size;
  }

  /** frees every block */
  reset(): void {
    this.live.clear();
    this.freeList.length = 0;
    this.top = alignUp(this.base);
    this.inUse = 0;
  }

  private markLive(ptr: number, size: number): number {
    this.live.set(ptr, size);
    this.inUse += size;
    return ptr;
  }

  /** first fit; splits the block and keeps the remainder free. -1 when nothing fits */
  private takeFree(size: number): number {
    for (let i = 0; i < this.freeList.length; i++) {
      const block = this.freeList[i];
      if (block.bytes < size) continue;
      const ptr = block.ptr;
      if (block.bytes === size) this.freeList.splice(i, 1);
      else {
        block.ptr += size;
        block.bytes -= size;
      }
      return ptr;
    }
    return -1;
  }

  private insertFree(ptr: number, size: number): void {
    const list = this.freeList;
    // binary search for the first block after ptr
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].ptr < ptr) lo = mid + 1;
      else hi = mid;
    }
    const prev = list[lo - 1];
    const next = list[lo];
    const joinsPrev = prev !== undefined && prev.ptr + prev.bytes === ptr;
    const joinsNext = next !== undefined && ptr + size === next.ptr;
    if (joinsPrev && joinsNext) {
      prev.bytes += size + next.bytes;
      list.splice(lo, 1);
    } else if (joinsPrev) {
      prev.bytes += size;
    } else if (joinsNext) {
      next.ptr = ptr;
      next.bytes += size;
    } else {
      list.splice(lo, 0, { ptr, bytes: size });
    }
  }

  /** grows the memory so that bytes [0, end) exist */
  private ensureCapacity(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / WASM_PAGE_BYTES);
    try {
      this.memory.grow(pages);
    } catch (err) {
      throw new ArenaLimitError(
        `wasm arena: the runtime refused to grow linear memory from ${have} to ${have + pages * WASM_PAGE_BYTES} bytes ` +
          `(${this.inUse} bytes in use; wasm32's limit is ${WASM32_MAX_BYTES} bytes): ${(err as Error).message}`,
      );
    }
  }
}

/** bytes a block of `n` bytes takes (the arena's alignment) */
export function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
