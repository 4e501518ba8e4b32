/**
 * A model that lives in a worker: createModelWorker / loadModelWorker start a dedicated module
 * worker (a Web Worker in browsers, a worker_threads Worker in Node) running host.ts, and return a
 * handle with the in-thread API's shape: train, generate, generateStream, saveModel, dispose.
 * Callbacks (onStep, onEval, onCheckpoint) hear the worker's progress, an AbortSignal stops the call
 * in the worker, model bytes are transferred rather than copied, and errors arrive as their own
 * class (protocol.ts). The page's main thread only passes messages, so long training never blocks it.
 */
import type { BackendChoice, GPTConfig, GPTConfigInput } from '../model/types.js';
import type { GenerateOptions, GenerateResult, GenerateSequences, Prompt } from '../generate/options.js';
import type { StreamToken } from '../generate/generate.js';
import type { TrainOptions, TrainResult, StepMetrics, EvalMetrics, BackendChange } from '../train/trainer.js';
import type { SaveModelOptions } from '../io/model-file.js';
import type { Tokenizer, TokenizerJSON } from '../tokenizer/types.js';
import { tokenizerFromJSON } from '../tokenizer/json.js';
import { ASYNC_DISPOSE, DISPOSE, DisposedError } from '../util/dispose.js';
import { describe } from '../util/describe.js';
import { BACKEND_CHOICES, validateConfig } from '../model/config.js';
import { isNode, startWorkerThread } from '../host/node.js';
import { packagedModelWorker } from '../backend/wasm/model-worker-asset.js';
import type { WorkerGenerateOptions, WorkerTrainOptions } from './host.js';
import { reviveError, transferable } from './protocol.js';
import type { FromWorker, InitRequest, Method, ToWorker, WorkerAdapterInfo, WorkerAdapters, WorkerModelInfo } from './protocol.js';

export type { WorkerAdapterInfo, WorkerAdapters } from './protocol.js';

declare global {
  // The Web Worker, declared empty: it merges with the DOM or WebWorker lib's where a consumer has one,
  // and the declarations still check under skipLibCheck: false in a Node project without them.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Worker {}
}

/** a started worker: a Web Worker, or a Node worker_threads Worker */
type AnyWorker = Worker | NodeWorkerLike;

interface NodeWorkerLike {
  postMessage(message: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
  terminate(): Promise<number>;
  ref(): void;
  unref(): void;
}

export interface ModelWorkerOptions {
  /**
   * the worker to use: one you started from your own module that calls serveModelWorker() (how a
   * bundler emits it: `new Worker(new URL('./model.worker.js', import.meta.url), { type: 'module' })`),
   * or the URL of such a module. Default: the package's model-worker.js (backend/wasm/model-worker-asset.ts).
   */
  worker?: AnyWorker | string | URL;
  /** threads for the wasm backend inside the worker: 'auto' (default) or a count */
  wasmThreads?: number | 'auto';
  /** hears why 'auto' passed over a backend and how many wasm threads the worker got (default console.info) */
  onBackendNotice?: (message: string) => void;
}

export interface CreateModelWorkerOptions extends ModelWorkerOptions {
  /** the tokenizer the worker uses for text prompts and results, and saves with the model */
  tokenizer?: Tokenizer;
}

export interface LoadModelWorkerOptions extends ModelWorkerOptions {
  /** backend for the loaded model (default: the file's config.backend, else 'auto') */
  backend?: BackendChoice;
  /** config fields that override the file's (see loadModel) */
  config?: Partial<GPTConfigInput>;
}

/** TrainOptions as a worker takes them: the same fields, with a tokenizer defaulting to the worker's */
export type ModelWorkerTrainOptions = TrainOptions;

/**
 * Start a worker and build a fresh model in it (as createModel does). Resolves once the model is
 * ready; rejects with createModel's error (a ConfigError naming the field, ...) and ends the worker.
 */
export async function createModelWorker(config: GPTConfigInput, options: CreateModelWorkerOptions = {}): Promise<ModelWorker> {
  // refused here, before a worker starts
  checkWorkerOptions('createModelWorker', options);
  validateConfig(config);
  if (options.tokenizer !== undefined && typeof (options.tokenizer as Partial<Tokenizer> | null)?.toJSON !== 'function') {
    throw new TypeError(
      `createModelWorker: options.tokenizer must be a Tokenizer (BPETokenizer, CharTokenizer), got ${describe(options.tokenizer)}`,
    );
  }
  const init: InitRequest = { mode: 'create', config, tokenizer: options.tokenizer?.toJSON(), wasmThreads: options.wasmThreads };
  return ModelWorker.start(init, [], options);
}

/**
 * Start a worker and load a model file in it (as loadModel does). The bytes are transferred, not
 * copied, when they span their whole buffer: afterwards `bytes` is empty (pass `bytes.slice()` to
 * keep a copy).
 */
export async function loadModelWorker(bytes: Uint8Array, options: LoadModelWorkerOptions = {}): Promise<ModelWorker> {
  if (!(bytes instanceof Uint8Array))
    throw new TypeError(`loadModelWorker: bytes must be a Uint8Array (a model file), got ${describe(bytes)}`);
  checkWorkerOptions('loadModelWorker', options);
  if (options.backend !== undefined && !BACKEND_CHOICES.includes(options.backend)) {
    throw new RangeError(
      `loadModelWorker: options.backend must be one of ${BACKEND_CHOICES.map((b) => `'${b}'`).join(', ')}, got ${describe(options.backend)}`,
    );
  }
  const init: InitRequest = { mode: 'load', bytes, backend: options.backend, config: options.config, wasmThreads: options.wasmThreads };
  return ModelWorker.start(init, transferable(bytes), options);
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  onProgress?(kind: string, value: unknown): void;
}

export class ModelWorker {
  /** the model's validated config */
  readonly config: GPTConfig;
  /** the backend the model runs on inside the worker */
  readonly backendName: string;
  /** wasm threads in use inside the worker (1 on other backends), and why not more */
  readonly threads: number;
  readonly threadsNote: string;
  private tokenizerJSON: TokenizerJSON | undefined;
  private tokenizerCache: Tokenizer | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private ended: Error | null = null;
  /** dispose() ran: every later call rejects with DisposedError */
  private disposed = false;

