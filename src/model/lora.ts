/**
 * LoRA adapters (Hu et al., 2021): each chosen projection y = x W + b of the frozen model gains a
 * low-rank term, y = x W + b + (alpha / rank) * (dropout(x) A) B, with A [K, rank] and B [rank, N]
 * (K in, N out, as W [K, N] is stored). Only A and B train: they live in the adapter's own flat
 * parameter and gradient buffers, so a fine-tune holds the frozen weights plus the adapter, its
 * gradients and AdamW moments, and no gradient buffer for the model's own weights.
 *
 * Everything is built from the backend contract's ops (matmul, scale, residual add, dropout), so
 * every backend runs adapters without kernels of its own. Shapes: M rows (B*T), K in, N out, r rank.
 *
 * An adapter is made for one model's shape and backend; it can be attached (model.setAdapter),
 * detached and attached again, so several adapters share one base model, merged into the weights
 * (mergeAdapter), and saved and loaded as a small safetensors file of its own (saveAdapter,
 * loadAdapter).
 */
import { allOrNothing } from '../backend/all-or-nothing.js';
import type { Backend, Tensor } from '../backend/contract.js';
import { decodeSafetensors, encodeSafetensors, tensorToFloat32, type TensorInput } from '../io/safetensors.js';
import { describe } from '../util/describe.js';
import { checkOptionNames, type OptionNames } from '../util/arguments.js';
import { DISPOSE } from '../util/dispose.js';
import { Rng, RngStream } from '../util/rng.js';
import { checkAdapterFits } from './checks.js';
import type { GPTConfig, GPTModel, KVCache, ParamEntry, ParameterGroup, TokenChoice } from './types.js';

/** the projections an adapter can target, by their names inside a block (h.{l}.<target>.weight) */
export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;
export type LoRATarget = (typeof LORA_TARGETS)[number];

export interface LoRAOptions {
  /** the rank r of A [K, r] and B [r, N] (default 8) */
  rank?: number;
  /** the low-rank term is scaled by alpha / rank (default: alpha = rank, a scale of 1) */
  alpha?: number;
  /** dropout on the adapter's input while training, [0, 1) (default 0) */
  dropout?: number;
  /** which projections of every block get an adapter (default ['attn.c_attn'], as PEFT's GPT-2 default) */
  targets?: readonly LoRATarget[];
  /** seed of A's initialisation (default: the model's seed) */
  seed?: number;
}

/** LoRAOptions checked, defaults filled in: what a saved adapter records */
export interface LoRAConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoRATarget[];
  seed: number;
}

/** the base model's dimensions an adapter's shapes depend on */
type BaseShape = Pick<GPTConfig, 'dModel' | 'dFF' | 'nLayers'>;

export const ADAPTER_FORMAT = 'tinygpt-lora/1';

/** each adapter tensor starts on a 16-element boundary, as model parameters do */
const ALIGN = 16;

const LORA_OPTIONS: OptionNames<LoRAOptions> = { rank: true, alpha: true, dropout: true, targets: true, seed: true };

/** Check options against the model and fill in the defaults. */
export function resolveLoRAConfig(options: LoRAOptions, config: GPTConfig): LoRAConfig {
  if (options === null || typeof options !== 'object') throw new TypeError('addLoRA: options must be an object');
  checkOptionNames(options, LORA_OPTIONS, 'addLoRA');
  const rank = options.rank ?? 8;
  const maxRank = Math.min(config.dModel, config.dFF);
  if (!Number.isInteger(rank) || rank < 1 || rank > maxRank) {
    throw new RangeError(`addLoRA: rank must be an integer in [1, ${maxRank}] (the model's dModel and dFF bound it); got ${String(rank)}`);
  }
  const alpha = options.alpha ?? rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) {
    throw new RangeError(`addLoRA: alpha must be a finite number > 0; got ${String(alpha)}`);
  }
  const dropout = options.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new RangeError(`addLoRA: dropout must be in [0, 1); got ${String(dropout)}`);
  }
  const targetsInput: unknown = options.targets ?? ['attn.c_attn'];
  if (!Array.isArray(targetsInput) || targetsInput.length === 0) {
    throw new RangeError(`addLoRA: targets must be a non-empty array of ${LORA_TARGETS.map((t) => `'${t}'`).join(', ')}`);
  }
  for (const [i, target] of (targetsInput as unknown[]).entries()) {
    if (!LORA_TARGETS.includes(target as LoRATarget)) {
      throw new RangeError(
        `addLoRA: targets[${i}] must be one of ${LORA_TARGETS.map((t) => `'${t}'`).join(', ')}; got ${JSON.stringify(target)}`,
      );
    }
  }
  // in the blocks' order, each once
  const targets = LORA_TARGETS.filter((t) => (targetsInput as unknown[]).includes(t));
  const seed = options.seed ?? config.seed;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`addLoRA: seed must be an integer; got ${String(seed)}`);
  return { rank, alpha, dropout, targets, seed };
}

