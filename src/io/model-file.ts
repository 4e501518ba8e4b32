/**
 * Model files: a model (and optionally its tokenizer) as safetensors bytes, and back.
 *
 * Saved files hold F32 tensors under GPT-2 names (`wte.weight`, `h.0.attn.c_attn.weight`, ...) and
 * a `__metadata__` with `format: "tinygpt"`, `tinygpt_version`, `config` (JSON of model.config)
 * and, when given, `tokenizer` (JSON of tokenizer.toJSON()). Any safetensors tool can read them.
 *
 * Loading also takes the model out of a training checkpoint (its optimizer moments skipped), and
 * GPT-2 checkpoints in Hugging Face's layout: names with or without the `transformer.` prefix, the
 * `attn.bias` / `attn.masked_bias` mask buffers skipped, `lm_head.weight` accepted when it equals
 * `wte.weight` (the head is tied), F16/BF16/F64 widened or rounded to F32. GPT-2 checkpoints carry
 * no config, so it is inferred from the shapes: vocabSize and dModel from
 * wte.weight [V, C], maxSeqLen from wpe.weight [T, C], nLayers from the h.N count, dFF from
 * h.0.mlp.c_fc.weight [C, dFF]. The head count is not visible in any shape: it comes from
 * `options.config.nHeads`, else dModel / 64 as in every GPT-2 size.
 */
import { checkModelArgument, checkOptionNames, type OptionNames } from '../util/arguments.js';
import type { BackendChoice, GPTConfig, GPTConfigInput, GPTModel, ParamEntry } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { createModel } from '../model/create.js';
import type { GPT } from '../model/gpt.js';
import type { WasmAssets } from '../backend/wasm/assets.js';
import { TINYGPT_VERSION } from '../version.js';
import { validateConfig } from '../model/config.js';
import { buildParamLayout } from '../model/params.js';
import { tokenizerFromJSON } from '../tokenizer/index.js';
import { ModelFileError } from './errors.js';
import type { QuantizedGPT } from '../model/quantized.js';
import { decodeSafetensors, encodeSafetensors, tensorToFloat32, type DecodedTensor, type TensorInput } from './safetensors.js';

export { ModelFileError } from './errors.js';

export const MODEL_FILE_FORMAT = 'tinygpt';
/** the metadata key of a quantized model's format ('q8_0', 'q4_0' or 'f16'; see quantized-file.ts) */
export const QUANTIZATION_KEY = 'quantization';
/** written into every file as `tinygpt_version` */
export { TINYGPT_VERSION };

/** GPT-2's head size: the only way to guess nHeads for a checkpoint without a config. */
const GPT2_HEAD_SIZE = 64;
/** How many names an error lists before it says "and N more". */
const NAMES_IN_ERRORS = 12;

export interface SaveModelOptions {
  /** stored as JSON in the metadata so loadModel gives it back */
  tokenizer?: Tokenizer;
  /**
   * how the parameters are stored: 'float32' (default, exact) or 'float16' (half the bytes, each
   * value rounded to nearest; loadModel widens them back to float32)
   */
  dtype?: 'float32' | 'float16';
}

export const SAVE_MODEL_OPTIONS: OptionNames<SaveModelOptions> = { tokenizer: true, dtype: true };

/** safetensors dtype of a SaveModelOptions.dtype, checked */
export function storageDType(dtype: unknown, field = 'dtype'): 'F32' | 'F16' {
  if (dtype === undefined || dtype === 'float32') return 'F32';
  if (dtype === 'float16') return 'F16';
  throw new RangeError(`${field} must be 'float32' or 'float16', got ${JSON.stringify(dtype)}`);
}

export interface LoadModelOptions {
  /** backend for the loaded model: 'auto' (default), 'webgpu', 'wasm' or 'js' */
  backend?: BackendChoice;
  /**
   * Config fields that override the file's (or fill in what a GPT-2 checkpoint cannot say, such as
   * nHeads). Shape fields that disagree with the tensors make the load fail.
   */
  config?: Partial<GPTConfigInput>;
  /** passed to createModel: told why 'auto' passed over a backend */
  onBackendNotice?: (message: string) => void;
  /** passed to createModel: threads for the wasm backend, 'auto' (default) or a count */
  wasmThreads?: number | 'auto';
  /** passed to createModel: where the wasm backend's files are (see CreateModelOptions.wasmAssets) */
  wasmAssets?: WasmAssets;
  /** passed to createModel: the most bytes the model's backend may hold (see CreateModelOptions.memoryLimit) */
  memoryLimit?: number;
}

