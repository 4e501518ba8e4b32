/**
 * Instantiates build/tinygpt.wasm (dist/tinygpt.wasm once packaged), or the threaded build
 * tinygpt-threads.wasm over a shared memory (threads.ts runs the workers). Sources, in order of
 * preference: a compiled WebAssembly.Module from the caller (the only way on edge runtimes, which
 * refuse to compile bytes), bytes from the caller, a URL or file path, or the default location next
 * to this module. Node reads files through a dynamic import of node:fs/promises taken only on that
 * path, so browser bundles never touch it.
 */

/** The kernels' exports (assembly/index.ts). Pointers are byte offsets into `memory`. */
export interface Kernels {
  readonly memory: WebAssembly.Memory;
  heapBase(): number;
  matmulForward(out: number, inp: number, w: number, bias: number, M: number, K: number, N: number): void;
  matmulBackward(dinp: number, dweight: number, dbias: number, dout: number, inp: number, w: number, M: number, K: number, N: number): void;
  layerNormForward(
    out: number,
    mean: number,
    rstd: number,
    inp: number,
    weight: number,
    bias: number,
    N: number,
    C: number,
    eps: number,
  ): void;
  layerNormBackward(
    dinp: number,
    dweight: number,
    dbias: number,
    dout: number,
    inp: number,
    weight: number,
    mean: number,
    rstd: number,
    N: number,
    C: number,
  ): void;
  attentionForward(out: number, lse: number, qkv: number, att: number, B: number, T: number, C: number, NH: number): void;
  attentionBackward(
    dqkv: number,
    dout: number,
    qkv: number,
    out: number,
    lse: number,
    att: number,
    B: number,
    T: number,
    C: number,
    NH: number,
  ): void;
  attentionCached(
    out: number,
    qkv: number,
    kCache: number,
    vCache: number,
    att: number,
    B: number,
    Tn: number,
    C: number,
    NH: number,
    startPos: number,
    cacheLen: number,
  ): void;
  geluForward(out: number, inp: number, N: number): void;
  geluBackward(dinp: number, inp: number, dout: number, N: number): void;
  /** -1, or the first row whose target is outside [-1, V) */
  crossEntropyForward(losses: number, probs: number, logits: number, targets: number, N: number, V: number): number;
  crossEntropyBackward(dlogits: number, probs: number, targets: number, scale: number, N: number, V: number): number;
  /** -1, or the first flat index whose token id is outside [0, V) */
  encoderForward(out: number, inp: number, wte: number, wpe: number, B: number, T: number, C: number, V: number, posOffset: number): number;
  encoderBackward(dwte: number, dwpe: number, dout: number, inp: number, B: number, T: number, C: number, V: number): number;
  adamwUpdate(
    params: number,
    grads: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;
  squaredNorm(t: number, n: number): number;
  scale(t: number, s: number, n: number): void;
  transpose(out: number, inp: number, rows: number, cols: number): void;
  residualForward(out: number, a: number, b: number, n: number): void;
  accumulate(dst: number, src: number, n: number): void;
  copyBytes(dst: number, src: number, n: number): void;
  zeroBytes(dst: number, n: number): void;
  dropoutForward(out: number, inp: number, n: number, seed: number, threshold: number, scale: number): void;
  dropoutBackward(dinp: number, dout: number, n: number, seed: number, threshold: number, scale: number): void;
  /** 1 in the relaxed-SIMD build (fused multiply-adds), 0 in the plain-SIMD one */
  fusedMultiplyAdd(): number;
  // ---- the pieces threads split work into (each writes only its own columns or (batch, head) pairs) ----
  /** bytes of packing buffers one thread needs */
  // ---- quantized inference (assembly/quant.ts) ----
  quantizeActivations(xq: number, xs: number, x: number, M: number, K: number): void;
  matmulQ8Cols(
    out: number,
    xq: number,
    xs: number,
    wq: number,
    ws: number,
    bias: number,
    M: number,
    K: number,
    N: number,
    n0: number,
    n1: number,
  ): void;
  matmulQ4Cols(
    out: number,
    xq: number,
    xs: number,
    wq: number,
    ws: number,
    bias: number,
    M: number,
    K: number,
    N: number,
    n0: number,
    n1: number,
  ): void;
  encoderQuantForward(
    out: number,
    ids: number,
    wq: number,
    ws: number,
    wpe: number,
    B: number,
    T: number,
    C: number,
    V: number,
    posOffset: number,
    q4: number,
  ): number;
  matmulScratchBytes(): number;
  /** points this instance's packing buffers at a region of matmulScratchBytes() bytes */
  setScratch(region: number): void;
  matmulForwardCols(out: number, inp: number, w: number, bias: number, M: number, K: number, N: number, n0: number, n1: number): void;
  matmulBackwardInputCols(dinp: number, dout: number, w: number, M: number, K: number, N: number, k0: number, k1: number): void;
  matmulBackwardWeightCols(
    dweight: number,
    dbias: number,
    dout: number,
    inp: number,
    M: number,
    K: number,
    N: number,
    n0: number,
    n1: number,
  ): void;
  attentionForwardPairs(
    out: number,
    lse: number,
    qkv: number,
    att: number,
    B: number,
    T: number,
    C: number,
    NH: number,
    p0: number,
    p1: number,
  ): void;
  attentionBackwardPairs(
    dqkv: number,
    dout: number,
    qkv: number,
    out: number,
    lse: number,
    att: number,
    B: number,
    T: number,
    C: number,
    NH: number,
    p0: number,
    p1: number,
  ): void;
  kvCacheAppend(qkv: number, kCache: number, vCache: number, B: number, Tn: number, C: number, startPos: number, cacheLen: number): void;
  attentionCachedPairs(
    out: number,
    qkv: number,
    kCache: number,
    vCache: number,
    att: number,
    B: number,
    Tn: number,
    C: number,
    NH: number,
    startPos: number,
    cacheLen: number,
    p0: number,
    p1: number,
  ): void;
}

const KERNEL_EXPORTS = [
  'memory',
  'heapBase',
  'matmulForward',
  'matmulBackward',
  'layerNormForward',
  'layerNormBackward',
  'attentionForward',
  'attentionBackward',
  'attentionCached',
  'geluForward',
  'geluBackward',
  'crossEntropyForward',
  'crossEntropyBackward',
  'encoderForward',
  'encoderBackward',
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
  'setScratch',
  'matmulForwardCols',
  'matmulBackwardInputCols',
  'matmulBackwardWeightCols',
  'attentionForwardPairs',
  'attentionBackwardPairs',
  'kvCacheAppend',
  'attentionCachedPairs',
] as const;

/**
 * the kernel exports that a thread can run a share of: the range ones take it as their last two
 * arguments; the elementwise ones get pointers and a length offset to their share
 */
export type SplitKernel =
  | 'matmulForwardCols'
  | 'matmulBackwardInputCols'
  | 'matmulBackwardWeightCols'
  | 'attentionForwardPairs'
  | 'attentionBackwardPairs'
  | 'attentionCachedPairs'
  | 'geluForward'
  | 'geluBackward'
  | 'adamwUpdate'
  | 'matmulQ8Cols'
  | 'matmulQ4Cols';

export interface WasmSource {
  /** a compiled tinygpt.wasm (edge runtimes: `import wasm from 'tinygpt/tinygpt.wasm'`) */
  module?: WebAssembly.Module;
  /** where to fetch tinygpt.wasm (browsers), or its file URL / path (Node) */
  url?: string | URL;
  /** the file's bytes (runtimes that allow compiling bytes) */
  bytes?: BufferSource;
}

const SINGLE_FILE = 'tinygpt.wasm';
const THREADS_FILE = 'tinygpt-threads.wasm';

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

function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === 'string';
}

