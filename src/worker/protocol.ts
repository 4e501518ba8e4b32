/**
 * The messages between a ModelWorker handle (client.ts) and the worker that holds the model
 * (host.ts), and how errors cross between them. Every call carries an id; the worker answers it with
 * one `result` or `error`, after any number of progress messages (step, eval, checkpoint, token).
 * Byte arrays travel as transfers where the sender no longer needs them.
 */
import { BackendUnavailableError } from '../backend/select.js';
import { ConfigError } from '../model/config.js';
import type { BackendChoice, GPTConfig, GPTConfigInput } from '../model/types.js';
import { ModelFileError } from '../io/errors.js';
import { SafetensorsError } from '../io/safetensors.js';
import { ModelBusyError, NonFiniteError } from '../train/trainer.js';
import type { TokenizerJSON } from '../tokenizer/types.js';

/** how the worker gets its model: built from a config, or read from a model file */
export type InitRequest =
  | { mode: 'create'; config: GPTConfigInput; tokenizer?: TokenizerJSON; wasmThreads?: number | 'auto' }
  | { mode: 'load'; bytes: Uint8Array; backend?: BackendChoice; config?: Partial<GPTConfigInput>; wasmThreads?: number | 'auto' };

export type Method =
  'init' | 'train' | 'generate' | 'stream' | 'save' | 'dispose' | 'loadAdapter' | 'setAdapter' | 'listAdapters' | 'removeAdapter';

/** an adapter the worker holds, by the name it was loaded under (what loadAdapter and listAdapters answer) */
export interface WorkerAdapterInfo {
  name: string;
  rank: number;
  alpha: number;
  targets: string[];
  /** A and B parameters */
  numParameters: number;
}

/** the adapters the worker holds, and the name of the one attached to its model (null: none) */
export interface WorkerAdapters {
  adapters: WorkerAdapterInfo[];
  active: string | null;
}

export type ToWorker = { type: 'call'; id: number; method: Method; args: unknown } | { type: 'abort'; id: number };

/** what init answers: enough for the handle to describe the model without asking again */
export interface WorkerModelInfo {
  config: GPTConfig;
  backendName: string;
  /** wasm threads in use (1 elsewhere) and why not more ('' when nothing to say) */
  threads: number;
  threadsNote: string;
  tokenizer: TokenizerJSON | undefined;
}

export type FromWorker =
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'progress'; id: number; kind: 'step' | 'eval' | 'checkpoint' | 'backendChange' | 'token'; value: unknown }
  | { type: 'notice'; message: string };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** own fields beyond name and message (NonFiniteError's step, loss, gradNorm) */
  fields: Record<string, unknown>;
}

/** the classes an error keeps across the boundary, by name; any other arrives as its nearest built-in */
const ERROR_CLASSES: Record<string, { prototype: Error }> = {
  ConfigError,
  NonFiniteError,
  ModelBusyError,
  ModelFileError,
  SafetensorsError,
  BackendUnavailableError,
  RangeError,
  TypeError,
  SyntaxError,
  Error,
};

export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error) && !(typeof DOMException === 'function' && error instanceof DOMException)) {
    return { name: 'Error', message: String(error), fields: {} };
  }
  const err = error as Error;
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(err)) {
    const value = (err as unknown as Record<string, unknown>)[key];
    if (key !== 'name' && key !== 'message' && key !== 'stack' && isPlain(value)) fields[key] = value;
  }
  // a class's name may live on its prototype (RangeError) or on the instance (ConfigError)
  const name = err.name || err.constructor?.name || 'Error';
  return { name, message: err.message, stack: err.stack, fields };
}

function isPlain(value: unknown): boolean {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

/**
 * The error the worker threw, as an instance of its own class (found by name; a subclass of RangeError
 * this file does not know arrives as a RangeError with its name kept). AbortError becomes a
 * DOMException, as `signal.throwIfAborted()` throws.
 */
export function reviveError(data: SerializedError): Error {
  if (data.name === 'AbortError' && typeof DOMException === 'function') return new DOMException(data.message, 'AbortError');
  const cls = ERROR_CLASSES[data.name] ?? ERROR_CLASSES.Error;
  const error = Object.create(cls.prototype) as Error;
  Object.defineProperty(error, 'message', { value: data.message, writable: true, configurable: true });
  if (error.name !== data.name) Object.defineProperty(error, 'name', { value: data.name, writable: true, configurable: true });
  Object.assign(error, data.fields);
  // the worker's stack says where it was thrown; this one's first line is the same message
  Object.defineProperty(error, 'stack', { value: data.stack ?? `${data.name}: ${data.message}`, writable: true, configurable: true });
  return error;
}

/**
 * The buffer of `bytes` when handing it over moves no more than `bytes` (it spans the whole
 * ArrayBuffer): that buffer is transferred and the caller's view becomes empty. A view into a
 * larger or shared buffer is copied instead.
 */
export function transferable(bytes: Uint8Array): ArrayBuffer[] {
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength ? [buffer] : [];
}
