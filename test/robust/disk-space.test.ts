/**
 * A checkpoint file that the disk cannot hold is refused before the first step, naming the option
 * and the sizes, instead of failing after a long run. statfs is mocked (a full disk cannot be made
 * without root); the bound it is compared with is checked against the checkpoints a run writes.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkFreeSpaceWith, NoSpaceError } from '../../src/io/files.js';
import { createModel } from '../../src/model/create.js';
import { Trainer, train, type TrainOptions } from '../../src/train/trainer.js';

/** bytes free that the mocked statfs reports (null: the real statfs) */
let freeBytes: number | null = null;

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const statfs = (async (path: string) => {
    const info = await real.statfs(path);
    return freeBytes === null ? info : { ...info, bavail: freeBytes, bsize: 1 };
  }) as typeof real.statfs;
  return { ...real, default: { ...real, statfs }, statfs };
});

afterEach(() => {
  freeBytes = null;
});

const config = { vocabSize: 16, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, seed: 2 };
const data = Int32Array.from({ length: 200 }, (_, i) => (i * 5) % 16);
const options: TrainOptions = {
  data: data.subarray(0, 160),
  valData: data.subarray(160),
  batchSize: 2,
  seqLen: 8,
  steps: 12,
  logInterval: 1,
  evalInterval: 3,
  learningRate: 1e-2,
};

describe('the checkpoint size bound', () => {
  it('holds every checkpoint a run writes, and is within 5,000 bytes of the last (history entries of one step each)', async () => {
    const model = await createModel(config, { backend: 'js' });
    const trainer = await Trainer.create(model, options);
    const bound = await trainer.checkpointBytesBound();
    const sizes: number[] = [];
    for (let step = 1; step <= 12; step++) {
      await trainer.step();
      if (step % 3 === 0) await trainer.evaluate();
      sizes.push((await trainer.checkpoint()).length);
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(bound);
    // parameters and moments: 3 x 4 bytes for each of the model's elements are most of it
    expect(bound - sizes[11]).toBeLessThan(5000);
    expect(sizes[11]).toBeGreaterThan(3 * 4 * model.numParameters());
    trainer.dispose();
    model.dispose();
  });
});

describe('train() with checkpointPath', () => {
  it('refuses, before the first step, a folder without room for the checkpoint; with room, it writes one the bound holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-space-'));
    const path = join(dir, 'run.ckpt');
    const model = await createModel(config, { backend: 'js' });
    const before = await model.getParameters();
    const bound = await (async () => {
      const t = await Trainer.create(model, options);
      try {
        return await t.checkpointBytesBound();
      } finally {
        t.dispose();
      }
    })();
    freeBytes = bound - 1;
    const error = await train(model, { ...options, checkpointPath: path }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(NoSpaceError);
    expect((error as Error).message).toBe(
      `train: options.checkpointPath ${path}: the folder ${dir} has ${bound - 1} bytes (${((bound - 1) / 1024).toFixed(1)} KiB) free, ` +
        `but a checkpoint of this run takes up to ${bound} bytes (${(bound / 1024).toFixed(1)} KiB)`,
    );
    expect(error).toMatchObject({ code: 'ENOSPC', availableBytes: bound - 1, requiredBytes: bound });
    // no step ran: the model is as it was, and trains once there is room
    expect(await model.getParameters()).toEqual(before);
    freeBytes = bound;
    await expect(train(model, { ...options, checkpointPath: path })).resolves.toMatchObject({ steps: 12 });
    expect(readFileSync(path).length).toBeLessThanOrEqual(bound);
    model.dispose();
  });
});

describe('checkFreeSpaceWith', () => {
  it('passes a file system that cannot say (statfs fails): the write itself will tell', async () => {
    await expect(checkFreeSpaceWith(() => Promise.reject(new Error('ENOSYS')), '--out', '/x/y', 10, 'a file')).resolves.toBeUndefined();
    await expect(checkFreeSpaceWith(() => Promise.resolve({ bavail: 2n, bsize: 4n }), '--out', '/x/y', 9, 'a file')).rejects.toThrow(
      '--out /x/y: the folder /x has 8 bytes (8 B) free, but a file takes up to 9 bytes (9 B)',
    );
  });
});
