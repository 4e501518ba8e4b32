/**
 * Creating the WebAssembly backend: loading the kernels and choosing how many threads they run on
 * (the threaded module over a shared memory plus workers where the runtime allows, else one thread,
 * saying why). The backend and its ops are in index.ts.
 */
import { compileThreadedModule, createSharedMemory, instantiateThreaded, loadKernels, type WasmSource } from './loader.js';
import { MAX_THREADS, threadSupport } from './threads.js';
import { assetAdvice, defaultLocations } from './assets.js';
import { MIN_MACS_PER_SHARE, WasmBackend } from './index.js';

export interface WasmBackendOptions extends WasmSource {
  /**
   * threads to run the kernels on (the calling thread included): 'auto' (default) takes
   * min(hardware threads, 8) where the runtime allows shared memory and blocking waits, else 1
   */
  threads?: number | 'auto';
  /** tinygpt-threads.wasm: a compiled module, URL/path or bytes (default: its row in the asset table, assets.ts) */
  threadsSource?: WasmSource;
  /** where wasm-worker.js is (default: its row in the asset table) */
  workerUrl?: string | URL;
  /**
   * multiply-adds each share of a split call must have at least (default 2^20); 0 splits every
   * call that has a column block or (batch, head) pair per thread
   */
  minMacsPerShare?: number;
  /**
   * hears why fewer threads than asked for are used; default console.info, except for 'auto' on a
   * runtime without workers (edge), which stays silent. The reason is also kept in `threadsNote`.
   */
  onNotice?: (message: string) => void;
}

/**
 * Loads the kernels (see loader.ts for the sources it accepts) and returns a backend over them: with
 * threads, tinygpt-threads.wasm over a shared memory plus workers; else tinygpt.wasm. A runtime or
 * file that cannot give threads falls back to one thread and says why (`threadsNote`, `onNotice`).
 * On edge runtimes pass `module` (compiling from bytes is refused there); they run one thread.
 */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const requested = opts.threads ?? 'auto';
  if (requested !== 'auto' && (!Number.isInteger(requested) || requested < 1 || requested > MAX_THREADS)) {
    throw new RangeError(`createWasmBackend: threads must be 'auto' or an integer in [1, ${MAX_THREADS}], got ${String(requested)}`);
  }
  const minMacs = opts.minMacsPerShare ?? MIN_MACS_PER_SHARE;
  if (!Number.isSafeInteger(minMacs) || minMacs < 0) {
    throw new RangeError(`createWasmBackend: minMacsPerShare must be an integer >= 0, got ${String(opts.minMacsPerShare)}`);
  }
  let note = '';
  let silent = false;
  if (
    requested !== 1 &&
    opts.threadsSource === undefined &&
    (opts.module !== undefined || opts.bytes !== undefined || opts.url !== undefined)
  ) {
    // the caller said where tinygpt.wasm is (as edge runtimes and some toolchains must): the threaded file is not ours to guess
    note = 'one thread: tinygpt.wasm was given without the threaded kernels (wasmAssets.threadedKernels)';
    silent = requested === 'auto';
  } else if (requested !== 1) {
    const support = await threadSupport();
    const wanted = support.ok ? (requested === 'auto' ? Math.min(support.cores, 8) : requested) : 1;
    if (!support.ok) {
      note = `one thread: ${support.reason}`;
      silent = support.silent && requested === 'auto';
    } else if (wanted > 1) {
      try {
        return await threadedBackend(opts, wanted, minMacs);
      } catch (err) {
        note = `one thread: the threaded kernels could not start: ${(err as Error).message}`;
      }
    } else {
      note = `one thread: the runtime reports ${support.cores} hardware thread(s)`;
      silent = requested === 'auto';
    }
  }
  const backend = new WasmBackend(await loadKernels(opts));
  backend.threadsNote = note;
  if (note !== '' && !silent) (opts.onNotice ?? ((m: string) => console.info(`[tinygpt] wasm backend: ${m}`)))(note);
  return backend;
}

async function threadedBackend(opts: WasmBackendOptions, threads: number, minMacsPerShare: number): Promise<WasmBackend> {
  const module = await compileThreadedModule(opts.threadsSource);
  const backend = new WasmBackend(await instantiateThreaded(module, createSharedMemory()));
  const workerUrl = opts.workerUrl !== undefined ? new URL(opts.workerUrl, defaultLocations('worker')[0]) : defaultLocations('worker')[0];
  try {
    await backend.startThreads(module, threads - 1, workerUrl, minMacsPerShare);
  } catch (err) {
    backend.dispose();
    throw new Error(`${(err as Error).message} (worker ${workerUrl.href}; if your toolchain did not emit it, ${assetAdvice('worker')})`, {
      cause: err,
    });
  }
  return backend;
}
