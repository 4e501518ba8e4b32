/**
 * The training loop: `Trainer` (driven step by step) and `train(model, options)` on top of it.
 *
 * One step = `gradientAccumulationSteps` micro-batches of `batchSize` rows, forward (dropout on) and
 * backward each; the gradients are combined so the update equals one batch of the combined size,
 * weighting each micro-batch by its count of non-ignored targets (so padded sequence batches are
 * weighted exactly like one big batch); then the global gradient norm is measured (one 1-element
 * download), checked for NaN/Inf, clipped to `maxGradNorm`, and AdamW applies the scheduled
 * learning rate.
 *
 * It runs past 700 lines because `Trainer` keeps one step's state (data position, accumulation,
 * rollback on failure, checkpoint writes) in one class whose methods share it; options are resolved
 * in plan.ts, data in data.ts, the schedule in schedule.ts and checkpoints in checkpoint.ts.
 */
import type { LoRAAdapter } from '../model/lora.js';
import { allocGradientGroup } from '../model/params.js';
import type { GPTConfig, GPTModel, ParameterGroup } from '../model/types.js';
import type { Tokenizer, TokenizerJSON } from '../tokenizer/types.js';
import { capacityOf, formatBytes } from '../backend/capacity.js';
import { MemoryLimitError } from '../backend/errors.js';
import { checkFreeSpaceInNode, writeFileAtomicInNode } from '../io/files.js';
import { isNode, readFileBytes } from '../host/node.js';
import { AdamW } from './adamw.js';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  type CheckpointContents,
  type CheckpointHyperparams,
  type HistoryEntry,
  type TrainerState,
} from './checkpoint.js';
import { orderedBatches, ShuffledBatches, type Batch, type RowSource, type SequenceData, type TokenStream } from './data.js';
import { DeviceLossWatch, type BackendChange } from './device-loss.js';
import { checkTrainOptionNames, planTraining, type TrainingPlan } from './plan.js';
import { learningRateAt, type ScheduleName } from './schedule.js';
import { checkNotDisposed } from '../util/dispose.js';
import { EventLoopTurns } from '../util/turns.js';
import { describe } from '../util/describe.js';

export type { HistoryEntry } from './checkpoint.js';
export type { BackendChange } from './device-loss.js';

export interface StepMetrics {
  /** 1-based number of the step just taken */
  step: number;
  /** mean loss over this step's non-ignored targets (NaN/Infinity when the step was skipped for it) */
  trainLoss: number;
  learningRate: number;
  /** global gradient norm before clipping */
  gradNorm: number;
  /** true when nonFinite: 'skip' dropped this step's update */
  skipped: boolean;
  /** non-ignored target tokens per second of this step */
  tokensPerSecond: number;
  /** time spent in steps and evaluations so far (continues across resumes) */
  elapsedMs: number;
}

export interface EvalMetrics {
  step: number;
  valLoss: number;
  valPerplexity: number;
}

