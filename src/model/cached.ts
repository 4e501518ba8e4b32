/**
 * Cached inference's blocks, shared by GPT and QuantizedGPT: Tn new positions of each KV cache row,
 * embedded into the workspace's residual stream, run through every block over the cache, then the
 * final LayerNorm of the positions that need logits. The head is the caller's.
 */
import type { Backend, Tensor } from '../backend/contract.js';
import { blockForward, type BlockStep } from './block.js';
import { inferenceBlockBuffers, type InferenceWorkspace } from './workspace.js';
import type { GPTConfig, KVCache } from './types.js';

/**
 * Runs the blocks over ws.x (B*Tn rows, the embedded new positions) and advances the cache;
 * returns normalized states [rows, C]: the last new position of each row (rows = B), or every new
 * position (allRows, rows = B*Tn).
 */
export function cachedForward(
  b: Backend,
  config: GPTConfig,
  cache: KVCache,
  ws: InferenceWorkspace,
  Tn: number,
  weight: (name: string) => Tensor,
  options: { allRows: boolean; linear?: BlockStep['linear'] },
): { states: Tensor; rows: number } {
  const { maxSeqLen, dModel: C, nHeads: NH, nLayers: L, dFF: F } = config;
  const B = cache.batchSize;
  const N = B * Tn;
  const buffers = inferenceBlockBuffers(b, config, ws, N);
  for (let l = 0; l < L; l++) {
    const { k, v } = cache.layers[l];
    blockForward(
      b,
      weight,
      l,
      buffers,
      { N, C, F },
      {
        attend: (qkv, atty) => b.attentionCached(atty, qkv, k, v, B, Tn, C, NH, cache.length, maxSeqLen),
        linear: options.linear,
        inference: true,
      },
    );
  }
  cache.length += Tn;

  const x = buffers.output;
  const count = options.allRows ? N : B;
  let source = x;
  if (!options.allRows) {
    source = b.view(ws.last, 0, B * C);
    for (let r = 0; r < B; r++) b.copy(b.view(source, r * C, C), b.view(x, (r * Tn + Tn - 1) * C, C));
  }
  const states = b.view(ws.lastLn, 0, count * C);
  b.layerNormForward(
    states,
    b.view(ws.lastMean, 0, count),
    b.view(ws.lastRstd, 0, count),
    source,
    weight('ln_f.weight'),
    weight('ln_f.bias'),
    count,
    C,
  );
  return { states, rows: count };
}
