/**
 * Allocation that leaves nothing behind when it fails: a workspace, a KV cache or optimizer state
 * is many tensors, and a failure part-way (an ArenaLimitError, a device out of memory) must not
 * leak the ones already made nor leave a half-built structure in use.
 */
import type { Backend, Tensor } from './contract.js';

/** the allocating part of a backend, which is all a builder of tensors needs */
export type Allocator = Pick<Backend, 'alloc'>;

/** Run `build` with an allocator that records each tensor; if build throws, free them all and rethrow. */
export function allOrNothing<T>(backend: Backend, build: (allocator: Allocator) => T): T {
  const made: Tensor[] = [];
  const allocator: Allocator = {
    alloc: (...args: Parameters<Backend['alloc']>) => {
      const tensor = backend.alloc(...args);
      made.push(tensor);
      return tensor;
    },
  };
  try {
    return build(allocator);
  } catch (err) {
    for (const tensor of made) backend.free(tensor);
    throw err;
  }
}

/** Bytes `build` would allocate, found by running it against an allocator that only counts. */
export function bytesAllocatedBy(build: (allocator: Allocator) => unknown): number {
  let bytes = 0;
  const counting: Allocator = {
    alloc: (length: number) => {
      bytes += length * 4; // f32 and i32 alike
      return { length } as unknown as Tensor;
    },
  };
  build(counting);
  return bytes;
}
