/**
 * GPT: the model object that owns its parameters, gradients and scratch on one backend, with
 * forward/backward for training, cached forward for generation, moves between backends and
 * disposal. It runs past 700 lines because it is one class whose private state (parameter views,
 * the tied head's transposed copy, workspaces, the last forward kept for backward, the LoRA
 * adapter) every method shares; the work itself lives beside it: the block (block.ts), cached
 * inference (cached.ts), buffers (workspace.ts, kv-cache.ts), argument checks (checks.ts),
 * capacity (capacity.ts) and createModel (create.ts).
 */
import type { Backend, BackendName, Tensor } from '../backend/contract.js';
import { dropoutHash, IGNORE_INDEX } from '../backend/contract.js';
import { allOrNothing, bytesAllocatedBy } from '../backend/all-or-nothing.js';
import { DeviceLostError, MemoryLimitError } from '../backend/errors.js';
import { samplingArgs } from '../backend/checks.js';
import { capacityOf, formatBytes } from '../backend/capacity.js';
import { createBackend, type SelectOptions } from '../backend/select.js';
import { initParameters, packedOffsets, type ParamLayout } from './params.js';
import { estimateTrainingBytes, largestParameter } from './capacity.js';
import { generate } from '../generate/generate.js';
import type { GenerateOptions, GenerateResult, GenerateSequences, Prompt } from '../generate/options.js';
import { DISPOSE, DisposedError } from '../util/dispose.js';
import type { ForwardOptions, ForwardResult, GPTConfig, GPTModel, KVCache, ParamEntry, ParameterGroup, TokenChoice } from './types.js';
import { blockBackward, blockForward, type BlockStep } from './block.js';
import { cachedForward } from './cached.js';
import { checkAdapterFits, checkCacheArgument, checkCachedArgs, checkForwardArgs } from './checks.js';
import type { LoRAAdapter, LoRAPass } from './lora.js';
import { allocKVCache, disposableKVCache, freeKVCacheTensors, reorderKVCacheRows } from './kv-cache.js';
import {
  allocWorkspace,
  freeInference,
  freeWorkspace,
  inferenceFor,
  trainingBlockActivations,
  type InferenceWorkspace,
  type Workspace,
} from './workspace.js';
import { describe, fail } from '../util/describe.js';

/**
 * The parameters lived on the lost device, so the only ways on are host copies: say which. The
 * original error stays as the cause, and its message leads.
 */
function explainDeviceLoss(err: unknown): unknown {
  if (!(err instanceof DeviceLostError)) return err;
  return new DeviceLostError(
    `${err.message}. The model's parameters were on that device: load the last saved model file or checkpoint on another backend ` +
      `(loadModel(file, { backend: 'wasm' }), or train with resumeFrom), or train with onDeviceLost: 'wasm' to go on by itself`,
    { cause: err },
  );
}

interface LastForward {
  B: number;
  T: number;
  targetCount: number;
  training: boolean;
  dropoutStep: number;
  /** how the adapter ran (null: none attached) */
  lora: LoRAPass | null;
}

/** What one backward computes (see GPT.gradientPlan). */
interface GradientPlan {
  /** a parameter's gradient view, or null when it is frozen */
  grad: (name: string) => Tensor | null;
  /** the lowest block backward goes through (nLayers: none) */
  firstLayer: number;
  /** whether wte or wpe trains, so backward goes on to the embedding */
  embeddings: boolean;
}

/** How a model creates a backend by name when it moves (see GPT.moveToBackend). */
export type BackendCreationOptions = Pick<SelectOptions, 'wasmThreads' | 'wasmAssets' | 'onNotice' | 'memoryLimit'>;

/** each GPT's backend creation options, for the backends made for it later (moveToBackend, quantizeModel) */
const creationOptionsByModel = new WeakMap<GPTModel, BackendCreationOptions>();

/** the options `model`'s backend was created with, when it is a GPT (else none) */
export function creationOptionsOf(model: GPTModel): BackendCreationOptions {
  return creationOptionsByModel.get(model) ?? {};
}

export class GPT implements GPTModel {
  readonly paramLayout: readonly ParamEntry[];
  private currentBackend: Backend;
  private paramsTensor: Tensor;
  /**
   * the parameters' gradients, made on first use (a model that only generates never holds them);
   * freed while an adapter is attached and by a frozen fine-tune (releaseGradients), made again on use
   */
  private gradsTensor: Tensor | null = null;
  /** the attached LoRA adapter: while there is one, backward computes its gradients and none of the model's own */
  private adapter: LoRAAdapter | null = null;
  private readonly byName: Map<string, ParamEntry>;
  private readonly layoutInfo: ParamLayout;
  /** the backend each KV cache was made on: a cache made before a move must not reach the new backend */
  private readonly cacheBackends = new WeakMap<KVCache, Backend>();
  /** wte transposed [C,V] for the tied LM head, refreshed at each forward that needs it */
  private wteT: Tensor;
  /** gradient of wteT [C,V], transposed back into wte's gradient */
  private dwteT: Tensor | null = null;
  /** whether wteT holds the current wte (backward borrows it as scratch) */
  private wteTFresh = false;
  private workspace: Workspace | null = null;
  private inference: InferenceWorkspace | null = null;
  private last: LastForward | null = null;
  private dropoutStep = 0;
  private disposed = false;

