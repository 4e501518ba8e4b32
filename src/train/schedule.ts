import { fail } from '../util/describe.js';
/**
 * Learning-rate schedules: a pure function of the 1-based step number.
 *
 * Every schedule warms up linearly over `warmupSteps` (step s gets learningRate * s / warmupSteps),
 * then:
 * - 'cosine': decays along half a cosine to `minLearningRate`, reached exactly at `totalSteps`
 * - 'linear': decays along a straight line to `minLearningRate`, reached exactly at `totalSteps`
 * - 'constant': stays at `learningRate`
 */

export type ScheduleName = 'cosine' | 'linear' | 'constant';

export const SCHEDULE_NAMES: readonly ScheduleName[] = ['cosine', 'linear', 'constant'];

export interface ScheduleOptions {
  schedule: ScheduleName;
  learningRate: number;
  minLearningRate: number;
  warmupSteps: number;
  totalSteps: number;
}

/** The learning rate for step `step` (1-based: the first update is step 1). */
export function learningRateAt(step: number, o: ScheduleOptions): number {
  if (!Number.isFinite(step) || step < 0) throw new RangeError(`learningRateAt: step must be a finite number >= 0, got ${String(step)}`);
  if (o === null || typeof o !== 'object')
    throw new TypeError('learningRateAt: options must be an object (learningRate, warmupSteps, totalSteps...)');
  if (o.warmupSteps > 0 && step <= o.warmupSteps) return (o.learningRate * step) / o.warmupSteps;
  if (o.schedule === 'constant') return o.learningRate;
  const decaySteps = o.totalSteps - o.warmupSteps;
  if (decaySteps <= 0) return o.learningRate;
  // progress runs over (0, 1]: the first step after warmup has already decayed a little
  const progress = Math.min(1, (step - o.warmupSteps) / decaySteps);
  const span = o.learningRate - o.minLearningRate;
  if (o.schedule === 'linear') return o.minLearningRate + (1 - progress) * span;
  return o.minLearningRate + 0.5 * (1 + Math.cos(Math.PI * progress)) * span;
}

/** Throws a RangeError naming the field when a schedule option is out of range. */
export function validateSchedule(o: ScheduleOptions): void {
  if (!SCHEDULE_NAMES.includes(o.schedule)) fail('schedule', `one of ${SCHEDULE_NAMES.join(', ')}`, o.schedule);
  if (!(Number.isFinite(o.learningRate) && o.learningRate > 0)) fail('learningRate', 'a finite number > 0', o.learningRate);
  if (!(Number.isFinite(o.minLearningRate) && o.minLearningRate >= 0 && o.minLearningRate <= o.learningRate)) {
    fail('minLearningRate', `in [0, learningRate = ${o.learningRate}]`, o.minLearningRate);
  }
  if (!(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0)) fail('warmupSteps', 'an integer >= 0', o.warmupSteps);
  if (!(Number.isInteger(o.totalSteps) && o.totalSteps >= 1)) fail('steps', 'an integer >= 1', o.totalSteps);
}
