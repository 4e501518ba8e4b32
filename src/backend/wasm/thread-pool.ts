/**
 * A pool of workers over one shared WebAssembly.Memory, each with its own instance of
 * tinygpt-threads.wasm (wasm-worker.js). The calling thread hands out shares of one kernel call
 * through a small control block in a SharedArrayBuffer, runs share 0 itself, then blocks with
 * Atomics.wait until every worker has published its share as done. Blocking is allowed on Node's
 * main thread and inside Web Workers, never on a browser page's main thread: threadSupport()
 * (threads.ts) says where threads can be used and why not elsewhere. The wasm backend imports this
 * module when it starts threads, not before.
 */
import type { Kernels, SplitKernel } from './loader.js';
import { isNode, startWorkerThread } from '../../host/node.js';

/** word index of each field in a worker's slot of the Int32 control words */
const WORDS = { generation: 0, done: 1, fn: 2, argc: 3, status: 4, quit: 5, gone: 6, result: 7 } as const;
/** 16 words = 64 bytes: one cache line per slot, so slots do not share lines */
const WORDS_PER_SLOT = 16;
const ARGS_PER_SLOT = 16;
/** kernel names as the control block numbers them */
const SPLIT_KERNELS: readonly SplitKernel[] = [
  'matmulForwardCols',
  'matmulBackwardInputCols',
  'matmulBackwardWeightCols',
  'attentionForwardPairs',
  'attentionBackwardPairs',
  'attentionCachedPairs',
  'geluForward',
  'geluBackward',
  'adamwUpdate',
  'matmulQ8Cols',
  'matmulQ4Cols',
  'layerNormForwardRows',
  'layerNormBackwardInputRows',
  'layerNormBackwardParamsCols',
  'crossEntropyForwardRows',
  'crossEntropyBackwardRows',
  'encoderForwardRows',
  'encoderBackwardCols',
  'matmulF16Cols',
  'matmulRowsCols',
];
/**
 * how long one Atomics.wait lasts before the caller checks again that the worker is alive (a worker
 * that ends marks its gone word and wakes the caller; this catches one that could not)
 */
const WAIT_SLICE_MS = 1000;
/**
 * Checks of a done word before the caller sleeps in Atomics.wait (~10-30 us): its own share often
 * ends just before the workers', and a sleep and wake-up costs ~50 us (measured in Node 20).
 */
const CALLER_SPINS = 2000;
/**
 * Checks of its generation word a worker makes before it sleeps (~0.1-0.3 ms): the next split call
 * of a training step usually comes sooner, and then wakes the worker in ~4 us instead of ~50 us.
 * Longer would hold a shared core for nothing between steps.
 */
const WORKER_SPINS = 20000;
interface WorkerHandle {
  terminate(): void;
  /** false once the worker is known to have stopped (Node learns it between calls, from the 'exit' event) */
  alive(): boolean;
}

export interface PoolOptions {
  /** the compiled tinygpt-threads.wasm */
  module: WebAssembly.Module;
  /** the shared memory the calling thread's instance uses */
  memory: WebAssembly.Memory;
  /** the calling thread's kernels (it runs share 0 of every call) */
  local: Kernels;
  /** one packing-buffer region per worker (byte addresses) */
  scratch: number[];
  /** where wasm-worker.js is */
  workerUrl: URL;
}

export class ThreadPool {
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array[];
  private generation = 0;
  private closed = false;

  private constructor(
    private readonly workers: WorkerHandle[],
    control: SharedArrayBuffer,
    argsByteOffset: number,
    private readonly local: Kernels,
  ) {
    this.ctrl = new Int32Array(control, 0, workers.length * WORDS_PER_SLOT);
    this.args = workers.map((_, i) => new Float64Array(control, argsByteOffset + i * ARGS_PER_SLOT * 8, ARGS_PER_SLOT));
  }

  /** threads in use, the calling thread included */
  get size(): number {
    return this.workers.length + 1;
  }

  /** false once disposed (by the owner, or after a worker stopped) */
  get running(): boolean {
    return !this.closed;
  }

  /**
   * Starts one worker per scratch region and resolves once each has instantiated the module. Call
   * it before any kernel runs: instantiating rewrites the module's constant data (the same bytes).
   */
  static async start(opts: PoolOptions): Promise<ThreadPool> {
    const count = opts.scratch.length;
    const argsByteOffset = count * WORDS_PER_SLOT * 4;
    const control = new SharedArrayBuffer(argsByteOffset + count * ARGS_PER_SLOT * 8);
    // slot i's worker, set as soon as it exists so that a failed start can stop every one of them
    const workers: WorkerHandle[] = [];
    const started = await Promise.allSettled(
      opts.scratch.map(async (scratch, slot) => {
        const init = {
          module: opts.module,
          memory: opts.memory,
          control,
          slot,
          wordsPerSlot: WORDS_PER_SLOT,
          argsPerSlot: ARGS_PER_SLOT,
          argsByteOffset,
          words: WORDS,
          fns: SPLIT_KERNELS,
          scratch,
          spins: WORKER_SPINS,
        };
        const created = (handle: WorkerHandle) => (workers[slot] = handle);
        await (isNode() ? startNodeWorker(opts.workerUrl, init, created) : startWebWorker(opts.workerUrl, init, created));
      }),
    );
    const failure = started.find((result) => result.status === 'rejected');
    if (failure !== undefined) {
      for (const w of workers) w?.terminate();
      throw failure.reason;
    }
    return new ThreadPool(workers, control, argsByteOffset, opts.local);
  }

