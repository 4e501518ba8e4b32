/**
 * Cached inference's blocks, shared by GPT and QuantizedGPT: Tn new positions of each KV cache row,
 * embedded into the workspace's residual stream, run through every block over the cache. The final
 * LayerNorm and the head are the caller's: GPT folds the LayerNorm into its head's product
 * (layerNormMatmulForward), QuantizedGPT normalizes first (finalLayerNorm) for its quantized head.
 */
import type { Backend, Tensor } from '../backend/contract.js';
import { blockForward, type BlockBuffers, type BlockStep } from './block.js';
import { inferenceBlockBuffers, type InferenceWorkspace } from './workspace.js';
import type { GPTConfig, KVCache } from './types.js';

/**
 * Runs the blocks over ws.x (B*Tn rows, the embedded new positions) and advances the cache;
 * returns the final residual stream's rows that need logits, [rows, C], not yet normalized: the
 * last new position of each row (rows = B), or every new position (allRows, rows = B*Tn). For a
 * prompt (Tn > 1) whose last positions alone need logits, the last block runs attention over every
 * row, so that the cache holds them all, and the rest of it (projection, MLP) on those B rows only:
 * for config B's 960-token prompt that leaves out ~12% of the pass's multiply-adds.
 */
export function cachedForward(
  b: Backend,
  config: GPTConfig,
  cache: KVCache,
  ws: InferenceWorkspace,
  Tn: number,
  weight: (name: string) => Tensor,
  options: { allRows: boolean; linear?: BlockStep['linear'] },
): { hidden: Tensor; rows: number } {
  const { dModel: C, nHeads: NH, nLayers: L, dFF: F } = config;
  const B = cache.batchSize;
  const N = B * Tn;
  const buffers = inferenceBlockBuffers(b, config, ws, N);
  const narrowed = !options.allRows && Tn > 1;
  // each row's last position moved up to row r of the attention output and of the residual stream
  // (in increasing r, a row is written only after it was read: r*Tn + Tn-1 > r' for every r' < r)
  const lastRows = (buf: BlockBuffers) => {
    for (const t of [buf.atty, buf.input]) for (let r = 0; r < B; r++) b.copy(b.view(t, r * C, C), b.view(t, (r * Tn + Tn - 1) * C, C));
    return { buf: inferenceBlockBuffers(b, config, ws, B), N: B };
  };
  for (let l = 0; l < L; l++) {
    const { k, v } = cache.layers[l];
    blockForward(
      b,
      weight,
      l,
      buffers,
      { N, C, F },
      {
        attend: (qkv, atty) => b.attentionCached(atty, qkv, k, v, B, Tn, C, NH, cache.length, cache.capacity),
        linear: options.linear,
        inference: true,
        narrow: narrowed && l === L - 1 ? lastRows : undefined,
      },
    );
  }
  cache.length += Tn;
  return narrowed ? { hidden: b.view(ws.x, 0, B * C), rows: B } : { hidden: buffers.output, rows: N };
}

/** the final LayerNorm (ln_f) of cachedForward's rows: normalized states [rows, C] in ws.lastLn */
export function finalLayerNorm(
  b: Backend,
  config: GPTConfig,
  ws: InferenceWorkspace,
  weight: (name: string) => Tensor,
  hidden: Tensor,
  rows: number,
): Tensor {
  const C = config.dModel;
  const states = b.view(ws.lastLn, 0, rows * C);
  b.layerNormForward(
    states,
    b.view(ws.lastMean, 0, rows),
    b.view(ws.lastRstd, 0, rows),
    hidden,
    weight('ln_f.weight'),
    weight('ln_f.bias'),
    rows,
    C,
  );
  return states;
}