export interface TrainOptions {
  /** a token stream cut into windows of seqLen + 1 (give either data or sequences) */
  data?: TokenStream;
  /** a held-out token stream for validation */
  valData?: TokenStream;
  /**
   * one row per sequence, padded with the ignore index (give either data or sequences); or
   * prompt/response examples from sftDataset, where only the responses count in the loss
   */
  sequences?: SequenceData;
  valSequences?: SequenceData;
  /** rows per micro-batch (default 8) */
  batchSize?: number;
  /** positions per row (default: the model's maxSeqLen for streams, the longest sequence for lists) */
  seqLen?: number;
  /** total optimizer steps, counting those already done when resuming (default 1000 unless epochs) */
  steps?: number;
  /** passes over the training rows, turned into steps (give steps or epochs, not both) */
  epochs?: number;
  /** peak learning rate (default 1e-3) */
  learningRate?: number;
  /** floor the decay ends on at the last step (default learningRate / 10) */
  minLearningRate?: number;
  /** linear warmup steps (default min(100, steps / 10)) */
  warmupSteps?: number;
  /** default 'cosine' */
  schedule?: ScheduleName;
  /** default 0.9 */
  beta1?: number;
  /** default 0.99 */
  beta2?: number;
  /** default 1e-8 */
  eps?: number;
  /** decoupled weight decay on weight matrices and embeddings (default 0.1) */
  weightDecay?: number;
  /** micro-batches per step (default 1) */
  gradientAccumulationSteps?: number;
  /** clip the global gradient norm to this (default 1; Infinity turns clipping off) */
  maxGradNorm?: number;
  /** seed of the data order (default: the model's seed) */
  seed?: number;
  /** evaluate every this many steps and at the last step (default: steps / 10 when there is validation data; 0 = only at the end) */
  evalInterval?: number;
  /** validation batches per evaluation (default: the whole validation set) */
  evalBatches?: number;
  /** a history entry every this many steps (default 1) */
  logInterval?: number;
  /** checkpoint every this many steps (default 0: only at the end, when onCheckpoint or checkpointPath is given) */
  checkpointInterval?: number;
  onCheckpoint?: (bytes: Uint8Array, step: number) => void | Promise<void>;
  /** Node only: write each checkpoint here (temporary file, then rename) */
  checkpointPath?: string;
  /** checkpoint bytes, or in Node a path, to continue from */
  resumeFrom?: Uint8Array | string;
  /** stored in checkpoints */
  tokenizer?: Tokenizer;
  onStep?: (metrics: StepMetrics) => void;
  onEval?: (metrics: EvalMetrics) => void;
  /** stop after the current step and return what was done */
  signal?: AbortSignal;
  /** a NaN or infinite loss or gradient norm: throw (default) or skip that step's update */
  nonFinite?: 'error' | 'skip';
  /**
   * train() only. The GPU device was lost (a driver reset, device.destroy()): reject with the
   * device-lost error (default 'error'), or 'wasm': move the model to a wasm backend (created with
   * the model's wasmThreads), restore the last host snapshot of the training state and go on. The
   * steps after that snapshot are redone, so onStep, onEval and onCheckpoint see them again.
   */
  onDeviceLost?: 'error' | 'wasm';
  /**
   * With onDeviceLost: 'wasm' on a GPU backend: keep a host snapshot of the training state (what a
   * checkpoint holds) at the start and every this many steps (default: checkpointInterval when set,
   * else 100). Each checkpoint taken also serves as the snapshot.
   */
  deviceLossSnapshotInterval?: number;
  /** hears that training moved to another backend (default: a console.warn line) */
  onBackendChange?: (change: BackendChange) => void;
  /**
   * Train only these parameters; the others stay bit-identical and get no optimizer state. Each
   * item is a parameter name ('ln_f.weight'), a '*' pattern ('h.*.attn.*') or a group
   * ('embeddings', 'attention', 'mlp', 'layernorm', 'biases', 'layer:N'). Give trainable or freeze, not both.
   */
  trainable?: readonly string[];
  /** train everything but these parameters (names, patterns or groups as for trainable) */
  freeze?: readonly string[];
}

export interface TrainResult {
  /** trainLoss of the last history entry (NaN when no step ran) */
  finalTrainLoss: number;
  /** null when there was no validation data */
  bestValLoss: number | null;
  history: HistoryEntry[];
  /** steps done in total, including any done before resuming */
  steps: number;
  stopped: 'completed' | 'aborted';
}

/**
 * A NaN or infinite loss or gradient norm with nonFinite: 'error'. The step's update was not
 * applied; the trainer counts the step as taken (as a skipped one), so a later step() goes on with
 * the next batch.
 */
export class NonFiniteError extends Error {
  constructor(
    readonly step: number,
    readonly loss: number,
    readonly gradNorm: number,
  ) {
    super(
      `training diverged at step ${step}: loss ${loss}, gradient norm ${gradNorm}; the update of step ${step} was not applied, ` +
        `so the parameters are those after step ${step - 1} (pass nonFinite: 'skip' to drop such steps instead)`,
    );
    this.name = 'NonFiniteError';
  }
}

/** Accumulators of the history entry being built. */
interface PendingLog {
  lossSum: number;
  steps: number;
  skipped: number;
  tokens: number;
  ms: number;
}

