/**
 * A GPT whose weight matrices stay quantized (Q8_0, Q4_0 or float16, see quant.ts) in the backend's memory:
 * the token embedding wte [V,C] (shared by the embedding lookup and the tied LM head) and every
 * block's c_attn, attn.c_proj, c_fc and mlp.c_proj. Linear weights, stored [in, out] in GPT-2's
 * layout, are quantized transposed, [out, in], so that blocks run along the products' K; the
 * position embedding, LayerNorms and biases stay float32 (under 1% of GPT-2 small's weights).
 *
 * It is a GPTModel for inference: forward (loss and logits, no training), the KV cache, and
 * so generate, generateStream and beam search, unchanged. Training calls fail with an error that
 * says to train the float32 model and quantize again. getParameters gives the dequantized weights.
 *
 * LoRA adapters (float32 A and B, lora.ts) attach as on the float32 model (loadAdapter, setAdapter,
 * withAdapter) and add their low-rank term after each quantized product. They run for inference
 * only: the quantized products have no backward (no input gradient through a quantized weight), so
 * an adapter trains on the float32 model and is loaded onto the quantized one; mergeAdapter refuses
 * (the weights are quantized).
 */
import { checkModelArgument, checkOptionNames, type OptionNames } from '../util/arguments.js';
import type { Backend, BackendName, QuantFormat, Tensor } from '../backend/contract.js';
import { IGNORE_INDEX } from '../backend/contract.js';
import { createBackend, startOptions } from '../backend/select.js';
import type { WasmAssets } from '../backend/wasm/assets.js';
import { generate } from '../generate/generate.js';
import type { GenerateOptions, GenerateResult, GenerateSequences, Prompt } from '../generate/options.js';
import { DISPOSE, DisposedError } from '../util/dispose.js';
import { float16BitsToFloat32, roundToFloat16Bits } from '../io/safetensors.js';
import { cachedForward, finalLayerNorm } from './cached.js';
import { creationOptionsOf } from './gpt.js';
import { checkAdapterFits, checkCachedArgs, checkForwardArgs } from './checks.js';
import type { LoRAAdapter } from './lora.js';
import { samplingArgs } from '../backend/checks.js';
import { allocKVCache, disposableKVCache, freeKVCacheTensors, reorderKVCacheRows } from './kv-cache.js';
import { buildParamLayout, type ParamLayout } from './params.js';
import { checkQuantFormat, dequantizeMatrix, quantizeMatrix, QUANT_BLOCK, type QuantizedMatrix } from './quant.js';
import { inferenceFor, type InferenceWorkspace } from './workspace.js';
import type { ForwardOptions, ForwardResult, GPTConfig, GPTModel, KVCache, ParamEntry, TokenChoice } from './types.js';

export interface QuantizeOptions {
  /** 'q8_0' (default), 'q4_0', or 'f16' (half the float32 bytes, products still summed in f32) */
  format?: QuantFormat;
  /**
   * where the quantized model runs: a backend name or instance (default: a new backend of the
   * model's kind if it has quantized products, else 'wasm')
   */
  backend?: BackendName | Backend;
  /** threads for a wasm backend made here: 'auto' or a count (default: what the model was created with, else 'auto') */
  wasmThreads?: number | 'auto';
  /** for a wasm backend made here: where the wasm backend's files are (see CreateModelOptions.wasmAssets; default: the model's) */
  wasmAssets?: WasmAssets;
  /** hears why a backend was passed over (default: the model's onBackendNotice) */
  onBackendNotice?: (message: string) => void;
  /** for a backend made here: the most bytes its tensors may hold (see CreateModelOptions.memoryLimit; default: the model's) */
  memoryLimit?: number;
}

const QUANTIZE_OPTIONS: OptionNames<QuantizeOptions> = {
  format: true,
  backend: true,
  wasmThreads: true,
  wasmAssets: true,
  onBackendNotice: true,
  memoryLimit: true,
};

