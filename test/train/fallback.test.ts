/**
 * The parts of onDeviceLost: 'wasm' that need no GPU: option checks, GPT.moveToBackend, and the
 * trainer's decisions against a stand-in backend that loses its "device" the way WebGPUBackend does
 * (a `lost` promise resolves, then every download rejects with "WebGPU device lost ..."), at moments
 * a real device test cannot pick: inside a checkpoint save, inside an evaluation. The reference for
 * every continuation is a wasm run resumed from the same checkpoint bytes; the real WebGPU test is
 * test/model/webgpu-fallback.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DeviceLostError } from '../../src/backend/errors.js';
import type { Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createModel } from '../../src/model/create.js';
import { GPT } from '../../src/model/gpt.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { train, Trainer, type BackendChange, type TrainOptions } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const config: GPTConfigInput = { vocabSize: 19, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, dropout: 0.1, seed: 21, backend: 'js' };

function tokens(n: number, seed: number): Int32Array {
  const rng = new Rng(seed, 7);
  return Int32Array.from({ length: n }, (_, i) => (rng.next() < 0.7 ? (i * 3) % 19 : rng.nextInt(19)));
}

const common = { data: tokens(400, 1), batchSize: 2, seqLen: 8, steps: 9, learningRate: 1e-2, warmupSteps: 2 } satisfies TrainOptions;

/** A js backend whose "device" can be lost: what WebGPUBackend does, without a GPU. */
class LosableBackend extends JsBackend {
  readonly lost: Promise<{ reason: string }>;
  private lostError: Error | null = null;
  private resolveLost!: (info: { reason: string }) => void;

  constructor() {
    super();
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
  }

  loseDevice(): void {
    this.lostError = new DeviceLostError('WebGPU device lost (reason: destroyed): stand-in');
    this.resolveLost({ reason: 'destroyed' });
  }

  override async download(t: Tensor): Promise<Float32Array | Int32Array> {
    if (this.lostError) throw this.lostError;
    return super.download(t);
  }
}

async function losableModel(): Promise<{ model: GPTModel; backend: LosableBackend }> {
  const backend = new LosableBackend();
  return { model: await createModel(config, { backendInstance: backend, wasmThreads: 1 }), backend };
}

/** the kernels a fallback takes: the default build (relaxed SIMD where the runtime has it, as Node 22 and later do) */
async function wasmModel(): Promise<GPTModel> {
  return createModel(config, { backendInstance: await createWasmBackend({ threads: 1 }) });
}

function bits(record: Record<string, Float32Array>): Record<string, Uint32Array> {
  return Object.fromEntries(
    Object.entries(record).map(([name, data]) => [name, new Uint32Array(data.buffer, data.byteOffset, data.length)]),
  );
}

const scratchDirs: string[] = [];
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

describe('onDeviceLost options', () => {
  it('a bad value names the option and the allowed values', async () => {
    const model = await createModel(config);
    await expect(train(model, { ...common, onDeviceLost: 'cpu' as 'wasm' })).rejects.toThrow(
      `onDeviceLost must be 'error' or 'wasm', got "cpu"`,
    );
    await expect(Trainer.create(model, { ...common, onDeviceLost: 'js' as 'wasm' })).rejects.toThrow(
      /onDeviceLost must be 'error' or 'wasm'/,
    );
    await expect(train(model, { ...common, onDeviceLost: 'wasm', deviceLossSnapshotInterval: 0 })).rejects.toThrow(
      'deviceLossSnapshotInterval must be an integer >= 1, got 0',
    );
    await expect(train(model, { ...common, onBackendChange: 'log' as unknown as () => void })).rejects.toThrow(
      'onBackendChange must be a function',
    );
    model.dispose();
  });

  it("'wasm' is refused for a model that cannot move", async () => {
    const model = await createModel(config);
    const fixed = Object.create(model, { moveToBackend: { value: undefined } }) as GPTModel;
    await expect(train(fixed, { ...common, onDeviceLost: 'wasm' })).rejects.toThrow(/onDeviceLost: 'wasm' needs a model that can move/);
    model.dispose();
  });
});

describe('GPT.moveToBackend', () => {
  it('goes on with the same parameters on the new backend; the old one is released and old caches are refused', async () => {
    const oldBackend = new JsBackend();
    const model = await createModel(config, { backendInstance: oldBackend });
    await train(model, { ...common, steps: 2 });
    const params = await model.getParameters();
    const ids = Int32Array.from([1, 2, 3, 4, 5, 6]);
    const before = await model.forward(ids, null, 2, { returnLogits: true });
    const staleCache = model.createKVCache(1);
    const cachedBefore = await model.forwardCached(staleCache, Int32Array.from([1, 2, 3]), 3);

    const newBackend = new JsBackend();
    await model.moveToBackend(newBackend, params);
    expect(model.backend).toBe(newBackend);
    expect(oldBackend.bytesInUse()).toBe(0);
    expect(bits(await model.getParameters())).toEqual(bits(params));
    expect((await model.getGradients())['wte.weight'].every((g) => g === 0)).toBe(true);
    const after = await model.forward(ids, null, 2, { returnLogits: true });
    expect(after.logits).toEqual(before.logits);

    await expect(model.forwardCached(staleCache, Int32Array.from([4]), 1)).rejects.toThrow(
      /this cache was made on the js backend before the model moved to js; create a new cache/,
    );
    expect(() => model.reorderKVCache(staleCache, [0])).toThrow(/before the model moved/);
    staleCache.dispose();
    const cache = model.createKVCache(1);
    expect(await model.forwardCached(cache, Int32Array.from([1, 2, 3]), 3)).toEqual(cachedBefore);
    cache.dispose();
    model.dispose();
  });

  it('a bad parameter record leaves the model where it was', async () => {
    const model = await createModel(config);
    const backend = model.backend;
    const lossBefore = (await model.forward(Int32Array.from([1, 2]), Int32Array.from([2, 3]), 1)).loss;
    const params = await model.getParameters();
    delete params['ln_f.bias'];
    await expect(model.moveToBackend('wasm', params)).rejects.toThrow(/moveToBackend: missing 1 parameter\(s\): ln_f.bias/);
    expect(model.backend).toBe(backend);
    await expect(model.moveToBackend(backend, await model.getParameters())).rejects.toThrow(/already on this backend/);
    // the same parameters on the same backend: the same loss, bit for bit
    expect((await model.forward(Int32Array.from([1, 2]), Int32Array.from([2, 3]), 1)).loss).toBe(lossBefore);
    model.dispose();
  });

  it('a backend asked for by name is created with the wasmThreads the model was created with', async () => {
    const model = await createModel(config, { wasmThreads: 2 });
    await model.moveToBackend('wasm', await model.getParameters());
    expect(model.backendName).toBe('wasm');
    expect((model.backend as WasmBackend).threads).toBe(2);
    expect(model).toBeInstanceOf(GPT);
    model.dispose();
  });
});

