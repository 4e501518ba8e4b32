/**
 * What a model needs before anything is allocated: the bytes of its smallest training step and its
 * largest single parameter, which createModel and moveToBackend hand to backend selection.
 */
import { bytesAllocatedBy } from '../backend/all-or-nothing.js';
import { buildParamLayout, type ParamLayout } from './params.js';
import type { GPTConfig } from './types.js';
import { allocWorkspace } from './workspace.js';

/** elements of the largest parameter: the flat parameters may be stored in pieces, one parameter may not */
export function largestParameter(layout: ParamLayout): number {
  return Math.max(...layout.entries.map((entry) => entry.length));
}

/**
 * Bytes the smallest training step holds, so a model that can never train is refused before
 * anything is allocated: parameters, gradients and AdamW moments, the tied head's transposed copy
 * and its gradient (V x C each), and the activations of one position. A bigger batch's activations
 * are checked when train or forward is given it.
 */
export function estimateTrainingBytes(config: GPTConfig, layout: ParamLayout = buildParamLayout(config)): number {
  const parametersGradientsMoments = layout.totalLength * 4 * 4;
  const head = 2 * config.vocabSize * config.dModel * 4;
  const onePosition = bytesAllocatedBy((allocator) => allocWorkspace(allocator, config, 1, 1));
  return parametersGradientsMoments + head + onePosition;
}