export class Trainer {
  readonly model: GPTModel;
  readonly hyperparams: Readonly<CheckpointHyperparams>;
  readonly history: HistoryEntry[] = [];
  readonly evalInterval: number;
  readonly checkpointInterval: number;
  /** what train() does when the GPU device is lost (see TrainOptions.onDeviceLost) */
  readonly onDeviceLost: 'error' | 'wasm';
  /** steps between train()'s host snapshots for onDeviceLost: 'wasm' */
  readonly deviceLossSnapshotInterval: number;
  readonly tokenizer: TokenizerJSON | null;
  /** the checked options this trainer runs on */
  readonly plan: TrainingPlan;
  private readonly optimizer: AdamW;
  /** what the optimizer updates: the model's trained entries, or the attached LoRA adapter */
  private readonly group: ParameterGroup;
  /**
   * a frozen fine-tune's own gradient buffer (the trained entries alone, packed), which backward
   * writes into; null when the model's own gradients (or the adapter's) are the group's
   */
  private readonly packedGradients: ParameterGroup | null;
  /** whether the model's gradient buffer was made for this run, so it goes when the run is disposed */
  private readonly madeModelGradients: boolean;
  /** the adapter attached when the run began (checkpoints hold its parameters too) */
  private readonly adapter: LoRAAdapter | null;
  private readonly trainBatches: ShuffledBatches;
  private readonly valRows: RowSource | null;
  private readonly evalBatches: number;
  private readonly logInterval: number;
  private readonly nonFinite: 'error' | 'skip';
  private completedSteps = 0;
  private best: number | null = null;
  private elapsedMs = 0;
  private pending: PendingLog = { lossSum: 0, steps: 0, skipped: 0, tokens: 0, ms: 0 };
  private lastGradNorm = NaN;
  private lastLearningRate = NaN;
  /** train()'s claim on the model, under which this trainer's steps run */
  private lease: object | null = null;
  /** why an optimizer update failed part-way, after which no step may run */
  private brokenBy: string | null = null;

  /** Validate the options, set up data and optimizer, and restore `resumeFrom` (bytes or, in Node, a path). */
  static async create(model: GPTModel, options: TrainOptions): Promise<Trainer> {
    return Trainer.open(model, options, null);
  }

  /** @internal train()'s way in: `lease` is the claim train() holds on the model for its whole run */
  static async open(model: GPTModel, options: TrainOptions, lease: object | null): Promise<Trainer> {
    checkModel(model);
    checkNotDisposed(model, lease ? 'train' : 'Trainer.create');
    checkTrainOptionNames(options);
    let resume: Uint8Array | undefined;
    if (typeof options.resumeFrom === 'string') {
      if (!isNode()) throw new Error("resumeFrom: a file path needs Node's file system; pass the checkpoint's bytes instead");
      resume = await readFileBytes(options.resumeFrom);
    } else if (options.resumeFrom !== undefined) {
      if (!(options.resumeFrom instanceof Uint8Array))
        throw new TypeError('resumeFrom must be checkpoint bytes (Uint8Array) or a file path');
      resume = options.resumeFrom;
    }
    const saved = resume ? decodeCheckpoint(resume) : null;
    const adapter = model.lora ?? null;
    if (adapter !== null) {
      if (options.trainable !== undefined || options.freeze !== undefined) {
        throw new RangeError(
          'trainable / freeze: with a LoRA adapter attached (model.lora) only the adapter trains; detach it (model.setAdapter(null)) to choose among the model’s own parameters',
        );
      }
      if (options.onDeviceLost === 'wasm') {
        throw new RangeError(
          "onDeviceLost: 'wasm' cannot move a model with a LoRA adapter attached; save the adapter (saveAdapter) in onCheckpoint instead",
        );
      }
    }
    const plan = planTraining(model.config, options, saved?.state.hyperparams ?? null, adapter?.entries ?? model.paramLayout);
    checkStepFits(model, plan);
    const trainer = new Trainer(model, plan, saved);
    trainer.lease = lease;
    if (saved) {
      try {
        await trainer.holding(() => trainer.restore(saved));
      } catch (err) {
        trainer.dispose();
        throw err;
      }
    }
    return trainer;
  }

  /**
   * Run `work` holding the model: a step, an evaluation or a restore of another trainer (or another
   * train() call) in flight on the same model would interleave its forward and backward with this
   * one's and silently mix their gradients, so it is refused instead.
   */
  private async holding<T>(work: () => Promise<T>): Promise<T> {
    const holder = modelHolders.get(this.model);
    if (holder !== undefined && holder !== this.lease) throw new ModelBusyError();
    if (holder !== undefined) return work();
    const token = {};
    modelHolders.set(this.model, token);
    try {
      return await work();
    } finally {
      if (modelHolders.get(this.model) === token) modelHolders.delete(this.model);
    }
  }

