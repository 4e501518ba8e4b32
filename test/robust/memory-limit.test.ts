/// <reference types="@webgpu/types" />
/**
 * The memoryLimit option, on every backend: a model, batch or allocation past it is refused before
 * anything is allocated (MemoryLimitError naming the field and what it must be), and the model
 * stays usable. On WebGPU, which reports no memory size, it is the only bound checked up front; a
 * real device out of memory surfaces as the same error class (an injected one here: SwiftShader
 * grows into host memory rather than refuse).
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/contract.js';
import { MemoryLimitError } from '../../src/backend/errors.js';
import { createBackend } from '../../src/backend/select.js';
import { ArenaLimitError } from '../../src/backend/wasm/index.js';
import { WebGPUBackend } from '../../src/backend/webgpu/index.js';
import { estimateTrainingBytes } from '../../src/model/capacity.js';
import { validateConfig } from '../../src/model/config.js';
import { createModel } from '../../src/model/create.js';
import { Trainer, type TrainOptions } from '../../src/train/trainer.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

// every parameter a multiple of 16 elements, so the flat buffer has no alignment gaps
const config = { vocabSize: 16, maxSeqLen: 4, dModel: 16, nLayers: 1, nHeads: 2, seed: 5 };
const data = Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 16);
const options: TrainOptions = { data, batchSize: 1, seqLen: 4, steps: 2, warmupSteps: 0, learningRate: 1e-2 };

/*
 * By hand (V 16, T 4, C 16, F 64, NH 2, one layer):
 * parameters: wte 256 + wpe 64 + ln_1 32 + c_attn 768 + 48 + c_proj 256 + 16 + ln_2 32 + c_fc 1024 + 64
 *   + mlp c_proj 1024 + 16 + ln_f 32 = 3,632 elements
 * one position's activations: per layer 8C + 4 + NH + 2F = 262, plus 9C + 5 + 2V + F = 245: 507 elements
 * createModel's estimate: 3,632 x 4 bytes x 4 (parameters, gradients, two moments) + the head's
 *   transposed copy and its gradient 2 x 16 x 16 x 4 + 507 x 4 = 58,112 + 2,048 + 2,028 = 62,188 bytes
 * after createModel: parameters and the head's copy, 3,632 x 4 + 1,024 = 15,552 bytes
 * one step of 1 x 4 positions: activations 4 x 507 x 4 = 8,112, the head's gradient 1,024, the
 *   gradients 14,528 (made on the first backward) and the moments 29,056: 52,720 bytes more
 */
const ESTIMATE = 62_188;
const AFTER_CREATE = 15_552;
const STEP = 52_720;

const webgpuProbe = await createNodeWebGPU();
webgpuProbe.backend?.dispose();
const backendNames = webgpuProbe.backend === null ? (['js', 'wasm'] as const) : (['js', 'wasm', 'webgpu'] as const);

function backendNamed(name: 'js' | 'wasm' | 'webgpu', memoryLimit?: number): Promise<Backend> {
  return createBackend(name, { wasmThreads: 1, memoryLimit });
}

it('the capacity estimate is the hand-counted one', () => {
  expect(estimateTrainingBytes(validateConfig(config))).toBe(ESTIMATE);
});