describe("train() with onDeviceLost: 'wasm' on a backend that loses its device", () => {
  it('a loss inside a checkpoint save goes on from the previous checkpoint, which stays on disk', async () => {
    const { model, backend } = await losableModel();
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-fallback-'));
    scratchDirs.push(dir);
    const checkpointPath = join(dir, 'run.ckpt');
    const saved = new Map<number, Uint8Array>();
    const changes: BackendChange[] = [];
    let fileStepAtChange = -1;
    const result = await train(model, {
      ...common,
      checkpointPath,
      checkpointInterval: 3,
      onCheckpoint: (bytes, step) => void saved.set(step, bytes),
      onDeviceLost: 'wasm',
      // step 6 completes, then its checkpoint's downloads meet the lost device
      onStep: ({ step }) => {
        if (step === 6 && model.backend === backend) backend.loseDevice();
      },
      onBackendChange: (change) => {
        changes.push(change);
        fileStepAtChange = decodeCheckpoint(new Uint8Array(readFileSync(checkpointPath))).state.step;
      },
    });
    expect(changes.map(({ from, to, resumedFromStep }) => ({ from, to, resumedFromStep }))).toEqual([
      { from: 'js', to: 'wasm', resumedFromStep: 3 },
    ]);
    expect(changes[0].checkpoint).toEqual(saved.get(3));
    expect(fileStepAtChange).toBe(3);
    expect([...saved.keys()]).toEqual([3, 6, 9]);
    expect(result.steps).toBe(9);

    const reference = await wasmModel();
    await train(reference, { ...common, resumeFrom: saved.get(3)! });
    expect(bits(await model.getParameters())).toEqual(bits(await reference.getParameters()));
    reference.dispose();
    model.dispose();
  });

  it('a loss inside an evaluation goes on from the last snapshot; without onBackendChange it says so on console.warn', async () => {
    const { model, backend } = await losableModel();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const validation = { valData: tokens(60, 2), evalInterval: 5 };
    let evals = 0;
    const result = await train(model, {
      ...common,
      ...validation,
      deviceLossSnapshotInterval: 4,
      onDeviceLost: 'wasm',
      onEval: () => void evals++,
      onStep: ({ step }) => {
        if (step === 5 && model.backend === backend) backend.loseDevice();
      },
    });
    expect(warn.mock.calls).toEqual([
      [
        "[tinygpt] WebGPU device lost (reason: destroyed): stand-in; training goes on on the wasm backend from step 4 (onDeviceLost: 'wasm')",
      ],
    ]);
    warn.mockRestore();
    // the evaluation at step 5 failed and ran again on wasm, then the last one at step 9
    expect(evals).toBe(2);
    expect(result.history.filter((h) => h.valLoss !== undefined).map((h) => h.step)).toEqual([5, 9]);

    // the snapshot held what a checkpoint after step 4 of the same run holds: rebuild that on js
    const js = await createModel(config);
    const rebuilt = await Trainer.create(js, { ...common, ...validation });
    for (let i = 0; i < 4; i++) await rebuilt.step();
    const checkpointAt4 = await rebuilt.checkpoint();
    rebuilt.dispose();
    js.dispose();
    const reference = await wasmModel();
    const referenceResult = await train(reference, { ...common, ...validation, resumeFrom: checkpointAt4 });
    expect(bits(await model.getParameters())).toEqual(bits(await reference.getParameters()));
    expect(result.bestValLoss).toBe(referenceResult.bestValLoss);
    reference.dispose();
    model.dispose();
  });

  it('only the lost device moves the model: a device-lost message while the device is fine, or a failing callback, rejects', async () => {
    const { model } = await losableModel();
    const changes: BackendChange[] = [];
    const lookalike = train(model, {
      ...common,
      onDeviceLost: 'wasm',
      onBackendChange: (c) => void changes.push(c),
      onStep: ({ step }) => {
        if (step === 2) throw new Error('WebGPU device lost (reason: unknown): said by a callback, not the device');
      },
    });
    await expect(lookalike).rejects.toThrow(/said by a callback/);
    const failingSave = train(model, {
      ...common,
      checkpointInterval: 2,
      onDeviceLost: 'wasm',
      onBackendChange: (c) => void changes.push(c),
      onCheckpoint: () => {
        throw new Error('disk full');
      },
    });
    await expect(failingSave).rejects.toThrow('disk full');
    expect(changes).toEqual([]);
    expect(model.backendName).toBe('js');
    model.dispose();
  });
});