  /**
   * Runs `fn` once per entry of `shares` (the argument list of each share): share 0 on the calling
   * thread, share i on worker i-1, and returns when all are done, with each share's return value
   * (0 for kernels that return nothing). Shares must write disjoint memory.
   */
  run(fn: SplitKernel, shares: number[][]): number[] {
    if (this.closed) throw new Error('wasm thread pool: used after dispose');
    if (shares.length > this.size) throw new RangeError(`wasm thread pool: ${shares.length} shares for ${this.size} threads`);
    const fnIndex = SPLIT_KERNELS.indexOf(fn);
    const generation = (this.generation = (this.generation + 1) | 0);
    const ctrl = this.ctrl;
    for (let i = 1; i < shares.length; i++) {
      const base = (i - 1) * WORDS_PER_SLOT;
      const share = shares[i];
      this.args[i - 1].set(share);
      ctrl[base + WORDS.fn] = fnIndex;
      ctrl[base + WORDS.argc] = share.length;
      ctrl[base + WORDS.status] = 0;
      Atomics.store(ctrl, base + WORDS.generation, generation);
      Atomics.notify(ctrl, base + WORDS.generation);
    }
    let localError: Error | null = null;
    const results = [0];
    try {
      results[0] = (this.local[fn] as (...args: number[]) => number | undefined)(...shares[0]) ?? 0;
    } catch (err) {
      localError = err instanceof Error ? err : new Error(String(err));
    }
    const failed: number[] = [];
    for (let i = 1; i < shares.length; i++) {
      const base = (i - 1) * WORDS_PER_SLOT;
      for (let spin = 0; spin < CALLER_SPINS && Atomics.load(ctrl, base + WORDS.done) !== generation; spin++);
      for (;;) {
        const done = Atomics.load(ctrl, base + WORDS.done);
        if (done === generation) break;
        if (Atomics.load(ctrl, base + WORDS.gone) !== 0 || !this.workers[i - 1].alive()) {
          this.dispose();
          throw new Error(`wasm thread pool: worker ${i - 1} stopped while running ${fn}; the backend now runs on one thread`);
        }
        Atomics.wait(ctrl, base + WORDS.done, done, WAIT_SLICE_MS);
      }
      if (ctrl[base + WORDS.status] !== 0) failed.push(i - 1);
      results.push(ctrl[base + WORDS.result]);
    }
    if (localError !== null) throw localError;
    if (failed.length > 0)
      throw new Error(`wasm thread pool: ${fn} failed on worker(s) ${failed.join(', ')} (the worker logged the error)`);
    return results;
  }

  /** Stops every worker (a second call does nothing). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (let i = 0; i < this.workers.length; i++) {
      const base = i * WORDS_PER_SLOT;
      Atomics.store(this.ctrl, base + WORDS.quit, 1);
      Atomics.store(this.ctrl, base + WORDS.generation, (this.generation + 1) | 0);
      Atomics.notify(this.ctrl, base + WORDS.generation);
      this.workers[i].terminate();
    }
  }
}

interface ReadyMessage {
  ready?: boolean;
  error?: string;
}

async function startNodeWorker(url: URL, init: object, created: (handle: WorkerHandle) => void): Promise<void> {
  const worker = await startWorkerThread(url);
  let stopped = false;
  const handle: WorkerHandle = {
    terminate: () => void worker.terminate(),
    alive: () => !stopped && worker.threadId !== -1,
  };
  created(handle);
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: ReadyMessage) => (m.ready ? resolve() : reject(new Error(`wasm worker failed to start: ${m.error}`))));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      stopped = true;
      reject(new Error(`wasm worker exited with code ${code} before it was ready`));
    });
    worker.postMessage(init);
  });
  // a worker must not keep the process alive: a program that forgets dispose() still exits
  worker.unref();
}

async function startWebWorker(url: URL, init: object, created: (handle: WorkerHandle) => void): Promise<void> {
  const worker = new Worker(url, { type: 'module', name: 'tinygpt-wasm' });
  created({ terminate: () => worker.terminate(), alive: () => true });
  await new Promise<void>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<ReadyMessage>) =>
      e.data.ready ? resolve() : reject(new Error(`wasm worker failed to start: ${e.data.error}`));
    worker.onerror = (e) => reject(new Error(`wasm worker failed to load from ${url.href}: ${e.message}`));
    worker.postMessage(init);
  });
  worker.onmessage = null;
  worker.onerror = null;
}