/** [in, out] of a target's weight */
function targetDims(target: LoRATarget, shape: BaseShape): [number, number] {
  const { dModel: C, dFF: F } = shape;
  if (target === 'attn.c_attn') return [C, 3 * C];
  if (target === 'mlp.c_fc') return [C, F];
  if (target === 'mlp.c_proj') return [F, C];
  return [C, C];
}

/** One adapted projection. */
interface Site {
  K: number;
  N: number;
  A: ParamEntry; // [K, r]
  B: ParamEntry; // [r, N]
  /** dropout site number, after the model's own (0 .. 2L) */
  dropoutSite: number;
  /** index of this site's saved activations in the training workspace */
  index: number;
}

/** Training scratch for `rows` rows: the scaled low-rank activations each site keeps for backward. */
interface TrainingScratch {
  rows: number;
  saved: Tensor[]; // per site [rows, r]: (alpha/r) dropout(x) A
  du: Tensor; // [rows, r]
  scratch: Tensor; // [rows, max(K, N)]: dropout(x), then the low-rank output
  dscratch: Tensor; // [rows, max K]: the gradient of dropout(x)
  dhidden: Tensor; // [rows, F]: the model's gradient at the MLP's GELU output (see hiddenGradient)
}

/** Inference scratch for `rows` rows. */
interface InferenceScratch {
  rows: number;
  u: Tensor; // [rows, r]
  scratch: Tensor; // [rows, max N]
}

/** How a forward applies the adapter: whether backward follows, dropout's seed per site while training. */
export interface LoRAPass {
  /** keep the low-rank activations for backward (a forward with targets) */
  saveForBackward: boolean;
  /** the dropout seed at a site (given only when dropout is on) */
  seed?: (site: number) => number;
}

export class LoRAAdapter implements ParameterGroup {
  readonly config: LoRAConfig;
  /** alpha / rank */
  readonly scale: number;
  readonly entries: readonly ParamEntry[];
  /** real adapter parameters (gaps excluded) */
  readonly numParameters: number;
  readonly params: Tensor;
  readonly grads: Tensor;
  /** the model shape it was made for */
  readonly base: BaseShape;
  private readonly sites = new Map<string, Site>();
  private readonly maxIn: number;
  private readonly maxOut: number;
  private training: TrainingScratch | null = null;
  private inference: InferenceScratch | null = null;
  private disposed = false;

  /** @internal addLoRA and loadAdapter make adapters */
  constructor(
    readonly backend: Backend,
    model: GPTConfig,
    config: LoRAConfig,
    initial?: Float32Array,
  ) {
    this.config = config;
    this.base = { dModel: model.dModel, dFF: model.dFF, nLayers: model.nLayers };
    this.scale = config.alpha / config.rank;
    const r = config.rank;
    const entries: ParamEntry[] = [];
    let offset = 0;
    let numParameters = 0;
    const add = (name: string, shape: number[]): ParamEntry => {
      const length = shape[0] * shape[1];
      const entry = { name, shape, offset, length, decay: true };
      entries.push(entry);
      offset += Math.ceil(length / ALIGN) * ALIGN;
      numParameters += length;
      return entry;
    };
    let maxIn = 0;
    let maxOut = 0;
    for (let l = 0; l < model.nLayers; l++) {
      for (const target of config.targets) {
        const [K, N] = targetDims(target, model);
        maxIn = Math.max(maxIn, K);
        maxOut = Math.max(maxOut, N);
        const name = `h.${l}.${target}`;
        const A = add(`${name}.lora_A`, [K, r]);
        const B = add(`${name}.lora_B`, [r, N]);
        const dropoutSite = 2 * model.nLayers + 1 + l * LORA_TARGETS.length + LORA_TARGETS.indexOf(target);
        this.sites.set(name, { K, N, A, B, dropoutSite, index: this.sites.size });
      }
    }
    this.entries = entries;
    this.numParameters = numParameters;
    this.maxIn = maxIn;
    this.maxOut = maxOut;
    const starts = entries.map((e) => e.offset);
    [this.params, this.grads] = allOrNothing(backend, (allocator) => [
      allocator.alloc(offset, 'f32', starts),
      allocator.alloc(offset, 'f32', starts),
    ]);
    backend.upload(this.params, initial ?? this.initialParameters(offset));
  }

