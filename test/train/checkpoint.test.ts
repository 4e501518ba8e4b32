import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import type { BackendName } from '../../src/backend/contract.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { CharTokenizer, tokenizerFromJSON } from '../../src/tokenizer/index.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { train, Trainer, type TrainOptions } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { crashConfig, crashTokens } from './fixtures/crash-config.js';
import { poisonParameter } from '../helpers/poison.js';

const base: GPTConfigInput = { vocabSize: 17, maxSeqLen: 8, dModel: 16, nLayers: 2, nHeads: 2, dropout: 0.2, seed: 21 };

function tokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed, 97);
  return Int32Array.from({ length: n }, () => rng.nextInt(vocab));
}

/** float32 bit patterns, so the comparison is exact (NaN and -0 included) */
function bits(record: Record<string, Float32Array>): Record<string, Uint32Array> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, new Uint32Array(v.buffer, v.byteOffset, v.length)]));
}

/**
 * N steps, checkpoint, a fresh model resumed from the bytes, M more steps; against N + M steps in
 * one go. Evaluations between steps, dropout and accumulation are all on.
 */
async function expectBitExactResume(backend: BackendName, options: Omit<TrainOptions, 'steps'>, N: number, M: number): Promise<void> {
  const config = { ...base, backend };
  const common: TrainOptions = { ...options, steps: N + M, evalInterval: 2, warmupSteps: 2, learningRate: 5e-3 };

  const straight = await createModel(config);
  let straightFinal: Uint8Array | undefined;
  const whole = await train(straight, { ...common, onCheckpoint: (bytes) => void (straightFinal = bytes) });
  expect(whole).toMatchObject({ stopped: 'completed', steps: N + M });

  const first = await createModel(config);
  const controller = new AbortController();
  let saved: Uint8Array | undefined;
  const part1 = await train(first, {
    ...common,
    signal: controller.signal,
    onStep: (m) => void (m.step === N && controller.abort()),
    onCheckpoint: (bytes) => void (saved = bytes),
  });
  expect(part1).toMatchObject({ stopped: 'aborted', steps: N });
  first.dispose();

  const second = await createModel(config); // fresh init: every tensor must come from the checkpoint
  let resumedFinal: Uint8Array | undefined;
  const part2 = await train(second, { ...common, resumeFrom: saved, onCheckpoint: (bytes) => void (resumedFinal = bytes) });
  expect(part2).toMatchObject({ stopped: 'completed', steps: N + M });

  expect(bits(await second.getParameters())).toEqual(bits(await straight.getParameters()));
  const [a, b] = [decodeCheckpoint(straightFinal!), decodeCheckpoint(resumedFinal!)];
  expect(bits(b.m)).toEqual(bits(a.m));
  expect(bits(b.v)).toEqual(bits(a.v));
  expect(b.state.dataPosition).toEqual(a.state.dataPosition);
  expect(b.state.modelRng).toEqual(a.state.modelRng);
  expect(part2.bestValLoss).toBe(whole.bestValLoss);
  expect(part2.history.map((h) => [h.step, h.trainLoss, h.valLoss])).toEqual(whole.history.map((h) => [h.step, h.trainLoss, h.valLoss]));
  straight.dispose();
  second.dispose();
}

