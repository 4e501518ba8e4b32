/**
 * Shapes and tolerances for checking the WebGPU backend op by op against the js reference, shared
 * by the Node test (test/backend/webgpu-ops.test.ts) and the Chromium one (test/browser/webgpu-ops.test.ts).
 */
import type { OpCase, OpShapes } from './conformance.js';

/**
 * Past every tile edge, odd everywhere: matmul 67x70x131 (2x2 and 2x3 tiles of 64, partial K
 * steps of 16); T = 70 > one 64-key chunk; C = 258 with NH = 2 gives HS = 129, three head lanes;
 * LayerNorm and softmax rows of 258 and 300 > 256 lanes.
 */
export const TILED_SHAPES: OpShapes = { B: 2, T: 70, C: 258, NH: 2, V: 300, M: 67, K: 70, N: 131 };

/**
 * float32 against float64: 1e-5 relative plus 1e-5 absolute (values are O(1); an absolute floor
 * covers results that cancel to near zero). The tiled shapes sum up to 131 products per output and
 * exp() through softmax rows; attention gradients chain three such sums, so they get 1e-4.
 */
export const TIGHT = { rtol: 1e-5, atol: 1e-5 };
export const LOOSE = { rtol: 1e-4, atol: 1e-5 };
/**
 * Gradients whose dout is itself a matmul output (|dout| ~ sqrt(K) ~ 8): 67 products of size ~8
 * cancel to O(0.1), so float32 rounding of the terms (~67 * 8 * 6e-8 = 3e-5) sets the floor.
 */
export const CANCELLING = { rtol: 1e-5, atol: 1e-4 };

/**
 * Bindings capped at 4 KiB (1024 floats) make these shapes exceed one binding in every op: wte
 * [V,C] 2,160 floats, qkv [B,T,3C] 3,600, logits [BT,V] 1,125, matmul operands 4,690 to 9,170.
 * One sequence of qkv (720 floats) and one logits row still fit, as they must.
 */
export const SPLIT_BINDING_BYTES = 4096;
export const SPLIT_SHAPES: OpShapes = { B: 5, T: 5, C: 48, NH: 2, V: 45, M: 67, K: 70, N: 131 };

/**
 * The tolerance of a case past the tiles (TILED_SHAPES, SPLIT_SHAPES): attention gradients chain
 * three sums (LOOSE); the fused GELU backward multiplies dout @ W^T, a sum of 70-131 products of
 * size ~1 that cancels, by gelu'(pre) (CANCELLING); the rest TIGHT.
 */
export function toleranceFor(c: OpCase): typeof TIGHT {
  if (c.op === 'attention' && c.kind === 'backward') return LOOSE;
  if (c.op === 'matmulFused' && c.kind === 'backward') return CANCELLING;
  return TIGHT;
}
