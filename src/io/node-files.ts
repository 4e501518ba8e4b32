/**
 * Node-only file helpers (imports node:fs/promises): exported from src/node.ts, never from the
 * browser/edge entry.
 */
import * as fsPromises from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import type { GPTModel } from '../model/types.js';
import { atomicWriteFsFromNode, writeFileAtomicWith, type AtomicWriteFs } from './files.js';
import { checkOptionNames, type OptionNames } from '../util/arguments.js';
import { loadModel, SAVE_MODEL_OPTIONS, saveModel, type LoadedModel, type LoadModelOptions, type SaveModelOptions } from './model-file.js';

/** node:fs/promises behind the AtomicWriteFs interface. */
export const nodeAtomicWriteFs: AtomicWriteFs = atomicWriteFsFromNode(fsPromises);

export interface WriteFileAtomicOptions {
  /** the file system to use (default node:fs/promises); tests inject failures through it */
  fs?: AtomicWriteFs;
}

/**
 * Writes `bytes` to `path + '.tmp-<random>'`, fsyncs it and renames it over `path`, so an
 * interrupted write leaves the previous file intact (a crash may leave the temporary file behind).
 * The result is a new file: a symlink at `path` is replaced, not followed, and the old file's
 * permissions are not carried over.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  await writeFileAtomicWith(options.fs ?? nodeAtomicWriteFs, path, bytes);
}

const SAVE_MODEL_FILE_OPTIONS: OptionNames<SaveModelOptions & WriteFileAtomicOptions> = { ...SAVE_MODEL_OPTIONS, fs: true };

/** saveModel, written atomically to `path`. */
export async function saveModelFile(path: string, model: GPTModel, options: SaveModelOptions & WriteFileAtomicOptions = {}): Promise<void> {
  checkOptionNames(options, SAVE_MODEL_FILE_OPTIONS, 'saveModelFile');
  const { fs, ...saveOptions } = options;
  await writeFileAtomic(path, await saveModel(model, saveOptions), { fs });
}

/** loadModel on the bytes of the file at `path`. */
export async function loadModelFile(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const buffer = await readFile(path);
  return loadModel(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), options);
}