describe('resume from a checkpoint', () => {
  const streamOptions = { data: tokens(300, 17, 1), valData: tokens(60, 17, 2), batchSize: 3, gradientAccumulationSteps: 2 };

  it('js: N steps, save, resume, M steps is bit-identical to N + M steps (stream, dropout, accumulation)', async () => {
    await expectBitExactResume('js', streamOptions, 5, 4);
  });

  it('js: the same with padded sequences crossing an epoch boundary', async () => {
    const rng = new Rng(4, 1);
    const sequences = Array.from({ length: 13 }, () => Array.from({ length: 2 + rng.nextInt(7) }, () => rng.nextInt(17)));
    await expectBitExactResume('js', { sequences, valSequences: sequences.slice(0, 4), batchSize: 2, gradientAccumulationSteps: 3 }, 3, 3);
  });

  it('wasm: N steps, save, resume, M steps is bit-identical to N + M steps', async () => {
    await expectBitExactResume('wasm', streamOptions, 5, 4);
  });

  it('holds the parameters under GPT-2 names, the moments, and the state in __metadata__', async () => {
    const model = await createModel({ ...base }, { backend: 'js' });
    const trainer = await Trainer.create(model, { data: tokens(100, 17, 3), batchSize: 2, steps: 10 });
    await trainer.step();
    await trainer.step();
    const c = decodeCheckpoint(await trainer.checkpoint());
    expect(Object.keys(c.params).sort()).toEqual(model.paramLayout.map((e) => e.name).sort());
    expect(Object.keys(c.m).sort()).toEqual(Object.keys(c.params).sort());
    expect(bits(c.params)).toEqual(bits(await model.getParameters()));
    expect(c.state.step).toBe(2);
    expect(c.state.optimizerUpdates).toBe(2);
    expect(c.state.modelRng).toEqual(model.getRngState());
    expect(c.state.hyperparams).toMatchObject({ batchSize: 2, totalSteps: 10, seqLen: 8 });
    expect(c.config).toEqual(model.config);
  });

  it('stores the tokenizer, which a resume without one keeps', async () => {
    const text = 'the quick brown fox jumps';
    const tokenizer = CharTokenizer.train(text);
    const model = await createModel({ ...base, vocabSize: tokenizer.vocabSize, backend: 'js' });
    const data = Int32Array.from(tokenizer.encode(text));
    const trainer = await Trainer.create(model, { data, seqLen: 4, batchSize: 2, steps: 4, tokenizer });
    await trainer.step();
    const bytes = await trainer.checkpoint();
    expect(decodeCheckpoint(bytes).tokenizer).toEqual(tokenizer.toJSON());
    const resumed = await Trainer.create(model, { data, resumeFrom: bytes });
    expect(resumed.tokenizer).toEqual(tokenizer.toJSON());
    expect(tokenizerFromJSON(resumed.tokenizer!).decode(data)).toBe(text);
    expect(resumed.hyperparams).toMatchObject({ seqLen: 4, batchSize: 2, totalSteps: 4 });
  });

  it('refuses a checkpoint of another config or other data, naming what differs', async () => {
    const model = await createModel({ ...base }, { backend: 'js' });
    const data = tokens(100, 17, 3);
    const trainer = await Trainer.create(model, { data, batchSize: 2, steps: 10 });
    await trainer.step();
    const bytes = await trainer.checkpoint();
    const wider = await createModel({ ...base, dModel: 32, backend: 'js' });
    await expect(Trainer.create(wider, { data, resumeFrom: bytes })).rejects.toThrow(
      "resumeFrom: the checkpoint's config.dModel = 16 but the model has 32",
    );
    await expect(Trainer.create(model, { data: tokens(100, 17, 4), resumeFrom: bytes })).rejects.toThrow(/training data differs/);
    await expect(Trainer.create(model, { data, resumeFrom: bytes.subarray(0, 100) })).rejects.toThrow();
  });
});

describe('damaged checkpoints', () => {
  it('a forged trainer state fails with an error naming the field, before anything is restored', async () => {
    const model = await createModel({ ...base }, { backend: 'js' });
    const data = tokens(100, 17, 3);
    const trainer = await Trainer.create(model, { data, batchSize: 2, steps: 10 });
    await trainer.step();
    const { tensors, metadata } = decodeSafetensors(await trainer.checkpoint());
    const forge = (edit: (state: Record<string, any>) => void): Uint8Array => {
      const state = JSON.parse(metadata.trainer);
      edit(state);
      return encodeSafetensors(tensors, { ...metadata, trainer: JSON.stringify(state) });
    };
    await trainer.step(); // the model moves on: a restore that went ahead would show
    const before = await model.getParameters();
    await expect(Trainer.create(model, { data, resumeFrom: forge((s) => delete s.dataPosition) })).rejects.toThrow(
      'trainer.dataPosition must be an object',
    );
    await expect(Trainer.create(model, { data, resumeFrom: forge((s) => (s.step = -1)) })).rejects.toThrow(
      'trainer.step must be an integer >= 0',
    );
    await expect(Trainer.create(model, { data, resumeFrom: forge((s) => (s.dataPosition.epochRngState.s = [1, 2])) })).rejects.toThrow(
      'epochRngState.s must be four uint32 words',
    );
    await expect(Trainer.create(model, { data, resumeFrom: forge((s) => (s.modelRng = {})) })).rejects.toThrow(
      'modelRng.dropoutStep must be an integer >= 0',
    );
    const noMoments = Object.fromEntries(Object.entries(tensors).filter(([name]) => name !== 'optimizer.v.ln_f.bias'));
    await expect(Trainer.create(model, { data, resumeFrom: encodeSafetensors(noMoments, metadata) })).rejects.toThrow(
      'optimizer.v.ln_f.bias is missing',
    );
    await expect(Trainer.create(model, { data, resumeFrom: encodeSafetensors(tensors, { ...metadata, format: 'x' }) })).rejects.toThrow(
      'not a tinygpt training checkpoint',
    );
    const noParam = Object.fromEntries(Object.entries(tensors).filter(([name]) => name !== 'h.1.mlp.c_fc.bias'));
    await expect(Trainer.create(model, { data, resumeFrom: encodeSafetensors(noParam, metadata) })).rejects.toThrow(
      /missing 1 parameter\(s\): h.1.mlp.c_fc.bias/,
    );
    expect(await model.getParameters()).toEqual(before);
  });
});