  private constructor(model: GPTModel, plan: TrainingPlan, saved: CheckpointContents | null) {
    this.model = model;
    this.plan = plan;
    if (saved) checkSameConfig(saved.config, model.config);
    const hp = plan.hyperparams;
    this.hyperparams = hp;
    this.tokenizer = plan.tokenizer ? plan.tokenizer.toJSON() : (saved?.tokenizer ?? null);
    this.valRows = plan.valRows;
    this.evalInterval = plan.evalInterval;
    this.evalBatches = plan.evalBatches;
    this.logInterval = plan.logInterval;
    this.checkpointInterval = plan.checkpointInterval;
    this.nonFinite = plan.nonFinite;
    this.onDeviceLost = plan.onDeviceLost;
    if (this.onDeviceLost === 'wasm' && typeof model.moveToBackend !== 'function') {
      throw new TypeError(
        "onDeviceLost: 'wasm' needs a model that can move to another backend (moveToBackend), as createModel and loadModel make",
      );
    }
    this.deviceLossSnapshotInterval = plan.deviceLossSnapshotInterval;

    this.trainBatches = new ShuffledBatches(plan.trainRows, hp.batchSize, hp.seed);
    if (saved) {
      const fingerprint = plan.trainRows.fingerprint();
      if (saved.state.dataFingerprint !== fingerprint) {
        throw new RangeError(
          `resumeFrom: the training data differs from the data the checkpoint was trained on (${fingerprint} vs ${saved.state.dataFingerprint}); ` +
            'pass the same data or sequences to resume',
        );
      }
    }
    this.adapter = model.lora ?? null;
    this.madeModelGradients = false;
    this.packedGradients = null;
    if (this.adapter !== null) {
      // the adapter is the group: backward writes its gradients and none of the model's
      this.group = this.adapter;
    } else if (plan.trainable.length === model.paramLayout.length) {
      this.madeModelGradients = model.holdsGradients === false;
      this.group = { params: model.params, grads: model.grads, entries: plan.trainable };
    } else {
      // frozen parameters get no gradient memory and no gradient work: backward writes the trained
      // entries' gradients alone, into a buffer of their own
      model.releaseGradients?.();
      this.packedGradients = allocGradientGroup(model.backend, model.params, plan.trainable);
      this.group = this.packedGradients;
    }
    try {
      this.optimizer = new AdamW(model.backend, this.group, { beta1: hp.beta1, beta2: hp.beta2, eps: hp.eps, weightDecay: hp.weightDecay });
    } catch (err) {
      this.releaseGradients();
      throw err;
    }
  }

  /** let go of the gradient memory this run made */
  private releaseGradients(): void {
    if (this.packedGradients !== null) this.model.backend.free(this.packedGradients.grads);
    if (this.madeModelGradients) this.model.releaseGradients?.();
  }

  /** steps done so far, including those before a resume */
  get stepsDone(): number {
    return this.completedSteps;
  }

  get totalSteps(): number {
    return this.hyperparams.totalSteps;
  }

  get bestValLoss(): number | null {
    return this.best;
  }

  get hasValidation(): boolean {
    return this.valRows !== null;
  }

  /** The learning rate step `step` (1-based) uses. */
  learningRateAt(step: number): number {
    return learningRateAt(step, this.hyperparams);
  }

  /** One optimizer step over gradientAccumulationSteps micro-batches. */
  async step(): Promise<StepMetrics> {
    const metrics = await this.holding(() => this.takeStep());
    this.plan.onStep?.(metrics);
    return metrics;
  }

