/**
 * sampleTokens on WebGPU (kernel in wgsl/sample.ts): the host's uniforms go up as float32 in a
 * scratch tensor [B] (released once recorded, so decoding holds no memory of its own), and one
 * workgroup per row writes its token id. Rows past one storage binding run in pieces of rows.
 */
import type { TokenSampling } from '../contract.js';
import { perItem, type Recorder } from './recorder.js';
import type { WebGPUTensor } from './storage.js';
import { sampleTokensKernel } from './wgsl/sample.js';

/** ids [B] from logits [B,V]; `upload` writes host data into a tensor in command order (the backend's upload) */
export function recordSampleTokens(
  rec: Recorder,
  upload: (t: WebGPUTensor, data: Float32Array) => void,
  t: { ids: WebGPUTensor; logits: WebGPUTensor },
  { B, V, uniforms, sampling }: { B: number; V: number; uniforms: ArrayLike<number>; sampling: TokenSampling },
): void {
  const drawn = rec.scratch(B);
  try {
    upload(
      drawn,
      Float32Array.from({ length: B }, (_, b) => (sampling.greedy ? 0 : uniforms[b])),
    );
    // [B rows]
    rec.inPieces(
      'sampleTokens',
      [B],
      { ids: perItem(t.ids, 1, true), logits: perItem(t.logits, V), uniforms: perItem(drawn, 1) },
      (piece, views) =>
        rec.dispatch(sampleTokensKernel, {
          tensors: views,
          scalars: {
            B: piece.size[0],
            V,
            allowed: sampling.allowed,
            greedy: sampling.greedy ? 1 : 0,
            topK: sampling.topK,
            temperature: sampling.greedy ? 1 : sampling.temperature,
            topP: sampling.topP,
            minP: sampling.minP,
          },
          groups: rec.grid(piece.size[0]),
        }),
    );
  } finally {
    rec.release(drawn);
  }
}
