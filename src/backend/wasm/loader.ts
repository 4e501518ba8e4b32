/**
 * Instantiates tinygpt.wasm, or the threaded build tinygpt-threads.wasm over a shared memory
 * (threads.ts runs the workers). Sources, in order of preference: a compiled WebAssembly.Module from
 * the caller (the only way on edge runtimes, which refuse to compile bytes), bytes from the caller,
 * a URL or file path, or the default location from the asset table (assets.ts). Node reads files
 * through the host module (host/node.ts), which the browser build replaces.
 */
import { assetAdvice, defaultLocations } from './assets.js';
import { isNode, readFileBytes } from '../../host/node.js';
import type { instantiate } from './kernels.generated.js';

/** every export of the kernels, as AssemblyScript declares them (kernels.generated.d.ts) */
type KernelExports = Awaited<ReturnType<typeof instantiate>>;

/** the exports this package calls (wasm-worker.js also calls setScratch, and checks it itself) */
const KERNEL_EXPORTS = [
  'memory',
  'heapBase',
  'matmulForward',
  'layerNormForwardRows',
  'layerNormBackwardInputRows',
  'layerNormBackwardParamsCols',
  'geluForward',
  'geluBackward',
  'crossEntropyForwardRows',
  'crossEntropyBackwardRows',
  'encoderForwardRows',
  'encoderBackwardCols',
  'adamwUpdate',
  'squaredNorm',
  'scale',
  'transpose',
  'residualForward',
  'accumulate',
  'copyBytes',
  'zeroBytes',
  'dropoutForward',
  'dropoutBackward',
  'fusedMultiplyAdd',
  'matmulScratchBytes',
  'matmulForwardCols',
  'matmulRowsCols',
  'matmulBackwardInputCols',
  'matmulBackwardWeightCols',
  'attentionForwardPairs',
  'attentionBackwardPairs',
  'kvCacheAppend',
  'attentionScratchFloats',
  'attentionCachedPairs',
  'quantizeActivations',
  'matmulQ8Cols',
  'matmulQ4Cols',
  'encoderQuantForward',
  'matmulF16Cols',
  'encoderF16Forward',
] as const satisfies readonly (keyof KernelExports)[];

/** The kernels' exports this package calls. Pointers are byte offsets into `memory`. */
export type Kernels = Pick<KernelExports, (typeof KERNEL_EXPORTS)[number]>;

/**
 * the kernel exports that a thread can run a share of: the range ones take it as their last two
 * arguments; the elementwise ones get pointers and a length offset to their share
 */
export type SplitKernel =
  | 'matmulForwardCols'
  | 'matmulRowsCols'
  | 'matmulBackwardInputCols'
  | 'matmulBackwardWeightCols'
  | 'attentionForwardPairs'
  | 'attentionBackwardPairs'
  | 'attentionCachedPairs'
  | 'geluForward'
  | 'geluBackward'
  | 'adamwUpdate'
  | 'matmulQ8Cols'
  | 'matmulQ4Cols'
  | 'matmulF16Cols'
  | 'layerNormForwardRows'
  | 'layerNormBackwardInputRows'
  | 'layerNormBackwardParamsCols'
  | 'crossEntropyForwardRows'
  | 'crossEntropyBackwardRows'
  | 'encoderForwardRows'
  | 'encoderBackwardCols';

export interface WasmSource {
  /** a compiled module (edge runtimes, which refuse to compile bytes) */
  module?: WebAssembly.Module;
  /** where to fetch the file (browsers), or its file URL / path (Node) */
  url?: string | URL;
  /** the file's bytes (runtimes that allow compiling bytes) */
  bytes?: BufferSource;
}

/** The single-threaded kernels need no imports; an abort handler is given in case a debug build asks for one. */
function abort(_message: number, _file: number, line: number, column: number): never {
  throw new Error(`tinygpt.wasm aborted at ${line}:${column}`);
}
const imports: WebAssembly.Imports = { env: { abort } };

/** the threaded build's memory: 4 GiB maximum (wasm32's whole address space), as its import declares */
export const THREADS_MAX_PAGES = 65536;
/** the threaded build's declared minimum (asconfig.json initialMemory) */
const THREADS_INITIAL_PAGES = 32;

export function createSharedMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: THREADS_INITIAL_PAGES, maximum: THREADS_MAX_PAGES, shared: true });
}