export const LOAD_MODEL_OPTIONS: OptionNames<LoadModelOptions> = {
  backend: true,
  config: true,
  onBackendNotice: true,
  wasmThreads: true,
  wasmAssets: true,
  memoryLimit: true,
};

export interface LoadedModel {
  /** a GPT, or a QuantizedGPT for a file saved from quantizeModel (inference only) */
  model: GPT | QuantizedGPT;
  tokenizer: Tokenizer | undefined;
}

/**
 * Whether a model is a QuantizedGPT, told without importing the class: the quantized model's code
 * (and the file code for it) is loaded only when a quantized model is saved or loaded, so a web app
 * that loads float32 models does not download it.
 */
const isQuantized = (model: GPTModel): model is QuantizedGPT => 'getQuantizedMatrices' in model;

/** Safetensors bytes of the model's parameters, config and (optionally) tokenizer. */
export async function saveModel(model: GPTModel, options: SaveModelOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
  checkModelArgument(model, 'saveModel');
  checkOptionNames(options, SAVE_MODEL_OPTIONS, 'saveModel');
  const dtype = storageDType(options.dtype, 'saveModel: options.dtype');
  const metadata: Record<string, string> = {
    format: MODEL_FILE_FORMAT,
    tinygpt_version: TINYGPT_VERSION,
    config: JSON.stringify(model.config),
  };
  let tensors: Record<string, TensorInput> = {};
  if (isQuantized(model)) {
    if (options.dtype !== undefined) throw new RangeError(`saveModel: options.dtype does not apply to a quantized (${model.format}) model`);
    const { quantizedTensors } = await import('./quantized-file.js');
    tensors = await quantizedTensors(model);
    metadata[QUANTIZATION_KEY] = model.format;
  } else {
    const parameters = await model.getParameters();
    for (const entry of model.paramLayout) tensors[entry.name] = { dtype, shape: entry.shape, data: parameters[entry.name] };
  }
  if (options.tokenizer !== undefined) metadata.tokenizer = JSON.stringify(options.tokenizer.toJSON());
  return encodeSafetensors(tensors, metadata);
}

/**
 * A model (and its tokenizer, when the file has one) from safetensors bytes written by saveModel or
 * in GPT-2's Hugging Face layout. Throws ModelFileError (SafetensorsError for malformed bytes)
 * naming what is wrong; everything is checked against the tensors before the model is built.
 */
