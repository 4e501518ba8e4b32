// The kernels of tinygpt's wasm backend. Every pointer argument is a byte offset into this module's
// linear memory; the JS side (src/backend/wasm) owns allocation.
export { heapBase } from './memory';
export {
  matmulForward,
  matmulForwardCols, matmulRowsCols, matmulBackwardInputCols, matmulBackwardWeightCols, matmulScratchBytes, setScratch,
} from './matmul';
export { layerNormForwardRows, layerNormBackwardInputRows, layerNormBackwardParamsCols } from './layernorm';
export {
  attentionForwardPairs, attentionBackwardPairs, attentionCachedPairs, kvCacheAppend,
  attentionScratchFloats,
} from './attention';
export { geluForward, geluBackward } from './gelu';
export { crossEntropyForwardRows, crossEntropyBackwardRows } from './softmax';
export { encoderForwardRows, encoderBackwardCols } from './encoder';
export { adamwUpdate, squaredNorm, scale } from './adamw';
export { residualForward, accumulate, copyBytes, zeroBytes, dropoutForward, dropoutBackward } from './elementwise';
export { transpose } from './transpose';
export { quantizeActivations, matmulQ8Cols, matmulQ4Cols, encoderQuantForward } from './quant';
export { matmulF16Cols, encoderF16Forward } from './half';
export { fusedMultiplyAdd } from './math';
