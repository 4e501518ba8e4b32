/**
 * The contract's fused products on WebGPU (see contract.ts): one product each, with GELU, the
 * residual add or GELU's backward as the epilogue of its kernel (wgsl/epilogue.ts), and LayerNorm as
 * the prologue of the few-rows product (decoding). Each returns false, having recorded nothing, when
 * it cannot run fused (operands past one storage binding, or LayerNorm ahead of more than a few
 * rows); the backend then composes the unfused ops, as CheckedBackend defines them.
 */
import type { Activation } from '../contract.js';
import { product, type ProductEpilogue } from './products.js';
import type { Recorder } from './recorder.js';
import type { WebGPUTensor } from './storage.js';
import { GEMV_MAX_ROWS, type MatmulBlock } from './wgsl/matmul.js';

type Block = 'auto' | MatmulBlock;

/** out[M,N] = inp[M,K] @ weight[K,N] (+ bias) through `epilogue` */
function forwardProduct(
  rec: Recorder,
  block: Block,
  out: WebGPUTensor,
  inp: WebGPUTensor,
  weight: WebGPUTensor,
  bias: WebGPUTensor | null,
  M: number,
  K: number,
  N: number,
  epilogue: ProductEpilogue,
): boolean {
  return product(rec, block, out, inp, weight, bias, false, { M, N, K, sAm: K, sAk: 1, sBk: N, sBn: 1 }, epilogue);
}

/** pre = inp @ weight + bias (kept when not null); out = gelu(pre) */
export function recordMatmulGelu(
  rec: Recorder,
  block: Block,
  t: { out: WebGPUTensor; pre: WebGPUTensor | null; inp: WebGPUTensor; weight: WebGPUTensor; bias: WebGPUTensor | null },
  M: number,
  K: number,
  N: number,
): boolean {
  return forwardProduct(rec, block, t.out, t.inp, t.weight, t.bias, M, K, N, { kind: 'gelu', aux: t.pre });
}

/** out = residual + inp @ weight + bias (out may be residual) */
export function recordMatmulResidual(
  rec: Recorder,
  block: Block,
  t: { out: WebGPUTensor; inp: WebGPUTensor; weight: WebGPUTensor; bias: WebGPUTensor | null; residual: WebGPUTensor },
  M: number,
  K: number,
  N: number,
): boolean {
  return forwardProduct(rec, block, t.out, t.inp, t.weight, t.bias, M, K, N, { kind: 'residual', aux: t.residual });
}

/**
 * dpre[M,K] += gelu'(pre) * (dout[M,N] @ weight^T): the input gradient of matmulGeluBackward, GELU's
 * backward as its epilogue (B(n,k) = weight[k*N + n]). The weight and bias gradients are the plain
 * matmulBackward's.
 */
export function recordMatmulGeluInputGrad(
  rec: Recorder,
  block: Block,
  t: { dpre: WebGPUTensor; dout: WebGPUTensor; weight: WebGPUTensor; pre: WebGPUTensor },
  M: number,
  K: number,
  N: number,
): boolean {
  return product(
    rec,
    block,
    t.dpre,
    t.dout,
    t.weight,
    null,
    true,
    { M, N: K, K: N, sAm: N, sAk: 1, sBk: 1, sBn: N },
    {
      kind: 'geluBackward',
      aux: t.pre,
    },
  );
}

/** out = act(layerNorm(inp) @ weight + bias) for M <= GEMV_MAX_ROWS rows (decoding) */
export function recordLayerNormMatmul(
  rec: Recorder,
  block: Block,
  t: {
    out: WebGPUTensor;
    inp: WebGPUTensor;
    lnWeight: WebGPUTensor;
    lnBias: WebGPUTensor;
    weight: WebGPUTensor;
    bias: WebGPUTensor | null;
  },
  M: number,
  K: number,
  N: number,
  activation: Activation,
): boolean {
  if (M > GEMV_MAX_ROWS) return false;
  return forwardProduct(rec, block, t.out, t.inp, t.weight, t.bias, M, K, N, {
    kind: activation === 'gelu' ? 'gelu' : 'store',
    aux: null,
    layerNorm: { weight: t.lnWeight, bias: t.lnBias },
  });
}
