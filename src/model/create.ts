/** createModel: a GPT with fresh parameters, on the backend its options choose. */
import type { Backend } from '../backend/contract.js';
import type { WasmAssets } from '../backend/wasm/assets.js';
import { checkMemoryLimit } from '../backend/errors.js';
import { checkRequiredBytes, createBackend, startOptions } from '../backend/select.js';
import { estimateTrainingBytes, largestParameter } from './capacity.js';
import { BACKEND_CHOICES, validateConfig } from './config.js';
import { GPT } from './gpt.js';
import { buildParamLayout } from './params.js';
import type { BackendChoice, GPTConfigInput } from './types.js';
import { checkOptionNames, type OptionNames } from '../util/arguments.js';

export interface CreateModelOptions {
  /** which backend to create: 'auto' (default: WebGPU on a real GPU, else wasm), 'webgpu', 'wasm' or 'js' */
  backend?: BackendChoice;
  /** use this backend instance instead of creating one */
  backendInstance?: Backend;
  /** called with the reason when 'auto' had to pass over a backend (default: console.info) */
  onBackendNotice?: (message: string) => void;
  /** threads for the wasm backend: 'auto' (default: up to 8 where the runtime allows) or a count */
  wasmThreads?: number | 'auto';
  /**
   * where the wasm backend's files are (tinygpt.wasm, tinygpt-threads.wasm, wasm-worker.js), for
   * toolchains that do not emit files referenced as `new URL('./file', import.meta.url)` (Rollup,
   * esbuild) and for edge runtimes (a compiled module); Vite, webpack and Parcel need none of it
   */
  wasmAssets?: WasmAssets;
  /**
   * The most bytes the model's backend may hold in tensors, on every backend (default: none beyond
   * the backend's own bound; WebGPU reports no memory size, so there it is unbounded unless set).
   * A model whose smallest training step needs more is refused before anything is allocated, and
   * every later allocation (a batch, a KV cache, an op's scratch) is checked against it first:
   * MemoryLimitError, naming what asked. With backendInstance, it is set on that backend.
   */
  memoryLimit?: number;
}

const CREATE_MODEL_OPTIONS: OptionNames<CreateModelOptions> = {
  backend: true,
  backendInstance: true,
  onBackendNotice: true,
  wasmThreads: true,
  wasmAssets: true,
  memoryLimit: true,
};

/** Build a GPT with freshly initialised parameters on the chosen backend. */
export async function createModel(configInput: GPTConfigInput, options: CreateModelOptions = {}): Promise<GPT> {
  checkOptionNames(options, CREATE_MODEL_OPTIONS, 'createModel');
  const config = validateConfig(configInput);
  const layout = buildParamLayout(config);
  const requiredBytes = estimateTrainingBytes(config, layout);
  const limitField = 'createModel: options.memoryLimit';
  const memoryLimit = options.memoryLimit === undefined ? undefined : checkMemoryLimit(options.memoryLimit, limitField);
  // refused before any backend is created or changed
  if (memoryLimit !== undefined) checkRequiredBytes(limitField, requiredBytes, memoryLimit);
  let backend: Backend;
  if (options.backendInstance !== undefined) {
    backend = options.backendInstance;
    if (memoryLimit !== undefined) {
      if (typeof backend.setMemoryLimit !== 'function') {
        throw new TypeError('createModel: options.memoryLimit needs a backendInstance with setMemoryLimit (every built-in backend has it)');
      }
      backend.setMemoryLimit(memoryLimit);
    }
  } else {
    backend = await createBackend(backendChoice(configInput, options), {
      requiredBytes,
      largestTensorLength: largestParameter(layout),
      ...startOptions(options),
      memoryLimit,
    });
  }
  const created = backend !== options.backendInstance;
  try {
    const model = new GPT(config, layout, backend, undefined, { ...startOptions(options), memoryLimit });
    // WebGPU reports a device out of memory asynchronously: a model the GPU cannot hold fails here
    // (on a backend made here; a backendInstance's next download reports it)
    if (created) await backend.settle?.();
    return model;
  } catch (err) {
    if (created) backend.dispose();
    throw err;
  }
}

let warnedConfigBackend = false;

/**
 * options.backend; the config's `backend` (the old place, deprecated: the config is the
 * architecture) still counts, with a one-time warning, when options say nothing.
 */
function backendChoice(configInput: GPTConfigInput, options: CreateModelOptions): BackendChoice {
  const fromConfig = configInput.backend;
  if (fromConfig !== undefined && options.backend === undefined && !warnedConfigBackend) {
    warnedConfigBackend = true;
    console.warn(
      `[tinygpt] config.backend is deprecated and will be removed: pass the backend in createModel's options, ` +
        `createModel(config, { backend: '${fromConfig}' }) (or loadModel(bytes, { backend }))`,
    );
  }
  if (options.backend !== undefined && !BACKEND_CHOICES.includes(options.backend)) {
    throw new RangeError(
      `createModel: options.backend must be one of ${BACKEND_CHOICES.map((b) => `'${b}'`).join(', ')}, got ${JSON.stringify(options.backend)}`,
    );
  }
  return options.backend ?? fromConfig ?? 'auto';
}