  private async takeStep(): Promise<StepMetrics> {
    const startMs = now();
    const model = this.model;
    const backend = model.backend;
    const hp = this.hyperparams;
    const step = this.completedSteps + 1;
    const learningRate = this.learningRateAt(step);

    if (this.brokenBy) {
      throw new Error(
        `step: an earlier step's optimizer update failed part-way (${this.brokenBy}), so the parameters are partly updated; ` +
          'resume from the last checkpoint',
      );
    }
    // an op that throws before the update leaves the parameters untouched: the data position and
    // the dropout counter go back to where this step started, so a retry sees the same batches and masks
    const position = this.trainBatches.getPosition();
    const rngState = model.getRngState();
    const micro: Batch[] = [];
    for (let i = 0; i < hp.gradientAccumulationSteps; i++) micro.push(this.trainBatches.next());
    let totalTargets = 0;
    for (const b of micro) totalTargets += b.targetCount;

    // grads after micro-batch i hold sum_{j<=i} (n_j / n_i) g_j, where g_j is the gradient of
    // micro-batch j's mean loss and n_j its target count; the final scale n_last / N turns that
    // into sum_j (n_j / N) g_j, the gradient of the mean over all N targets.
    let lossSum = 0;
    let gradNorm: number;
    try {
      if (this.packedGradients !== null) backend.zero(this.packedGradients.grads);
      else await model.zeroGrad();
      for (let i = 0; i < micro.length; i++) {
        const b = micro[i];
        const { loss } = await model.forward(b.inputs, b.targets, b.batchSize, { training: true });
        lossSum += (loss ?? NaN) * b.targetCount;
        if (i > 0 && micro[i - 1].targetCount !== b.targetCount) backend.scale(this.group.grads, micro[i - 1].targetCount / b.targetCount);
        await model.backward(this.packedGradients ?? undefined);
      }
      const lastShare = micro[micro.length - 1].targetCount / totalTargets;
      if (lastShare !== 1) backend.scale(this.group.grads, lastShare);
      gradNorm = await this.optimizer.gradNorm();
      if (hp.maxGradNorm !== Infinity && Number.isFinite(lossSum / totalTargets) && Number.isFinite(gradNorm)) {
        this.optimizer.clip(gradNorm, hp.maxGradNorm);
      }
    } catch (err) {
      this.trainBatches.setPosition(position);
      model.setRngState(rngState);
      model.releaseScratch?.();
      throw err;
    }
    const trainLoss = lossSum / totalTargets;
    const finite = Number.isFinite(trainLoss) && Number.isFinite(gradNorm);
    if (finite) {
      try {
        this.optimizer.update(learningRate);
      } catch (err) {
        // the update writes parameters and moments entry by entry: there is no going back from part-way
        this.brokenBy = err instanceof Error ? err.message : String(err);
        throw err;
      }
    }
    // on asynchronous backends (webgpu) the update is only enqueued here: its time lands in the next step's
    this.completedSteps = step;
    const ms = now() - startMs;
    this.elapsedMs += ms;
    this.lastGradNorm = gradNorm;
    this.lastLearningRate = learningRate;
    if (!finite && this.nonFinite === 'error') throw new NonFiniteError(step, trainLoss, gradNorm);

    const p = this.pending;
    p.ms += ms;
    p.tokens += totalTargets;
    if (finite) {
      p.lossSum += trainLoss;
      p.steps++;
    } else p.skipped++;
    if (step % this.logInterval === 0) this.flushHistory();

    const metrics: StepMetrics = {
      step,
      trainLoss,
      learningRate,
      gradNorm,
      skipped: !finite,
      tokensPerSecond: ms > 0 ? (totalTargets * 1000) / ms : 0,
      elapsedMs: this.elapsedMs,
    };
    return metrics;
  }

  /**
   * Validation loss over evalBatches batches (or the whole validation set), in order, dropout off.
   * Recorded in the history entry of the current step and kept as the best when lower.
   */
  async evaluate(): Promise<EvalMetrics> {
    if (!this.valRows) throw new Error('evaluate: no validation data (pass valData or valSequences)');
    const metrics = await this.holding(() => this.measure());
    this.plan.onEval?.(metrics);
    return metrics;
  }

  private async measure(): Promise<EvalMetrics> {
    const valRows = this.valRows!;
    const startMs = now();
    let lossSum = 0;
    let targets = 0;
    for (const b of orderedBatches(valRows, this.hyperparams.batchSize, this.evalBatches)) {
      const { loss } = await this.model.forward(b.inputs, b.targets, b.batchSize, { training: false });
      lossSum += (loss ?? NaN) * b.targetCount;
      targets += b.targetCount;
    }
    this.elapsedMs += now() - startMs;
    const valLoss = lossSum / targets;
    const metrics: EvalMetrics = { step: this.completedSteps, valLoss, valPerplexity: Math.exp(valLoss) };
    if (Number.isFinite(valLoss) && (this.best === null || valLoss < this.best)) this.best = valLoss;
    if (this.completedSteps > 0) {
      if (this.history.at(-1)?.step !== this.completedSteps) this.flushHistory();
      const entry = this.history.at(-1);
      if (entry && entry.step === this.completedSteps) {
        entry.valLoss = valLoss;
        entry.valPerplexity = metrics.valPerplexity;
      }
    }
    return metrics;
  }

