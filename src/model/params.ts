import { Rng, RngStream } from '../util/rng.js';
import type { Backend, Tensor } from '../backend/contract.js';
import type { GPTConfig, ParamEntry, ParameterGroup } from './types.js';

/**
 * Each tensor starts on a 16-element (64-byte) boundary of the flat buffer so SIMD kernels see
 * aligned rows; the gaps stay zero in parameters and gradients alike.
 */
const ALIGN = 16;

export interface ParamLayout {
  entries: ParamEntry[];
  /** elements in the flat buffer, gaps included */
  totalLength: number;
  /** real parameters, gaps excluded */
  numParameters: number;
}

/** GPT-2 names, shapes ([in, out] for weights) and order. */
export function buildParamLayout(config: GPTConfig): ParamLayout {
  const { vocabSize: V, maxSeqLen: T, dModel: C, dFF: F, nLayers: L } = config;
  const specs: [string, number[], boolean][] = [
    ['wte.weight', [V, C], true],
    ['wpe.weight', [T, C], true],
  ];
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    specs.push(
      [`${p}ln_1.weight`, [C], false],
      [`${p}ln_1.bias`, [C], false],
      [`${p}attn.c_attn.weight`, [C, 3 * C], true],
      [`${p}attn.c_attn.bias`, [3 * C], false],
      [`${p}attn.c_proj.weight`, [C, C], true],
      [`${p}attn.c_proj.bias`, [C], false],
      [`${p}ln_2.weight`, [C], false],
      [`${p}ln_2.bias`, [C], false],
      [`${p}mlp.c_fc.weight`, [C, F], true],
      [`${p}mlp.c_fc.bias`, [F], false],
      [`${p}mlp.c_proj.weight`, [F, C], true],
      [`${p}mlp.c_proj.bias`, [C], false],
    );
  }
  specs.push(['ln_f.weight', [C], false], ['ln_f.bias', [C], false]);

  const entries: ParamEntry[] = [];
  let offset = 0;
  let numParameters = 0;
  for (const [name, shape, decay] of specs) {
    const length = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape, offset, length, decay });
    offset += Math.ceil(length / ALIGN) * ALIGN;
    numParameters += length;
  }
  return { entries, totalLength: offset, numParameters };
}

/**
 * GPT-2 initialisation into a fresh flat buffer: weights N(0, 0.02), the residual output
 * projections scaled by 1/sqrt(2 nLayers) so the residual stream's variance does not grow with
 * depth, biases 0, LayerNorm gains 1.
 */
export function initParameters(config: GPTConfig, layout: ParamLayout): Float32Array {
  const flat = new Float32Array(layout.totalLength);
  const rng = new Rng(config.seed, RngStream.init);
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayers);
  for (const e of layout.entries) {
    const view = flat.subarray(e.offset, e.offset + e.length);
    if (e.name.endsWith('.bias')) continue;
    if (e.name.includes('ln_')) {
      view.fill(1);
      continue;
    }
    const std = e.name.endsWith('c_proj.weight') ? residualStd : 0.02;
    for (let i = 0; i < view.length; i++) view[i] = rng.normal() * std;
  }
  return flat;
}

/** where each of `entries` starts in a buffer that holds them alone, 16-aligned, and its length */
export function packedOffsets(entries: readonly ParamEntry[]): { offsets: number[]; length: number } {
  const offsets: number[] = [];
  let length = 0;
  for (const entry of entries) {
    offsets.push(length);
    length += Math.ceil(entry.length / ALIGN) * ALIGN;
  }
  return { offsets, length };
}

/**
 * A gradient buffer for `entries` of the model whose parameters are `params`, packed: what a
 * frozen fine-tune's backward(into) writes, so frozen parameters hold no gradient memory.
 */
export function allocGradientGroup(backend: Backend, params: Tensor, entries: readonly ParamEntry[]): ParameterGroup {
  const { offsets, length } = packedOffsets(entries);
  // a backend that must store it in several buffers cuts only between entries
  const grads = backend.alloc(Math.max(length, 1), 'f32', offsets);
  return { params, grads, entries, gradOffsets: offsets };
}
