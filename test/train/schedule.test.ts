import { describe, expect, it } from 'vitest';
import { learningRateAt, validateSchedule, type ScheduleOptions } from '../../src/train/schedule.js';

/** The closed forms, written independently of the implementation's branch structure. */
function expected(s: number, o: ScheduleOptions): number {
  const { learningRate: max, minLearningRate: min, warmupSteps: w, totalSteps: n } = o;
  if (s <= w) return (max * s) / w;
  const x = (s - w) / (n - w);
  if (o.schedule === 'constant') return max;
  if (o.schedule === 'linear') return max - (max - min) * x;
  return min + ((max - min) * (1 + Math.cos(Math.PI * x))) / 2;
}

describe('learningRateAt', () => {
  for (const schedule of ['cosine', 'linear', 'constant'] as const) {
    it(`${schedule}: equals the closed form at every step`, () => {
      const o: ScheduleOptions = { schedule, learningRate: 3e-3, minLearningRate: 2e-4, warmupSteps: 17, totalSteps: 250 };
      for (let s = 1; s <= o.totalSteps; s++) expect(learningRateAt(s, o)).toBeCloseTo(expected(s, o), 15);
    });
  }

  it('warms up linearly from learningRate / warmupSteps to the peak', () => {
    const o: ScheduleOptions = { schedule: 'cosine', learningRate: 1e-3, minLearningRate: 1e-4, warmupSteps: 10, totalSteps: 100 };
    expect(learningRateAt(1, o)).toBeCloseTo(1e-4, 15);
    expect(learningRateAt(5, o)).toBeCloseTo(5e-4, 15);
    expect(learningRateAt(10, o)).toBe(1e-3);
  });

  it('cosine and linear land exactly on the floor at the last step, halfway at the midpoint', () => {
    for (const schedule of ['cosine', 'linear'] as const) {
      const o: ScheduleOptions = { schedule, learningRate: 1e-3, minLearningRate: 1e-4, warmupSteps: 10, totalSteps: 110 };
      expect(learningRateAt(110, o)).toBeCloseTo(1e-4, 15);
      expect(learningRateAt(60, o)).toBeCloseTo(5.5e-4, 15);
      expect(learningRateAt(11, o)).toBeLessThan(1e-3);
    }
  });

  it('without warmup the first step already decays; a constant schedule never does', () => {
    const o: ScheduleOptions = { schedule: 'constant', learningRate: 2e-3, minLearningRate: 0, warmupSteps: 0, totalSteps: 5 };
    for (let s = 1; s <= 5; s++) expect(learningRateAt(s, o)).toBe(2e-3);
    expect(learningRateAt(1, { ...o, schedule: 'linear' })).toBeCloseTo(1.6e-3, 15);
  });

  it('rejects out-of-range options naming the field', () => {
    const ok: ScheduleOptions = { schedule: 'cosine', learningRate: 1e-3, minLearningRate: 1e-4, warmupSteps: 0, totalSteps: 10 };
    expect(() => validateSchedule({ ...ok, schedule: 'step' as never })).toThrow(/schedule must be one of/);
    expect(() => validateSchedule({ ...ok, learningRate: -1 })).toThrow(/learningRate .* got -1/);
    expect(() => validateSchedule({ ...ok, minLearningRate: 1 })).toThrow(/minLearningRate must be in \[0, learningRate/);
    expect(() => validateSchedule({ ...ok, warmupSteps: 1.5 })).toThrow(/warmupSteps .* got 1.5/);
    expect(() => validateSchedule({ ...ok, totalSteps: 0 })).toThrow(/steps must be an integer >= 1, got 0/);
  });
});
