/**
 * planTraining: a caller's training options, their defaults and (when resuming) a checkpoint's saved
 * hyperparameters, merged and validated in one place into a TrainingPlan. The trainer reads only
 * the plan. Saved hyperparameters go through the same checks as options, so a forged or damaged
 * checkpoint fails with the field's name and allowed range, as a bad option does.
 */
import { buildParamLayout } from '../model/params.js';
import type { GPTConfig, ParamEntry } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { CheckpointHyperparams } from './checkpoint.js';
import { longestRow, sequenceRows, streamRows, type RowSource } from './data.js';
import { SCHEDULE_NAMES, validateSchedule, type ScheduleName } from './schedule.js';
import type { TrainOptions } from './trainer.js';
import { resolveTrainable } from './trainable.js';
import { describe, fail } from '../util/describe.js';

/**
 * What each training option is: 'saved' options are hyperparameters a checkpoint keeps and a resume
 * continues with; 'run' options belong to one call. `satisfies` makes the compiler hold this record
 * to TrainOptions: an option added there and not here (or the reverse) does not compile, so the set
 * of known option names cannot drift from the type.
 */
const OPTION_KINDS = {
  data: 'run',
  valData: 'run',
  sequences: 'run',
  valSequences: 'run',
  batchSize: 'saved',
  seqLen: 'saved',
  steps: 'saved',
  epochs: 'run',
  learningRate: 'saved',
  minLearningRate: 'saved',
  warmupSteps: 'saved',
  schedule: 'saved',
  beta1: 'saved',
  beta2: 'saved',
  eps: 'saved',
  weightDecay: 'saved',
  gradientAccumulationSteps: 'saved',
  maxGradNorm: 'saved',
  seed: 'saved',
  evalInterval: 'run',
  evalBatches: 'run',
  logInterval: 'run',
  checkpointInterval: 'run',
  onCheckpoint: 'run',
  checkpointPath: 'run',
  resumeFrom: 'run',
  tokenizer: 'run',
  onStep: 'run',
  onEval: 'run',
  signal: 'run',
  nonFinite: 'run',
  onDeviceLost: 'run',
  deviceLossSnapshotInterval: 'run',
  onBackendChange: 'run',
  trainable: 'run',
  freeze: 'run',
} as const satisfies Record<keyof TrainOptions, 'saved' | 'run'>;

export const TRAIN_OPTION_NAMES: ReadonlySet<string> = new Set(Object.keys(OPTION_KINDS));

/** Everything a training run needs, checked. */
export interface TrainingPlan {
  /** what a checkpoint stores and a resume continues with; maxGradNorm Infinity means no clipping */
  hyperparams: CheckpointHyperparams;
  trainRows: RowSource;
  valRows: RowSource | null;
  /** the parameter entries this run updates (all of them unless trainable or freeze says otherwise) */
  trainable: readonly ParamEntry[];
  evalInterval: number;
  evalBatches: number;
  logInterval: number;
  checkpointInterval: number;
  nonFinite: 'error' | 'skip';
  onDeviceLost: 'error' | 'wasm';
  deviceLossSnapshotInterval: number;
  checkpointPath: string | undefined;
  tokenizer: Tokenizer | undefined;
  signal: AbortSignal | undefined;
  onStep: TrainOptions['onStep'];
  onEval: TrainOptions['onEval'];
  onCheckpoint: TrainOptions['onCheckpoint'];
  onBackendChange: TrainOptions['onBackendChange'];
}

/** Where a value came from, for the error message. */
type Source = 'option' | 'checkpoint';

/** how a hyperparameter is named in an error: by its option name, or by its place in a checkpoint */
function fieldName(source: Source, name: string): string {
  if (source === 'option') return name;
  return `resumeFrom: checkpoint __metadata__.trainer.hyperparams${name === '' ? '' : '.' + name}`;
}

function integer(source: Source, name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    fail(fieldName(source, name), `an integer >= ${min}`, value);
  return value;
}

function finite(source: Source, name: string, value: unknown, ok: (v: number) => boolean, allowed: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) fail(fieldName(source, name), allowed, value);
  return value;
}

/**
 * Each saved hyperparameter's check, used for an option and for a checkpoint's value alike. The
 * checkpoint's name for `steps` is totalSteps.
 */
