import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { directoryOf, temporaryPathFor, type AtomicWriteFs } from '../../src/io/files.js';
import { loadModelFile, nodeAtomicWriteFs, saveModelFile, writeFileAtomic } from '../../src/io/node-files.js';
import { ModelFileError } from '../../src/io/errors.js';
import { CharTokenizer } from '../../src/tokenizer/index.js';

const config: GPTConfigInput = { vocabSize: 13, maxSeqLen: 6, dModel: 8, nLayers: 1, nHeads: 2, dFF: 16, backend: 'js' };
const directory = mkdtempSync(join(tmpdir(), 'tinygpt-io-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

let fileCounter = 0;
const freshPath = () => join(directory, `model-${fileCounter++}.safetensors`);
const leftovers = (path: string) => readdirSync(directoryOf(path)).filter((name) => name.startsWith(`${path.split('/').pop()}.tmp-`));

async function parameters(model: GPTModel): Promise<Record<string, Float32Array>> {
  return model.getParameters();
}

/** node:fs whose file writes fail once `failAfter` bytes are on disk, as a full disk or a crash would. */
function failingFs(failAfter: number, failing: 'write' | 'sync' | 'rename'): AtomicWriteFs {
  return {
    ...nodeAtomicWriteFs,
    async open(path, flags) {
      const handle = await nodeAtomicWriteFs.open(path, flags);
      let written = 0;
      return {
        async write(buffer, offset, length, position) {
          if (failing === 'write' && written + length > failAfter) {
            const part = failAfter - written;
            await handle.write(buffer, offset, part, position);
            written += part;
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          }
          const result = await handle.write(buffer, offset, length, position);
          written += result.bytesWritten;
          return result;
        },
        async sync() {
          if (failing === 'sync') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
          return handle.sync();
        },
        close: () => handle.close(),
      };
    },
    async rename(from, to) {
      if (failing === 'rename') throw Object.assign(new Error('EXDEV: cross-device link not permitted, rename'), { code: 'EXDEV' });
      return nodeAtomicWriteFs.rename(from, to);
    },
  };
}

describe('writeFileAtomic', () => {
  it('writes the bytes and leaves no temporary file', async () => {
    const path = freshPath();
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
    await writeFileAtomic(path, bytes);
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(bytes))).toBe(true);
    await writeFileAtomic(path, bytes.subarray(10, 20));
    expect(Array.from(readFileSync(path))).toEqual(Array.from(bytes.subarray(10, 20)));
    expect(leftovers(path)).toEqual([]);
  });

  for (const failing of ['write', 'sync', 'rename'] as const) {
    it(`keeps the previous file whole when the ${failing} fails midway`, async () => {
      const path = freshPath();
      const previous = await createModel({ ...config, seed: 1 });
      await saveModelFile(path, previous);
      const before = readFileSync(path);
      const next = await createModel({ ...config, seed: 2 });
      const error = await saveModelFile(path, next, { fs: failingFs(1000, failing) }).catch((e) => e);
      expect(error.message).toMatch(/ENOSPC|EIO|EXDEV/);
      expect(readFileSync(path).equals(before)).toBe(true);
      expect(leftovers(path)).toEqual([]);
      const { model } = await loadModelFile(path, { backend: 'js' });
      expect(await parameters(model)).toEqual(await parameters(previous));
      for (const m of [previous, next, model]) m.dispose();
    });
  }

  it('keeps the previous file whole when the writing process is killed midway', async () => {
    const path = freshPath();
    const previous = await createModel({ ...config, seed: 3 });
    await saveModelFile(path, previous);
    const before = readFileSync(path);

    // A child process runs the real writeFileAtomic on a model file and is SIGKILLed by its own fs
    // after half the bytes are on disk: nothing of it gets to clean up.
    const child = join(directory, 'child.mjs');
    await build({
      stdin: {
        contents: `
          import { writeFileAtomic, nodeAtomicWriteFs } from './src/io/node-files.ts';
          const bytes = new Uint8Array(200000).fill(7);
          const fs = { ...nodeAtomicWriteFs, async open(p, f) {
            const h = await nodeAtomicWriteFs.open(p, f);
            return { ...h, sync: () => h.sync(), close: () => h.close(), async write(b, o, l, pos) {
              await h.write(b, o, l / 2, pos);
              await h.sync();
              process.kill(process.pid, 'SIGKILL');
            } };
          } };
          await writeFileAtomic(process.argv[2], bytes, { fs });`,
        resolveDir: fileURLToPath(new URL('../..', import.meta.url)),
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: child,
      logLevel: 'silent',
    });
    const result = spawnSync(process.execPath, [child, path], { encoding: 'utf8', timeout: 60_000 });
    expect(result.signal).toBe('SIGKILL');
    expect(readFileSync(path).equals(before)).toBe(true);
    // the half-written temporary is all that is left of the interrupted write
    const [temporary, ...more] = leftovers(path);
    expect(more).toEqual([]);
    expect(readFileSync(join(directory, temporary)).length).toBe(100_000);
    const { model } = await loadModelFile(path, { backend: 'js' });
    expect(await parameters(model)).toEqual(await parameters(previous));
    previous.dispose();
    model.dispose();
  }, 60_000);

  it('rejects bad arguments by name', async () => {
    await expect(writeFileAtomic('', new Uint8Array(1))).rejects.toThrow(/path must be a non-empty string, got ""/);
    await expect(writeFileAtomic(freshPath(), 'text' as unknown as Uint8Array)).rejects.toThrow(/bytes must be a Uint8Array/);
  });

  it('names temporaries beside the target, fresh each time', () => {
    const a = temporaryPathFor('/x/y/model.safetensors');
    expect(a).toMatch(/^\/x\/y\/model\.safetensors\.tmp-[0-9a-f]{12}$/);
    expect(temporaryPathFor('/x/y/model.safetensors')).not.toBe(a);
    expect(directoryOf('/x/y/m')).toBe('/x/y');
    expect(directoryOf('m')).toBe('.');
    expect(directoryOf('/m')).toBe('/');
    expect(directoryOf('C:\\models\\m')).toBe('C:\\models');
  });
});

describe('saveModelFile / loadModelFile', () => {
  it('round-trips a model and its tokenizer through a file', async () => {
    const tokenizer = CharTokenizer.train('abcdefghij');
    const model = await createModel({ ...config, seed: 4 });
    const path = freshPath();
    await saveModelFile(path, model, { tokenizer });
    const loaded = await loadModelFile(path, { backend: 'js' });
    expect(loaded.model.config).toEqual(model.config);
    expect(await parameters(loaded.model)).toEqual(await parameters(model));
    expect(loaded.tokenizer!.toJSON()).toEqual(tokenizer.toJSON());
    model.dispose();
    loaded.model.dispose();
  });

  it('loads a file that is not a model with a ModelFileError', async () => {
    const path = freshPath();
    writeFileSync(path, 'not a model');
    const error = await loadModelFile(path).catch((e) => e);
    expect(error).toBeInstanceOf(ModelFileError);
    expect(error.message).toMatch(/header length ~8\.029e\+18 is over the limit/); // the bytes "not a mo" read as a u64
  });
});