  private constructor(
    private readonly worker: AnyWorker,
    info: WorkerModelInfo,
  ) {
    this.config = info.config;
    this.backendName = info.backendName;
    this.threads = info.threads;
    this.threadsNote = info.threadsNote;
    this.tokenizerJSON = info.tokenizer;
  }

  /** @internal */
  static async start(init: InitRequest, transfer: ArrayBuffer[], options: ModelWorkerOptions): Promise<ModelWorker> {
    const worker = await startWorker(options.worker);
    const notice = options.onBackendNotice ?? ((m: string) => console.info(`[tinygpt] ${m}`));
    // the handle does not exist until init answers: a first, temporary dispatcher hears that answer
    let handle: ModelWorker | null = null;
    const early: Pending[] = [];
    const deliver = (message: FromWorker) => {
      if (message.type === 'notice') notice(message.message);
      else if (handle !== null) handle.receive(message);
      else if (message.id === 0) {
        const waiter = early.shift();
        if (message.type === 'result') waiter?.resolve(message.value);
        else if (message.type === 'error') waiter?.reject(reviveError(message.error));
      }
    };
    const fail = (error: Error) => {
      if (handle !== null) handle.end(error);
      else for (const waiter of early.splice(0)) waiter.reject(error);
    };
    listen(worker, deliver, fail);
    setRef(worker, true);
    try {
      const info = await new Promise<WorkerModelInfo>((resolve, reject) => {
        early.push({ resolve: (v) => resolve(v as WorkerModelInfo), reject });
        post(worker, { type: 'call', id: 0, method: 'init', args: init }, transfer);
      });
      handle = new ModelWorker(worker, info);
      setRef(worker, false);
      return handle;
    } catch (error) {
      await terminate(worker);
      throw error;
    }
  }

  /** the worker's tokenizer (built here from its JSON on first use), or undefined */
  get tokenizer(): Tokenizer | undefined {
    if (this.tokenizerCache === undefined && this.tokenizerJSON !== undefined) this.tokenizerCache = tokenizerFromJSON(this.tokenizerJSON);
    return this.tokenizerCache;
  }

  /** false once dispose was called or the worker stopped */
  get running(): boolean {
    return this.ended === null;
  }