describe.each(backendNames)('%s backend', (name) => {
  it('createModel with memoryLimit one byte short of the estimate is refused before any backend is made or touched', async () => {
    const error = await createModel(config, { backend: name, memoryLimit: ESTIMATE - 1 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(MemoryLimitError);
    expect(error).toBeInstanceOf(RangeError);
    expect((error as Error).message).toBe(
      `createModel: options.memoryLimit = ${ESTIMATE - 1} bytes (60.7 KiB) is less than the ${ESTIMATE} bytes (60.7 KiB) this model needs for ` +
        `parameters, gradients, optimizer state, the head's transposed copy and one position's activations: it must be at least ${ESTIMATE} (or Infinity)`,
    );
    expect(error).toMatchObject({ requestedBytes: ESTIMATE, limitBytes: ESTIMATE - 1 });
    // a backend instance handed in is left as it was
    const backend = await backendNamed(name);
    await expect(createModel(config, { backendInstance: backend, memoryLimit: ESTIMATE - 1 })).rejects.toThrow(MemoryLimitError);
    expect(backend.bytesInUse()).toBe(0);
    expect(backend.memoryLimit).toBe(Infinity);
    backend.dispose();
    // at the estimate it is made, and holds its limit
    const model = await createModel(config, { backend: name, memoryLimit: ESTIMATE });
    expect(model.backend.memoryLimit).toBe(ESTIMATE);
    if (name === 'js') expect(model.backend.bytesInUse()).toBe(AFTER_CREATE);
    model.dispose();
  });

  it('a training step past the limit is refused before allocating; the model trains on, equal to a twin, once the limit is raised', async () => {
    // one backend for both (WebGPU compiles its kernels once per device): the limit bounds the two together
    const backend = await backendNamed(name);
    const model = await createModel(config, { backendInstance: backend });
    const twin = await createModel(config, { backendInstance: backend });
    const held = backend.bytesInUse();
    // one byte short of what the step's up-front check counts: activations, the head's gradient and
    // the two AdamW moments (3,632 elements each) beyond what is held (on js, the hand count)
    const stepBytes = model.stepBytes(4, 4) + 2 * 3632 * 4;
    if (name === 'js') expect(held + stepBytes).toBe(2 * AFTER_CREATE + STEP);
    model.backend.setMemoryLimit!(held + stepBytes - 1);
    const trainer = await Trainer.create(model, options).catch((err: unknown) => err);
    expect(trainer).toBeInstanceOf(MemoryLimitError);
    expect((trainer as Error).message).toMatch(
      new RegExp(
        `^batchSize = 1 \\(x seqLen 4\\) needs 51\\.5 KiB .* backend has room for .* \\(of memoryLimit = ${held + stepBytes - 1} bytes\\)`,
      ),
    );
    expect(model.backend.bytesInUse()).toBe(held);
    model.backend.setMemoryLimit!(Infinity);
    const [a, b] = [await Trainer.create(model, options), await Trainer.create(twin, options)];
    for (let step = 0; step < 2; step++) expect((await a.step()).trainLoss).toBe((await b.step()).trainLoss);
    expect(await model.getParameters()).toEqual(await twin.getParameters());
    a.dispose();
    b.dispose();
    backend.dispose();
  });

  it('every alloc is checked against the limit, counting what the backend rounds each buffer to', async () => {
    const backend = await backendNamed(name, 4096);
    const t = backend.alloc(1000);
    // js: 4,000 bytes; wasm: 16-byte blocks, 4,000; WebGPU: 256-byte buffers, 4,096
    expect(backend.bytesInUse()).toBe(name === 'webgpu' ? 4096 : 4000);
    const error = (() => {
      try {
        backend.alloc(name === 'webgpu' ? 1 : 25);
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(MemoryLimitError);
    expect(error).not.toBeInstanceOf(ArenaLimitError);
    expect((error as Error).message).toMatch(
      /^alloc of (1|25) f32 elements needs (256|100|112) B .* but memoryLimit = 4096 bytes \(4\.0 KiB\) leaves room for/,
    );
    expect(backend.bytesInUse()).toBe(name === 'webgpu' ? 4096 : 4000);
    backend.free(t);
    expect(() => backend.alloc(1024)).not.toThrow();
    backend.dispose();
  });
});

describe('the memoryLimit option itself', () => {
  it('names the field and the allowed values', async () => {
    await expect(createModel(config, { backend: 'js', memoryLimit: '1e6' as unknown as number })).rejects.toThrow(
      new TypeError('createModel: options.memoryLimit must be a positive integer number of bytes (or Infinity for none), got "1e6"'),
    );
    await expect(createModel(config, { backend: 'js', memoryLimit: 0.5 })).rejects.toThrow(
      new RangeError('createModel: options.memoryLimit must be a positive integer number of bytes (or Infinity for none), got 0.5'),
    );
    await expect(createBackend('js', { memoryLimit: -1 })).rejects.toThrow(
      /^createBackend: options\.memoryLimit must be a positive integer/,
    );
    const backend = await createBackend('js');
    expect(() => backend.setMemoryLimit!(NaN)).toThrow(/^setMemoryLimit: bytes must be a positive integer number of bytes/);
    backend.dispose();
  });
});

describe.skipIf(webgpuProbe.backend === null)('webgpu: a device out of memory', () => {
  /** a Dawn device whose out-of-memory scope reports an error for the next buffer of at least `bytes` */
  async function deviceFailing(): Promise<{ device: GPUDevice; failNextBufferOf: (bytes: number) => void }> {
    const real = (await createNodeWebGPU()).backend!.device;
    let threshold = Infinity;
    let failNextPop = false;
    class GPUOutOfMemoryError {
      message = 'Out of memory (injected by the test)';
    }
    const device = new Proxy(real, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (prop === 'createBuffer') {
          return (descriptor: GPUBufferDescriptor) => {
            if (descriptor.size >= threshold) {
              threshold = Infinity;
              failNextPop = true;
            }
            return target.createBuffer(descriptor);
          };
        }
        if (prop === 'popErrorScope') {
          return () => {
            const scope = target.popErrorScope();
            if (!failNextPop) return scope;
            failNextPop = false;
            return scope.then(() => new GPUOutOfMemoryError());
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return { device, failNextBufferOf: (bytes) => (threshold = bytes) };
  }

  it('surfaces at the call that allocated as a MemoryLimitError naming the allocation; the model trains on like its twin', async () => {
    const { device, failNextBufferOf } = await deviceFailing();
    // model and twin on one backend (WebGPU compiles its kernels once per device)
    const backend = new WebGPUBackend(device);
    const model = await createModel(config, { backendInstance: backend });
    const twin = await createModel(config, { backendInstance: backend });
    const [trainer, reference] = [await Trainer.create(model, options), await Trainer.create(twin, options)];
    expect((await trainer.step()).trainLoss).toBe((await reference.step()).trainLoss);
    model.releaseScratch();
    const held = model.backend.bytesInUse();
    // a forward on 2 x 4 positions makes new activation buffers (512 bytes and up): the device refuses the first
    failNextBufferOf(512);
    const error = await model.forward(data.subarray(0, 8), data.subarray(1, 9), 2).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(MemoryLimitError);
    expect((error as Error).message).toMatch(
      /^WebGPU: alloc of \d+ f32 elements ran out of GPU memory: Out of memory \(injected by the test\)/,
    );
    expect(model.backend.bytesInUse()).toBe(held);
    expect((await trainer.step()).trainLoss).toBe((await reference.step()).trainLoss);
    expect(await model.getParameters()).toEqual(await twin.getParameters());
    trainer.dispose();
    reference.dispose();
    backend.dispose();
  });

  it('settle() reports it without a download', async () => {
    const { device, failNextBufferOf } = await deviceFailing();
    const backend = new WebGPUBackend(device);
    await backend.settle();
    failNextBufferOf(1);
    const t = backend.alloc(64);
    await expect(backend.settle()).rejects.toThrow(MemoryLimitError);
    backend.free(t);
    await expect(backend.settle()).resolves.toBeUndefined();
    backend.dispose();
  });
});
