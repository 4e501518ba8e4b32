/**
 * The worker side of a ModelWorker: holds one model (and its tokenizer) and runs the calls the
 * handle sends (protocol.ts), one at a time in the order they arrive. Runs in a dedicated Web Worker
 * or a Node worker_threads Worker; the wasm backend inside takes threads where the runtime allows
 * (a cross-origin isolated page's worker, or Node), WebGPU works here as on a page.
 */
import { workerParentPort } from '../host/node.js';
import { createModel } from '../model/create.js';
import type { GPTModel } from '../model/types.js';
import { loadModel, saveModel } from '../io/model-file.js';
import { train, type TrainOptions } from '../train/trainer.js';
import { generate, generateStream } from '../generate/generate.js';
import type { GenerateOptions, Prompt } from '../generate/options.js';
import { tokenizerFromJSON } from '../tokenizer/json.js';
import type { Tokenizer, TokenizerJSON } from '../tokenizer/types.js';
import type { SaveModelOptions } from '../io/model-file.js';
import { loadAdapter, type AdaptableModel, type LoRAAdapter } from '../model/lora.js';
import { describe } from '../util/describe.js';
import { serializeError, transferable } from './protocol.js';
import type { FromWorker, InitRequest, Method, ToWorker, WorkerAdapterInfo, WorkerAdapters, WorkerModelInfo } from './protocol.js';

/** the callbacks of TrainOptions that the handle had: the worker sends their events back */
export type WorkerTrainOptions = Omit<TrainOptions, 'onStep' | 'onEval' | 'onCheckpoint' | 'onBackendChange' | 'signal' | 'tokenizer'> & {
  tokenizer?: TokenizerJSON;
  listen: { step: boolean; eval: boolean; checkpoint: boolean; backendChange: boolean };
};

export type WorkerGenerateOptions = Omit<GenerateOptions, 'signal' | 'tokenizer'> & { tokenizer?: TokenizerJSON };

interface Port {
  post(message: FromWorker, transfer: ArrayBuffer[]): void;
  listen(handler: (message: ToWorker) => void): void;
}

/**
 * Serve the model worker protocol on this worker's port. Call it once at the top of a worker module:
 * `import { serveModelWorker } from 'tinygpt/worker'; serveModelWorker();`, then hand that worker to
 * `createModelWorker(config, { worker })`. The package's own `model-worker.js` does just this.
 */
export async function serveModelWorker(): Promise<void> {
  serve(await workerPort());
}

async function workerPort(): Promise<Port> {
  const scope = globalThis as unknown as {
    postMessage?: (message: unknown, transfer: Transferable[]) => void;
    addEventListener?: (type: 'message', listener: (event: MessageEvent) => void) => void;
    process?: { versions?: { node?: string } };
  };
  if (typeof scope.process?.versions?.node === 'string') {
    const parentPort = await workerParentPort();
    if (parentPort === null) throw new Error('serveModelWorker: this is the main thread, not a worker_threads Worker');
    return {
      post: (message, transfer) => parentPort.postMessage(message, transfer),
      listen: (handler) => parentPort.on('message', handler),
    };
  }
  if (typeof scope.postMessage !== 'function' || typeof scope.addEventListener !== 'function') {
    throw new Error('serveModelWorker: not inside a Web Worker or a worker_threads Worker');
  }
  return {
    post: (message, transfer) => scope.postMessage!(message, transfer),
    listen: (handler) => scope.addEventListener!('message', (event) => handler(event.data as ToWorker)),
  };
}