  /** PEFT's initialisation: A uniform in +-1/sqrt(K) (kaiming-uniform with a = sqrt(5)), B zero, so the adapter starts as a no-op */
  private initialParameters(length: number): Float32Array {
    const flat = new Float32Array(length);
    const rng = new Rng(this.config.seed, RngStream.init);
    for (const site of this.sites.values()) {
      const bound = 1 / Math.sqrt(site.K);
      const view = flat.subarray(site.A.offset, site.A.offset + site.A.length);
      for (let i = 0; i < view.length; i++) view[i] = (2 * rng.next() - 1) * bound;
    }
    return flat;
  }

  /** whether `projection` ('h.0.attn.c_attn') has an adapter */
  adapts(projection: string): boolean {
    return this.sites.has(projection);
  }

  /** bytes the adapter holds: parameters, gradients and its scratch */
  bytes(): number {
    let scratch = 0;
    for (const t of [this.training, this.inference]) {
      if (t === null) continue;
      for (const tensor of Object.values(t)) {
        if (Array.isArray(tensor)) for (const s of tensor as Tensor[]) scratch += s.length * 4;
        else if (typeof tensor === 'object') scratch += (tensor as Tensor).length * 4;
      }
    }
    return (this.params.length + this.grads.length) * 4 + scratch;
  }

  /** bytes a training pass over `rows` rows allocates that the adapter does not hold yet */
  trainingBytes(rows: number): number {
    if (this.training !== null && this.training.rows >= rows) return 0;
    const r = this.config.rank;
    return rows * (this.sites.size * r + r + Math.max(this.maxIn, this.maxOut) + this.maxIn + this.base.dFF) * 4;
  }

  private trainingScratch(rows: number): TrainingScratch {
    if (this.training && this.training.rows >= rows) return this.training;
    this.freeScratch('training');
    const r = this.config.rank;
    this.training = allOrNothing(this.backend, (a) => ({
      rows,
      saved: [...this.sites.values()].map(() => a.alloc(rows * r, 'f32', r)),
      du: a.alloc(rows * r, 'f32', r),
      scratch: a.alloc(rows * Math.max(this.maxIn, this.maxOut), 'f32', Math.max(this.maxIn, this.maxOut)),
      dscratch: a.alloc(rows * this.maxIn, 'f32', this.maxIn),
      dhidden: a.alloc(rows * this.base.dFF, 'f32', this.base.dFF),
    }));
    return this.training;
  }

  /**
   * [rows, F] scratch for the model's backward: the gradient at the MLP's GELU output, which the
   * model's fused c_proj + GELU backward never materialises but an adapted c_proj adds to first
   */
  hiddenGradient(rows: number): Tensor {
    return this.backend.view(this.trainingScratch(rows).dhidden, 0, rows * this.base.dFF);
  }

  private inferenceScratch(rows: number): InferenceScratch {
    if (this.inference && this.inference.rows >= rows) return this.inference;
    this.freeScratch('inference');
    const r = this.config.rank;
    this.inference = allOrNothing(this.backend, (a) => ({
      rows,
      u: a.alloc(rows * r, 'f32', r),
      scratch: a.alloc(rows * this.maxOut, 'f32', this.maxOut),
    }));
    return this.inference;
  }

  private freeScratch(which: 'training' | 'inference'): void {
    const held = which === 'training' ? this.training : this.inference;
    if (held === null) return;
    for (const value of Object.values(held)) {
      if (Array.isArray(value)) for (const t of value as Tensor[]) this.backend.free(t);
      else if (typeof value === 'object') this.backend.free(value as Tensor);
    }
    if (which === 'training') this.training = null;
    else this.inference = null;
  }

  private view(entry: ParamEntry, grads = false): Tensor {
    return this.backend.view(grads ? this.grads : this.params, entry.offset, entry.length);
  }