  /**
   * train() in the worker. Callbacks run here as the worker reports; the signal stops training after
   * the current step (resolving with stopped: 'aborted', as in-thread). Checkpoint bytes are moved
   * here, and resumeFrom's bytes are moved there when they span their buffer.
   */
  train(options: ModelWorkerTrainOptions): Promise<TrainResult> {
    const refused = this.refuse('train', 'options', options);
    if (refused) return refused;
    const { onStep, onEval, onCheckpoint, onBackendChange, signal, tokenizer, ...rest } = options;
    if (typeof rest.resumeFrom === 'string') {
      return Promise.reject(new TypeError('ModelWorker.train: resumeFrom must be checkpoint bytes (a Uint8Array), not a path'));
    }
    const args: WorkerTrainOptions = {
      ...rest,
      tokenizer: tokenizer?.toJSON(),
      listen: { step: !!onStep, eval: !!onEval, checkpoint: !!onCheckpoint, backendChange: !!onBackendChange },
    };
    const transfer = rest.resumeFrom instanceof Uint8Array ? transferable(rest.resumeFrom) : [];
    return this.call<TrainResult>('train', args, transfer, signal, (kind, value) => {
      if (kind === 'step') onStep?.(value as StepMetrics);
      else if (kind === 'eval') onEval?.(value as EvalMetrics);
      else if (kind === 'backendChange') onBackendChange?.(value as BackendChange);
      else if (kind === 'checkpoint') {
        const { bytes, step } = value as { bytes: Uint8Array; step: number };
        void onCheckpoint?.(bytes, step);
      }
    });
  }

  /** generate() in the worker; text prompts and results use the worker's tokenizer unless options bring one */
  generate(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerateResult | GenerateSequences> {
    const refused = this.refuse('generate', 'options', options);
    if (refused) return refused;
    const { signal, ...rest } = options;
    return this.call('generate', [prompt, workerGenerateOptions(rest)], [], signal);
  }

  /**
   * generateStream() in the worker: tokens arrive as the worker makes them. Leaving the loop early
   * (break, return) stops generation there.
   */
  generateStream(prompt: Prompt, options: GenerateOptions = {}): AsyncIterable<StreamToken> {
    const refused = this.refuse('generateStream', 'options', options);
    if (refused) {
      // the refusal arrives at the first next(), as the stream's own errors do
      return { [Symbol.asyncIterator]: () => ({ next: () => refused }) };
    }
    const { signal, ...rest } = options;
    return {
      [Symbol.asyncIterator]: () => {
        const tokens: StreamToken[] = [];
        let wake: (() => void) | null = null;
        let finished = false;
        let failure: Error | null = null;
        const stopper = new AbortController();
        const onAbort = () => stopper.abort(signal?.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) onAbort();
        const notify = () => {
          wake?.();
          wake = null;
        };
        this.call<undefined>('stream', [prompt, workerGenerateOptions(rest)], [], stopper.signal, (kind, value) => {
          if (kind === 'token') tokens.push(value as StreamToken);
          notify();
        }).then(
          () => {
            finished = true;
            notify();
          },
          (error: Error) => {
            failure = error;
            finished = true;
            notify();
          },
        );
        const stop = () => {
          signal?.removeEventListener('abort', onAbort);
          if (!finished) stopper.abort();
        };
        return {
          next: async (): Promise<IteratorResult<StreamToken>> => {
            while (tokens.length === 0 && !finished) await new Promise<void>((resolve) => (wake = resolve));
            if (tokens.length > 0) return { value: tokens.shift()!, done: false };
            signal?.removeEventListener('abort', onAbort);
            if (failure !== null && !(stopper.signal.aborted && signal?.aborted !== true)) throw failure;
            return { value: undefined, done: true };
          },
          return: (): Promise<IteratorResult<StreamToken>> => {
            stop();
            return Promise.resolve({ value: undefined, done: true });
          },
        };
      },
    };
  }

  /**
   * saveModel() in the worker: the file's bytes, moved here. The worker's tokenizer is saved with the
   * model unless options bring another (or `tokenizer: false` leaves it out).
   */
  saveModel(options: Omit<SaveModelOptions, 'tokenizer'> & { tokenizer?: Tokenizer | false } = {}): Promise<Uint8Array> {
    const refused = this.refuse('saveModel', 'options', options);
    if (refused) return refused;
    const { tokenizer, ...rest } = options;
    return this.call('save', { ...rest, tokenizer: tokenizer === false ? false : tokenizer?.toJSON() }, []);
  }

  /**
   * Load a LoRA adapter file (saveAdapter's bytes, made for this model's shape) into the worker under
   * `name`, without attaching it: several adapters share the worker's one base model, and
   * setAdapter(name) picks the one generate, generateStream, beam search and train use. The bytes
   * are transferred, not copied, when they span their whole buffer (afterwards `bytes` is empty).
   */
  loadAdapter(name: string, bytes: Uint8Array): Promise<WorkerAdapterInfo> {
    const refused = this.refuseName('loadAdapter', name, false);
    if (refused) return refused;
    if (!(bytes instanceof Uint8Array)) {
      return Promise.reject(new TypeError('ModelWorker.loadAdapter: bytes must be a Uint8Array (the file saveAdapter wrote)'));
    }
    return this.call('loadAdapter', [name, bytes], transferable(bytes));
  }

  /** Attach the adapter loaded under `name` to the worker's model, or detach (null) to run the base model alone. */
  setAdapter(name: string | null): Promise<void> {
    return this.refuseName('setAdapter', name, true) ?? this.call('setAdapter', name, []);
  }

  /** The adapters loaded in the worker and the name of the attached one (null: none). */
  listAdapters(): Promise<WorkerAdapters> {
    return this.call('listAdapters', undefined, []);
  }

  /** Free the adapter loaded under `name` (detached first if attached). */
  removeAdapter(name: string): Promise<void> {
    return this.refuseName('removeAdapter', name, false) ?? this.call('removeAdapter', name, []);
  }

  /**
   * Frees the model and ends the worker; calls still under way reject. Safe to call twice. (Also
   * `await using` / `using` where the runtime has Symbol.asyncDispose / Symbol.dispose.)
   */
  async dispose(): Promise<void> {
    if (this.ended !== null) return;
    this.disposed = true;
    this.end(new DisposedError('ModelWorker: disposed'));
    await terminate(this.worker);
  }

  /** `await using worker = ...` ends the worker at the end of the block */
  [ASYNC_DISPOSE](): Promise<void> {
    return this.dispose();
  }

  /** `using worker = ...` starts ending the worker at the end of the block (without waiting) */
  [DISPOSE](): void {
    void this.dispose();
  }

  /** a rejection for a call after dispose, or with `value` (its `argument`) not an options object; else null */
  private refuse(caller: string, argument: string, value: unknown): Promise<never> | null {
    if (this.disposed) return Promise.reject(new DisposedError(`ModelWorker.${caller}: this model worker was disposed`));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return Promise.reject(new TypeError(`ModelWorker.${caller}: ${argument} must be an object, got ${describe(value)}`));
    }
    return null;
  }