const HYPERPARAM_CHECKS: {
  [K in keyof CheckpointHyperparams]: (source: Source, name: string, value: unknown) => CheckpointHyperparams[K];
} = {
  batchSize: (s, n, v) => integer(s, n, v, 1),
  seqLen: (s, n, v) => integer(s, n, v, 1),
  totalSteps: (s, n, v) => integer(s, n, v, 1),
  learningRate: (s, n, v) => finite(s, n, v, (x) => x > 0, 'a finite number > 0'),
  minLearningRate: (s, n, v) => finite(s, n, v, (x) => x >= 0, 'a finite number >= 0'),
  warmupSteps: (s, n, v) => integer(s, n, v, 0),
  schedule: (s, n, v) => {
    if (!SCHEDULE_NAMES.includes(v as ScheduleName)) fail(fieldName(s, n), `one of ${SCHEDULE_NAMES.join(', ')}`, v);
    return v as ScheduleName;
  },
  beta1: (s, n, v) => finite(s, n, v, (x) => x >= 0 && x < 1, 'in [0, 1)'),
  beta2: (s, n, v) => finite(s, n, v, (x) => x >= 0 && x < 1, 'in [0, 1)'),
  eps: (s, n, v) => finite(s, n, v, (x) => x > 0, 'a finite number > 0'),
  weightDecay: (s, n, v) => finite(s, n, v, (x) => x >= 0, 'a finite number >= 0'),
  gradientAccumulationSteps: (s, n, v) => integer(s, n, v, 1),
  maxGradNorm: (s, n, v) => {
    // checkpoints written before Infinity was kept stored it as null: clipping off
    if (s === 'checkpoint' && v === null) return Infinity;
    if (typeof v !== 'number' || !(v > 0)) fail(fieldName(s, n), '> 0 (Infinity turns clipping off)', v);
    return v;
  },
  seed: (s, n, v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(fieldName(s, n), 'an integer', v);
    return v;
  },
};

/** The option a hyperparameter is set by (they differ only for totalSteps). */
function optionName(key: keyof CheckpointHyperparams): keyof TrainOptions {
  return key === 'totalSteps' ? 'steps' : key;
}

/** Every saved hyperparameter of a checkpoint, checked; throws naming the first bad field. */
export function checkSavedHyperparams(saved: unknown): CheckpointHyperparams {
  if (saved === null || typeof saved !== 'object') fail(fieldName('checkpoint', ''), 'an object', saved);
  const record = saved as Record<string, unknown>;
  const out: Partial<Record<keyof CheckpointHyperparams, unknown>> = {};
  for (const key of Object.keys(HYPERPARAM_CHECKS) as (keyof CheckpointHyperparams)[]) {
    out[key] = HYPERPARAM_CHECKS[key]('checkpoint', key, record[key]);
  }
  return out as CheckpointHyperparams;
}

function runInteger(
  o: TrainOptions,
  name: 'evalInterval' | 'evalBatches' | 'logInterval' | 'checkpointInterval' | 'deviceLossSnapshotInterval',
  fallback: number,
  min: number,
): number {
  const value = o[name];
  return value === undefined ? fallback : integer('option', name, value, min);
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T))
    throw new RangeError(`${name} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${describe(value)}`);
  return value as T;
}

function callback<K extends 'onStep' | 'onEval' | 'onCheckpoint' | 'onBackendChange'>(o: TrainOptions, name: K): TrainOptions[K] {
  const value = o[name];
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name} must be a function, got ${describe(value)}`);
  return value;
}

function defaultWarmup(totalSteps: number): number {
  return Math.min(100, Math.floor(totalSteps / 10));
}

/** Check that `options` is an object holding only known training options. */
export function checkTrainOptionNames(options: unknown): asserts options is TrainOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`train options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!TRAIN_OPTION_NAMES.has(key))
      throw new RangeError(`unknown training option "${key}"; known options: ${[...TRAIN_OPTION_NAMES].join(', ')}`);
  }
}

/**
 * Merge options over the saved hyperparameters (when resuming) over the defaults, check each value
 * and the data against the model, and derive what depends on others (steps from epochs, the warmup
 * default, the validation interval).
 */