  /**
   * out[M,N] += scale * (dropout(inp) A) B for `projection` (nothing when it has no adapter).
   * inp [M,K]. A pass saved for backward keeps scale * dropout(inp) A.
   */
  forwardAdd(out: Tensor, inp: Tensor, projection: string, M: number, pass: LoRAPass): void {
    const site = this.sites.get(projection);
    if (!site) return;
    this.checkAlive();
    const b = this.backend;
    const { K, N } = site;
    const r = this.config.rank;
    const ws = pass.saveForBackward ? this.trainingScratch(M) : null;
    const inf = pass.saveForBackward ? null : this.inferenceScratch(M);
    const scratch = b.view(ws ? ws.scratch : inf!.scratch, 0, M * Math.max(K, N));
    let x = inp;
    if (pass.seed && this.config.dropout > 0) {
      x = b.view(scratch, 0, M * K);
      b.dropoutForward(x, inp, M * K, this.config.dropout, pass.seed(site.dropoutSite));
    }
    const u = ws ? b.view(ws.saved[site.index], 0, M * r) : b.view(inf!.u, 0, M * r);
    b.matmulForward(u, x, this.view(site.A), null, M, K, r);
    b.scale(u, this.scale);
    // dropout(x) is consumed: the scratch takes the low-rank output
    const low = b.view(scratch, 0, M * N);
    b.matmulForward(low, u, this.view(site.B), null, M, r, N);
    b.residualForward(out, out, low, M * N);
  }

  /**
   * The backward of forwardAdd for `projection`, after a training forward: dA, dB accumulate into
   * the adapter's gradients and dinp[M,K] += the low-rank path's input gradient. dout [M,N].
   */
  backwardAdd(dinp: Tensor, dout: Tensor, inp: Tensor, projection: string, M: number, pass: LoRAPass): void {
    const site = this.sites.get(projection);
    if (!site) return;
    const b = this.backend;
    const { K, N } = site;
    const r = this.config.rank;
    const ws = this.trainingScratch(M);
    const du = b.view(ws.du, 0, M * r);
    b.zero(du);
    // low = u_s B with u_s = scale * dropout(x) A: dB += u_s^T dout, du_s = dout B^T
    b.matmulBackward(du, this.view(site.B, true), null, dout, b.view(ws.saved[site.index], 0, M * r), this.view(site.B), M, r, N);
    b.scale(du, this.scale);
    if (pass.seed && this.config.dropout > 0) {
      const seed = pass.seed(site.dropoutSite);
      const xd = b.view(ws.scratch, 0, M * K);
      b.dropoutForward(xd, inp, M * K, this.config.dropout, seed);
      const dxd = b.view(ws.dscratch, 0, M * K);
      b.zero(dxd);
      b.matmulBackward(dxd, this.view(site.A, true), null, du, xd, this.view(site.A), M, K, r);
      b.dropoutBackward(dinp, dxd, M * K, this.config.dropout, seed);
    } else {
      b.matmulBackward(dinp, this.view(site.A, true), null, du, inp, this.view(site.A), M, K, r);
    }
  }

  /** W += scale * A B for every adapted projection; `weight(name)` is the model's weight tensor */
  mergeInto(weight: (name: string) => Tensor): void {
    this.checkAlive();
    const b = this.backend;
    const r = this.config.rank;
    for (const [projection, site] of this.sites) {
      const { K, N } = site;
      const delta = b.alloc(K * N, 'f32', N);
      try {
        b.matmulForward(delta, this.view(site.A), this.view(site.B), null, K, r, N);
        b.scale(delta, this.scale);
        b.accumulate(weight(`${projection}.weight`), delta, K * N);
      } finally {
        b.free(delta);
      }
    }
  }

  zeroGrad(): void {
    this.checkAlive();
    this.backend.zero(this.grads);
  }

  /** host copies of A and B by name ('h.0.attn.c_attn.lora_A' [K, r], '...lora_B' [r, N]) */
  async getParameters(): Promise<Record<string, Float32Array>> {
    return this.split(this.params);
  }

  async getGradients(): Promise<Record<string, Float32Array>> {
    return this.split(this.grads);
  }

  private async split(t: Tensor): Promise<Record<string, Float32Array>> {
    this.checkAlive();
    const flat = (await this.backend.download(t)) as Float32Array;
    const out: Record<string, Float32Array> = {};
    for (const e of this.entries) out[e.name] = flat.slice(e.offset, e.offset + e.length);
    return out;
  }

  /** replace A and B: every entry by name, with its length, finite */
  setParameters(record: Record<string, Float32Array>): void {
    this.checkAlive();
    this.backend.upload(this.params, this.flatten('setParameters', record));
  }

