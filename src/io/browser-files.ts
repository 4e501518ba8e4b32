/**
 * Model files where there is no file system: Blobs (downloads, <input type=file>, IndexedDB),
 * fetch Responses and URLs, and the Origin Private File System (OPFS) in browsers that have it.
 * Uses only web-standard globals, so it also runs in Node 20 and edge runtimes (OPFS aside).
 */
import type { GPTModel } from '../model/types.js';
import { checkOptionNames, type OptionNames } from '../util/arguments.js';
import { LOAD_MODEL_OPTIONS, loadModel, saveModel, type LoadedModel, type LoadModelOptions, type SaveModelOptions } from './model-file.js';

export const MODEL_MIME_TYPE = 'application/octet-stream';

/** The saveModel bytes as a Blob, e.g. for `URL.createObjectURL` and a download link. */
export async function modelToBlob(model: GPTModel, options: SaveModelOptions = {}): Promise<Blob> {
  return new Blob([await saveModel(model, options)], { type: MODEL_MIME_TYPE });
}

/** loadModel on a Blob or File. */
export async function loadModelFromBlob(blob: Blob, options: LoadModelOptions = {}): Promise<LoadedModel> {
  return loadModel(new Uint8Array(await blob.arrayBuffer()), options);
}

/** loadModel on the body of a fetch Response; a non-2xx status is an error naming it. */
export async function loadModelFromResponse(response: Response, options: LoadModelOptions = {}): Promise<LoadedModel> {
  if (response === null || typeof response !== 'object' || typeof response.arrayBuffer !== 'function') {
    throw new TypeError(`loadModelFromResponse: response must be a fetch Response; got ${response === null ? 'null' : typeof response}`);
  }
  if (!response.ok) {
    throw new Error(`cannot load the model: HTTP ${response.status} ${response.statusText} from ${response.url || 'the response'}`);
  }
  return loadModel(new Uint8Array(await response.arrayBuffer()), options);
}

export interface LoadModelFromURLOptions extends LoadModelOptions {
  /** the fetch to use (default globalThis.fetch) */
  fetch?: typeof fetch;
  /** passed to fetch (headers, signal, ...) */
  init?: RequestInit;
}

const LOAD_MODEL_FROM_URL_OPTIONS: OptionNames<LoadModelFromURLOptions> = { ...LOAD_MODEL_OPTIONS, fetch: true, init: true };

/** Fetches `url` and loads the model in it. */
export async function loadModelFromURL(url: string | URL, options: LoadModelFromURLOptions = {}): Promise<LoadedModel> {
  checkOptionNames(options, LOAD_MODEL_FROM_URL_OPTIONS, 'loadModelFromURL');
  const { fetch: fetchOption, init, ...loadOptions } = options;
  const fetchFn = fetchOption ?? globalThis.fetch;
  if (typeof fetchFn !== 'function') throw new Error('loadModelFromURL: this runtime has no fetch; pass options.fetch');
  return loadModelFromResponse(await fetchFn(url, init), loadOptions);
}

// ---- OPFS ----

/** Whether this runtime has an Origin Private File System (navigator.storage.getDirectory). */
export function opfsAvailable(): boolean {
  const storage = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage;
  return typeof storage?.getDirectory === 'function';
}

function checkOpfsPath(path: string): string[] {
  const parts = typeof path === 'string' ? path.split('/') : [];
  if (parts.length === 0 || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new TypeError(`OPFS path must be names joined by "/" (no empty, "." or ".." parts), got ${JSON.stringify(path)}`);
  }
  return parts;
}

async function opfsFile(path: string, create: boolean): Promise<FileSystemFileHandle> {
  const parts = checkOpfsPath(path);
  if (!opfsAvailable()) {
    throw new Error('OPFS is not available in this runtime (navigator.storage.getDirectory is missing)');
  }
  let directory = await navigator.storage.getDirectory();
  for (const part of parts.slice(0, -1)) directory = await directory.getDirectoryHandle(part, { create });
  return directory.getFileHandle(parts[parts.length - 1], { create });
}

/**
 * Saves the model into OPFS at `path` (folders created as needed). The browser writes to a swap file
 * and swaps it in on close, so an interrupted save leaves the previous file.
 */
export async function saveModelToOPFS(path: string, model: GPTModel, options: SaveModelOptions = {}): Promise<void> {
  const bytes = await saveModel(model, options);
  const handle = await opfsFile(path, true);
  if (typeof handle.createWritable !== 'function') {
    throw new Error('OPFS here has no createWritable (Safari offers only sync access handles in workers)');
  }
  const writable = await handle.createWritable();
  try {
    await writable.write(bytes);
  } catch (error) {
    await writable.abort().catch(() => undefined);
    throw error;
  }
  await writable.close();
}

/** Loads the model saved in OPFS at `path`. */
export async function loadModelFromOPFS(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const handle = await opfsFile(path, false);
  return loadModelFromBlob(await handle.getFile(), options);
}