  constructor(
    readonly config: GPTConfig,
    layout: ParamLayout,
    backend: Backend,
    initial: Float32Array = initParameters(config, layout),
    creationOptions: BackendCreationOptions = {},
  ) {
    this.layoutInfo = layout;
    this.paramLayout = layout.entries;
    this.byName = new Map(layout.entries.map((e) => [e.name, e]));
    creationOptionsByModel.set(this, creationOptions);
    this.currentBackend = backend;
    // a backend that must store them in several buffers cuts only between parameters
    const parameterStarts = layout.entries.map((entry) => entry.offset);
    // both or neither: a backend that refuses one (its memoryLimit) keeps none
    [this.paramsTensor, this.wteT] = allOrNothing(backend, (allocator) => [
      allocator.alloc(layout.totalLength, 'f32', parameterStarts),
      allocator.alloc(config.vocabSize * config.dModel, 'f32', config.vocabSize),
    ]);
    backend.upload(this.paramsTensor, initial);
  }

  get backend(): Backend {
    return this.currentBackend;
  }

  get backendName(): BackendName {
    return this.currentBackend.name;
  }

  get params(): Tensor {
    return this.paramsTensor;
  }

  get grads(): Tensor {
    this.gradsTensor ??= this.backend.alloc(
      this.layoutInfo.totalLength,
      'f32',
      this.layoutInfo.entries.map((entry) => entry.offset),
    );
    return this.gradsTensor;
  }

  get holdsGradients(): boolean {
    return this.gradsTensor !== null;
  }

  releaseGradients(): void {
    this.checkAlive('releaseGradients');
    if (this.gradsTensor !== null) this.backend.free(this.gradsTensor);
    this.gradsTensor = null;
  }

  /** the attached LoRA adapter (addLoRA, loadAdapter), or null */
  get lora(): LoRAAdapter | null {
    return this.adapter;
  }

  /**
   * Attach an adapter made for this model (addLoRA, loadAdapter) in place of the current one, or
   * detach with null. Adapters stay intact when detached, so several share one base model.
   */
  setAdapter(adapter: LoRAAdapter | null): void {
    this.checkAlive('setAdapter');
    if (adapter !== null) checkAdapterFits('setAdapter', adapter, this.backend, this.config);
    this.adapter = adapter;
    // a backward must follow a forward with the same adapter
    this.last = null;
    if (adapter !== null && this.gradsTensor !== null) {
      // the model's own gradients are not computed while it is frozen under an adapter
      this.backend.free(this.gradsTensor);
      this.gradsTensor = null;
    }
  }

  /** @internal a weight tensor by name (mergeAdapter adds to it) */
  weightTensor(name: string): Tensor {
    this.checkAlive('weightTensor');
    return this.p(name);
  }

  numParameters(): number {
    return this.layoutInfo.numParameters;
  }