  /** Close the history entry being accumulated (no-op when no step ran since the last entry). */
  flushHistory(): void {
    const p = this.pending;
    if (p.steps + p.skipped === 0) return;
    const entry: HistoryEntry = {
      step: this.completedSteps,
      trainLoss: p.steps > 0 ? p.lossSum / p.steps : NaN,
      learningRate: this.lastLearningRate,
      gradNorm: this.lastGradNorm,
      tokensPerSecond: p.ms > 0 ? (p.tokens * 1000) / p.ms : 0,
      elapsedMs: this.elapsedMs,
    };
    if (p.skipped > 0) entry.skippedSteps = p.skipped;
    this.history.push(entry);
    this.pending = { lossSum: 0, steps: 0, skipped: 0, tokens: 0, ms: 0 };
  }

  /** Checkpoint bytes: parameters, moments, every RNG state, data position, config, tokenizer, history. */
  async checkpoint(): Promise<Uint8Array> {
    // a LoRA run's checkpoint holds the model (frozen) and the adapter, whose names differ
    const params = { ...(await this.model.getParameters()), ...(this.adapter ? await this.adapter.getParameters() : {}) };
    const { m, v } = await this.optimizer.getMoments();
    const state: TrainerState & { pendingLog: PendingLog } = {
      step: this.completedSteps,
      optimizerUpdates: this.optimizer.updates,
      dataPosition: this.trainBatches.getPosition(),
      dataFingerprint: this.trainBatches.source.fingerprint(),
      modelRng: this.model.getRngState(),
      hyperparams: { ...this.hyperparams },
      bestValLoss: this.best,
      elapsedMs: this.elapsedMs,
      history: this.history,
      pendingLog: this.pending,
    };
    const shapes: Record<string, number[]> = {};
    for (const e of [...this.model.paramLayout, ...(this.adapter?.entries ?? [])]) shapes[e.name] = e.shape;
    return encodeCheckpoint({ config: this.model.config, tokenizer: this.tokenizer, state, params, m, v }, shapes);
  }

  /**
   * An upper bound on the bytes of any checkpoint this run writes from now on: this step's, plus
   * a bound on each history entry still to come (at most one per log interval, one per
   * evaluation and the last) and room for every number of the state to reach its longest form.
   */
  async checkpointBytesBound(): Promise<number> {
    const now = (await this.checkpoint()).length;
    const remaining = this.totalSteps - this.completedSteps;
    const evaluations = this.hasValidation && this.evalInterval > 0 ? Math.ceil(remaining / this.evalInterval) : 0;
    const entries = Math.min(remaining + 1, Math.ceil(remaining / this.logInterval) + evaluations + 1);
    // the header is padded to 8 bytes
    return now + entries * HISTORY_ENTRY_MAX_CHARS + STATE_GROWTH_MAX_CHARS + 8;
  }

  /** Free the optimizer moments and the gradient memory the run made (the model stays). */
  dispose(): void {
    this.optimizer.dispose();
    this.releaseGradients();
  }

  private async restore(saved: CheckpointContents): Promise<void> {
    const state = saved.state as TrainerState & { pendingLog?: PendingLog };
    // moments first: both calls check everything before writing, so a damaged file leaves the model as it was
    this.optimizer.setMoments(saved.m, saved.v);
    if (this.adapter !== null) {
      const adapterNames = new Set(this.adapter.entries.map((e) => e.name));
      const own: Record<string, Float32Array> = {};
      const adapted: Record<string, Float32Array> = {};
      for (const [name, data] of Object.entries(saved.params)) (adapterNames.has(name) ? adapted : own)[name] = data;
      if (Object.keys(adapted).length === 0) {
        throw new RangeError(
          'resumeFrom: the checkpoint holds no LoRA adapter, but one is attached to the model; detach it to resume a full run',
        );
      }
      this.adapter.setParameters(adapted);
      await this.model.setParameters(own);
    } else await this.model.setParameters(saved.params);
    this.optimizer.updates = state.optimizerUpdates;
    this.model.setRngState(state.modelRng);
    this.trainBatches.setPosition(state.dataPosition);
    this.completedSteps = state.step;
    this.best = state.bestValLoss;
    this.elapsedMs = state.elapsedMs;
    this.history.push(...state.history);
    if (state.pendingLog) this.pending = { ...state.pendingLog };
  }
}