  /** a rejection for a call after dispose, or with an adapter name that is not a non-empty string (or null where allowed); else null */
  private refuseName(caller: string, name: unknown, nullAllowed: boolean): Promise<never> | null {
    if (this.disposed) return Promise.reject(new DisposedError(`ModelWorker.${caller}: this model worker was disposed`));
    if ((name === null && nullAllowed) || (typeof name === 'string' && name.length > 0)) return null;
    return Promise.reject(
      new TypeError(`ModelWorker.${caller}: name must be a non-empty string${nullAllowed ? ' or null' : ''}, got ${describe(name)}`),
    );
  }

  private call<T>(
    method: Method,
    args: unknown,
    transfer: ArrayBuffer[],
    signal?: AbortSignal,
    onProgress?: Pending['onProgress'],
  ): Promise<T> {
    if (this.disposed) return Promise.reject(new DisposedError(`ModelWorker.${method}: this model worker was disposed`));
    if (this.ended !== null) return Promise.reject(new Error(`ModelWorker.${method}: the worker has ended (${this.ended.message})`));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => post(this.worker, { type: 'abort', id }, []);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        if (this.pending.size === 0) setRef(this.worker, false);
      };
      this.pending.set(id, {
        resolve: (value) => {
          settle();
          resolve(value as T);
        },
        // an aborted call rejects with the caller's own reason, as in-thread generate does
        reject: (error) => {
          settle();
          reject(signal?.aborted && isAbortError(error) ? abortReason(signal) : error);
        },
        onProgress,
      });
      setRef(this.worker, true);
      post(this.worker, { type: 'call', id, method, args }, transfer);
    });
  }

  private receive(message: FromWorker): void {
    if (message.type === 'notice') return;
    const waiter = this.pending.get(message.id);
    if (waiter === undefined) return;
    if (message.type === 'progress') waiter.onProgress?.(message.kind, message.value);
    else if (message.type === 'result') waiter.resolve(message.value);
    else waiter.reject(reviveError(message.error));
  }

  private end(reason: Error): void {
    if (this.ended !== null) return;
    this.ended = reason;
    for (const waiter of [...this.pending.values()]) waiter.reject(reason);
    this.pending.clear();
  }
}

