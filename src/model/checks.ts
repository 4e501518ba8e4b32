/**
 * The argument checks of a model's forward passes, shared by GPT and QuantizedGPT so that both
 * refuse the same bad call with the same message.
 */
import { IGNORE_INDEX, type Backend } from '../backend/contract.js';
import { describe } from '../util/describe.js';
import type { LoRAAdapter } from './lora.js';
import type { GPTConfig, KVCache } from './types.js';

/** every id in [0, V), or also IGNORE_INDEX where `allowIgnore` (targets) */
export function checkTokenIds(field: string, ids: Int32Array, vocabSize: number, allowIgnore: boolean): void {
  const lo = allowIgnore ? IGNORE_INDEX : 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < lo || id >= vocabSize) {
      const allowed = allowIgnore ? `[0, ${vocabSize}) or ${IGNORE_INDEX} (ignored)` : `[0, ${vocabSize})`;
      throw new RangeError(`${field}[${i}] = ${id} is out of range: token ids must be in ${allowed}`);
    }
  }
}

/** forward's inputs [batchSize, T] and targets (same shape, or null) checked; returns T */
export function checkForwardArgs(config: GPTConfig, inputs: Int32Array, targets: Int32Array | null, batchSize: number): number {
  if (!(inputs instanceof Int32Array)) throw new TypeError('forward: inputs must be an Int32Array of token ids');
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`forward: batchSize must be a positive integer, got ${batchSize}`);
  if (inputs.length === 0 || inputs.length % batchSize !== 0) {
    throw new RangeError(
      `forward: inputs.length (${inputs.length}) must be a positive multiple of batchSize (${batchSize}): inputs are [batchSize, T]`,
    );
  }
  const T = inputs.length / batchSize;
  if (T > config.maxSeqLen) throw new RangeError(`forward: sequence length T = ${T} exceeds config.maxSeqLen = ${config.maxSeqLen}`);
  if (targets !== null) {
    if (!(targets instanceof Int32Array)) throw new TypeError('forward: targets must be an Int32Array or null');
    if (targets.length !== inputs.length)
      throw new RangeError(`forward: targets.length (${targets.length}) must equal inputs.length (${inputs.length})`);
    checkTokenIds('targets', targets, config.vocabSize, true);
  }
  checkTokenIds('inputs', inputs, config.vocabSize, false);
  return T;
}

/** forwardCached's Tn new ids of each cache row checked against the cache and the model */
export function checkCachedArgs(config: GPTConfig, cache: KVCache, ids: Int32Array, Tn: number): void {
  checkCacheArgument('forwardCached', cache);
  const B = cache.batchSize;
  if (cache.layers.length !== config.nLayers) throw new Error('forwardCached: this cache was freed or belongs to another model');
  if (!Number.isInteger(Tn) || Tn < 1) throw new RangeError(`forwardCached: Tn must be a positive integer, got ${Tn}`);
  if (!(ids instanceof Int32Array) || ids.length !== B * Tn)
    throw new RangeError(`forwardCached: ids must be an Int32Array of length batchSize * Tn = ${B * Tn}, got ${ids?.length}`);
  if (cache.length + Tn > cache.capacity) {
    throw new RangeError(
      cache.capacity === config.maxSeqLen
        ? `forwardCached: cache.length (${cache.length}) + Tn (${Tn}) exceeds config.maxSeqLen (${config.maxSeqLen}); slide the context and rebuild the cache`
        : `forwardCached: cache.length (${cache.length}) + Tn (${Tn}) exceeds cache.capacity (${cache.capacity}, createKVCache's second argument); make the cache with room for every position it will hold (at most config.maxSeqLen = ${config.maxSeqLen})`,
    );
  }
  checkTokenIds('ids', ids, config.vocabSize, false);
}

/** `cache`, given to `caller`, must be a KVCache from createKVCache */
export function checkCacheArgument(caller: string, cache: KVCache): void {
  if (
    cache === null ||
    typeof cache !== 'object' ||
    !Array.isArray(cache.layers) ||
    !Number.isInteger(cache.batchSize) ||
    !Number.isInteger(cache.capacity)
  ) {
    throw new TypeError(`${caller}: cache must be a KVCache from createKVCache; got ${describe(cache)}`);
  }
}

/** `adapter` may run on a model of `config` on `backend`: alive, on that backend, made for that shape */
export function checkAdapterFits(caller: string, adapter: LoRAAdapter, backend: Backend, config: GPTConfig): void {
  if (adapter.isDisposed) throw new Error(`${caller}: this adapter was disposed (or merged)`);
  if (adapter.backend !== backend) throw new Error(`${caller}: the adapter was made on another backend (or for another model)`);
  for (const field of ['dModel', 'dFF', 'nLayers'] as const) {
    if (adapter.base[field] !== config[field]) {
      throw new RangeError(`${caller}: the adapter was made for ${field} = ${adapter.base[field]}, but the model has ${config[field]}`);
    }
  }
}