/** Train `model` in place; see TrainOptions. Resolves when the steps are done or the signal aborted. */
export async function train(model: GPTModel, options: TrainOptions): Promise<TrainResult> {
  checkModel(model);
  checkNotDisposed(model, 'train');
  checkTrainOptionNames(options);
  if (modelHolders.has(model)) throw new ModelBusyError();
  const lease = {};
  modelHolders.set(model, lease);
  try {
    return await trainHolding(model, options, lease);
  } finally {
    modelHolders.delete(model);
  }
}

async function trainHolding(model: GPTModel, options: TrainOptions, lease: object): Promise<TrainResult> {
  let trainer: Trainer | null = await Trainer.open(model, options, lease);
  const plan = trainer.plan;
  const writeFile = plan.checkpointPath !== undefined ? writeFileAtomicInNode : null;
  const saving = plan.onCheckpoint !== undefined || writeFile !== null;
  let watch = new DeviceLossWatch(model.backend);
  /** the state to go on from after a device loss: kept only where that is asked for and can happen */
  let snapshot: Uint8Array | null = null;
  const guarding = () => trainer!.onDeviceLost === 'wasm' && watch.canLose;
  let lastSaved = -1;
  const save = async (): Promise<void> => {
    const bytes = await trainer!.checkpoint();
    if (guarding()) snapshot = bytes;
    await plan.onCheckpoint?.(bytes, trainer!.stepsDone);
    if (writeFile) await writeFile(plan.checkpointPath!, bytes);
    lastSaved = trainer!.stepsDone;
  };

  // a checkpoint file that cannot fit is refused before the first step, not after a long run
  if (writeFile) {
    await checkFreeSpaceInNode(
      'train: options.checkpointPath',
      plan.checkpointPath!,
      await trainer.checkpointBytesBound(),
      'a checkpoint of this run',
    );
  }

  const turns = new EventLoopTurns();
  const runToEnd = async (t: Trainer): Promise<TrainResult['stopped']> => {
    if (guarding() && snapshot === null) snapshot = await t.checkpoint();
    while (t.stepsDone < t.totalSteps) {
      // a Stop button or an abort lands between steps (see EventLoopTurns)
      await turns.turn();
      if (plan.signal?.aborted) return 'aborted';
      await t.step();
      const step = t.stepsDone;
      const last = step === t.totalSteps;
      if (t.hasValidation && ((t.evalInterval > 0 && step % t.evalInterval === 0) || last)) {
        await t.evaluate();
      }
      if (saving && t.checkpointInterval > 0 && step % t.checkpointInterval === 0) await save();
      if (guarding() && step % t.deviceLossSnapshotInterval === 0 && lastSaved !== step) snapshot = await t.checkpoint();
    }
    return 'completed';
  };

  const continueOnWasm = async (lost: Error, state: Uint8Array): Promise<void> => {
    const from = model.backendName;
    await model.moveToBackend('wasm', decodeCheckpoint(state).params);
    // its buffers went with the old backend
    trainer = null;
    watch = new DeviceLossWatch(model.backend);
    trainer = await Trainer.open(model, { ...options, resumeFrom: state }, lease);
    const reason = DeviceLossWatch.reason(lost);
    const change: BackendChange = { from, to: model.backendName, reason, resumedFromStep: trainer.stepsDone, checkpoint: state };
    if (plan.onBackendChange) plan.onBackendChange(change);
    else
      console.warn(
        `[tinygpt] ${reason}; training goes on on the ${change.to} backend from step ${change.resumedFromStep} (onDeviceLost: 'wasm')`,
      );
  };

  let stopped: TrainResult['stopped'];
  try {
    for (;;) {
      try {
        stopped = await runToEnd(trainer);
        trainer.flushHistory();
        if (saving && lastSaved !== trainer.stepsDone && trainer.stepsDone > 0) await save();
        break;
      } catch (err) {
        if (snapshot === null || !(await watch.explains(err))) throw err;
        await continueOnWasm(err as Error, snapshot);
        snapshot = null;
      }
    }
  } finally {
    trainer?.dispose();
  }
  const history = trainer.history;
  return {
    finalTrainLoss: history.length > 0 ? history[history.length - 1].trainLoss : NaN,
    bestValLoss: trainer.bestValLoss,
    history,
    steps: trainer.stepsDone,
    stopped,
  };
}