  private flatten(caller: string, record: Record<string, ArrayLike<number>>): Float32Array {
    if (record === null || typeof record !== 'object') throw new TypeError(`${caller}: expected a record of name -> Float32Array`);
    const names = new Set(this.entries.map((e) => e.name));
    const unknown = Object.keys(record).filter((k) => !names.has(k));
    if (unknown.length) throw new RangeError(`${caller}: unknown adapter tensor(s): ${unknown.slice(0, 8).join(', ')}`);
    const flat = new Float32Array(this.params.length);
    for (const e of this.entries) {
      const data = record[e.name];
      if (data === undefined) throw new RangeError(`${caller}: ${e.name} is missing`);
      if (data.length !== e.length) {
        throw new RangeError(`${caller}: ${e.name} has ${data.length} elements, expected ${e.length} (shape [${e.shape.join(', ')}])`);
      }
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) throw new RangeError(`${caller}: ${e.name}[${i}] must be a finite number, got ${data[i]}`);
      }
      flat.set(data, e.offset);
    }
    return flat;
  }

  /** release the adapter's tensors (a model it is attached to loses it too) */
  dispose(): void {
    if (this.disposed) return;
    this.freeScratch('training');
    this.freeScratch('inference');
    this.backend.free(this.params);
    this.backend.free(this.grads);
    this.disposed = true;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('this LoRA adapter was disposed (or merged)');
  }
}