/** the options every worker start takes, checked before a worker starts */
function checkWorkerOptions(caller: string, options: unknown): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${caller}: options must be an object, got ${describe(options)}`);
  }
  const { worker, wasmThreads, onBackendNotice } = options as ModelWorkerOptions;
  if (
    worker !== undefined &&
    typeof worker !== 'string' &&
    !(worker instanceof URL) &&
    typeof (worker as { postMessage?: unknown } | null)?.postMessage !== 'function'
  ) {
    throw new TypeError(`${caller}: options.worker must be a Worker, a URL or a URL string, got ${describe(worker)}`);
  }
  if (wasmThreads !== undefined && wasmThreads !== 'auto' && !(Number.isInteger(wasmThreads) && wasmThreads >= 1)) {
    const message = `${caller}: options.wasmThreads must be 'auto' or an integer >= 1, got ${describe(wasmThreads)}`;
    throw typeof wasmThreads === 'number' ? new RangeError(message) : new TypeError(message);
  }
  if (onBackendNotice !== undefined && typeof onBackendNotice !== 'function') {
    throw new TypeError(`${caller}: options.onBackendNotice must be a function, got ${describe(onBackendNotice)}`);
  }
}

function workerGenerateOptions(options: Omit<GenerateOptions, 'signal'>): WorkerGenerateOptions {
  const { tokenizer, ...rest } = options;
  return { ...rest, tokenizer: tokenizer?.toJSON() };
}

function abortReason(signal: AbortSignal): Error {
  return (signal.reason as Error | undefined) ?? new DOMException('the call was aborted', 'AbortError');
}

function isAbortError(error: Error): boolean {
  return error.name === 'AbortError';
}

function isNodeWorker(worker: AnyWorker): worker is NodeWorkerLike {
  return typeof (worker as NodeWorkerLike).on === 'function';
}

async function startWorker(given: ModelWorkerOptions['worker']): Promise<AnyWorker> {
  if (given !== undefined && typeof given !== 'string' && !(given instanceof URL)) return given;
  const packaged = packagedModelWorker();
  const url = given !== undefined ? new URL(given, packaged) : packaged;
  if (isNode()) return startWorkerThread(url);
  return new Worker(url, { type: 'module' });
}

function post(worker: AnyWorker, message: ToWorker, transfer: ArrayBuffer[]): void {
  worker.postMessage(message, transfer);
}

function listen(worker: AnyWorker, deliver: (message: FromWorker) => void, fail: (error: Error) => void): void {
  if (isNodeWorker(worker)) {
    worker.on('message', (message: FromWorker) => deliver(message));
    worker.on('error', (error: Error) => fail(new Error(`model worker failed: ${error.message}`, { cause: error })));
    worker.on('exit', (code: number) => fail(new Error(`model worker exited with code ${code}`)));
    return;
  }
  worker.addEventListener('message', (event) => deliver(event.data as FromWorker));
  worker.addEventListener('error', (event) => {
    event.preventDefault();
    fail(new Error(`model worker failed: ${event.message || 'its script could not load (check the worker URL and the server)'}`));
  });
  worker.addEventListener('messageerror', () => fail(new Error('model worker: a message could not be read')));
}

/** a Node worker keeps the process alive only while a call is under way: a forgotten handle does not stop it exiting */
function setRef(worker: AnyWorker, busy: boolean): void {
  if (!isNodeWorker(worker)) return;
  if (busy) worker.ref();
  else worker.unref();
}

async function terminate(worker: AnyWorker): Promise<void> {
  if (isNodeWorker(worker)) await worker.terminate();
  else worker.terminate();
}
