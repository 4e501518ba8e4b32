/**
 * Causal self-attention on WebGPU: how the attention ops are recorded into dispatches. Heads up to
 * ATTENTION_TILED_MAX_HEAD use the tiled kernels (wgsl/attention-tiled.ts), larger ones the
 * row-by-row kernels (wgsl/attention.ts); decoding over a KV cache cuts the keys across
 * workgroups and merges, and the attention kernel appends the new keys and values to the cache
 * itself. The tensors come checked and trimmed to what the op reads.
 */
import type { Recorder } from './recorder.js';
import { perItem } from './recorder.js';
import type { WebGPUTensor } from './storage.js';
import {
  attentionBackwardKeyValueKernel,
  attentionBackwardQueryKernel,
  attentionCombineKernel,
  attentionForwardKernel,
  headLanes,
} from './wgsl/attention.js';
import {
  ATTENTION_TILE,
  ATTENTION_TILED_MAX_HEAD,
  attentionBackwardKeyValueTiledKernel,
  attentionBackwardQueryTiledKernel,
  attentionForwardTiledKernel,
} from './wgsl/attention-tiled.js';

/** the row-by-row attention kernel's scalars when it walks every key of a row itself */
const ALL_KEYS_IN_ONE_SPLIT = { splits: 1, keysPerSplit: 0xffffffff } as const;
/** workgroups cached attention aims for when it cuts the keys (decoding), and the fewest keys per cut */
const DECODE_TARGET_WORKGROUPS = 256;
const DECODE_MIN_KEYS_PER_SPLIT = 32;

/** out [B,T,C], lse [B,NH,T] from qkv [B,T,3C] (see contract.ts attentionForward) */
export function recordAttentionForward(
  rec: Recorder,
  t: { out: WebGPUTensor; lse: WebGPUTensor; qkv: WebGPUTensor },
  { B, T, C, NH }: { B: number; T: number; C: number; NH: number },
): void {
  const op = 'attentionForward';
  const HS = C / NH;
  // [B sequences]
  const access = {
    out: perItem(t.out, T * C, true),
    lse: perItem(t.lse, NH * T, true),
    qkv: perItem(t.qkv, T * 3 * C),
  };
  rec.inPieces(op, [B], access, (piece, { out: o, lse: logSumExps, qkv: x }) => {
    const pieceB = piece.size[0];
    if (HS <= ATTENTION_TILED_MAX_HEAD) {
      rec.dispatch(attentionForwardTiledKernel(HS), {
        tensors: { out: o, lse: logSumExps, qkv: x },
        scalars: { T, NH, HS, scale: 1 / Math.sqrt(HS) },
        groups: rec.rowsByHeads(op, Math.ceil(T / ATTENTION_TILE), pieceB * NH),
        variant: `hs${HS}`,
      });
      return;
    }
    const lanes = headLanes(HS);
    rec.dispatch(attentionForwardKernel(lanes), {
      // posStart 0: every key is read from qkv, and `out` fills the unused cache bindings
      tensors: { out: o, lse: logSumExps, q: x, k: o, v: o },
      scalars: {
        T,
        NH,
        HS,
        scale: 1 / Math.sqrt(HS),
        qBatch: T * 3 * C,
        qRow: 3 * C,
        kBatch: 0,
        kRow: 0,
        posStart: 0,
        append: 0,
        hasLse: 1,
        BNH: pieceB * NH,
        ...ALL_KEYS_IN_ONE_SPLIT,
      },
      groups: rec.rowsByHeads(op, T, pieceB * NH),
      variant: `lanes${lanes}`,
    });
  });
}