export function planTraining(
  config: GPTConfig,
  options: TrainOptions,
  saved: CheckpointHyperparams | null,
  parameters: readonly ParamEntry[] = buildParamLayout(config).entries,
): TrainingPlan {
  checkTrainOptionNames(options);
  const o = options;
  const hasStream = o.data !== undefined;
  const hasSequences = o.sequences !== undefined;
  if (hasStream === hasSequences)
    throw new RangeError('train: give exactly one of data (a token stream) or sequences (a list of sequences)');
  if (o.valData !== undefined && o.valSequences !== undefined) throw new RangeError('train: give at most one of valData or valSequences');
  if (o.steps !== undefined && o.epochs !== undefined) throw new RangeError('train: give steps or epochs, not both');
  const epochs = o.epochs === undefined ? undefined : finite('option', 'epochs', o.epochs, (x) => x > 0, 'a finite number > 0');

  // an option wins over the checkpoint's value, which wins over the default
  const pick = <K extends keyof CheckpointHyperparams>(key: K, fallback: () => CheckpointHyperparams[K]): CheckpointHyperparams[K] => {
    const name = optionName(key);
    const value = o[name];
    if (value !== undefined) return HYPERPARAM_CHECKS[key]('option', name, value);
    if (saved) return saved[key];
    return fallback();
  };

  const seqLen = pick('seqLen', () => (hasStream ? config.maxSeqLen : Math.min(config.maxSeqLen, Math.max(1, longestRow(o.sequences!)))));
  if (seqLen > config.maxSeqLen) throw new RangeError(`seqLen = ${seqLen} exceeds the model's maxSeqLen ${config.maxSeqLen}`);
  const batchSize = pick('batchSize', () => 8);
  const gradientAccumulationSteps = pick('gradientAccumulationSteps', () => 1);

  const vocab = config.vocabSize;
  const trainRows = hasStream ? streamRows(o.data!, seqLen, vocab, 'data') : sequenceRows(o.sequences!, seqLen, vocab, 'sequences');
  let valRows: RowSource | null = null;
  if (o.valData !== undefined) valRows = streamRows(o.valData, seqLen, vocab, 'valData');
  else if (o.valSequences !== undefined) valRows = sequenceRows(o.valSequences, seqLen, vocab, 'valSequences');

  let totalSteps = pick('totalSteps', () => 1000);
  let epochWarmup: number | undefined;
  if (o.steps === undefined && epochs !== undefined) {
    totalSteps = Math.max(1, Math.ceil((epochs * trainRows.rowCount) / (batchSize * gradientAccumulationSteps)));
    if (o.warmupSteps === undefined && !saved) epochWarmup = defaultWarmup(totalSteps);
  }
  const learningRate = pick('learningRate', () => 1e-3);
  const hyperparams: CheckpointHyperparams = {
    batchSize,
    seqLen,
    totalSteps,
    learningRate,
    minLearningRate: pick('minLearningRate', () => learningRate / 10),
    warmupSteps: epochWarmup ?? pick('warmupSteps', () => defaultWarmup(totalSteps)),
    schedule: pick('schedule', () => 'cosine'),
    beta1: pick('beta1', () => 0.9),
    beta2: pick('beta2', () => 0.99),
    eps: pick('eps', () => 1e-8),
    weightDecay: pick('weightDecay', () => 0.1),
    gradientAccumulationSteps,
    maxGradNorm: pick('maxGradNorm', () => 1),
    seed: pick('seed', () => config.seed),
  };
  validateSchedule(hyperparams);

  const checkpointInterval = runInteger(o, 'checkpointInterval', 0, 0);
  const onDeviceLost = oneOf('onDeviceLost', o.onDeviceLost, ['error', 'wasm'], 'error');
  if (o.checkpointPath !== undefined && (typeof o.checkpointPath !== 'string' || o.checkpointPath === '')) {
    throw new TypeError(`checkpointPath must be a non-empty file path string, got ${describe(o.checkpointPath)}`);
  }
  if (o.signal !== undefined && (o.signal === null || typeof o.signal !== 'object' || typeof o.signal.aborted !== 'boolean')) {
    throw new TypeError('signal must be an AbortSignal');
  }
  if (o.tokenizer !== undefined && (o.tokenizer === null || typeof (o.tokenizer as { toJSON?: unknown }).toJSON !== 'function')) {
    throw new TypeError('tokenizer must be a Tokenizer (with toJSON)');
  }
  return {
    hyperparams,
    trainRows,
    valRows,
    trainable: resolveTrainable(o, parameters),
    evalInterval: runInteger(o, 'evalInterval', valRows ? Math.max(1, Math.round(totalSteps / 10)) : 0, 0),
    evalBatches: runInteger(o, 'evalBatches', Infinity, 1),
    logInterval: runInteger(o, 'logInterval', 1, 1),
    checkpointInterval,
    nonFinite: oneOf('nonFinite', o.nonFinite, ['error', 'skip'], 'error'),
    onDeviceLost,
    deviceLossSnapshotInterval: runInteger(o, 'deviceLossSnapshotInterval', checkpointInterval > 0 ? checkpointInterval : 100, 1),
    checkpointPath: o.checkpointPath,
    tokenizer: o.tokenizer,
    signal: o.signal,
    onStep: callback(o, 'onStep'),
    onEval: callback(o, 'onEval'),
    onCheckpoint: callback(o, 'onCheckpoint'),
    onBackendChange: callback(o, 'onBackendChange'),
  };
}