/** Names of the parameters that are quantized: wte and the four matrices of every block. */
export function isQuantizedParameter(name: string): boolean {
  return name === 'wte.weight' || /^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);
}

/** The matrix a parameter is quantized as: wte as it is [V,C], linear weights [in,out] transposed to [out,in]. */
export function quantizedOrientation(entry: ParamEntry): { rows: number; cols: number; transposed: boolean } {
  const [a, b] = entry.shape;
  return entry.name === 'wte.weight' ? { rows: a, cols: b, transposed: false } : { rows: b, cols: a, transposed: true };
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

/** Quantizes a float32 parameter record: the matrices quantized (see quantizedOrientation), the rest as is. */
export function quantizeParameters(
  config: GPTConfig,
  record: Record<string, Float32Array>,
  format: QuantFormat,
): { matrices: Map<string, QuantizedMatrix>; floats: Record<string, Float32Array> } {
  if (config.dModel % QUANT_BLOCK !== 0 || config.dFF % QUANT_BLOCK !== 0) {
    throw new RangeError(
      `quantize: dModel (${config.dModel}) and dFF (${config.dFF}) must be multiples of the block size ${QUANT_BLOCK}: blocks run along them`,
    );
  }
  const matrices = new Map<string, QuantizedMatrix>();
  const floats: Record<string, Float32Array> = {};
  for (const entry of buildParamLayout(config).entries) {
    const values = record[entry.name];
    if (!(values instanceof Float32Array) || values.length !== entry.length) {
      throw new RangeError(`quantize: ${entry.name} must be a Float32Array of ${entry.length} values`);
    }
    if (!isQuantizedParameter(entry.name)) {
      floats[entry.name] = values;
      continue;
    }
    const { rows, cols, transposed } = quantizedOrientation(entry);
    matrices.set(entry.name, quantizeMatrix(transposed ? transpose(values, cols, rows) : values, rows, cols, format));
  }
  return { matrices, floats };
}

interface DeviceMatrix {
  quants: Tensor; // i32 words of the block bytes (f16: two halves a word)
  scales: Tensor | null; // f32 [rows, cols/32]; null for f16
  rows: number;
  cols: number;
}

const TRAINING_ERROR = 'a quantized model runs inference only: train the float32 model, then quantize it again';
/** why an adapter on a quantized model does not train, and what to do instead */
const ADAPTER_TRAINING_ERROR =
  'a LoRA adapter on a quantized model runs inference only: the quantized products have no backward; train it on the float32 model';

/** Quantizes a model's current parameters into a new QuantizedGPT (the original is left as it is). */
export async function quantizeModel(model: GPTModel, options: QuantizeOptions = {}): Promise<QuantizedGPT> {
  checkModelArgument(model, 'quantizeModel');
  checkOptionNames(options, QUANTIZE_OPTIONS, 'quantizeModel');
  const format = checkQuantFormat(options.format ?? 'q8_0', 'quantizeModel: options.format');
  const { matrices, floats } = quantizeParameters(model.config, await model.getParameters(), format);
  const backendName = typeof model.backend.matmulQuantForward === 'function' ? model.backendName : 'wasm';
  // a backend made here starts as the model's did, unless told otherwise
  const inherited = creationOptionsOf(model);
  return QuantizedGPT.create(model.config, format, matrices, floats, {
    ...options,
    backend: options.backend ?? backendName,
    wasmThreads: options.wasmThreads ?? inherited.wasmThreads,
    wasmAssets: options.wasmAssets ?? inherited.wasmAssets,
    onBackendNotice: options.onBackendNotice ?? inherited.onNotice,
    memoryLimit: options.memoryLimit ?? inherited.memoryLimit,
  });
}

export class QuantizedGPT implements GPTModel {
  readonly paramLayout: readonly ParamEntry[];
  private readonly layout: ParamLayout;
  private readonly matrices = new Map<string, DeviceMatrix>();
  private readonly floatOffsets = new Map<string, { offset: number; length: number }>();
  /** views of floatsTensor by parameter name, and each linear layer's weight and bias by layer name (float, linear) */
  private readonly floatViews = new Map<string, Tensor>();
  private readonly linearLayers = new Map<string, { weight: DeviceMatrix; bias: Tensor }>();
  private inference: InferenceWorkspace | null = null;
  private disposed = false;
  /** the attached LoRA adapter, run after each quantized product (inference only) */
  private adapter: LoRAAdapter | null = null;

  private constructor(
    readonly config: GPTConfig,
    readonly format: QuantFormat,
    readonly backend: Backend,
    private readonly floatsTensor: Tensor,
  ) {
    this.layout = buildParamLayout(config);
    this.paramLayout = this.layout.entries;
  }

  /** A QuantizedGPT from quantized matrices and the other parameters, on a backend made or given here. */
  static async create(
    config: GPTConfig,
    format: QuantFormat,
    matrices: Map<string, QuantizedMatrix>,
    floats: Record<string, Float32Array>,
    options: QuantizeOptions = {},
  ): Promise<QuantizedGPT> {
    const request = options.backend ?? 'wasm';
    const backend = typeof request === 'string' ? await createBackend(request, startOptions(options)) : request;
    if (typeof backend.matmulQuantForward !== 'function' || typeof backend.encoderQuantForward !== 'function') {
      if (typeof request === 'string') backend.dispose();
      throw new Error(`the ${backend.name} backend has no quantized products: run quantized models on 'wasm', 'webgpu' or 'js'`);
    }
    try {
      const names = Object.keys(floats);
      const total = names.reduce((sum, name) => sum + floats[name].length, 0);
      const model = new QuantizedGPT(config, format, backend, backend.alloc(total));
      let offset = 0;
      const flat = new Float32Array(total);
      for (const name of names) {
        flat.set(floats[name], offset);
        model.floatOffsets.set(name, { offset, length: floats[name].length });
        offset += floats[name].length;
      }
      backend.upload(model.floatsTensor, flat);
      for (const [name, m] of matrices) {
        if (m.format !== format) throw new RangeError(`${name} is ${m.format}, the model ${format}`);
        // copied so the words are 4-byte aligned whatever the source bytes' offset
        const words = new Int32Array(m.quants.length / 4);
        new Uint8Array(words.buffer).set(m.quants);
        const quants = backend.alloc(words.length, 'i32');
        backend.upload(quants, words);
        model.matrices.set(name, { quants, scales: uploadScales(backend, m), rows: m.rows, cols: m.cols });
      }
      const missing = model.paramLayout.filter((e) => !model.matrices.has(e.name) && !model.floatOffsets.has(e.name)).map((e) => e.name);
      if (missing.length) throw new RangeError(`quantized model: missing ${missing.join(', ')}`);
      return model;
    } catch (error) {
      if (typeof request === 'string') backend.dispose();
      throw error;
    }
  }

  get backendName(): BackendName {
    return this.backend.name;
  }

  get params(): Tensor {
    throw new Error(`model.params: ${this.trainingError}`);
  }

  get grads(): Tensor {
    throw new Error(`model.grads: ${this.trainingError}`);
  }

  /** why training is refused: the model's own weights are quantized, or the adapter attached to them cannot get gradients */
  private get trainingError(): string {
    return this.adapter === null ? TRAINING_ERROR : ADAPTER_TRAINING_ERROR;
  }

  /** the attached LoRA adapter (loadAdapter, setAdapter), or null */
  get lora(): LoRAAdapter | null {
    return this.adapter;
  }

  /**
   * Attach a LoRA adapter made for this model (loadAdapter(model, bytes) makes one on its backend)
   * or detach with null; for generation and evaluation only (see the file's header).
   */
  setAdapter(adapter: LoRAAdapter | null): void {
    this.checkAlive('setAdapter');
    if (adapter !== null) checkAdapterFits('setAdapter', adapter, this.backend, this.config);
    this.adapter = adapter;
  }

  numParameters(): number {
    return this.layout.numParameters;
  }

  /** bytes the weights take on the backend: quantized codes, their scales (as f32) and the float32 rest */
  weightBytes(): number {
    let bytes = this.floatsTensor.length * 4;
    for (const m of this.matrices.values()) bytes += m.quants.length * 4 + (m.scales?.length ?? 0) * 4;
    return bytes;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.dispose();
  }

  /** `method` on a disposed model: its backend and everything on it are gone */
  private checkAlive(method: string): void {
    if (this.disposed) throw new DisposedError(`${method}: this model was disposed`);
  }

  /** whether dispose() ran: every call but dispose then throws DisposedError */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** a float32 parameter's view, made once: a decoded token asks for each several times */
  private float(name: string): Tensor {
    let view = this.floatViews.get(name);
    if (view === undefined) {
      const at = this.floatOffsets.get(name);
      if (at === undefined) throw new Error(`internal: ${name} is not a float32 parameter of the quantized model`);
      view = this.backend.view(this.floatsTensor, at.offset, at.length);
      this.floatViews.set(name, view);
    }
    return view;
  }

  /** out[M,N] = inp[M,K] @ the quantized weight + bias, plus the adapter's low-rank term where it adapts `name` */
  private linear(adapter: LoRAAdapter | null, out: Tensor, inp: Tensor, name: string, M: number, K: number, N: number): void {
    let layer = this.linearLayers.get(name);
    if (layer === undefined) {
      layer = { weight: this.matrices.get(name + '.weight')!, bias: this.float(name + '.bias') };
      this.linearLayers.set(name, layer);
    }
    const { weight, bias } = layer;
    this.backend.matmulQuantForward!(out, inp, weight.quants, weight.scales, bias, M, K, N, this.format);
    adapter?.forwardAdd(out, inp, name, M, { saveForBackward: false });
  }

  // ---------------------------------------------------------------- parameters

  /** The quantized matrices as host copies (codes and float16 scale bits), as saved in files. */
  async getQuantizedMatrices(): Promise<Map<string, QuantizedMatrix>> {
    this.checkAlive('getQuantizedMatrices');
    const out = new Map<string, QuantizedMatrix>();
    for (const [name, m] of this.matrices) {
      const words = (await this.backend.download(m.quants)) as Int32Array;
      const scales = m.scales === null ? new Float32Array(0) : ((await this.backend.download(m.scales)) as Float32Array);
      out.set(name, {
        format: this.format,
        rows: m.rows,
        cols: m.cols,
        quants: new Uint8Array(words.buffer, words.byteOffset, words.byteLength),
        // the scales were float16 values widened exactly, so rounding gives back the same bits
        scales: Uint16Array.from(scales, roundToFloat16Bits),
      });
    }
    return out;
  }

  /** The float32 parameters (position embedding, LayerNorms, biases). */
  async getFloatParameters(): Promise<Record<string, Float32Array>> {
    this.checkAlive('getFloatParameters');
    const flat = (await this.backend.download(this.floatsTensor)) as Float32Array;
    const out: Record<string, Float32Array> = {};
    for (const [name, at] of this.floatOffsets) out[name] = flat.slice(at.offset, at.offset + at.length);
    return out;
  }

  /** Every parameter as float32 under GPT-2's names and shapes, the quantized ones dequantized. */
  async getParameters(): Promise<Record<string, Float32Array>> {
    const out = await this.getFloatParameters();
    for (const [name, m] of await this.getQuantizedMatrices()) {
      const values = dequantizeMatrix(m);
      out[name] = name === 'wte.weight' ? values : transpose(values, m.rows, m.cols);
    }
    return out;
  }

  async getGradients(): Promise<Record<string, Float32Array>> {
    return Promise.reject(new Error(`getGradients: ${this.trainingError}`));
  }

  /** Quantizes `record` (float32, GPT-2 names) in this model's format and replaces the weights. */
  async setParameters(record: Record<string, Float32Array>): Promise<void> {
    this.checkAlive('setParameters');
    const { matrices, floats } = quantizeParameters(this.config, record, this.format);
    const flat = new Float32Array(this.floatsTensor.length);
    for (const [name, at] of this.floatOffsets) flat.set(floats[name], at.offset);
    this.backend.upload(this.floatsTensor, flat);
    for (const [name, m] of matrices) {
      const device = this.matrices.get(name)!;
      const words = new Int32Array(m.quants.length / 4);
      new Uint8Array(words.buffer).set(m.quants);
      this.backend.upload(device.quants, words);
      if (device.scales !== null) this.backend.upload(device.scales, Float32Array.from(m.scales, float16BitsToFloat32));
    }
    return Promise.resolve();
  }

  async backward(): Promise<void> {
    return Promise.reject(new Error(`backward: ${this.trainingError}`));
  }

  async zeroGrad(): Promise<void> {
    return Promise.reject(new Error(`zeroGrad: ${this.trainingError}`));
  }

  /** a quantized model is built for one backend: load its file again with loadModel(bytes, { backend }) to run it elsewhere */
  async moveToBackend(): Promise<void> {
    return Promise.reject(
      new Error('moveToBackend: a quantized model does not move between backends; load its file again with loadModel(bytes, { backend })'),
    );
  }

  /** `generate(model, prompt, options)` as a method (see GPT.generate) */
  generate(prompt: Prompt, options?: GenerateOptions & { numReturnSequences?: 1 }): Promise<GenerateResult>;
  generate(prompt: Prompt, options?: GenerateOptions): Promise<GenerateResult | GenerateSequences>;
  generate(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerateResult | GenerateSequences> {
    return generate(this, prompt, options);
  }

  [DISPOSE](): void {
    this.dispose();
  }

  getRngState(): { dropoutStep: number } {
    return { dropoutStep: 0 };
  }

  setRngState(): void {}

  // ---------------------------------------------------------------- inference

  createKVCache(batchSize: number, capacity = this.config.maxSeqLen): KVCache {
    this.checkAlive('createKVCache');
    return disposableKVCache(allocKVCache(this.backend, this.config, batchSize, capacity), (cache) =>
      freeKVCacheTensors(this.backend, cache),
    );
  }

  /** @deprecated `cache.dispose()` (or `using cache = model.createKVCache(B)`); this alias goes in the next release */
  freeKVCache(cache: KVCache): void {
    cache.dispose();
  }

  reorderKVCache(cache: KVCache, sources: readonly number[]): void {
    reorderKVCacheRows(this.backend, this.config, cache, sources);
  }

  private ensureInference(rows: number, B: number): InferenceWorkspace {
    const current = this.inference;
    // inferenceFor may free it: a failed allocation must not leave the freed tensors in use
    this.inference = null;
    this.inference = inferenceFor(this.backend, this.config, current, rows, B);
    return this.inference;
  }

  /**
   * Runs Tn new positions of each cache row through the blocks and the final LayerNorm; the result
   * holds rows x C normalized states: the last position of each row, or every position (allRows).
   */
  private run(
    cache: KVCache,
    ids: Int32Array,
    Tn: number,
    allRows: boolean,
    adapter: LoRAAdapter | null,
  ): { states: Tensor; rows: number } {
    const C = this.config.dModel;
    const b = this.backend;
    const B = cache.batchSize;
    const N = B * Tn;
    const ws = this.ensureInference(N, allRows ? N : B);
    const idsT = b.view(ws.ids, 0, N);
    b.upload(idsT, ids);
    const wte = this.matrices.get('wte.weight')!;
    b.encoderQuantForward!(
      b.view(ws.x, 0, N * C),
      idsT,
      wte.quants,
      wte.scales,
      this.float('wpe.weight'),
      B,
      Tn,
      C,
      cache.length,
      this.format,
    );
    const { hidden, rows } = cachedForward(b, this.config, cache, ws, Tn, (name) => this.float(name), {
      allRows,
      linear: (out, inp, name, M, K, Nout) => this.linear(adapter, out, inp, name, M, K, Nout),
    });
    return { states: finalLayerNorm(b, this.config, ws, (name) => this.float(name), hidden, rows), rows };
  }

  /** logits [rows, V] of normalized states, through the quantized tied head */
  private head(states: Tensor, rows: number): Tensor {
    const { vocabSize: V, dModel: C } = this.config;
    const wte = this.matrices.get('wte.weight')!;
    const logits = this.backend.view(this.inference!.logits, 0, rows * V);
    this.backend.matmulQuantForward!(logits, states, wte.quants, wte.scales, null, rows, C, V, this.format);
    return logits;
  }

  async forwardCached(cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array> {
    return this.forwardCachedWith(this.adapter, cache, ids, Tn);
  }

  /** @internal forwardCached with `adapter` in place of the attached one (withAdapter's generations) */
  async forwardCachedWith(adapter: LoRAAdapter | null, cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array> {
    this.checkAlive('forwardCached');
    checkCachedArgs(this.config, cache, ids, Tn);
    const { states, rows } = this.run(cache, ids, Tn, false, adapter);
    return (await this.backend.download(this.head(states, rows))) as Float32Array;
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
    this.checkAlive('forwardCachedTokens');
    checkCachedArgs(this.config, cache, ids, Tn);
    const B = cache.batchSize;
    samplingArgs('forwardCachedTokens', choice.sampling, choice.uniforms, B, this.config.vocabSize);
    const { states, rows } = this.run(cache, ids, Tn, false, adapter);
    // the step's input ids were consumed by its embedding: the chosen ids take their first B slots
    const chosen = this.backend.view(this.inference!.ids, 0, B);
    this.backend.sampleTokens(chosen, this.head(states, rows), choice.uniforms, B, this.config.vocabSize, choice.sampling);
    return (await this.backend.download(chosen)) as Int32Array;
  }

  /**
   * Logits and mean loss as GPT.forward computes them (causal attention over the whole sequence,
   * here through a cache filled in one pass), for evaluation; options.training is refused.
   */
  async forward(inputs: Int32Array, targets: Int32Array | null, batchSize: number, options: ForwardOptions = {}): Promise<ForwardResult> {
    this.checkAlive('forward');
    if (options.training === true) throw new Error(`forward with training: ${this.trainingError}`);
    const T = checkForwardArgs(this.config, inputs, targets, batchSize);
    const cache = this.createKVCache(batchSize, T);
    try {
      const { states, rows } = this.run(cache, inputs, T, true, this.adapter);
      const logits = (await this.backend.download(this.head(states, rows))) as Float32Array;
      const result: ForwardResult = { loss: null };
      if (options.returnLogits) result.logits = logits;
      if (targets !== null) result.loss = meanCrossEntropy(logits, targets, this.config.vocabSize);
      return result;
    } finally {
      cache.dispose();
    }
  }
}

/** a block format's scales widened to f32 on the backend; f16 has none */
function uploadScales(backend: Backend, m: QuantizedMatrix): Tensor | null {
  if (m.format === 'f16') return null;
  const scales = backend.alloc(m.scales.length);
  backend.upload(scales, Float32Array.from(m.scales, float16BitsToFloat32));
  return scales;
}

/** mean of -log softmax(logits[n])[targets[n]] over targets that are not the ignore index, in float64 */
function meanCrossEntropy(logits: Float32Array, targets: Int32Array, V: number): number {
  let sum = 0;
  let count = 0;
  for (let n = 0; n < targets.length; n++) {
    const target = targets[n];
    // checked by checkForwardArgs: an id in [0, V) or the ignore index
    if (target === IGNORE_INDEX) continue;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v] - max);
    sum += Math.log(z) + max - logits[n * V + target];
    count++;
  }
  return count > 0 ? sum / count : NaN;
}