/** URL of this module: import.meta.url, or in the CommonJS build (where tsup empties import.meta) __filename */
export async function thisModuleUrl(): Promise<string> {
  const esm = import.meta.url;
  if (esm) return esm;
  if (typeof __filename === 'string' && isNode()) {
    const { pathToFileURL } = await import('node:url');
    return pathToFileURL(__filename).href;
  }
  throw new Error(
    'cannot locate tinygpt.wasm: this build has neither import.meta.url nor __filename; pass { module }, { url } or { bytes }',
  );
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

/** tinygpt.wasm -> tinygpt-relaxed.wasm, tinygpt-threads.wasm -> tinygpt-threads-relaxed.wasm */
function relaxedFile(file: string): string {
  return file.replace(/\.wasm$/, '-relaxed.wasm');
}

/**
 * Where to look when the caller names no source: beside this module, then the dev build folder; the
 * relaxed-SIMD build of the file first where the runtime has relaxed SIMD, the plain one after it.
 */
async function defaultLocations(file: string): Promise<URL[]> {
  const here = await thisModuleUrl();
  const files = hasRelaxedSimd() ? [relaxedFile(file), file] : [file];
  // the build-folder path is assembled at run time so bundlers do not try to resolve it as an asset
  return files.flatMap((f) => [new URL(`./${f}`, here), new URL(['..', '..', '..', 'build', f].join('/'), here)]);
}

async function instanceFromLocation(location: string | URL): Promise<WebAssembly.Instance> {
  return WebAssembly.instantiate(await moduleFromLocation(location), imports);
}

async function moduleFromLocation(location: string | URL): Promise<WebAssembly.Module> {
  const asText = String(location);
  // a file: URL, a Windows drive path or any string without a URL scheme names a file
  const isFile =
    location instanceof URL
      ? location.protocol === 'file:'
      : asText.startsWith('file:') || /^[a-z]:[\\/]/i.test(asText) || !/^[a-z][a-z0-9+.-]*:/i.test(asText);
  if (isNode() && isFile) {
    const { readFile } = await import('node:fs/promises');
    const { fileURLToPath } = await import('node:url');
    const path = asText.startsWith('file:') ? fileURLToPath(asText) : asText;
    return WebAssembly.compile(await readFile(path));
  }
  const response = await fetch(location);
  if (!response.ok) throw new Error(`fetching ${asText} failed: HTTP ${response.status} ${response.statusText}`);
  if (typeof WebAssembly.compileStreaming === 'function' && response.headers.get('content-type')?.startsWith('application/wasm')) {
    return WebAssembly.compileStreaming(response);
  }
  // servers that do not send application/wasm: compile from the downloaded bytes
  return WebAssembly.compile(await response.arrayBuffer());
}

function kernelsOf(instance: WebAssembly.Instance, file = SINGLE_FILE): Kernels {
  const exports = instance.exports as Record<string, unknown>;
  const missing = KERNEL_EXPORTS.filter((name) => exports[name] === undefined);
  if (missing.length > 0) {
    throw new Error(`${file} lacks the exports ${missing.join(', ')}: a stale or foreign file? (rebuild with npm run build:wasm)`);
  }
  const initialize = exports._initialize;
  if (typeof initialize === 'function') (initialize as () => void)();
  return exports as unknown as Kernels;
}

/** Instantiates the kernels from the first source given (module, bytes, url) or the default location. */
export async function loadKernels(source: WasmSource = {}): Promise<Kernels> {
  if (source.module !== undefined) {
    if (!(source.module instanceof WebAssembly.Module)) throw new TypeError('loadKernels: module must be a WebAssembly.Module');
    return kernelsOf(await WebAssembly.instantiate(source.module, imports));
  }
  if (source.bytes !== undefined) {
    const { instance } = await WebAssembly.instantiate(source.bytes, imports);
    return kernelsOf(instance);
  }
  if (source.url !== undefined) return kernelsOf(await instanceFromLocation(source.url));
  const tried: string[] = [];
  for (const location of await defaultLocations(SINGLE_FILE)) {
    try {
      return kernelsOf(await instanceFromLocation(location));
    } catch (err) {
      tried.push(`${location.href}: ${(err as Error).message}`);
    }
  }
  throw new Error(`could not load tinygpt.wasm; tried ${tried.join('; ')}. Pass { module }, { url } or { bytes }`);
}

/**
 * Compiles tinygpt-threads.wasm from the first source given; else, when the caller named where
 * tinygpt.wasm is (`singleUrl`), from beside it; else from the default locations. Workers need the
 * compiled module itself, so this stops short of instantiating.
 */
export async function compileThreadedModule(source: WasmSource = {}, singleUrl?: string | URL): Promise<WebAssembly.Module> {
  if (source.module !== undefined) {
    if (!(source.module instanceof WebAssembly.Module)) throw new TypeError('threadsSource.module must be a WebAssembly.Module');
    return source.module;
  }
  if (source.bytes !== undefined) return WebAssembly.compile(source.bytes);
  if (source.url !== undefined) return moduleFromLocation(source.url);
  let candidates: (string | URL)[];
  if (singleUrl !== undefined) {
    const single = String(singleUrl);
    if (!single.endsWith(SINGLE_FILE))
      throw new Error(`${single} is not named ${SINGLE_FILE}, so ${THREADS_FILE} is not looked for beside it; pass threadsSource`);
    candidates = [single.slice(0, -SINGLE_FILE.length) + THREADS_FILE];
  } else {
    candidates = await defaultLocations(THREADS_FILE);
  }
  const tried: string[] = [];
  for (const location of candidates) {
    try {
      return await moduleFromLocation(location);
    } catch (err) {
      tried.push(`${String(location)}: ${(err as Error).message}`);
    }
  }
  throw new Error(`could not load ${THREADS_FILE}; tried ${tried.join('; ')}`);
}

/** Instantiates the threaded kernels over `memory` (a shared memory from createSharedMemory). */
export async function instantiateThreaded(module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<Kernels> {
  const instance = await WebAssembly.instantiate(module, { env: { abort, memory } });
  return kernelsOf(instance, THREADS_FILE);
}
