/**
 * Training checkpoints: one safetensors file holding
 * - the parameters under their GPT-2 names (so the file is readable by other safetensors tools),
 * - the AdamW moments as `optimizer.m.<name>` and `optimizer.v.<name>`,
 * - in `__metadata__`: `format`, `config` (JSON), `tokenizer` (JSON, when given) and `trainer` (JSON:
 *   step, every RNG state, data position, the options needed to continue, best loss, history).
 */
import type { GPTConfig } from '../model/types.js';
import type { TokenizerJSON } from '../tokenizer/types.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import type { DataPosition } from './data.js';
import { checkSavedHyperparams } from './plan.js';
import type { ScheduleName } from './schedule.js';
import { fail } from '../util/describe.js';

export const CHECKPOINT_FORMAT = 'tinygpt-checkpoint/1';

/** The hyperparameters a resumed run continues with unless the caller overrides them. */
export interface CheckpointHyperparams {
  batchSize: number;
  seqLen: number;
  totalSteps: number;
  learningRate: number;
  minLearningRate: number;
  warmupSteps: number;
  schedule: ScheduleName;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradientAccumulationSteps: number;
  /** Infinity: no clipping (stored as the string "Infinity", as every non-finite number is) */
  maxGradNorm: number;
  /** seed of the data order */
  seed: number;
}

export interface HistoryEntry {
  step: number;
  /** mean training loss of the steps since the previous entry (per target token) */
  trainLoss: number;
  valLoss?: number;
  valPerplexity?: number;
  learningRate: number;
  /** global gradient norm before clipping, of this entry's step */
  gradNorm: number;
  tokensPerSecond: number;
  elapsedMs: number;
  /** steps since the previous entry that were skipped for a non-finite loss or gradient */
  skippedSteps?: number;
}

export interface TrainerState {
  /** trainer steps done (skipped steps included): the next step is step + 1 */
  step: number;
  /** AdamW updates applied (bias-correction step) */
  optimizerUpdates: number;
  dataPosition: DataPosition;
  /** fingerprint of the training data the position refers to */
  dataFingerprint: string;
  modelRng: { dropoutStep: number };
  hyperparams: CheckpointHyperparams;
  bestValLoss: number | null;
  elapsedMs: number;
  history: HistoryEntry[];
}

export interface CheckpointContents {
  config: GPTConfig;
  tokenizer: TokenizerJSON | null;
  state: TrainerState;
  params: Record<string, Float32Array>;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

type F32Tensor = { dtype: 'F32'; shape: number[]; data: Float32Array };

export function encodeCheckpoint(c: CheckpointContents, shapes: Record<string, number[]>): Uint8Array {
  const tensors: Record<string, F32Tensor> = {};
  for (const [name, data] of Object.entries(c.params)) tensors[name] = { dtype: 'F32', shape: shapes[name], data };
  for (const [name, data] of Object.entries(c.m)) tensors[`optimizer.m.${name}`] = { dtype: 'F32', shape: shapes[name], data };
  for (const [name, data] of Object.entries(c.v)) tensors[`optimizer.v.${name}`] = { dtype: 'F32', shape: shapes[name], data };
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(c.config),
    trainer: JSON.stringify(c.state, (_key, value: unknown) =>
      typeof value === 'number' && !Number.isFinite(value) ? String(value) : value,
    ),
  };
  if (c.tokenizer) metadata.tokenizer = JSON.stringify(c.tokenizer);
  return encodeSafetensors(tensors, metadata);
}

/** Parse checkpoint bytes; throws an Error saying what is wrong for anything that is not one. */
export function decodeCheckpoint(bytes: Uint8Array): CheckpointContents {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const meta = metadata ?? {};
  if (meta.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `resumeFrom: not a tinygpt training checkpoint (__metadata__.format is ${JSON.stringify(meta.format)}, expected "${CHECKPOINT_FORMAT}")`,
    );
  }
  const config = parseJSON(meta.config, 'config') as GPTConfig;
  const state = parseJSON(meta.trainer, 'trainer', (_key, value) =>
    value === 'NaN' ? NaN : value === 'Infinity' ? Infinity : value === '-Infinity' ? -Infinity : value,
  ) as TrainerState;
  checkState(state);
  const tokenizer = meta.tokenizer === undefined ? null : (parseJSON(meta.tokenizer, 'tokenizer') as TokenizerJSON);
  const params: Record<string, Float32Array> = {};
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const [name, tensor] of Object.entries(tensors as Record<string, { dtype: string; data: unknown }>)) {
    if (tensor.dtype !== 'F32' || !(tensor.data instanceof Float32Array)) {
      throw new Error(`resumeFrom: tensor ${name} has dtype ${tensor.dtype}; checkpoints hold F32 only`);
    }
    if (name.startsWith('optimizer.m.')) m[name.slice('optimizer.m.'.length)] = tensor.data;
    else if (name.startsWith('optimizer.v.')) v[name.slice('optimizer.v.'.length)] = tensor.data;
    else params[name] = tensor.data;
  }
  return { config, tokenizer, state, params, m, v };
}

/** The fields a resume reads, with their types: a forged or damaged state fails here, by name. */
function checkState(state: TrainerState): void {
  const bad = (field: string, what: string, value: unknown): never =>
    fail(`resumeFrom: checkpoint __metadata__.trainer${field === '' ? '' : '.' + field}`, what, value);
  const isCount = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
  if (state === null || typeof state !== 'object') bad('', 'an object', state);
  if (!isCount(state.step)) bad('step', 'an integer >= 0', state.step);
  if (!isCount(state.optimizerUpdates) || state.optimizerUpdates > state.step)
    bad('optimizerUpdates', `an integer in [0, step = ${state.step}]`, state.optimizerUpdates);
  const p = state.dataPosition;
  if (p === null || typeof p !== 'object') bad('dataPosition', 'an object', p);
  if (!isCount(p.epoch)) bad('dataPosition.epoch', 'an integer >= 0', p.epoch);
  if (!isCount(p.cursor)) bad('dataPosition.cursor', 'an integer >= 0', p.cursor);
  const words = p.epochRngState?.s;
  if (!Array.isArray(words) || words.length !== 4 || !words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    bad('dataPosition.epochRngState.s', 'four uint32 words', words);
  }
  if (typeof state.dataFingerprint !== 'string') bad('dataFingerprint', 'a string', state.dataFingerprint);
  if (!isCount(state.modelRng?.dropoutStep)) bad('modelRng.dropoutStep', 'an integer >= 0', state.modelRng?.dropoutStep);
  if (state.hyperparams === null || typeof state.hyperparams !== 'object') bad('hyperparams', 'an object', state.hyperparams);
  state.hyperparams = checkSavedHyperparams(state.hyperparams);
  if (state.bestValLoss !== null && typeof state.bestValLoss !== 'number') bad('bestValLoss', 'a number or null', state.bestValLoss);
  if (typeof state.elapsedMs !== 'number') bad('elapsedMs', 'a number', state.elapsedMs);
  if (!Array.isArray(state.history)) bad('history', 'an array', state.history);
}

function parseJSON(text: string | undefined, key: string, reviver?: (key: string, value: unknown) => unknown): unknown {
  if (typeof text !== 'string') throw new Error(`resumeFrom: checkpoint __metadata__ has no "${key}" entry`);
  try {
    return JSON.parse(text, reviver);
  } catch (err) {
    throw new Error(`resumeFrom: checkpoint __metadata__.${key} is not valid JSON (${(err as Error).message})`, { cause: err });
  }
}