  /** release everything the model holds on its backend (the backend too); `using` calls it */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.dispose();
  }

  [DISPOSE](): void {
    this.dispose();
  }

  /** whether dispose() ran: every call but dispose then throws DisposedError */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * `generate(model, prompt, options)` as a method, with the same overloads and defaults: greedy
   * unless `doSample: true`.
   */
  generate(prompt: Prompt, options?: GenerateOptions & { numReturnSequences?: 1 }): Promise<GenerateResult>;
  generate(prompt: Prompt, options?: GenerateOptions): Promise<GenerateResult | GenerateSequences>;
  generate(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerateResult | GenerateSequences> {
    return generate(this, prompt, options);
  }

  // ---------------------------------------------------------------- parameters

  private p(name: string): Tensor {
    const e = this.byName.get(name);
    if (!e) throw new Error(`internal: no parameter named ${name}`);
    return this.backend.view(this.params, e.offset, e.length);
  }

  private g(name: string): Tensor {
    const e = this.byName.get(name)!;
    return this.backend.view(this.grads, e.offset, e.length);
  }

  async getParameters(): Promise<Record<string, Float32Array>> {
    this.checkAlive('getParameters');
    return this.splitFlat(await this.read(this.params));
  }

  async getGradients(): Promise<Record<string, Float32Array>> {
    this.checkAlive('getGradients');
    return this.splitFlat(await this.read(this.grads));
  }

  /** a host copy of f32 tensor `t`; a lost GPU device's error says how to go on */
  private async read(t: Tensor): Promise<Float32Array> {
    try {
      return (await this.backend.download(t)) as Float32Array;
    } catch (err) {
      throw explainDeviceLoss(err);
    }
  }

  private splitFlat(flat: Float32Array | Int32Array): Record<string, Float32Array> {
    const out: Record<string, Float32Array> = {};
    for (const e of this.paramLayout) out[e.name] = Float32Array.from(flat.subarray(e.offset, e.offset + e.length));
    return out;
  }

  async setParameters(record: Record<string, Float32Array>): Promise<void> {
    this.checkAlive('setParameters');
    const flat = this.flattenParameters('setParameters', record);
    this.backend.upload(this.params, flat);
    this.wteTFresh = false;
  }

  /** `record` checked against the layout (every name, no other, each with its length) as one flat buffer */
  private flattenParameters(caller: string, record: Record<string, Float32Array>): Float32Array {
    if (record === null || typeof record !== 'object') throw new TypeError(`${caller}: expected a record of name -> Float32Array`);
    const missing = this.paramLayout.filter((e) => !(e.name in record)).map((e) => e.name);
    if (missing.length)
      throw new RangeError(
        `${caller}: missing ${missing.length} parameter(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`,
      );
    const unknown = Object.keys(record).filter((k) => !this.byName.has(k));
    if (unknown.length) throw new RangeError(`${caller}: unknown parameter name(s): ${unknown.slice(0, 8).join(', ')}`);
    const flat = new Float32Array(this.layoutInfo.totalLength);
    for (const e of this.paramLayout) {
      const data = record[e.name];
      if (!(data instanceof Float32Array) && !Array.isArray(data)) {
        throw new TypeError(`${caller}: ${e.name} must be a Float32Array`);
      }
      if (data.length !== e.length) {
        throw new RangeError(`${caller}: ${e.name} has ${data.length} elements, expected ${e.length} (shape [${e.shape.join(', ')}])`);
      }
      // a string or NaN would become NaN in float32 and make a model file loadModel refuses
      for (let i = 0; i < data.length; i++) {
        const x: unknown = data[i];
        if (typeof x !== 'number' || !Number.isFinite(x)) {
          fail(`${caller}: ${e.name}[${i}]`, 'a finite number', x);
        }
      }
      flat.set(data, e.offset);
    }
    return flat;
  }

  /**
   * Go on from a host copy of the parameters on another backend, e.g. after the current backend's
   * GPU device was lost. `target` is a backend instance, or a name, created with the options this
   * model was created with (wasmThreads, wasmAssets, onBackendNotice). The old backend is disposed; gradients
   * are zero, workspaces are made again on first use, and KV caches made before the move are
   * invalid. The dropout counter (getRngState) carries over.
   */
  async moveToBackend(target: BackendName | Backend, parameters: Record<string, Float32Array>): Promise<void> {
    this.checkAlive('moveToBackend');
    const flat = this.flattenParameters('moveToBackend', parameters);
    if (this.adapter !== null) {
      throw new Error('moveToBackend: a LoRA adapter is attached; save it (saveAdapter), detach it, move, and load it again');
    }
    if (target === this.currentBackend) throw new Error('moveToBackend: the model is already on this backend instance');
    if (
      typeof target === 'string' ? !(['js', 'wasm', 'webgpu'] as unknown[]).includes(target) : target === null || typeof target !== 'object'
    ) {
      throw new RangeError(`moveToBackend: target must be 'js', 'wasm', 'webgpu' or a Backend instance, got ${describe(target)}`);
    }
    const backend =
      typeof target === 'string'
        ? await createBackend(target, {
            ...creationOptionsOf(this),
            // the bound in force now (setMemoryLimit may have changed it since creation)
            memoryLimit: this.currentBackend.memoryLimit ?? creationOptionsOf(this).memoryLimit,
            requiredBytes: estimateTrainingBytes(this.config, this.layoutInfo),
            largestTensorLength: largestParameter(this.layoutInfo),
          })
        : target;
    let params: Tensor, wteT: Tensor;
    try {
      params = backend.alloc(
        this.layoutInfo.totalLength,
        'f32',
        this.layoutInfo.entries.map((entry) => entry.offset),
      );
      backend.upload(params, flat);
      wteT = backend.alloc(this.config.vocabSize * this.config.dModel, 'f32', this.config.vocabSize);
    } catch (err) {
      // the model stays where it was; a backend made here for the move goes
      if (typeof target === 'string') backend.dispose();
      throw err;
    }
    const old = this.currentBackend;
    this.currentBackend = backend;
    this.paramsTensor = params;
    // made again, zeroed, on first use
    this.gradsTensor = null;
    this.wteT = wteT;
    this.wteTFresh = false;
    this.dwteT = null;
    this.workspace = null;
    this.inference = null;
    this.last = null;
    // everything the model held on the old backend dies with it
    old.dispose();
  }

  /** zero the gradients backward writes: the adapter's while one is attached, else the model's */
  async zeroGrad(): Promise<void> {
    this.checkAlive('zeroGrad');
    if (this.adapter !== null) this.adapter.zeroGrad();
    else this.backend.zero(this.grads);
  }

  getRngState(): { dropoutStep: number } {
    return { dropoutStep: this.dropoutStep };
  }

  setRngState(state: { dropoutStep: number }): void {
    if (!Number.isInteger(state?.dropoutStep) || state.dropoutStep < 0) {
      throw new RangeError(`setRngState: dropoutStep must be a non-negative integer, got ${state?.dropoutStep}`);
    }
    this.dropoutStep = state.dropoutStep;
  }

  // ---------------------------------------------------------------- training forward / backward

  /** `method` on a disposed model: its backend and everything on it are gone */
  private checkAlive(method: string): void {
    if (this.disposed) throw new DisposedError(`${method}: this model was disposed`);
  }

  /**
   * Bytes a training step on `rows` = B*T positions of length `seqLen` allocates that the model
   * does not hold yet, so a caller can refuse a batch before anything is allocated: activations and
   * gradient scratch, and the gradients backward computes (every parameter's, or `trained`'s alone
   * packed as allocGradientGroup packs them; the head's gradient when wte trains).
   */
  stepBytes(rows: number, seqLen: number, trained?: readonly ParamEntry[]): number {
    const forward = this.forwardBytes(rows, seqLen);
    if (this.adapter !== null) return forward;
    if (trained === undefined) return forward + this.backwardBytes(undefined);
    const wte = trained.some((entry) => entry.name === 'wte.weight');
    return forward + packedOffsets(trained).length * 4 + (wte && !this.dwteT ? this.headGradientBytes() : 0);
  }

  /** what a forward over `rows` positions of length `seqLen` allocates: activations, and the adapter's when one is attached */
  private forwardBytes(rows: number, seqLen: number): number {
    const ws = this.workspace;
    const reused = ws !== null && ws.capacity >= rows && ws.seqLen === seqLen;
    const workspace = reused ? 0 : bytesAllocatedBy((allocator) => allocWorkspace(allocator, this.config, rows, seqLen));
    const held =
      ws !== null && !reused ? bytesAllocatedBy((allocator) => allocWorkspace(allocator, this.config, ws.capacity, ws.seqLen)) : 0;
    return Math.max(0, workspace - held) + (this.adapter !== null ? this.adapter.trainingBytes(rows) : 0);
  }

  private headGradientBytes(): number {
    return this.config.vocabSize * this.config.dModel * 4;
  }

  /** what a backward into `into` (undefined: the model's own gradients) allocates that the model does not hold */
  private backwardBytes(into: ParameterGroup | undefined): number {
    if (this.adapter !== null) return 0;
    const head = !this.dwteT && (into === undefined || into.entries.some((entry) => entry.name === 'wte.weight'));
    return (head ? this.headGradientBytes() : 0) + (into === undefined && !this.gradsTensor ? this.layoutInfo.totalLength * 4 : 0);
  }

  /** refuse, naming `field` and its `value`, an allocation of `bytes` the backend has no room for */
  private checkRoom(field: string, value: number | string, bytes: number): void {
    const { limitBytes, bound } = capacityOf(this.backend);
    const inUse = this.backend.bytesInUse();
    const room = limitBytes - inUse;
    if (bytes > room) {
      throw new MemoryLimitError(
        `${field} = ${value} needs ${formatBytes(bytes)} more, but the ${this.backend.name} backend has room for ${formatBytes(Math.max(0, room))} (of ${bound})`,
        { requestedBytes: bytes, bytesInUse: inUse, limitBytes },
      );
    }
  }

  private ensureWorkspace(rows: number, seqLen: number): Workspace {
    if (this.workspace && this.workspace.capacity >= rows && this.workspace.seqLen === seqLen) return this.workspace;
    this.freeWorkspace();
    // on failure nothing stays allocated and workspace stays null: the next call starts over
    this.workspace = allOrNothing(this.backend, (allocator) => allocWorkspace(allocator, this.config, rows, seqLen));
    return this.workspace;
  }

  private freeWorkspace(): void {
    if (this.workspace) freeWorkspace(this.backend, this.workspace);
    this.workspace = null;
  }

  /** seed of the dropout mask at one site (layer, position in the block) of one training forward */
  private dropoutSeed(step: number, site: number): number {
    return dropoutHash(dropoutHash(this.config.seed, step), site);
  }

  async forward(inputs: Int32Array, targets: Int32Array | null, batchSize: number, options: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkAlive('forward');
    if (options === null || typeof options !== 'object')
      throw new TypeError('forward: options must be an object ({ training?, returnLogits? })');
    const B = batchSize;
    const T = checkForwardArgs(this.config, inputs, targets, batchSize);

    const training = options.training === true && this.config.dropout > 0;
    const step = this.dropoutStep;
    const adapter = this.adapter;
    const lora: LoRAPass | null =
      adapter === null
        ? null
        : {
            saveForBackward: targets !== null,
            seed: options.training === true && adapter.config.dropout > 0 ? (site) => this.dropoutSeed(step, site) : undefined,
          };
    const N = B * T;
    // backward checks the gradients it allocates itself: which ones depends on what it is asked for
    this.checkRoom('forward: batchSize * T', N, this.forwardBytes(N, T));
    // a forward that fails part-way leaves no stale forward for backward to use
    this.last = null;
    const ws = this.ensureWorkspace(N, T);
    try {
      const result = await this.runForward(ws, inputs, targets, B, T, training, step, lora, options.returnLogits === true);
      // the dropout counter moves only when a training forward completed, so a failed one can be retried as it was
      if (options.training === true) this.dropoutStep = step + 1;
      return result;
    } catch (err) {
      this.releaseScratch();
      throw err;
    }
  }

  /**
   * Let go of the training and inference scratch (made again on the next call). An op that throws
   * (a kernel fault, a lost device, a full arena) part-way through a forward, backward or cached
   * step leads here: the parameters are as they were, the model holds its parameters, gradients and
   * head copy only, and no half-computed forward remains for backward to use.
   */
  releaseScratch(): void {
    this.last = null;
    this.wteTFresh = false;
    try {
      this.freeWorkspace();
      if (this.inference) freeInference(this.backend, this.inference);
      if (this.dwteT) this.backend.free(this.dwteT);
    } catch {
      // a backend that is gone (a lost device) has freed everything already
    } finally {
      this.inference = null;
      this.dwteT = null;
      this.workspace = null;
    }
  }

  private async runForward(
    ws: Workspace,
    inputs: Int32Array,
    targets: Int32Array | null,
    B: number,
    T: number,
    training: boolean,
    step: number,
    lora: LoRAPass | null,
    returnLogits: boolean,
  ): Promise<ForwardResult> {
    const { vocabSize: V, dModel: C, nHeads: NH, nLayers: L, dFF: F, dropout: p } = this.config;
    const b = this.backend;
    const N = B * T;
    const rows = (t: Tensor, width: number) => b.view(t, 0, N * width);
    b.upload(b.view(ws.inputs, 0, N), inputs);

    // Each block reads its input from its own residual buffer, kept for backward; the embedding
    // writes the first, each block writes the next.
    let residual = rows(ws.layers[0].residual, C);
    b.encoderForward(residual, b.view(ws.inputs, 0, N), this.p('wte.weight'), this.p('wpe.weight'), B, T, C, 0);
    if (training) b.dropoutForward(residual, residual, N * C, p, this.dropoutSeed(step, 0));

    const dropout = training ? (t: Tensor, site: number) => b.dropoutForward(t, t, N * C, p, this.dropoutSeed(step, site)) : undefined;
    for (let l = 0; l < L; l++) {
      const acts = trainingBlockActivations(b, this.config, ws, l, N);
      blockForward(
        b,
        (name) => this.p(name),
        l,
        acts,
        { N, C, F },
        {
          attend: (qkv, atty) => b.attentionForward(atty, acts.lse, qkv, B, T, C, NH),
          dropout,
          linear: this.adaptedLinear(this.adapter, lora),
        },
      );
      residual = acts.output;
    }
    const lnf = rows(ws.lnf, C);
    b.layerNormForward(lnf, rows(ws.lnfMean, 1), rows(ws.lnfRstd, 1), residual, this.p('ln_f.weight'), this.p('ln_f.bias'), N, C);
    this.wteTFresh = false;
    b.transpose(this.wteT, this.p('wte.weight'), V, C);
    this.wteTFresh = true;
    const logits = rows(ws.logits, V);
    b.matmulForward(logits, lnf, this.wteT, null, N, C, V);

    const result: ForwardResult = { loss: null };
    if (returnLogits) result.logits = await this.read(logits);
    if (targets !== null) {
      let targetCount = 0;
      for (let i = 0; i < N; i++) if (targets[i] !== IGNORE_INDEX) targetCount++;
      const targetsT = b.view(ws.targets, 0, N);
      b.upload(targetsT, targets);
      b.crossEntropyForward(rows(ws.losses, 1), rows(ws.probs, V), logits, targetsT, N, V);
      const losses = await this.read(rows(ws.losses, 1));
      let sum = 0;
      for (let i = 0; i < N; i++) sum += losses[i];
      result.loss = targetCount > 0 ? sum / targetCount : NaN;
      this.last = { B, T, targetCount, training, dropoutStep: step, lora };
    } else {
      this.last = null;
    }
    return result;
  }

  async backward(into?: ParameterGroup): Promise<void> {
    this.checkAlive('backward');
    const views = into === undefined ? null : this.groupViews(into);
    const last = this.last;
    const ws = this.workspace;
    if (!last || !ws) throw new Error('backward: call forward with targets first');
    const plan = this.gradientPlan(views, last.lora);
    const bytes = this.backwardBytes(into);
    const room = this.backend.limits.maxTotalBytes - this.backend.bytesInUse();
    if (bytes > room) {
      throw new RangeError(
        `backward: the gradients need ${formatBytes(bytes)} more, but the ${this.backend.name} backend has room for ${formatBytes(Math.max(0, room))}` +
          ' (a frozen fine-tune holds only what trains: train with trainable / freeze, or addLoRA)',
      );
    }
    // one backward per forward, even when this one throws part-way (the gradients are then partial: zeroGrad)
    this.last = null;
    if (last.targetCount === 0) return; // every target ignored: the loss has no gradient
    // backward borrows wteT as scratch below
    this.wteTFresh = false;
    try {
      this.runBackward(ws, last, plan);
    } catch (err) {
      this.releaseScratch();
      throw err;
    }
  }

  /**
   * Which gradients a backward computes and where they go: every parameter's into the model's own
   * buffer (no group), only a group's entries (`views`) into its buffer, or none of the model's while an
   * adapter is attached (the adapter's own go through its hooks). A frozen parameter's gradient is
   * null: the ops skip its work, and the blocks below the lowest one that trains are not visited.
   */
  private gradientPlan(views: Map<string, Tensor> | null, lora: LoRAPass | null): GradientPlan {
    const L = this.config.nLayers;
    if (lora !== null) {
      if (views !== null) throw new RangeError('backward: into: with a LoRA adapter attached only the adapter trains; call backward()');
      return { grad: () => null, firstLayer: 0, embeddings: false };
    }
    if (views === null) return { grad: (name) => this.g(name), firstLayer: 0, embeddings: true };
    let firstLayer = L;
    for (const name of views.keys()) {
      const layer = /^h\.(\d+)\./.exec(name);
      if (layer) firstLayer = Math.min(firstLayer, Number(layer[1]));
    }
    const embeddings = views.has('wte.weight') || views.has('wpe.weight');
    // the embeddings' gradient comes from the bottom of the model: every block passes it on
    if (embeddings) firstLayer = 0;
    return { grad: (name) => views.get(name) ?? null, firstLayer, embeddings };
  }

  /** `into` checked against this model: its entries' gradient views by name */
  private groupViews(into: ParameterGroup): Map<string, Tensor> {
    const shape = '{ params: model.params, grads, entries from model.paramLayout, gradOffsets? }';
    if (into === null || typeof into !== 'object' || !Array.isArray(into.entries as unknown)) {
      throw new TypeError(`backward: into must be a parameter group of this model ${shape}, got ${describe(into)}`);
    }
    if (into.params !== this.params) throw new RangeError("backward: into.params must be this model's parameter buffer (model.params)");
    const entries: readonly (ParamEntry | null | undefined)[] = into.entries;
    const offsets = into.gradOffsets;
    if (offsets !== undefined && (!Array.isArray(offsets as unknown) || offsets.length !== entries.length)) {
      throw new RangeError(`backward: into.gradOffsets must hold one offset per entry (${entries.length})`);
    }
    const views = new Map<string, Tensor>();
    entries.forEach((entry, i) => {
      const own = typeof entry?.name === 'string' ? this.byName.get(entry.name) : undefined;
      if (own === undefined || own.offset !== entry!.offset || own.length !== entry!.length) {
        throw new RangeError(`backward: into.entries[${i}] is not a parameter of this model (entries come from model.paramLayout)`);
      }
      if (views.has(own.name)) throw new RangeError(`backward: into.entries[${i}] names ${own.name} a second time`);
      const offset = offsets?.[i] ?? own.offset;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + own.length > into.grads.length) {
        throw new RangeError(
          `backward: into.gradOffsets[${i}] = ${offset} puts ${own.name} outside into.grads (${into.grads.length} elements)`,
        );
      }
      views.set(own.name, this.backend.view(into.grads, offset, own.length));
    });
    return views;
  }

  private runBackward(ws: Workspace, last: LastForward, plan: GradientPlan): void {
    const { vocabSize: V, dModel: C, nHeads: NH, nLayers: L, dFF: F, dropout: p } = this.config;
    const { B, T, training, dropoutStep: step, lora } = last;
    const N = B * T;
    const b = this.backend;
    const rows = (t: Tensor, width: number) => b.view(t, 0, N * width);
    const { grad } = plan;
    const dwte = grad('wte.weight');

    // d(mean loss)/d(logits), written over the logits buffer, which backward no longer needs
    const dlogits = rows(ws.logits, V);
    b.zero(dlogits);
    b.crossEntropyBackward(dlogits, rows(ws.probs, V), b.view(ws.targets, 0, N), 1 / last.targetCount, N, V);

    const dlnf = rows(ws.dC, C);
    b.zero(dlnf);
    if (dwte === null) b.matmulBackward(dlnf, null, null, dlogits, rows(ws.lnf, C), this.wteT, N, C, V);
    else {
      if (!this.dwteT) this.dwteT = b.alloc(V * C, 'f32', V);
      b.zero(this.dwteT);
      b.matmulBackward(dlnf, this.dwteT, null, dlogits, rows(ws.lnf, C), this.wteT, N, C, V);
      // wteT is free until the next forward: use it to turn the head's gradient back into [V,C].
      b.transpose(this.wteT, this.dwteT, C, V);
      b.accumulate(dwte, this.wteT, V * C);
    }

    const dres = rows(ws.dres, C);
    b.zero(dres);
    const lastResidual = rows(ws.residualOut, C);
    b.layerNormBackward(
      dres,
      grad('ln_f.weight'),
      grad('ln_f.bias'),
      dlnf,
      lastResidual,
      this.p('ln_f.weight'),
      rows(ws.lnfMean, 1),
      rows(ws.lnfRstd, 1),
      N,
      C,
    );

    const dropoutGrad = (seed: number): Tensor => {
      if (!training) return dres;
      const d = rows(ws.dC2, C);
      b.zero(d);
      b.dropoutBackward(d, dres, N * C, p, seed);
      return d;
    };

    const scratch = { dres, dC: rows(ws.dC, C), dqkv: rows(ws.dqkv, 3 * C), dF: rows(ws.dF, F) };
    // below the lowest block that trains (and without trained embeddings) nothing needs a gradient
    for (let l = L - 1; l >= plan.firstLayer; l--) {
      blockBackward(
        b,
        (name) => this.p(name),
        grad,
        l,
        trainingBlockActivations(b, this.config, ws, l, N),
        scratch,
        { B, T, C, NH, F },
        (site) => dropoutGrad(this.dropoutSeed(step, site)),
        lora === null
          ? undefined
          : {
              linearBackward: (dinp, dout, inp, name, M, K, Nout) => this.linearBackward(dinp, dout, inp, name, M, K, Nout, lora),
              hiddenGradient: this.adapter!.hiddenGradient(N),
            },
      );
    }
    if (plan.embeddings) {
      const dencoded = dropoutGrad(this.dropoutSeed(step, 0));
      b.encoderBackward(dwte, grad('wpe.weight'), dencoded, b.view(ws.inputs, 0, N), B, T, C);
    }
  }

  /**
   * dinp[M,K] += the gradient through projection `name` (y = x W + b + the adapter's term) with the
   * model's W and b frozen under the adapter, which gets its own gradients.
   */
  private linearBackward(dinp: Tensor, dout: Tensor, inp: Tensor, name: string, M: number, K: number, N: number, lora: LoRAPass): void {
    this.backend.matmulBackward(dinp, null, null, dout, inp, this.p(name + '.weight'), M, K, N);
    this.adapter!.backwardAdd(dinp, dout, inp, name, M, lora);
  }

  /** blockForward's linear step with the adapter's low-rank term (undefined without an adapter) */
  private adaptedLinear(adapter: LoRAAdapter | null, pass: LoRAPass | null): BlockStep['linear'] {
    if (adapter === null || pass === null) return undefined;
    const b = this.backend;
    return (out, inp, name, M, K, N) => {
      b.matmulForward(out, inp, this.p(name + '.weight'), this.p(name + '.bias'), M, K, N);
      adapter.forwardAdd(out, inp, name, M, pass);
    };
  }

  // ---------------------------------------------------------------- cached inference

  createKVCache(batchSize: number, capacity = this.config.maxSeqLen): KVCache {
    this.checkAlive('createKVCache');
    this.checkRoom(
      'createKVCache: batchSize',
      `${batchSize} (x capacity ${capacity} positions)`,
      bytesAllocatedBy((allocator) => allocKVCache(allocator, this.config, batchSize, capacity)),
    );
    const tensors = allOrNothing(this.backend, (allocator) => allocKVCache(allocator, this.config, batchSize, capacity));
    const cache = disposableKVCache(tensors, (disposed) => this.releaseKVCache(disposed));
    this.cacheBackends.set(cache, this.backend);
    return cache;
  }

  /** @deprecated `cache.dispose()` (or `using cache = model.createKVCache(B)`); this alias goes in the next release */
  freeKVCache(cache: KVCache): void {
    checkCacheArgument('freeKVCache', cache);
    cache.dispose();
  }

  private releaseKVCache(cache: KVCache): void {
    const madeOn = this.cacheBackends.get(cache);
    // a cache from before a move lived on the old backend, which freed it when it was disposed
    if (madeOn === undefined || madeOn === this.backend) freeKVCacheTensors(this.backend, cache);
    this.cacheBackends.delete(cache);
    cache.layers.length = 0;
    cache.length = 0;
  }

  private checkCacheBackend(caller: string, cache: KVCache): void {
    const madeOn = this.cacheBackends.get(cache);
    if (madeOn !== undefined && madeOn !== this.backend) {
      throw new Error(
        `${caller}: this cache was made on the ${madeOn.name} backend before the model moved to ${this.backend.name}; create a new cache`,
      );
    }
  }

  private ensureInference(rows: number, B: number): InferenceWorkspace {
    const current = this.inference;
    // inferenceFor may free it: a failed allocation must not leave the freed tensors in use
    this.inference = null;
    this.inference = inferenceFor(this.backend, this.config, current, rows, B);
    return this.inference;
  }

  async forwardCached(cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array> {
    return this.forwardCachedWith(this.adapter, cache, ids, Tn);
  }

  /** @internal forwardCached with `adapter` in place of the attached one (withAdapter's generations) */
  async forwardCachedWith(adapter: LoRAAdapter | null, cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array> {
    return this.cachedStep('forwardCached', adapter, cache, ids, Tn, (logits) => this.read(logits));
  }

  async forwardCachedTokens(cache: KVCache, ids: Int32Array, Tn: number, choice: TokenChoice): Promise<Int32Array> {
    return this.forwardCachedTokensWith(this.adapter, cache, ids, Tn, choice);
  }

  /** @internal forwardCachedTokens with `adapter` in place of the attached one (withAdapter's generations) */
  async forwardCachedTokensWith(
    adapter: LoRAAdapter | null,
    cache: KVCache,
    ids: Int32Array,
    Tn: number,
    choice: TokenChoice,
  ): Promise<Int32Array> {
    samplingArgs('forwardCachedTokens', choice.sampling, choice.uniforms, cache.batchSize, this.config.vocabSize);
    return this.cachedStep('forwardCachedTokens', adapter, cache, ids, Tn, async (logits, ws) => {
      const B = cache.batchSize;
      // the step's input ids were consumed by its embedding: the chosen ids take their first B slots
      const chosen = this.backend.view(ws.ids, 0, B);
      this.backend.sampleTokens(chosen, logits, choice.uniforms, B, this.config.vocabSize, choice.sampling);
      try {
        return (await this.backend.download(chosen)) as Int32Array;
      } catch (err) {
        throw explainDeviceLoss(err);
      }
    });
  }

  /** one cached step recorded, then `finish` reads its logits [B, V] out (or what it makes of them) */
  private async cachedStep<T>(
    op: string,
    adapter: LoRAAdapter | null,
    cache: KVCache,
    ids: Int32Array,
    Tn: number,
    finish: (logits: Tensor, ws: InferenceWorkspace) => Promise<T>,
  ): Promise<T> {
    this.checkAlive(op);
    this.checkCacheBackend(op, cache);
    checkCachedArgs(this.config, cache, ids, Tn);
    const B = cache.batchSize;
    const ws = this.ensureInference(B * Tn, B);
    try {
      return await finish(this.recordCached(ws, cache, ids, Tn, adapter), ws);
    } catch (err) {
      // the cache keeps its length: positions past it that were written are written again next time
      this.releaseScratch();
      throw err;
    }
  }

  /** records the step through the head; the logits [B, V] of each row's last new position */
  private recordCached(ws: InferenceWorkspace, cache: KVCache, ids: Int32Array, Tn: number, adapter: LoRAAdapter | null): Tensor {
    const { vocabSize: V, dModel: C } = this.config;
    const B = cache.batchSize;
    const b = this.backend;
    const N = B * Tn;
    const rows = (t: Tensor, width: number) => b.view(t, 0, N * width);
    const idsT = b.view(ws.ids, 0, N);
    b.upload(idsT, ids);
    // A fresh cache starts a new generation: parameters may have changed since the last one.
    if (cache.length === 0 || !this.wteTFresh) {
      this.wteTFresh = false;
      b.transpose(this.wteT, this.p('wte.weight'), V, C);
      this.wteTFresh = true;
    }

    b.encoderForward(rows(ws.x, C), idsT, this.p('wte.weight'), this.p('wpe.weight'), B, Tn, C, cache.length);
    const { hidden } = cachedForward(b, this.config, cache, ws, Tn, (name) => this.p(name), {
      allRows: false,
      linear: this.adaptedLinear(adapter, { saveForBackward: false }),
    });
    const logits = b.view(ws.logits, 0, B * V);
    // the final LayerNorm rides in the head's product (one pass fewer per token)
    b.layerNormMatmulForward(logits, hidden, this.p('ln_f.weight'), this.p('ln_f.bias'), this.wteT, null, B, C, V);
    return logits;
  }

  reorderKVCache(cache: KVCache, sources: readonly number[]): void {
    checkCacheArgument('reorderKVCache', cache);
    this.checkCacheBackend('reorderKVCache', cache);
    reorderKVCacheRows(this.backend, this.config, cache, sources);
  }
}