/** A model that takes adapters: createModel's and loadModel's GPT, and a QuantizedGPT for inference. */
export interface AdaptableModel {
  readonly config: GPTConfig;
  readonly backend: Backend;
  readonly lora: LoRAAdapter | null;
  setAdapter(adapter: LoRAAdapter | null): void;
  /** @internal forwardCached with `adapter` in place of the attached one (withAdapter) */
  forwardCachedWith(adapter: LoRAAdapter | null, cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array>;
  /** @internal forwardCachedTokens with `adapter` in place of the attached one (withAdapter) */
  forwardCachedTokensWith(
    adapter: LoRAAdapter | null,
    cache: KVCache,
    ids: Int32Array,
    Tn: number,
    choice: TokenChoice,
  ): Promise<Int32Array>;
  /** @internal the model's weight tensor by name, for merging (absent: the weights are quantized) */
  weightTensor?(name: string): Tensor;
}

function checkAdaptable(caller: string, model: unknown): asserts model is AdaptableModel {
  const m = model as Partial<AdaptableModel> | null;
  if (m === null || typeof m !== 'object' || typeof m.setAdapter !== 'function' || typeof m.forwardCachedWith !== 'function') {
    throw new TypeError(`${caller}: model must be a model from createModel, loadModel or quantizeModel`);
  }
}

/** what a view answers in place of the base model's training and adapter calls */
const VIEW_REFUSES = new Set<PropertyKey>(['forward', 'backward', 'zeroGrad', 'setParameters', 'moveToBackend', 'setAdapter']);

/**
 * A view of `model` for generation whose cached forward passes run with `adapter` (null: none),
 * whatever `model` has attached meanwhile: generate, generateStream and beam search on views with
 * different adapters may interleave on one base model (an edge Worker's concurrent requests), each
 * token of each computed with its own adapter. The adapter must be made for `model`
 * (addLoRA, or loadAdapter with `{ attach: false }`); the view holds nothing of its own, so
 * disposing it frees nothing. Training, forward and the adapter calls belong to the base model:
 * the view refuses them.
 */
export function withAdapter(model: AdaptableModel & GPTModel, adapter: LoRAAdapter | null): GPTModel {
  checkAdaptable('withAdapter', model);
  if (adapter !== null) {
    if (!(adapter instanceof LoRAAdapter))
      throw new TypeError(`withAdapter: adapter must be a LoRAAdapter or null, got ${describe(adapter)}`);
    checkAdapterFits('withAdapter', adapter, model.backend, model.config);
  }
  const forwardCached = (cache: KVCache, ids: Int32Array, Tn: number) => model.forwardCachedWith(adapter, cache, ids, Tn);
  const forwardCachedTokens = (cache: KVCache, ids: Int32Array, Tn: number, choice: TokenChoice) =>
    model.forwardCachedTokensWith(adapter, cache, ids, Tn, choice);
  return new Proxy(model, {
    get(target, key) {
      if (key === 'forwardCached') return forwardCached;
      if (key === 'forwardCachedTokens') return forwardCachedTokens;
      if (key === 'lora') return adapter;
      if (key === 'dispose' || key === DISPOSE) return () => undefined;
      if (VIEW_REFUSES.has(key)) {
        return () => {
          throw new Error(`${String(key)}: withAdapter's view is for generation only; call it on the base model`);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * Give `model` a fresh LoRA adapter (A random, B zero: the model's outputs are unchanged until it
 * trains) and attach it; train() then trains the adapter alone. The model must have none attached.
 */
export function addLoRA(model: AdaptableModel, options: LoRAOptions = {}): LoRAAdapter {
  checkAdaptable('addLoRA', model);
  if (model.lora !== null)
    throw new Error('addLoRA: the model already has an adapter attached; detach it first with model.setAdapter(null)');
  const adapter = new LoRAAdapter(model.backend, model.config, resolveLoRAConfig(options, model.config));
  model.setAdapter(adapter);
  return adapter;
}

/** Merge the attached adapter into the model's weights (W += alpha/r A B), detach and dispose it. */
export function mergeAdapter(model: AdaptableModel): void {
  checkAdaptable('mergeAdapter', model);
  const weightTensor = model.weightTensor?.bind(model);
  if (weightTensor === undefined) {
    throw new TypeError('mergeAdapter: model must be a float32 GPT: merge into the float32 model, then quantize it');
  }
  const adapter = model.lora;
  if (adapter === null) throw new Error('mergeAdapter: the model has no adapter attached');
  adapter.mergeInto(weightTensor);
  model.setAdapter(null);
  adapter.dispose();
}

/** The adapter as a safetensors file: A and B by name, the LoRA config and the base shape in __metadata__. */
export async function saveAdapter(adapter: LoRAAdapter): Promise<Uint8Array> {
  if (!(adapter instanceof LoRAAdapter)) throw new TypeError('saveAdapter: expected a LoRAAdapter (from addLoRA or loadAdapter)');
  const params = await adapter.getParameters();
  const tensors: Record<string, TensorInput> = {};
  for (const e of adapter.entries) tensors[e.name] = { dtype: 'F32', shape: e.shape, data: params[e.name] };
  return encodeSafetensors(tensors, { format: ADAPTER_FORMAT, lora: JSON.stringify(adapter.config), base: JSON.stringify(adapter.base) });
}

export interface LoadAdapterOptions {
  /** attach it to the model (default true; false keeps the model's current adapter) */
  attach?: boolean;
}

/** Read an adapter saved by saveAdapter for `model` (same dModel, dFF, nLayers) and attach it unless told not to. */
export function loadAdapter(model: AdaptableModel, bytes: Uint8Array, options: LoadAdapterOptions = {}): LoRAAdapter {
  checkAdaptable('loadAdapter', model);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('loadAdapter: bytes must be a Uint8Array (the file saveAdapter wrote)');
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== ADAPTER_FORMAT) {
    throw new Error(
      `loadAdapter: not a tinygpt LoRA adapter (__metadata__.format is ${JSON.stringify(metadata.format)}, expected "${ADAPTER_FORMAT}")`,
    );
  }
  const parse = (field: string): Record<string, unknown> => {
    try {
      const value: unknown = JSON.parse(metadata[field] ?? 'null');
      if (value !== null && typeof value === 'object') return value as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new Error(`loadAdapter: __metadata__.${field} must be a JSON object`);
  };
  const base = parse('base');
  for (const field of ['dModel', 'dFF', 'nLayers'] as const) {
    if (base[field] !== model.config[field]) {
      throw new RangeError(
        `loadAdapter: the adapter was made for ${field} = ${String(base[field])}, but the model has ${model.config[field]}`,
      );
    }
  }
  const config = resolveLoRAConfig(parse('lora') as LoRAOptions, model.config);
  if (options.attach !== false && model.lora !== null) {
    throw new Error(
      'loadAdapter: the model already has an adapter attached; detach it first (model.setAdapter(null)) or pass { attach: false }',
    );
  }
  const record: Record<string, Float32Array> = {};
  for (const [name, tensor] of Object.entries(tensors)) record[name] = tensorToFloat32(tensor, name);
  const adapter = new LoRAAdapter(model.backend, model.config, config);
  try {
    adapter.setParameters(record);
  } catch (err) {
    adapter.dispose();
    throw new Error(`loadAdapter: ${(err as Error).message}`, { cause: err });
  }
  if (options.attach !== false) model.setAdapter(adapter);
  return adapter;
}
