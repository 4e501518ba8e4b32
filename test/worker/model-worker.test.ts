/**
 * ModelWorker in Node: the model lives in a worker_threads Worker running the built
 * dist/model-worker.js. The same work done in this thread is the reference: equal losses, bytes and
 * sampled ids from the same seed; errors arrive as their own classes; aborts stop training and
 * generation in the worker; dispose ends the worker (its 'exit' event fires).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/static-server.js';
import { TRAIN_OPTIONS, type SDK } from '../browser/scenarios.js';
import * as scenarios from '../browser/worker-scenarios.js';
import type { WorkerSDK } from '../browser/worker-scenarios.js';

const DIST_ENTRY = join(REPO_ROOT, 'dist', 'index.js');
/** tinygpt/worker */
const DIST_WORKER_ENTRY = join(REPO_ROOT, 'dist', 'worker.js');
const DIST_WORKER = join(REPO_ROOT, 'dist', 'model-worker.js');

let sdk: WorkerSDK;

beforeAll(async () => {
  const missing = [DIST_ENTRY, DIST_WORKER_ENTRY, DIST_WORKER].filter((file) => !existsSync(file));
  if (missing.length > 0)
    throw new Error(`the worker tests run the built bundle, and ${missing.join(', ')} is missing: run \`npm run build\` first`);
  const main = (await import(/* @vite-ignore */ pathToFileURL(DIST_ENTRY).href)) as SDK;
  const worker = (await import(/* @vite-ignore */ pathToFileURL(DIST_WORKER_ENTRY).href)) as typeof import('../../src/worker.js');
  sdk = { ...main, ...worker };
});

describe('ModelWorker in Node (worker_threads)', () => {
  it('trains, saves and samples exactly as the calling thread does, on 2 wasm threads in the worker', async () => {
    const run = await scenarios.workerMatchesInThread(sdk, 2);
    expect(run.backendName).toBe('wasm');
    expect(run.threads).toBe(2);
    expect(run.stopped).toBe('completed');
    expect(run.workerLosses).toHaveLength(TRAIN_OPTIONS.steps);
    expect(run.workerLosses).toEqual(run.hereLosses);
    expect(run.sameBytes).toBe(true);
    expect(run.workerIds).toHaveLength(12);
    expect(run.workerIds).toEqual(run.hereIds);
    expect(run.streamedIds).toEqual(run.hereIds);
    expect(run.streamedText).toBe(run.workerText);
    expect(run.lastFinishReason).toBe('length');
    expect(run.workerBeams).toEqual(run.hereBeams);
    expect(run.loadedIds).toEqual(run.hereIds);
    // the model file's buffer was moved to the worker, not copied
    expect(run.transferredLength).toBe(0);
    expect(run.loadedTokenizerVocab).toBe(run.tokenizerVocab);
  });

  it('errors keep their class, message and fields; the worker serves calls after them', async () => {
    const errors = await scenarios.workerErrors(sdk);
    expect(errors.config).toMatchObject({ isExpectedClass: true, isError: true, name: 'ConfigError' });
    expect(errors.config.message).toMatch(/nHeads/);
    expect(errors.file).toMatchObject({ isExpectedClass: true, isError: true });
    expect(errors.file.name).toMatch(/^(ModelFileError|SafetensorsError)$/);
    expect(errors.nonFinite).toMatchObject({ isExpectedClass: true, name: 'NonFiniteError' });
    expect(errors.nonFinite.step).toBeGreaterThanOrEqual(2);
    expect(errors.nonFinite.message).toMatch(new RegExp(`^training diverged at step ${errors.nonFinite.step}: loss`));
    expect(errors.range).toMatchObject({ isExpectedClass: true, name: 'RangeError' });
    expect(errors.range.message).toMatch(/batchSize/);
    expect(errors.afterErrors).toBe(3);
  });

  it('an AbortSignal stops training and generation inside the worker; leaving a stream early stops it', async () => {
    const aborts = await scenarios.workerAborts(sdk);
    expect(aborts.trainStopped).toBe('aborted');
    expect(aborts.trainSteps).toBeGreaterThanOrEqual(1);
    expect(aborts.trainSteps).toBeLessThan(100000);
    expect(aborts.stepsSeen).toBe(aborts.trainSteps);
    expect(aborts.streamErrorIsReason).toBe(true);
    expect(aborts.streamedCount).toBeGreaterThanOrEqual(1);
    expect(aborts.streamedCount).toBeLessThan(100000);
    expect(aborts.generateErrorIsReason).toBe(true);
    expect(aborts.takenBeforeBreak).toBe(3);
    expect(aborts.afterIds).toBe(4);
  });

  it('dispose rejects the call under way and later calls, and ends the worker thread', async () => {
    const result = await scenarios.workerDispose(sdk);
    expect(result.running).toBe(false);
    expect(result.longFailure).toMatch(/disposed/);
    expect(result.later).toBe('DisposedError: ModelWorker.generate: this model worker was disposed');

    const worker = new Worker(pathToFileURL(DIST_WORKER));
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    const handle = await sdk.createModelWorker(
      { vocabSize: 8, maxSeqLen: 8, dModel: 8, nLayers: 1, nHeads: 1, backend: 'wasm' },
      { worker },
    );
    expect(await handle.generate([1], { maxNewTokens: 2 })).toMatchObject({ ids: [expect.any(Number), expect.any(Number)] });
    await handle.dispose();
    expect(worker.threadId).toBe(-1);
    expect(typeof (await exited)).toBe('number');
  });

  it('serves one base model with several LoRA adapters: each attached one samples, streams and beam-searches as here', async () => {
    const run = await scenarios.workerAdapters(sdk);
    for (const name of ['moby', 'names', 'null']) {
      expect(run.workerRuns[name].ids, name).toEqual(run.hereRuns[name].ids);
      expect(run.workerRuns[name].streamed, name).toEqual(run.hereRuns[name].ids);
      expect(run.workerRuns[name].beams, name).toEqual(run.hereRuns[name].beams);
    }
    // the adapters change what the base samples, so equal ids above mean the worker used them
    expect(run.hereRuns.moby.ids).not.toEqual(run.hereRuns.null.ids);
    expect(run.hereRuns.names.ids).not.toEqual(run.hereRuns.moby.ids);
    expect(run.loadedInfo).toEqual({
      name: 'moby',
      rank: 2,
      alpha: 2,
      targets: ['attn.c_attn', 'mlp.c_fc'],
      numParameters: 2 * (32 * 2 + 2 * 96 + 32 * 2 + 2 * 128),
    });
    expect(run.transferredLength).toBe(0);
    expect(run.listedBefore).toMatchObject({ adapters: [{ name: 'moby' }, { name: 'names' }], active: null });
    expect(run.unknown).toMatchObject({ isExpectedClass: true });
    expect(run.unknown!.message).toMatch(/^setAdapter: name must be a loaded adapter \("moby", "names"\), got "shakespeare"/);
    expect(run.repeated!.message).toMatch(/an adapter named "moby" is loaded already/);
    // removing the attached adapter detaches it: the base samples as it did
    expect(run.listedAfter).toMatchObject({ adapters: [{ name: 'names' }], active: null });
    expect(run.afterRemoveIds).toEqual(run.hereRuns.null.ids);
  });
});