describe('divergence with checkpoints on disk', () => {
  it('a NaN stops train() naming the step, and the last good checkpoint stays loadable and resumable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-nan-'));
    const checkpointPath = join(dir, 'run.ckpt');
    const config = { ...base, backend: 'js' as const };
    const model = await createModel(config);
    const data = tokens(200, 17, 5);
    const options: TrainOptions = { data, batchSize: 2, steps: 10, checkpointInterval: 1, checkpointPath };
    const run = train(model, {
      ...options,
      // once step 2's checkpoint bytes exist, a parameter turns NaN: step 3 must diverge
      onCheckpoint: async (_bytes, step) => {
        if (step !== 2) return;
        await poisonParameter(model, 'h.0.attn.c_attn.weight', 5, NaN);
      },
    });
    await expect(run).rejects.toThrow(/^training diverged at step 3/);

    const saved = decodeCheckpoint(new Uint8Array(readFileSync(checkpointPath)));
    expect(saved.state.step).toBe(2);
    expect(Object.values(saved.params).every((p) => p.every(Number.isFinite))).toBe(true);
    const fresh = await createModel(config);
    const trainer = await Trainer.create(fresh, { ...options, resumeFrom: checkpointPath });
    const next = await trainer.step();
    expect(next.step).toBe(3);
    expect(Number.isFinite(next.trainLoss)).toBe(true);
  });
});

describe('interrupted checkpoint write', () => {
  it('a process killed halfway through writing a checkpoint leaves the previous one loadable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-crash-'));
    const bundle = join(dir, 'child.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./fixtures/crash-during-checkpoint.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: bundle,
      logLevel: 'silent',
    });
    const checkpointPath = join(dir, 'run.ckpt');
    const child = spawnSync(process.execPath, [bundle, checkpointPath, '3'], { encoding: 'utf8', timeout: 120_000 });
    expect(child.signal).toBe('SIGKILL');
    expect(child.stdout).toContain('saving step 3');
    const dying = /dying at write 3 after (\d+) of (\d+) bytes/.exec(child.stdout);
    expect(dying).not.toBeNull();

    // the torn temporary file is there, half written; the checkpoint itself is step 2's, whole
    const torn = readdirSync(dir).filter((f) => f.startsWith('run.ckpt.tmp'));
    expect(torn).toHaveLength(1);
    const saved = readFileSync(checkpointPath);
    expect(statSync(join(dir, torn[0])).size).toBe(Number(dying![1]));
    expect(Number(dying![1])).toBeLessThan(Number(dying![2]));
    expect(decodeCheckpoint(new Uint8Array(saved)).state.step).toBe(2);

    // and training resumes from it by path
    const model = await createModel(crashConfig);
    const trainer = await Trainer.create(model, { data: crashTokens(new Rng(1, 7)), resumeFrom: checkpointPath });
    expect(trainer.stepsDone).toBe(2);
    const next = await trainer.step();
    expect(next.step).toBe(3);
    expect(Number.isFinite(next.trainLoss)).toBe(true);
  });
});