/** dqkv [B,T,3C] += the gradient through attention, recomputed from qkv and lse */
export function recordAttentionBackward(
  rec: Recorder,
  t: { dqkv: WebGPUTensor; dout: WebGPUTensor; qkv: WebGPUTensor; out: WebGPUTensor; lse: WebGPUTensor },
  { B, T, C, NH }: { B: number; T: number; C: number; NH: number },
): void {
  const op = 'attentionBackward';
  const HS = C / NH;
  // [B sequences]
  const access = {
    dqkv: perItem(t.dqkv, T * 3 * C, true),
    dout: perItem(t.dout, T * C),
    qkv: perItem(t.qkv, T * 3 * C),
    out: perItem(t.out, T * C),
    lse: perItem(t.lse, NH * T),
  };
  const scalars = { T, NH, HS, scale: 1 / Math.sqrt(HS) };
  rec.inPieces(op, [B], access, (piece, tensors) => {
    const pieceB = piece.size[0];
    if (HS <= ATTENTION_TILED_MAX_HEAD) {
      const groups = rec.rowsByHeads(op, Math.ceil(T / ATTENTION_TILE), pieceB * NH);
      // dout . out per row [B,NH,T], from the dq kernel to the dk/dv kernel
      const rowDots = rec.scratch(pieceB * NH * T);
      rec.dispatch(attentionBackwardQueryTiledKernel(HS), { tensors: { ...tensors, rowDots }, scalars, groups, variant: `hs${HS}` });
      rec.dispatch(attentionBackwardKeyValueTiledKernel(HS), {
        tensors: { ...tensors, rowDots },
        scalars,
        groups,
        variant: `hs${HS}`,
      });
      // freed at once: whatever reuses the buffer writes it in command order, after these reads
      rec.release(rowDots);
      return;
    }
    const lanes = headLanes(HS);
    const groups = rec.rowsByHeads(op, T, pieceB * NH);
    rec.dispatch(attentionBackwardQueryKernel(lanes), { tensors, scalars, groups, variant: `lanes${lanes}` });
    rec.dispatch(attentionBackwardKeyValueKernel(lanes), { tensors, scalars, groups, variant: `lanes${lanes}` });
  });
}

/**
 * out [B,Tn,C] attends over the cache's first startPos positions and the Tn new ones of qkv, whose
 * k, v the same kernel appends to the caches at startPos (no dispatch of its own)
 */
export function recordAttentionCached(
  rec: Recorder,
  t: { out: WebGPUTensor; qkv: WebGPUTensor; kCache: WebGPUTensor; vCache: WebGPUTensor },
  { B, Tn, C, NH, startPos, cacheLen }: { B: number; Tn: number; C: number; NH: number; startPos: number; cacheLen: number },
): void {
  const op = 'attentionCached';
  const HS = C / NH;
  // [B sequences]
  const access = {
    out: perItem(t.out, Tn * C, true),
    qkv: perItem(t.qkv, Tn * 3 * C),
    kCache: perItem(t.kCache, cacheLen * C, true),
    vCache: perItem(t.vCache, cacheLen * C, true),
  };
  rec.inPieces(op, [B], access, (piece, { out: o, qkv: x, kCache: keys, vCache: values }) => {
    const pieceB = piece.size[0];
    const lanes = headLanes(HS);
    const BNH = pieceB * NH;
    const geometry = {
      T: Tn,
      NH,
      HS,
      scale: 1 / Math.sqrt(HS),
      qBatch: Tn * 3 * C,
      qRow: 3 * C,
      kBatch: cacheLen * C,
      kRow: C,
      posStart: startPos,
      append: 1,
      hasLse: 0,
      BNH,
    };
    // few query rows (decoding): cut the keys across workgroups, then merge (wgsl/attention.ts)
    const keyCount = startPos + Tn;
    const splits = Math.min(Math.ceil(DECODE_TARGET_WORKGROUPS / (Tn * BNH)), Math.ceil(keyCount / DECODE_MIN_KEYS_PER_SPLIT));
    if (splits > 1) {
      const keysPerSplit = Math.ceil(keyCount / splits);
      const partials = rec.scratch(Tn * BNH * splits * (HS + 2));
      rec.dispatch(attentionForwardKernel(lanes, true), {
        tensors: { out: partials, lse: partials, q: x, k: keys, v: values },
        scalars: { ...geometry, splits, keysPerSplit },
        groups: rec.rowsByHeads(op, Tn * splits, BNH),
        variant: `lanes${lanes}`,
      });
      rec.dispatch(attentionCombineKernel(lanes), {
        tensors: { out: o, partials },
        scalars: { T: Tn, NH, HS, BNH, splits },
        groups: rec.rowsByHeads(op, Tn, BNH),
        variant: `lanes${lanes}`,
      });
      rec.release(partials);
      return;
    }
    rec.dispatch(attentionForwardKernel(lanes), {
      // no lse on this path: `out` fills the binding and hasLse = 0 leaves it alone
      tensors: { out: o, lse: o, q: x, k: keys, v: values },
      scalars: { ...geometry, ...ALL_KEYS_IN_ONE_SPLIT },
      groups: rec.rowsByHeads(op, Tn, BNH),
      variant: `lanes${lanes}`,
    });
  });
}
