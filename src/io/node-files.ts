/**
 * Node-only file helpers (imports node:fs/promises): exported from src/node.ts, never from the
 * browser/edge entry.
 */
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import type { GPTModel } from '../model/types.js';
import { writeFileAtomicWith, type AtomicWriteFs } from './files.js';
import { loadModel, saveModel, type LoadedModel, type LoadModelOptions, type SaveModelOptions } from './model-file.js';

/** node:fs/promises behind the AtomicWriteFs interface. */
export const nodeAtomicWriteFs: AtomicWriteFs = {
  open: (path, flags) => open(path, flags),
  rename,
  rm,
  async syncDirectory(path) {
    // Makes the rename itself durable on POSIX; Windows cannot open directories, and the rename
    // has already happened, so failing here would only hide a successful write.
    let directory: FileHandle | undefined;
    try {
      directory = await open(path, 'r');
      await directory.sync();
    } catch {
      return;
    } finally {
      await directory?.close();
    }
  },
};

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

/** saveModel, written atomically to `path`. */
export async function saveModelFile(
  path: string,
  model: GPTModel,
  options: SaveModelOptions & WriteFileAtomicOptions = {},
): Promise<void> {
  await writeFileAtomic(path, await saveModel(model, options), options);
}

/** loadModel on the bytes of the file at `path`. */
export async function loadModelFile(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const buffer = await readFile(path);
  return loadModel(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), options);
}
