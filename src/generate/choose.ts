/**
 * One token from one row of logits, the CPU way: the sampling warpers (temperature, top-k, top-p,
 * min-p, in Hugging Face's order) and then the argmax or a draw with a given uniform. Generation's
 * plan and the backends' sampleTokens reference (the js backend) both run it, so a token chosen on
 * the device and one chosen on the host from read-back logits come from the same definition.
 */
import type { TokenSampling } from '../backend/contract.js';
import {
  minP as minPProcessor,
  temperature as temperatureProcessor,
  topK as topKProcessor,
  topP as topPProcessor,
  type LogitsProcessor,
} from './processors.js';
import { greedy, rowProblem, sampleAt } from './samplers.js';

/** the warpers a sampled plan applies, in order; each is left out where it would change nothing */
export function samplingWarpers(s: { temperature: number; topK: number; topP: number; minP: number }): LogitsProcessor[] {
  const warpers: LogitsProcessor[] = [];
  if (s.temperature !== 1) warpers.push(temperatureProcessor(s.temperature));
  if (s.topK > 0) warpers.push(topKProcessor(s.topK));
  if (s.topP < 1) warpers.push(topPProcessor(s.topP));
  if (s.minP > 0) warpers.push(minPProcessor(s.minP));
  return warpers;
}

/**
 * sampleTokens on one row: `row` [V] (rewritten in place) after banning ids >= sampling.allowed,
 * the argmax, or the warpers then a draw with uniform u in [0, 1). -1 when no token can be chosen
 * (a NaN or +Infinity logit, or every token banned).
 */
export function chooseToken(row: Float32Array, sampling: TokenSampling, u: number): number {
  row.fill(-Infinity, sampling.allowed);
  if (rowProblem(row) !== null) return -1;
  if (sampling.greedy) return greedy(row);
  for (const warp of samplingWarpers(sampling)) warp(row, []);
  return sampleAt(row, u);
}
