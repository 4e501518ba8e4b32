import type { Allocator } from '../backend/all-or-nothing.js';
import type { Backend } from '../backend/contract.js';
import { DISPOSE } from '../util/dispose.js';
import type { GPTConfig, KVCache } from './types.js';

/** a KV cache's sizes and tensors, before it is given its dispose */
export type KVCacheTensors = Omit<KVCache, 'dispose' | typeof Symbol.dispose>;

/** a KV cache of `batchSize` rows of `capacity` positions: per layer k and v, each [B, capacity, C] */
export function allocKVCache(b: Allocator, config: GPTConfig, batchSize: number, capacity = config.maxSeqLen): KVCacheTensors {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`createKVCache: batchSize must be a positive integer, got ${batchSize}`);
  const { maxSeqLen, dModel: C, nLayers: L } = config;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > maxSeqLen)
    throw new RangeError(`createKVCache: capacity must be an integer in [1, config.maxSeqLen = ${maxSeqLen}], got ${capacity}`);
  // cut between sequences if a backend must store a cache in several buffers
  const sequence = capacity * C;
  const layers = [];
  for (let l = 0; l < L; l++) {
    layers.push({ k: b.alloc(batchSize * sequence, 'f32', sequence), v: b.alloc(batchSize * sequence, 'f32', sequence) });
  }
  return { batchSize, capacity, length: 0, layers };
}

/** `tensors` as a KVCache whose dispose (and Symbol.dispose) calls `release` with it */
export function disposableKVCache(tensors: KVCacheTensors, release: (cache: KVCache) => void): KVCache {
  const cache: KVCache = {
    ...tensors,
    dispose: () => release(cache),
    [DISPOSE]: () => release(cache),
  };
  return cache;
}

/** frees the cache's tensors and empties it, so that a second dispose frees nothing and forwardCached refuses it */
export function freeKVCacheTensors(b: Backend, cache: KVCache): void {
  for (const layer of cache.layers) {
    b.free(layer.k);
    b.free(layer.v);
  }
  cache.layers.length = 0;
  cache.length = 0;
}

/** cache row i becomes old row sources[i], through a scratch copy of the used positions */
export function reorderKVCacheRows(b: Backend, config: GPTConfig, cache: KVCache, sources: readonly number[]): void {
  const B = cache.batchSize;
  if (sources.length !== B) throw new RangeError(`reorderKVCache: sources.length (${sources.length}) must equal cache.batchSize (${B})`);
  for (const s of sources)
    if (!Number.isInteger(s) || s < 0 || s >= B) throw new RangeError(`reorderKVCache: source row ${s} is outside [0, ${B})`);
  if (sources.every((s, i) => s === i) || cache.length === 0) return;
  const C = config.dModel;
  const rowLen = cache.capacity * C;
  const used = cache.length * C;
  const scratch = b.alloc(B * used);
  try {
    for (const layer of cache.layers) {
      for (const t of [layer.k, layer.v]) {
        for (let r = 0; r < B; r++) b.copy(b.view(scratch, r * used, used), b.view(t, sources[r] * rowLen, used));
        for (let r = 0; r < B; r++) b.copy(b.view(t, r * rowLen, used), b.view(scratch, r * used, used));
      }
    }
  } finally {
    // a copy that throws leaves the cache's rows mixed (the caller drops it) but not the scratch held
    b.free(scratch);
  }
}
