/**
 * Any op that throws part-way through a forward, backward or generation (a kernel fault, a lost
 * device, a full arena) leaves the model usable with its memory returned. A backend wrapper throws
 * at the Nth kernel call; afterwards the model must hold what it held before the failed call and
 * train and generate bit for bit like a twin that never failed. Before, a failed training forward
 * moved the dropout counter and the data position, and a failed first call kept its workspace.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/contract.js';
import { createBackend } from '../../src/backend/select.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import { type GPT } from '../../src/model/gpt.js';
import { Trainer, train, type TrainOptions } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

/** storage calls pass through; every other method is a kernel and counts */
const STORAGE = new Set(['alloc', 'view', 'free', 'bytesInUse', 'dispose', 'upload', 'download']);

class InjectedFault extends Error {}

/** `backend` behind a proxy whose kernel call number `failAt` (counted from arm()) throws */
function faulty(backend: Backend): { backend: Backend; arm(failAt: number): void; calls(): string[] } {
  let failAt = Infinity;
  let calls: string[] = [];
  const proxy = new Proxy(backend, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string' || STORAGE.has(prop)) {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return (...args: unknown[]) => {
        calls.push(prop);
        if (calls.length === failAt) throw new InjectedFault(`injected fault in ${prop} (kernel call ${failAt})`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    backend: proxy,
    arm(at: number) {
      calls = [];
      failAt = at;
    },
    calls: () => calls,
  };
}

function tokens(n: number): Int32Array {
  const rng = new Rng(9, 2);
  return Int32Array.from({ length: n }, () => rng.nextInt(13));
}

function bits(record: Record<string, Float32Array>): Record<string, Uint32Array> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, new Uint32Array(v.buffer, v.byteOffset, v.length)]));
}

// dropout on: a failed training forward must not move the dropout counter
const config = { vocabSize: 13, maxSeqLen: 8, dModel: 16, nLayers: 2, nHeads: 2, dropout: 0.1, seed: 4 };
const options: TrainOptions = { data: tokens(300), batchSize: 2, seqLen: 8, steps: 6, warmupSteps: 0, learningRate: 1e-2 };

// WebGPU through Dawn on SwiftShader in Node (see test/helpers/webgpu-node.ts); skipped where no adapter can be had
const webgpuProbe = await createNodeWebGPU();
webgpuProbe.backend?.dispose();
const backendNames = webgpuProbe.backend === null ? (['js', 'wasm'] as const) : (['js', 'wasm', 'webgpu'] as const);

async function backendNamed(name: 'js' | 'wasm' | 'webgpu'): Promise<Backend> {
  return name === 'webgpu' ? createWebGPUBackend() : createBackend(name, { wasmThreads: 1 });
}

/**
 * The WebGPU backend keeps the gradient norm's partial sums (1 KiB) once the first norm has run; it
 * is the backend's, not the model's, so it is made before the model's memory is counted.
 */
function keepBackendCaches(backend: Backend): void {
  const [norm, values] = [backend.alloc(1), backend.alloc(1)];
  backend.squaredNorm(norm, values);
  backend.free(norm);
  backend.free(values);
}

