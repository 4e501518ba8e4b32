import { describe } from '../util/describe.js';
import { checkOptionNames, type OptionNames } from '../util/arguments.js';
import { formatBytes } from './capacity.js';
import type { Backend, BackendName } from './contract.js';
import { checkMemoryLimit, MemoryLimitError } from './errors.js';
import type { WasmAssets } from './wasm/assets.js';
import type { WebGPUBackend, WebGPUBackendOptions, WebGPUOptions } from './webgpu/index.js';

export type BackendRequest = 'auto' | BackendName;

export interface SelectOptions {
  /** bytes the caller will allocate up front (parameters, gradients, moments): a backend that cannot hold them is refused */
  requiredBytes?: number;
  /** elements of the largest tensor that cannot be split (the largest parameter): a backend whose largest buffer is smaller is refused */
  largestTensorLength?: number;
  /** hears why 'auto' passed over a backend; default console.info */
  onNotice?: (message: string) => void;
  /** where the wasm backend's files are, when the toolchain did not emit them beside the bundle (see WasmAssets) */
  wasmAssets?: WasmAssets;
  /** threads for the wasm backend: 'auto' (default) or a count; see createWasmBackend */
  wasmThreads?: number | 'auto';
  /**
   * the most bytes the backend's tensors may hold (default Infinity: only the backend's own bound).
   * requiredBytes above it is refused before any backend is created; the backend checks every
   * alloc against it (see Backend.memoryLimit)
   */
  memoryLimit?: number;
}

/** The options of createModel, loadModel and quantizeModel that say how a backend made by name starts. */
export interface BackendStartOptions {
  wasmThreads?: number | 'auto';
  wasmAssets?: WasmAssets;
  onBackendNotice?: (message: string) => void;
  memoryLimit?: number;
}

/** BackendStartOptions in createBackend's terms: the one place they are passed on, so that no entry point drops one */
export function startOptions(options: BackendStartOptions): Pick<SelectOptions, 'wasmThreads' | 'wasmAssets' | 'onNotice' | 'memoryLimit'> {
  return {
    wasmThreads: options.wasmThreads,
    wasmAssets: options.wasmAssets,
    onNotice: options.onBackendNotice,
    memoryLimit: options.memoryLimit,
  };
}

const SELECT_OPTIONS: OptionNames<SelectOptions> = {
  requiredBytes: true,
  largestTensorLength: true,
  onNotice: true,
  wasmAssets: true,
  wasmThreads: true,
  memoryLimit: true,
};

export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

let defaultWasmModule: WebAssembly.Module | undefined;

/**
 * Hand the SDK a compiled `tinygpt.wasm` once, for runtimes that forbid compiling WebAssembly
 * from bytes (Cloudflare Workers, Vercel Edge): `import wasm from 'tinygpt/tinygpt.wasm'`. The same
 * as passing `wasmAssets: { kernels: module }` to every createModel and loadModel.
 */
export function setWasmModule(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) {
    throw new TypeError(`setWasmModule: module must be a compiled WebAssembly.Module (of tinygpt.wasm); got ${typeof module}`);
  }
  defaultWasmModule = module;
}

/**
 * Opens a WebGPU device and returns a backend on it (see src/backend/webgpu). The backend's code is
 * loaded on the first call, so a web app that never starts WebGPU does not download it.
 */
export async function createWebGPUBackend(opts: WebGPUOptions & WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  const webgpu = await import('./webgpu/index.js');
  return webgpu.createWebGPUBackend(opts);
}

async function create(name: BackendName, options: SelectOptions): Promise<Backend> {
  switch (name) {
    case 'js': {
      const { JsBackend } = await import('./js/index.js');
      return new JsBackend();
    }
    case 'wasm': {
      const { createWasmBackend } = await import('./wasm/create.js');
      const assets = options.wasmAssets ?? {};
      return createWasmBackend({
        ...wasmSource(assets.kernels ?? defaultWasmModule),
        threadsSource: assets.threadedKernels === undefined ? undefined : wasmSource(assets.threadedKernels),
        workerUrl: assets.worker,
        threads: options.wasmThreads,
        onNotice: options.onNotice,
      });
    }
    case 'webgpu':
      return createWebGPUBackend();
  }
}

function wasmSource(location: string | URL | WebAssembly.Module | undefined): { module?: WebAssembly.Module; url?: string | URL } {
  return location instanceof WebAssembly.Module ? { module: location } : { url: location };
}

/** requiredBytes past the memoryLimit option: refused before any backend is created */
function checkRequiredFitsLimit({ requiredBytes, memoryLimit }: SelectOptions): void {
  if (memoryLimit === undefined) return;
  const field = 'createBackend: options.memoryLimit';
  const limit = checkMemoryLimit(memoryLimit, field);
  if (requiredBytes !== undefined) checkRequiredBytes(field, requiredBytes, limit);
}