function serve(port: Port): void {
  let model: GPTModel | null = null;
  let tokenizer: Tokenizer | undefined;
  /** the adapters loaded for the model, by name: several share the one base, at most one attached */
  const adapters = new Map<string, LoRAAdapter>();
  /** abort controllers of the calls under way, by id */
  const running = new Map<number, AbortController>();
  /** calls run one after another: a second train() waits for the first instead of interleaving steps */
  let queue: Promise<void> = Promise.resolve();

  const progress = (id: number, kind: Extract<FromWorker, { type: 'progress' }>['kind'], value: unknown, transfer: ArrayBuffer[] = []) =>
    port.post({ type: 'progress', id, kind, value }, transfer);

  const needModel = (): GPTModel => {
    if (model === null) throw new Error('model worker: the model is not ready (init failed or dispose was called)');
    return model;
  };

  const run = async (
    id: number,
    method: Method,
    args: unknown,
    signal: AbortSignal,
  ): Promise<{ value: unknown; transfer: ArrayBuffer[] }> => {
    switch (method) {
      case 'init': {
        const request = args as InitRequest;
        const onBackendNotice = (message: string) => port.post({ type: 'notice', message }, []);
        if (request.mode === 'create') {
          tokenizer = request.tokenizer ? tokenizerFromJSON(request.tokenizer) : undefined;
          model = await createModel(request.config, { onBackendNotice, wasmThreads: request.wasmThreads });
        } else {
          ({ model, tokenizer } = await loadModel(request.bytes, {
            backend: request.backend,
            config: request.config,
            onBackendNotice,
            wasmThreads: request.wasmThreads,
          }));
        }
        return { value: describeModel(model, tokenizer), transfer: [] };
      }
      case 'train': {
        const { listen, tokenizer: tokenizerJSON, ...rest } = args as WorkerTrainOptions;
        const options: TrainOptions = { ...rest, signal, tokenizer: tokenizerJSON ? tokenizerFromJSON(tokenizerJSON) : tokenizer };
        if (listen.step) options.onStep = (m) => progress(id, 'step', m);
        if (listen.eval) options.onEval = (m) => progress(id, 'eval', m);
        // the worker keeps no copy of a checkpoint: each is moved to the handle
        if (listen.checkpoint) options.onCheckpoint = (bytes, step) => progress(id, 'checkpoint', { bytes, step }, transferable(bytes));
        if (listen.backendChange) options.onBackendChange = (change) => progress(id, 'backendChange', change);
        return { value: await train(needModel(), options), transfer: [] };
      }
      case 'generate': {
        const [prompt, options] = args as [Prompt, WorkerGenerateOptions];
        return { value: await generate(needModel(), prompt, generateOptions(options, signal)), transfer: [] };
      }
      case 'stream': {
        const [prompt, options] = args as [Prompt, WorkerGenerateOptions];
        for await (const token of generateStream(needModel(), prompt, generateOptions(options, signal))) progress(id, 'token', token);
        return { value: undefined, transfer: [] };
      }
      case 'save': {
        const options = (args ?? {}) as Omit<SaveModelOptions, 'tokenizer'> & { tokenizer?: TokenizerJSON | false };
        const saveTokenizer =
          options.tokenizer === false ? undefined : options.tokenizer ? tokenizerFromJSON(options.tokenizer) : tokenizer;
        const bytes = await saveModel(needModel(), { ...options, tokenizer: saveTokenizer });
        return { value: bytes, transfer: [bytes.buffer] };
      }
      case 'loadAdapter': {
        const [name, bytes] = args as [string, Uint8Array];
        checkAdapterName('loadAdapter', name);
        if (adapters.has(name))
          throw new Error(`loadAdapter: an adapter named "${name}" is loaded already; removeAdapter("${name}") first`);
        const adapter = loadAdapter(adaptable('loadAdapter'), bytes, { attach: false });
        adapters.set(name, adapter);
        return { value: adapterInfo(name, adapter), transfer: [] };
      }
      case 'setAdapter': {
        const name = args as string | null;
        const target = adaptable('setAdapter');
        target.setAdapter(name === null ? null : knownAdapter('setAdapter', name));
        return { value: undefined, transfer: [] };
      }
      case 'listAdapters':
        return { value: listAdapters(), transfer: [] };
      case 'removeAdapter': {
        const name = args as string;
        const adapter = knownAdapter('removeAdapter', name);
        const target = adaptable('removeAdapter');
        if (target.lora === adapter) target.setAdapter(null);
        adapters.delete(name);
        adapter.dispose();
        return { value: undefined, transfer: [] };
      }
      case 'dispose': {
        for (const adapter of adapters.values()) adapter.dispose();
        adapters.clear();
        model?.dispose();
        model = null;
        return { value: undefined, transfer: [] };
      }
    }
  };

  const adaptable = (caller: string): AdaptableModel => {
    const target = needModel() as unknown as Partial<AdaptableModel>;
    if (typeof target.setAdapter !== 'function') throw new TypeError(`${caller}: this model takes no LoRA adapters`);
    return target as AdaptableModel;
  };

  const knownAdapter = (caller: string, name: string): LoRAAdapter => {
    checkAdapterName(caller, name);
    const adapter = adapters.get(name);
    if (adapter === undefined) {
      const loaded = [...adapters.keys()].map((n) => JSON.stringify(n)).join(', ') || 'none';
      throw new RangeError(`${caller}: name must be a loaded adapter (${loaded}), got ${JSON.stringify(name)}`);
    }
    return adapter;
  };

  const listAdapters = (): WorkerAdapters => {
    const attached = model?.lora ?? null;
    let active: string | null = null;
    for (const [name, adapter] of adapters) if (adapter === attached) active = name;
    return { adapters: [...adapters].map(([name, adapter]) => adapterInfo(name, adapter)), active };
  };

  const generateOptions = (options: WorkerGenerateOptions, signal: AbortSignal): GenerateOptions => ({
    ...options,
    signal,
    // the worker's own tokenizer unless the call brought one: prompts may be text, results carry text
    tokenizer: options.tokenizer ? tokenizerFromJSON(options.tokenizer) : tokenizer,
  });

  port.listen((message) => {
    if (message.type === 'abort') {
      running.get(message.id)?.abort(new DOMException('the call was aborted', 'AbortError'));
      return;
    }
    const { id, method, args } = message;
    const controller = new AbortController();
    running.set(id, controller);
    queue = queue.then(async () => {
      try {
        const { value, transfer } = await run(id, method, args, controller.signal);
        port.post({ type: 'result', id, value }, transfer);
      } catch (error) {
        port.post({ type: 'error', id, error: serializeError(error) }, []);
      } finally {
        running.delete(id);
      }
    });
  });
}

function checkAdapterName(caller: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0)
    throw new TypeError(`${caller}: name must be a non-empty string, got ${describe(name)}`);
}

function adapterInfo(name: string, adapter: LoRAAdapter): WorkerAdapterInfo {
  const { rank, alpha, targets } = adapter.config;
  return { name, rank, alpha, targets: [...targets], numParameters: adapter.numParameters };
}

function describeModel(model: GPTModel, tokenizer: Tokenizer | undefined): WorkerModelInfo {
  const backend = model.backend as { threads?: number; threadsNote?: string };
  return {
    config: model.config,
    backendName: model.backendName,
    threads: backend.threads ?? 1,
    threadsNote: backend.threadsNote ?? '',
    tokenizer: tokenizer?.toJSON(),
  };
}