/**
 * The longest JSON of one history entry: its nine fields' names with their quotes (107 characters),
 * colons, commas and braces (20), and nine values of at most 24 characters each (the longest
 * shortest form of a double, as -1.2345678901234567e-308; a non-finite one is a quoted string of
 * at most 11): 343, rounded up.
 */
const HISTORY_ENTRY_MAX_CHARS = 360;
/**
 * What the rest of the trainer state can grow by as a run goes on: bestValLoss from null to a number,
 * and step, optimizerUpdates, elapsedMs, the data position, the dropout counter and the pending
 * log's five numbers each to the longest form of a double: 16 values x 24 characters, rounded up.
 */
const STATE_GROWTH_MAX_CHARS = 400;

/** the claim on each model being trained: train()'s lease for its whole run, or one Trainer call's */
const modelHolders = new WeakMap<GPTModel, object>();

/** A second train() or Trainer call on a model that is already training. */
export class ModelBusyError extends Error {
  override name = 'ModelBusyError';
  constructor() {
    super(
      'model: this model is already training (a train() call or a Trainer step, evaluation or resume has not finished); ' +
        'one model trains one run at a time: await the first, or train another model',
    );
  }
}

function checkModel(model: unknown): asserts model is GPTModel {
  const m = model as GPTModel | null;
  if (m === null || typeof m !== 'object' || typeof m.forward !== 'function' || typeof m.config !== 'object') {
    throw new TypeError(`model must be a GPT model (from createModel or loadModel), got ${describe(m)}`);
  }
}

/**
 * Refuse, before anything is allocated, a batch whose step cannot fit: activations and scratch for
 * batchSize x seqLen positions, the head's gradient and the AdamW moments, against what the
 * backend has left.
 */
function checkStepFits(model: GPTModel, plan: TrainingPlan): void {
  const { batchSize, seqLen } = plan.hyperparams;
  const rows = batchSize * seqLen;
  const moments = AdamW.momentBytes(plan.trainable);
  // a frozen fine-tune computes (and holds) the trained entries' gradients alone
  const frozen = model.lora == null && plan.trainable.length < model.paramLayout.length;
  const step = model.stepBytes?.(rows, seqLen, frozen ? plan.trainable : undefined) ?? 0;
  const { limitBytes, bound } = capacityOf(model.backend);
  const inUse = model.backend.bytesInUse();
  const room = limitBytes - inUse;
  if (step + moments > room) {
    throw new MemoryLimitError(
      `batchSize = ${batchSize} (x seqLen ${seqLen}) needs ${formatBytes(step + moments)} for one step's activations and the optimizer state, ` +
        `but the ${model.backend.name} backend has room for ${formatBytes(Math.max(0, room))} (of ${bound}): lower batchSize or seqLen (gradientAccumulationSteps keeps the effective batch)`,
      { requestedBytes: step + moments, bytesInUse: inUse, limitBytes },
    );
  }
}

const CONFIG_FIELDS: (keyof GPTConfig)[] = ['vocabSize', 'maxSeqLen', 'dModel', 'nLayers', 'nHeads', 'dFF', 'dropout', 'seed'];

function checkSameConfig(saved: GPTConfig, model: GPTConfig): void {
  for (const field of CONFIG_FIELDS) {
    if (saved?.[field] !== model[field]) {
      throw new RangeError(
        `resumeFrom: the checkpoint's config.${field} = ${saved?.[field]} but the model has ${model[field]}; create the model from the checkpoint's config`,
      );
    }
  }
}

/**
 * Node's atomic write (temporary file, fsync, rename), imported only when a checkpointPath is given
 * so browser and edge bundles never pull node:fs.
 */
function now(): number {
  return globalThis.performance?.now() ?? Date.now();
}