/** a model that needs `requiredBytes` before its first step, against a memoryLimit of `limit` */
export function checkRequiredBytes(field: string, requiredBytes: number, limit: number): void {
  if (requiredBytes > limit) {
    throw new MemoryLimitError(
      `${field} = ${limit} bytes (${formatBytes(limit)}) is less than the ${requiredBytes} bytes (${formatBytes(requiredBytes)}) this model needs for ` +
        `${REQUIRED_BYTES_ARE}: it must be at least ${requiredBytes} (or Infinity)`,
      { requestedBytes: requiredBytes, bytesInUse: 0, limitBytes: limit },
    );
  }
}

const REQUIRED_BYTES_ARE = "parameters, gradients, optimizer state, the head's transposed copy and one position's activations";

/** the backend's own capacity against what the model needs; then the memoryLimit option set on it */
function checkCapacity(backend: Backend, { requiredBytes, largestTensorLength, memoryLimit }: SelectOptions): void {
  if (largestTensorLength !== undefined && largestTensorLength > backend.limits.maxTensorLength) {
    backend.dispose();
    throw new BackendUnavailableError(
      `the ${backend.name} backend holds at most ${formatBytes(backend.limits.maxTensorLength * 4)} in one buffer, but this model's largest parameter takes ${formatBytes(largestTensorLength * 4)}`,
    );
  }
  if (requiredBytes !== undefined && requiredBytes > backend.limits.maxTotalBytes) {
    backend.dispose();
    throw new BackendUnavailableError(
      `the ${backend.name} backend can hold at most ${formatBytes(backend.limits.maxTotalBytes)}, but this model needs ${formatBytes(requiredBytes)} for ${REQUIRED_BYTES_ARE}`,
    );
  }
  if (memoryLimit !== undefined) backend.setMemoryLimit?.(memoryLimit);
}

/**
 * 'auto' takes WebGPU when a real GPU adapter and a device can be had, else WASM; it passes over
 * fallback and software adapters (SwiftShader, llvmpipe, lavapipe, WARP), which run WebGPU on the
 * CPU far slower than the wasm kernels do. Each backend passed over gets one notice saying why. A
 * named backend is that backend (a software adapter included) or an error that says why it could
 * not start.
 */
export async function createBackend(request: BackendRequest, options: SelectOptions = {}): Promise<Backend> {
  if (!(['auto', 'webgpu', 'wasm', 'js'] as unknown[]).includes(request)) {
    throw new RangeError(`createBackend: request must be 'auto', 'webgpu', 'wasm' or 'js', got ${JSON.stringify(request)}`);
  }
  if (options === null || typeof options !== 'object')
    throw new TypeError(`createBackend: options must be an object, got ${describe(options)}`);
  checkOptionNames(options, SELECT_OPTIONS, 'createBackend');
  checkRequiredFitsLimit(options);
  if (request !== 'auto') {
    let backend: Backend;
    try {
      backend = await create(request, options);
    } catch (err) {
      throw new BackendUnavailableError(`the ${request} backend could not start: ${(err as Error).message}`, { cause: err });
    }
    checkCapacity(backend, options);
    return backend;
  }
  const notice = options.onNotice ?? ((m: string) => console.info(`[tinygpt] ${m}`));
  let webgpuReason: string;
  try {
    const backend = await autoWebGPU();
    checkCapacity(backend, options);
    return backend;
  } catch (err) {
    webgpuReason = (err as Error).message;
  }
  let backend: Backend;
  // the wasm backend's own notices (its thread count) come after the one that says why it was chosen
  const wasmNotices: string[] = [];
  try {
    backend = await create('wasm', { ...options, onNotice: (m) => wasmNotices.push(m) });
    checkCapacity(backend, options);
  } catch (err) {
    throw new BackendUnavailableError(`no backend could start: webgpu: ${webgpuReason}; wasm: ${(err as Error).message}`, {
      cause: err,
    });
  }
  notice(`using the wasm backend, not webgpu: ${webgpuReason}`);
  const wasmNotice = options.onNotice ?? ((m: string) => console.info(`[tinygpt] wasm backend: ${m}`));
  for (const m of wasmNotices) wasmNotice(m);
  return backend;
}

/** WebGPU for 'auto': a real adapter's device, or an error saying why not (no adapter, or a software one) */
async function autoWebGPU(): Promise<Backend> {
  const { requestAdapter, softwareAdapterReason, createWebGPUBackend } = await import('./webgpu/index.js');
  const adapter = await requestAdapter();
  const software = softwareAdapterReason(adapter);
  if (software !== null) {
    throw new Error(`${software}, slower than wasm on the same CPU (ask for backend: 'webgpu' to use it anyway)`);
  }
  return createWebGPUBackend({ adapter });
}
