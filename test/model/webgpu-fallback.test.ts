/**
 * train(model, { onDeviceLost: 'wasm' }) on the WebGPU backend (Dawn in Node; SwiftShader without a
 * GPU, so models stay tiny): the device is destroyed mid-run, as a driver reset would lose it, and the
 * run must go on on wasm from its last host snapshot. The reference is independent of the fallback:
 * a wasm run resumed from the same checkpoint bytes (or, when the snapshot is the starting point, a
 * wasm run that never saw a GPU), whose parameters the fallen-back run must equal bit for bit.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createWebGPUBackend, type WebGPUBackend } from '../../src/backend/webgpu/index.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { NonFiniteError, train, type BackendChange, type TrainOptions } from '../../src/train/trainer.js';
import { Rng } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';
import { poisonParameter } from '../helpers/poison.js';

// dropout on, so the restored dropout counter matters as much as parameters, moments and data order
const config: GPTConfigInput = { vocabSize: 32, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, dropout: 0.1, seed: 99 };

const probe = await createNodeWebGPU();
const adapter = probe.backend?.adapterName;
probe.backend?.dispose();
const suite =
  probe.backend === null ? `onDeviceLost: 'wasm' (skipped: ${probe.skipReason})` : `onDeviceLost: 'wasm' on WebGPU (${adapter})`;

function corpus(length: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.next() < 0.8 ? (i * 5) % 32 : rng.nextInt(32);
  return out;
}

const common = { data: corpus(600, 3), batchSize: 2, seqLen: 8, steps: 8, learningRate: 1e-2, warmupSteps: 2 } satisfies TrainOptions;

/** a model on a fresh WebGPU device; the fallback wasm backend runs one thread, as the reference does */
async function gpuModel(): Promise<{ model: GPTModel; backend: WebGPUBackend }> {
  const backend = await createWebGPUBackend();
  return { model: await createModel(config, { backendInstance: backend, wasmThreads: 1 }), backend };
}

/** the kernels a fallback takes: the default build (relaxed SIMD where the runtime has it, as Node 22 and later do) */
async function wasmModel(): Promise<GPTModel> {
  return createModel(config, { backendInstance: await createWasmBackend({ threads: 1 }) });
}

/** every parameter equal bit for bit (Float32Array equality would let -0 equal 0) */
function expectSameBits(actual: Record<string, Float32Array>, expected: Record<string, Float32Array>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const name of Object.keys(expected)) {
    const a = new Uint32Array(actual[name].buffer, actual[name].byteOffset, actual[name].length);
    const e = new Uint32Array(expected[name].buffer, expected[name].byteOffset, expected[name].length);
    expect(a, name).toEqual(e);
  }
}

describe.skipIf(probe.backend === null)(suite, () => {
  const scratchDirs: string[] = [];
  afterAll(() => {
    for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('goes on on wasm from the last checkpoint and ends bit-identical to a wasm run resumed from it; the file stays loadable', async () => {
    const { model, backend } = await gpuModel();
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-fallback-'));
    scratchDirs.push(dir);
    const checkpointPath = join(dir, 'run.ckpt');
    const saved = new Map<number, Uint8Array>();
    const stepsSeen: number[] = [];
    const changes: BackendChange[] = [];
    let fileStepAtChange = -1;
    const result = await train(model, {
      ...common,
      checkpointPath,
      checkpointInterval: 3,
      onCheckpoint: (bytes, step) => void saved.set(step, bytes),
      onDeviceLost: 'wasm',
      onStep: ({ step }) => {
        stepsSeen.push(step);
        // after step 5 (checkpoint at 3), once
        if (step === 5 && model.backendName === 'webgpu') backend.device.destroy();
      },
      onBackendChange: (change) => {
        changes.push(change);
        fileStepAtChange = decodeCheckpoint(new Uint8Array(readFileSync(checkpointPath))).state.step;
      },
    });

    expect(model.backendName).toBe('wasm');
    expect(changes).toHaveLength(1);
    const [change] = changes;
    expect(change).toMatchObject({ from: 'webgpu', to: 'wasm', resumedFromStep: 3 });
    expect(change.reason).toMatch(/WebGPU device lost/);
    expect(change.checkpoint).toEqual(saved.get(3));
    // the checkpoint written before the loss was still on disk, intact, when the run went on
    expect(fileStepAtChange).toBe(3);
    // steps 4 and 5 were redone on wasm
    expect(stepsSeen).toEqual([1, 2, 3, 4, 5, 4, 5, 6, 7, 8]);
    expect([...saved.keys()]).toEqual([3, 6, 8]);
    expect(result).toMatchObject({ steps: 8, stopped: 'completed' });
    expect(result.history.map((h) => h.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    const reference = await wasmModel();
    const referenceResult = await train(reference, { ...common, resumeFrom: saved.get(3)! });
    const params = await model.getParameters();
    expectSameBits(params, await reference.getParameters());
    expect(result.history.map((h) => h.trainLoss)).toEqual(referenceResult.history.map((h) => h.trainLoss));
    // the last checkpoint on disk is the final state
    expectSameBits(decodeCheckpoint(new Uint8Array(readFileSync(checkpointPath))).params, params);
    reference.dispose();
    model.dispose();
  });

  it('without checkpoints, goes on from the snapshot every deviceLossSnapshotInterval steps', async () => {
    const { model, backend } = await gpuModel();
    const changes: BackendChange[] = [];
    await train(model, {
      ...common,
      onDeviceLost: 'wasm',
      deviceLossSnapshotInterval: 2,
      onStep: ({ step }) => {
        if (step === 5 && model.backendName === 'webgpu') backend.device.destroy();
      },
      onBackendChange: (change) => void changes.push(change),
    });
    expect(changes.map((c) => c.resumedFromStep)).toEqual([4]);
    expect(decodeCheckpoint(changes[0].checkpoint).state.step).toBe(4);

    const reference = await wasmModel();
    await train(reference, { ...common, resumeFrom: changes[0].checkpoint });
    expectSameBits(await model.getParameters(), await reference.getParameters());
    reference.dispose();
    model.dispose();
  });

  it('a loss before the first snapshot interval goes on from the start: the same as a wasm run that never saw a GPU', async () => {
    const { model, backend } = await gpuModel();
    const changes: BackendChange[] = [];
    await train(model, {
      ...common,
      onDeviceLost: 'wasm',
      onStep: ({ step }) => {
        if (step === 2 && model.backendName === 'webgpu') backend.device.destroy();
      },
      onBackendChange: (change) => void changes.push(change),
    });
    expect(changes.map((c) => c.resumedFromStep)).toEqual([0]);

    const uninterrupted = await wasmModel();
    await train(uninterrupted, common);
    expectSameBits(await model.getParameters(), await uninterrupted.getParameters());
    uninterrupted.dispose();
    model.dispose();
  });

  it('a NaN is not a device loss: it rejects as before and the model stays on WebGPU', async () => {
    const { model } = await gpuModel();
    await poisonParameter(model, 'ln_f.weight', 0, NaN);
    const changes: BackendChange[] = [];
    await expect(train(model, { ...common, onDeviceLost: 'wasm', onBackendChange: (c) => void changes.push(c) })).rejects.toThrow(
      NonFiniteError,
    );
    expect(model.backendName).toBe('webgpu');
    expect(changes).toEqual([]);
    model.dispose();
  });
});
