/**
 * Training under misuse: concurrent runs on one model, resume with non-finite options, forged
 * checkpoint hyperparameters and options that are wrong in kind. Each case failed on the code
 * before planTraining and the model claim: the references are a run done alone (bit patterns).
 */
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { TRAIN_OPTION_NAMES } from '../../src/train/plan.js';
import { ModelBusyError, train, Trainer, type TrainOptions } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const config: GPTConfigInput = { vocabSize: 13, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, seed: 5, backend: 'js' };

function tokens(n: number, seed: number): Int32Array {
  const rng = new Rng(seed, 3);
  return Int32Array.from({ length: n }, () => rng.nextInt(13));
}

function bits(record: Record<string, Float32Array>): Record<string, Uint32Array> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, new Uint32Array(v.buffer, v.byteOffset, v.length)]));
}

const data = tokens(200, 1);
const options: TrainOptions = { data, batchSize: 2, steps: 4, warmupSteps: 0, learningRate: 1e-2 };

describe('one model trains one run at a time', () => {
  it('a second train() on a model that is training rejects with ModelBusyError; the first ends as if alone', async () => {
    const alone = await createModel(config);
    await train(alone, options);

    const model = await createModel(config);
    const first = train(model, options);
    const second = train(model, options);
    await expect(second).rejects.toThrow(ModelBusyError);
    await expect(second).rejects.toThrow(/model: this model is already training/);
    await first;
    expect(bits(await model.getParameters())).toEqual(bits(await alone.getParameters()));
    // once the first is done the model trains again
    await expect(train(model, { ...options, steps: 1 })).resolves.toMatchObject({ steps: 1 });
  });

  it('interleaved Trainer.step() loops: the step that would interleave is refused, none corrupts the other', async () => {
    const model = await createModel(config);
    const a = await Trainer.create(model, options);
    const b = await Trainer.create(model, options);
    const results = await Promise.allSettled([a.step(), b.step()]);
    expect(results[0].status).toBe('fulfilled');
    expect(results[1]).toMatchObject({ status: 'rejected', reason: expect.any(ModelBusyError) as unknown });

    const alone = await createModel(config);
    const c = await Trainer.create(alone, options);
    await c.step();
    expect(bits(await model.getParameters())).toEqual(bits(await alone.getParameters()));
  });

  it('a Trainer step while train() runs on the same model is refused', async () => {
    const model = await createModel(config);
    const trainer = await Trainer.create(model, options);
    const running = train(model, options);
    await expect(trainer.step()).rejects.toThrow(ModelBusyError);
    await running;
  });
});

describe('resume restores every option exactly', () => {
  it('maxGradNorm: Infinity survives the checkpoint: 2 + 2 steps equal 4 steps bit for bit', async () => {
    const run: TrainOptions = { ...options, maxGradNorm: Infinity, learningRate: 0.05 };
    const straight = await createModel(config);
    await train(straight, run);

    const first = await createModel(config);
    const controller = new AbortController();
    let saved: Uint8Array | undefined;
    await train(first, {
      ...run,
      signal: controller.signal,
      onStep: (m) => void (m.step === 2 && controller.abort()),
      onCheckpoint: (bytes) => void (saved = bytes),
    });
    expect(decodeCheckpoint(saved!).state.hyperparams.maxGradNorm).toBe(Infinity);
    const second = await createModel(config);
    // maxGradNorm is not passed again: it must come from the checkpoint
    const withoutClip: TrainOptions = { ...run };
    delete withoutClip.maxGradNorm;
    await train(second, { ...withoutClip, resumeFrom: saved });
    expect(bits(await second.getParameters())).toEqual(bits(await straight.getParameters()));
  });

  it('a checkpoint that stored maxGradNorm as null (older files) resumes with clipping off', async () => {
    const model = await createModel(config);
    const trainer = await Trainer.create(model, { ...options, maxGradNorm: Infinity });
    await trainer.step();
    const { tensors, metadata } = decodeSafetensors(await trainer.checkpoint());
    const state = JSON.parse(metadata.trainer) as { hyperparams: Record<string, unknown> };
    expect(state.hyperparams.maxGradNorm).toBe('Infinity');
    state.hyperparams.maxGradNorm = null;
    const old = encodeSafetensors(tensors, { ...metadata, trainer: JSON.stringify(state) });
    const resumed = await Trainer.create(await createModel(config), { data, resumeFrom: old });
    expect(resumed.hyperparams.maxGradNorm).toBe(Infinity);
  });
});

describe('checkpoint hyperparameters are checked like options', () => {
  it.each([
    ['batchSize', -1, 'an integer >= 1'],
    ['batchSize', 1.5, 'an integer >= 1'],
    ['batchSize', '8', 'an integer >= 1'],
    ['gradientAccumulationSteps', 0, 'an integer >= 1'],
    ['seqLen', 0, 'an integer >= 1'],
    ['learningRate', -1, 'a finite number > 0'],
    ['schedule', 'zigzag', 'one of cosine, linear, constant'],
    ['beta2', 1, 'in [0, 1)'],
    ['maxGradNorm', 0, '> 0'],
  ])('hyperparams.%s = %j is refused naming the field', async (field, value, allowed) => {
    const model = await createModel(config);
    const trainer = await Trainer.create(model, options);
    await trainer.step();
    const { tensors, metadata } = decodeSafetensors(await trainer.checkpoint());
    const state = JSON.parse(metadata.trainer) as { hyperparams: Record<string, unknown> };
    state.hyperparams[field] = value;
    const forged = encodeSafetensors(tensors, { ...metadata, trainer: JSON.stringify(state) });
    const error = await Trainer.create(model, { data, resumeFrom: forged }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RangeError);
    expect((error as Error).message).toContain(`hyperparams.${field} must be ${allowed}`);
  });
});

describe('training options wrong in kind fail up front, naming the option', () => {
  it.each([
    ['null options', null, 'train options must be an object'],
    ['onStep: 5', { ...options, onStep: 5 }, 'onStep must be a function'],
    ['onEval: "x"', { ...options, onEval: 'x' }, 'onEval must be a function'],
    ['onCheckpoint: {}', { ...options, onCheckpoint: {} }, 'onCheckpoint must be a function'],
    ['batchSize: "8"', { ...options, batchSize: '8' }, 'batchSize must be an integer >= 1'],
    ['maxGradNorm: "1"', { ...options, maxGradNorm: '1' }, 'maxGradNorm must be > 0'],
    ['epochs: NaN', { data, epochs: NaN }, 'epochs must be a finite number > 0'],
    ['signal: 1', { ...options, signal: 1 }, 'signal must be an AbortSignal'],
  ])('%s', async (_label, bad, message) => {
    const model = await createModel(config);
    const before = bits(await model.getParameters());
    await expect(train(model, bad as TrainOptions)).rejects.toThrow(message);
    expect(bits(await model.getParameters())).toEqual(before);
  });

  it('train(null, options) names the model', async () => {
    await expect(train(null as never, options)).rejects.toThrow(/model must be a GPT model/);
  });

  it('the known option names are exactly TrainOptions (the record is held to the type by the compiler)', () => {
    expect([...TRAIN_OPTION_NAMES]).toContain('onBackendChange');
    expect(TRAIN_OPTION_NAMES.size).toBe(36);
  });
});