describe.each(backendNames)('%s backend: an op that throws part-way', (name) => {
  async function twins(): Promise<{ model: GPT; fault: ReturnType<typeof faulty>; twin: GPT }> {
    const fault = faulty(await backendNamed(name));
    const model = await createModel(config, { backendInstance: fault.backend });
    const twin = await createModel(config, { backendInstance: await backendNamed(name) });
    return { model, fault, twin };
  }

  it('in a Trainer step (forward or backward, first step or later): the step can be retried and the run ends as the twin ends', async () => {
    // kernel calls of one training step before its optimizer update, to place the faults early, in
    // the middle and at the end (the clip) of the forward, backward and gradient norm
    const probe = await twins();
    const probeTrainer = await Trainer.create(probe.model, options);
    probe.fault.arm(Infinity);
    await probeTrainer.step();
    const beforeUpdate = probe.fault.calls().indexOf('adamwUpdate');
    probeTrainer.dispose();
    probe.model.dispose();
    probe.twin.dispose();
    expect(beforeUpdate).toBeGreaterThan(20);

    // SwiftShader runs WebGPU slowly: there, a fault in the middle and one at the clip of a later step
    const failAts = [1, Math.floor(beforeUpdate / 3), Math.floor((2 * beforeUpdate) / 3), beforeUpdate];
    for (const failAt of name === 'webgpu' ? failAts.slice(2) : failAts) {
      for (const failingStep of name === 'webgpu' ? [3] : [1, 3]) {
        const { model, fault, twin } = await twins();
        const trainer = await Trainer.create(model, options);
        const reference = await Trainer.create(twin, options);
        keepBackendCaches(model.backend);
        // parameters, gradients, head copy and the optimizer's moments: the scratch goes on failure
        const held = model.backend.bytesInUse();
        for (let step = 1; step <= options.steps!; step++) {
          if (step === failingStep) {
            fault.arm(failAt);
            await expect(trainer.step(), `fault at kernel call ${failAt} of step ${step}`).rejects.toThrow(InjectedFault);
            fault.arm(Infinity);
            expect(model.backend.bytesInUse()).toBe(held);
          }
          const [a, b] = [await trainer.step(), await reference.step()];
          expect(a.trainLoss).toBe(b.trainLoss);
        }
        expect(bits(await model.getParameters())).toEqual(bits(await twin.getParameters()));
        trainer.dispose();
        reference.dispose();
        // and generation after the recovered run matches too
        expect(await generate(model, [1, 2], { maxNewTokens: 5 })).toEqual(await generate(twin, [1, 2], { maxNewTokens: 5 }));
        model.dispose();
        twin.dispose();
      }
    }
  });

  it('in the optimizer update: the parameters are partly updated, so the trainer refuses further steps and says to resume', async () => {
    const { model, fault, twin } = await twins();
    const trainer = await Trainer.create(model, options);
    fault.arm(Infinity);
    await trainer.step();
    fault.arm(fault.calls().indexOf('adamwUpdate') + 3);
    await expect(trainer.step()).rejects.toThrow(InjectedFault);
    fault.arm(Infinity);
    await expect(trainer.step()).rejects.toThrow(
      /step: an earlier step's optimizer update failed part-way .*resume from the last checkpoint/,
    );
    trainer.dispose();
    model.dispose();
    twin.dispose();
  });

  it('in train(): the memory goes back to what a fresh model holds, and a second train() ends as the twin', async () => {
    const { model, fault, twin } = await twins();
    const fresh = model.backend.bytesInUse();
    fault.arm(60);
    await expect(train(model, options)).rejects.toThrow(InjectedFault);
    fault.arm(Infinity);
    expect(model.backend.bytesInUse()).toBe(fresh);
    await train(model, options);
    await train(twin, options);
    expect(bits(await model.getParameters())).toEqual(bits(await twin.getParameters()));
    model.dispose();
    twin.dispose();
  });

  it('in generate (greedy, sampled, beams): the cache and scratch are returned and every later generation equals the twin', async () => {
    const { model, fault, twin } = await twins();
    const runs = [
      { maxNewTokens: 6 },
      { maxNewTokens: 6, doSample: true, seed: 3, numReturnSequences: 2 },
      { maxNewTokens: 4, numBeams: 3 },
    ];
    const fresh = model.backend.bytesInUse();
    fault.arm(1);
    await expect(generate(model, [1, 2, 3], runs[0])).rejects.toThrow(InjectedFault);
    expect(model.backend.bytesInUse()).toBe(fresh);
    for (const run of runs) {
      for (const failAt of [1, 9, 40]) {
        // the inference scratch of an earlier success may stay; a failed call adds nothing
        const before = model.backend.bytesInUse();
        fault.arm(failAt);
        await expect(generate(model, [1, 2, 3], run)).rejects.toThrow(InjectedFault);
        fault.arm(Infinity);
        expect(model.backend.bytesInUse()).toBeLessThanOrEqual(before);
        expect(model.backend.bytesInUse()).toBeGreaterThanOrEqual(fresh);
        expect(await generate(model, [1, 2, 3], run)).toEqual(await generate(twin, [1, 2, 3], run));
      }
    }
    model.dispose();
    twin.dispose();
  });

  it('in a bare forward or backward: backward after a failed forward is refused, and the next pair gives the twin gradients', async () => {
    const { model, fault, twin } = await twins();
    const inputs = tokens(16);
    const targets = tokens(17).subarray(1);
    fault.arm(5);
    await expect(model.forward(inputs, targets, 2, { training: true })).rejects.toThrow(InjectedFault);
    fault.arm(Infinity);
    await expect(model.backward()).rejects.toThrow(/backward: call forward with targets first/);
    await model.forward(inputs, targets, 2, { training: true });
    fault.arm(30);
    await expect(model.backward()).rejects.toThrow(InjectedFault);
    fault.arm(Infinity);
    await expect(model.backward()).rejects.toThrow(/backward: call forward with targets first/);
    // the partial gradients go with zeroGrad; the dropout counter moved once, as the twin's
    await model.zeroGrad();
    await twin.forward(inputs, targets, 2, { training: true });
    expect(model.getRngState()).toEqual(twin.getRngState());
    await model.forward(inputs, targets, 2, { training: true });
    await twin.forward(inputs, targets, 2, { training: true });
    await model.backward();
    await twin.backward();
    expect(bits(await model.getGradients())).toEqual(bits(await twin.getGradients()));
    model.dispose();
    twin.dispose();
  });
});
