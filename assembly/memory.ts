// Layout facts the JS arena needs.

/** first byte after static data (the kernels' packing buffers); the JS arena allocates from here */
export function heapBase(): usize {
  return __heap_base;
}