export async function loadModel(bytes: Uint8Array | ArrayBuffer, options: LoadModelOptions = {}): Promise<LoadedModel> {
  checkOptionNames(options, LOAD_MODEL_OPTIONS, 'loadModel');
  const { tensors: fileTensors, metadata } = decodeSafetensors(
    Object.prototype.toString.call(bytes) === '[object ArrayBuffer]' ? new Uint8Array(bytes as ArrayBuffer) : (bytes as Uint8Array),
  );
  const isCheckpoint = metadata.format?.startsWith(CHECKPOINT_FORMAT_PREFIX) ?? false;
  const fileConfig =
    (metadata.format === MODEL_FILE_FORMAT || isCheckpoint) && metadata.config !== undefined ? parseConfig(metadata.config) : null;
  let model: GPT | QuantizedGPT;
  if (metadata[QUANTIZATION_KEY] !== undefined && fileConfig !== null) {
    let config: GPTConfig;
    try {
      config = validateConfig({ ...fileConfig, ...options.config });
    } catch (cause) {
      throw new ModelFileError(`model file config is invalid: ${(cause as Error).message}`, { cause });
    }
    const { quantizedModelFromTensors } = await import('./quantized-file.js');
    model = await quantizedModelFromTensors(fileTensors, { text: metadata[QUANTIZATION_KEY], key: QUANTIZATION_KEY }, config, options);
  } else {
    model = await modelFromTensors(fileTensors, fileConfig, isCheckpoint, options);
  }
  try {
    const tokenizer = metadata.tokenizer === undefined ? undefined : parseTokenizer(metadata.tokenizer, model.config);
    return { model, tokenizer };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * A model built from named tensors (tinygpt's names or Hugging Face's GPT-2 layout, see
 * canonicalTensors). `fileConfig` is the config the files state; null infers it from the shapes.
 * Everything is checked against the tensors before the model is built.
 */
export async function modelFromTensors(
  fileTensors: Record<string, DecodedTensor>,
  fileConfig: GPTConfigInput | null,
  isCheckpoint: boolean,
  options: LoadModelOptions,
): Promise<GPT> {
  const tensors = canonicalTensors(fileTensors, isCheckpoint);
  const configInput: GPTConfigInput = { ...(fileConfig ?? inferConfig(tensors, options.config)), ...options.config };
  let config: GPTConfig;
  try {
    config = validateConfig(configInput);
  } catch (cause) {
    throw new ModelFileError(`model file config is invalid: ${(cause as Error).message}`, { cause });
  }
  const record = checkedParameters(tensors, buildParamLayout(config).entries);
  const model = await createModel(configInput, {
    backend: options.backend,
    onBackendNotice: options.onBackendNotice,
    wasmThreads: options.wasmThreads,
    wasmAssets: options.wasmAssets,
    memoryLimit: options.memoryLimit,
  });
  try {
    await model.setParameters(record);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

// ---------------------------------------------------------------------------------------------

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_IN_ERRORS).join(', ');
  return names.length > NAMES_IN_ERRORS ? `${shown}, and ${names.length - NAMES_IN_ERRORS} more` : shown;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** GPT-2 mask buffers in Hugging Face checkpoints: constants, not parameters. */
const MASK_BUFFER = /^h\.\d+\.attn\.(bias|masked_bias)$/;
const HF_PREFIX = 'transformer.';
const LM_HEAD = 'lm_head.weight';
/** Training checkpoints (src/train/checkpoint.ts) hold the model plus `optimizer.m.*` / `optimizer.v.*`. */
const CHECKPOINT_FORMAT_PREFIX = 'tinygpt-checkpoint/';
const OPTIMIZER_PREFIX = 'optimizer.';

/**
 * The file's tensors under tinygpt's names: the `transformer.` prefix dropped, mask buffers
 * skipped, a tied `lm_head.weight` checked against `wte.weight` and dropped, and in a training
 * checkpoint the optimizer moments skipped.
 */
function canonicalTensors(fileTensors: Record<string, DecodedTensor>, isCheckpoint: boolean): Map<string, DecodedTensor> {
  const tensors = new Map<string, DecodedTensor>();
  const sourceName = new Map<string, string>();
  let lmHead: DecodedTensor | undefined;
  for (const [fileName, tensor] of Object.entries(fileTensors)) {
    const name = fileName.startsWith(HF_PREFIX) ? fileName.slice(HF_PREFIX.length) : fileName;
    if (MASK_BUFFER.test(name) || (isCheckpoint && fileName.startsWith(OPTIMIZER_PREFIX))) continue;
    if (name === LM_HEAD) {
      lmHead = tensor;
      continue;
    }
    const earlier = sourceName.get(name);
    if (earlier !== undefined) {
      throw new ModelFileError(`tensors "${earlier}" and "${fileName}" both name parameter ${name}`);
    }
    sourceName.set(name, fileName);
    tensors.set(name, tensor);
  }
  if (lmHead !== undefined) checkTiedHead(lmHead, tensors.get('wte.weight'));
  return tensors;
}

function checkTiedHead(lmHead: DecodedTensor, wte: DecodedTensor | undefined): void {
  if (wte === undefined) {
    throw new ModelFileError(`${LM_HEAD} is present but wte.weight is missing; tinygpt ties the LM head to wte.weight`);
  }
  if (shapeText(lmHead.shape) !== shapeText(wte.shape)) {
    throw new ModelFileError(
      `${LM_HEAD} has shape ${shapeText(lmHead.shape)} but wte.weight has ${shapeText(wte.shape)}; tinygpt ties the LM head to wte.weight`,
    );
  }
  const head = tensorToFloat32(lmHead, LM_HEAD);
  const embedding = tensorToFloat32(wte, 'wte.weight');
  for (let i = 0; i < head.length; i++) {
    if (!Object.is(head[i], embedding[i])) {
      throw new ModelFileError(
        `${LM_HEAD} differs from wte.weight (first at element ${i}: ${head[i]} vs ${embedding[i]}); tinygpt ties the LM head to wte.weight, so an untied head cannot be loaded`,
      );
    }
  }
}

function parseConfig(json: string): GPTConfigInput {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (cause) {
    throw new ModelFileError(`metadata "config" is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ModelFileError(`metadata "config" must be a JSON object, got ${json.slice(0, 60)}`);
  }
  const { vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF, dropout, seed } = parsed as Record<string, unknown>;
  return { vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF, dropout, seed } as GPTConfigInput;
}

function inferConfig(tensors: Map<string, DecodedTensor>, overrides: Partial<GPTConfigInput> = {}): GPTConfigInput {
  const matrix = (name: string, what: string): [number, number] => {
    const tensor = tensors.get(name);
    if (tensor === undefined || tensor.shape.length !== 2) {
      throw new ModelFileError(
        `the file has no tinygpt config, and ${name} (${what}) is ${tensor === undefined ? 'missing' : `of shape ${shapeText(tensor.shape)}, not 2-D`}, so the config cannot be inferred`,
      );
    }
    return [tensor.shape[0], tensor.shape[1]];
  };
  const [vocabSize, dModel] = matrix('wte.weight', 'the token embedding [V, C]');
  const [maxSeqLen] = matrix('wpe.weight', 'the position embedding [T, C]');
  let nLayers = 0;
  for (const name of tensors.keys()) {
    const layer = /^h\.(\d+)\./.exec(name);
    if (layer) nLayers = Math.max(nLayers, Number(layer[1]) + 1);
  }
  const fc = tensors.get('h.0.mlp.c_fc.weight');
  const dFF = fc !== undefined && fc.shape.length === 2 ? fc.shape[1] : undefined;
  let nHeads = overrides.nHeads;
  if (nHeads === undefined) {
    if (dModel % GPT2_HEAD_SIZE !== 0) {
      throw new ModelFileError(
        `the file has no tinygpt config and dModel ${dModel} is not a multiple of GPT-2's head size ${GPT2_HEAD_SIZE}: pass options.config.nHeads`,
      );
    }
    nHeads = dModel / GPT2_HEAD_SIZE;
  }
  return { vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF };
}

/**
 * The parameter record for setParameters, after checking that the file holds exactly the config's
 * tensors, each of the right shape, float dtype and finite.
 */
function checkedParameters(tensors: Map<string, DecodedTensor>, layout: readonly ParamEntry[]): Record<string, Float32Array> {
  const expected = new Map(layout.map((entry) => [entry.name, entry]));
  const missing = layout.filter((entry) => !tensors.has(entry.name)).map((entry) => entry.name);
  const extra = [...tensors.keys()].filter((name) => !expected.has(name));
  const wrongShape: string[] = [];
  for (const entry of layout) {
    const tensor = tensors.get(entry.name);
    if (tensor !== undefined && shapeText(entry.shape) !== shapeText(tensor.shape)) {
      wrongShape.push(`${entry.name} is ${shapeText(tensor.shape)}, config needs ${shapeText(entry.shape)}`);
    }
  }
  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${missing.length} tensor(s): ${listNames(missing)}`);
  if (extra.length) problems.push(`${extra.length} tensor(s) the config has no place for: ${listNames(extra)}`);
  if (wrongShape.length) problems.push(`${wrongShape.length} tensor(s) of the wrong shape: ${listNames(wrongShape)}`);
  if (problems.length) throw new ModelFileError(`model file does not match its config: ${problems.join('; ')}`);

  const record: Record<string, Float32Array> = {};
  for (const entry of layout) {
    const values = tensorToFloat32(tensors.get(entry.name)!, entry.name);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        throw new ModelFileError(`tensor ${entry.name} holds a non-finite value (${values[i]}) at element ${i}`);
      }
    }
    record[entry.name] = values;
  }
  return record;
}

function parseTokenizer(json: string, config: GPTConfig): Tokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = tokenizerFromJSON(JSON.parse(json) as object);
  } catch (cause) {
    throw new ModelFileError(`metadata "tokenizer" cannot be read: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
  checkTokenizerFits(tokenizer, config);
  return tokenizer;
}

/** A tokenizer whose ids reach past the embedding cannot serve the model. */
export function checkTokenizerFits(tokenizer: Tokenizer, config: GPTConfig): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFileError(
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabSize is ${config.vocabSize}: ids past the embedding`,
    );
  }
}