/**
 * A module that uses f32x4.relaxed_madd: it validates where the runtime has relaxed SIMD (current
 * Chromium and Firefox; Node 20 only with --experimental-wasm-relaxed-simd).
 */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 28, 1, 26, 0, 67, 0, 0, 0, 0, 253, 19, 67, 0, 0, 0, 0, 253, 19, 67,
  0, 0, 0, 0, 253, 19, 253, 133, 2, 11,
]);

/** whether this runtime runs relaxed SIMD, so the default kernels are the fused multiply-add build */
export function hasRelaxedSimd(): boolean {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

/** each file's relaxed-SIMD build: tried first, where the runtime has relaxed SIMD, when nobody named a file */
const RELAXED_BUILD = { kernels: 'relaxedKernels', threadedKernels: 'threadedRelaxedKernels' } as const;

/** a file: URL, a Windows drive path or any string without a URL scheme names a file */
function namesFile(location: string | URL): boolean {
  if (location instanceof URL) return location.protocol === 'file:';
  return location.startsWith('file:') || /^[a-z]:[\\/]/i.test(location) || !/^[a-z][a-z0-9+.-]*:/i.test(location);
}

/** WebAssembly's magic number: what a server that answers a missing file with a page does not send */
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

async function moduleFromLocation(location: string | URL): Promise<WebAssembly.Module> {
  if (isNode() && namesFile(location)) return WebAssembly.compile(await readFileBytes(location));
  const response = await fetch(location);
  if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
  if (typeof WebAssembly.compileStreaming === 'function' && response.headers.get('content-type')?.startsWith('application/wasm')) {
    return WebAssembly.compileStreaming(response);
  }
  // servers that do not send application/wasm: compile from the downloaded bytes, after checking they are wasm at all
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!WASM_MAGIC.every((byte, i) => bytes[i] === byte)) {
    const type = response.headers.get('content-type') ?? 'no content type';
    throw new Error(`the server answered with ${type}, not a .wasm file (a page served for a missing file?)`);
  }
  return WebAssembly.compile(bytes);
}

/** The module from the caller's source, or from the first default location that has it; errors name the wasmAssets option. */
async function compileAsset(name: 'kernels' | 'threadedKernels', source: WasmSource): Promise<WebAssembly.Module> {
  if (source.module !== undefined) {
    if (!(source.module instanceof WebAssembly.Module))
      throw new TypeError(`wasmAssets.${name}: expected a WebAssembly.Module, a URL or a path`);
    return source.module;
  }
  if (source.bytes !== undefined) return WebAssembly.compile(source.bytes);
  const candidates =
    source.url !== undefined
      ? [source.url]
      : [...(hasRelaxedSimd() ? defaultLocations(RELAXED_BUILD[name]) : []), ...defaultLocations(name)];
  const tried: string[] = [];
  for (const location of candidates) {
    try {
      return await moduleFromLocation(location);
    } catch (err) {
      tried.push(`${String(location)}: ${(err as Error).message}`);
    }
  }
  const file = name === 'kernels' ? 'tinygpt.wasm' : 'tinygpt-threads.wasm';
  throw new Error(`could not load ${file}; tried ${tried.join('; ')}. If your toolchain did not emit it, ${assetAdvice(name)}`);
}

function kernelsOf(instance: WebAssembly.Instance, file: string): Kernels {
  const exports = instance.exports as Record<string, unknown>;
  const missing = KERNEL_EXPORTS.filter((name) => exports[name] === undefined);
  if (missing.length > 0) {
    throw new Error(`${file} lacks the exports ${missing.join(', ')}: a stale or foreign file? (rebuild with npm run build:wasm)`);
  }
  const initialize = exports._initialize;
  if (typeof initialize === 'function') (initialize as () => void)();
  return exports as unknown as Kernels;
}

/** Instantiates the single-thread kernels from the first source given (module, bytes, url) or the default location. */
export async function loadKernels(source: WasmSource = {}): Promise<Kernels> {
  const module = await compileAsset('kernels', source);
  return kernelsOf(await WebAssembly.instantiate(module, imports), 'tinygpt.wasm');
}

/**
 * Compiles tinygpt-threads.wasm from the source given, else from its default location. Workers
 * need the compiled module itself, so this stops short of instantiating.
 */
export async function compileThreadedModule(source: WasmSource = {}): Promise<WebAssembly.Module> {
  return compileAsset('threadedKernels', source);
}

/** Instantiates the threaded kernels over `memory` (a shared memory from createSharedMemory). */
export async function instantiateThreaded(module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<Kernels> {
  const instance = await WebAssembly.instantiate(module, { env: { abort, memory } });
  return kernelsOf(instance, 'tinygpt-threads.wasm');
}
