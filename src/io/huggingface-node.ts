/**
 * Hugging Face checkpoint folders on disk (Node only; exported from src/node.ts): the files of
 * huggingface.ts read from and written to a directory.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { GPTModel } from '../model/types.js';
import { writeFileAtomic } from './node-files.js';
import {
  exportHuggingFace,
  HF_WEIGHTS,
  HF_WEIGHTS_INDEX,
  loadHuggingFace,
  type ExportHuggingFaceOptions,
  type LoadedHuggingFace,
  type LoadHuggingFaceOptions,
} from './huggingface.js';

/** loadHuggingFace on the files of a folder (e.g. one that `save_pretrained` wrote). */
export async function loadHuggingFaceFolder(folder: string, options: LoadHuggingFaceOptions = {}): Promise<LoadedHuggingFace> {
  return loadHuggingFace(async (name) => {
    try {
      const buffer = await readFile(join(folder, name));
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }, options);
}

/**
 * exportHuggingFace into `folder` (created if needed), each file written atomically. The weights of
 * the other form (a single file when writing shards, an index when writing one file) are removed,
 * so a reader never finds stale weights beside the new ones.
 */
export async function saveHuggingFaceFolder(folder: string, model: GPTModel, options: ExportHuggingFaceOptions = {}): Promise<string[]> {
  const files = await exportHuggingFace(model, options);
  await mkdir(folder, { recursive: true });
  for (const [name, bytes] of files) await writeFileAtomic(join(folder, name), bytes);
  await rm(join(folder, files.has(HF_WEIGHTS) ? HF_WEIGHTS_INDEX : HF_WEIGHTS), { force: true });
  return [...files.keys()];
}
