/**
 * tinygpt: build, train, sample and save small GPT language models anywhere JavaScript runs.
 * This file is the public API and nothing else: it only re-exports, so importing it does no work.
 */

// ---- models ----
export { GPT } from './model/gpt.js';
export { createModel, type CreateModelOptions } from './model/create.js';
export { DeviceLostError, MemoryLimitError } from './backend/errors.js';
export { DisposedError } from './util/dispose.js';
export { validateConfig, ConfigError } from './model/config.js';
export type {
  GPTConfig,
  GPTConfigInput,
  GPTModel,
  ParamEntry,
  ForwardOptions,
  ForwardResult,
  KVCache,
  TokenChoice,
  BackendChoice,
  ParameterGroup,
} from './model/types.js';

// ---- fine-tuning: LoRA adapters ----
export { addLoRA, mergeAdapter, saveAdapter, loadAdapter, withAdapter, LoRAAdapter, LORA_TARGETS } from './model/lora.js';
export type { LoRAOptions, LoRAConfig, LoRATarget, LoadAdapterOptions } from './model/lora.js';

// ---- quantized models ----
export { quantizeModel, QuantizedGPT, type QuantizeOptions } from './model/quantized.js';
export { quantizeMatrix, dequantizeMatrix, QUANT_BLOCK, type QuantizedMatrix } from './model/quant.js';
export type { QuantFormat } from './backend/contract.js';

// ---- backends ----
export { createBackend, createWebGPUBackend, setWasmModule, BackendUnavailableError } from './backend/select.js';
export type { Activation, Backend, BackendName, Tensor, OpName, BackendLimits, TokenSampling } from './backend/contract.js';
export type { WasmAssets } from './backend/wasm/assets.js';
// types only: the WebGPU backend's code loads when a backend is created (a bundle that never starts it does not carry it)
export type { WebGPUBackend, WebGPUOptions, WebGPUBackendOptions } from './backend/webgpu/index.js';

// ---- training ----
export { train, Trainer, NonFiniteError, ModelBusyError } from './train/trainer.js';
export type { TrainOptions, TrainResult, StepMetrics, EvalMetrics, HistoryEntry, BackendChange } from './train/trainer.js';
export { learningRateAt } from './train/schedule.js';
export { sftDataset, type PromptResponse, type SftDatasetOptions } from './train/sft.js';
export type { SupervisedDataset, SupervisedExample, SequenceData } from './train/data.js';
export { PARAMETER_GROUPS } from './train/trainable.js';

// ---- generation ----
export { generate, generateStream, type StreamToken } from './generate/generate.js';
export type { GenerateOptions, GenerateResult, GenerateSequences, FinishReason, Prompt } from './generate/options.js';
export * as processors from './generate/processors.js';

// ---- tokenizers ----
export { BPETokenizer, CharTokenizer, tokenizerFromJSON } from './tokenizer/index.js';
export type { Tokenizer, StreamDecoder, TokenizerJSON } from './tokenizer/types.js';

// ---- files ----
export { encodeSafetensors, decodeSafetensors, SafetensorsError } from './io/safetensors.js';
export { ModelFileError } from './io/errors.js';
export { NoSpaceError } from './io/files.js';
export { saveModel, loadModel, type SaveModelOptions, type LoadModelOptions, type LoadedModel } from './io/model-file.js';
export * from './io/browser-files.js';
export {
  loadHuggingFace,
  exportHuggingFace,
  configFromHuggingFace,
  configToHuggingFace,
  type HuggingFaceSource,
  type HuggingFaceFileReader,
  type HuggingFaceFileValue,
  type LoadHuggingFaceOptions,
  type LoadedHuggingFace,
  type ExportHuggingFaceOptions,
} from './io/huggingface.js';

// a model in a worker: tinygpt/worker (src/worker.ts), so that apps that do not use it are not given its worker file

export { Rng } from './util/rng.js';
