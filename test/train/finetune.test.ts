/**
 * Freezing chosen parameters (train's trainable / freeze options) and supervised fine-tuning on
 * prompt/response pairs (sftDataset). References: a run without freezing (one AdamW step is
 * elementwise, so the trained entries must match it bit for bit), the parameters before training
 * (frozen ones bit-identical), and the loss recomputed in float64 from the model's logits.
 */
import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { CharTokenizer } from '../../src/tokenizer/char.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { sftDataset } from '../../src/train/sft.js';
import { train, Trainer } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const tiny: GPTConfigInput = { vocabSize: 13, maxSeqLen: 8, dModel: 16, nLayers: 2, nHeads: 2, seed: 5 };

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed, 99);
  return Int32Array.from({ length: n }, () => rng.nextInt(vocab));
}

const oneStep = { batchSize: 2, steps: 1, warmupSteps: 0, schedule: 'constant', learningRate: 0.05, maxGradNorm: Infinity } as const;

describe('train: freezing parameters', () => {
  it('frozen parameters stay bit-identical; the trained ones take the same step as in a run without freezing', async () => {
    const data = randomTokens(80, tiny.vocabSize, 1);
    const frozenRun = await createModel(tiny, { backend: 'js' });
    const fullRun = await createModel(tiny, { backend: 'js' });
    const before = await frozenRun.getParameters();
    await train(frozenRun, { data, ...oneStep, freeze: ['embeddings', 'layer:0', 'ln_f.*'] });
    await train(fullRun, { data, ...oneStep });
    const after = await frozenRun.getParameters();
    const full = await fullRun.getParameters();
    const frozenNames = Object.keys(before).filter(
      (n) => n.startsWith('wte') || n.startsWith('wpe') || n.startsWith('h.0.') || n.startsWith('ln_f'),
    );
    expect(frozenNames.length).toBe(2 + 12 + 2);
    for (const name of Object.keys(before)) {
      if (frozenNames.includes(name)) expect(after[name], name).toEqual(before[name]);
      else {
        expect(after[name], name).toEqual(full[name]);
        expect(after[name], name).not.toEqual(before[name]);
      }
    }
  });

  it('trainable names what trains; the optimizer keeps moments for those alone', async () => {
    const data = randomTokens(80, tiny.vocabSize, 2);
    const model = await createModel(tiny, { backend: 'js' });
    const before = await model.getParameters();
    const trainer = await Trainer.create(model, { data, ...oneStep, steps: 2, trainable: ['h.*.attn.c_attn.*', 'biases'] });
    await trainer.step();
    await trainer.step();
    const saved = decodeCheckpoint(await trainer.checkpoint());
    const trained = model.paramLayout.map((e) => e.name).filter((n) => n.includes('.attn.c_attn.') || n.endsWith('.bias'));
    expect(Object.keys(saved.m).sort()).toEqual([...trained].sort());
    expect(Object.keys(saved.v).sort()).toEqual([...trained].sort());
    const after = await model.getParameters();
    for (const name of Object.keys(before)) {
      if (trained.includes(name)) expect(after[name], name).not.toEqual(before[name]);
      else expect(after[name], name).toEqual(before[name]);
    }
    trainer.dispose();

    // a resume must train the same parameters as the run it continues
    const other = await createModel(tiny, { backend: 'js' });
    await expect(Trainer.create(other, { data, ...oneStep, steps: 3, resumeFrom: await checkpointOf(model, data) })).rejects.toThrow(
      /optimizer state: optimizer\.m\..* is missing|does not train/,
    );
  });

  it('the optimizer state is allocated for the trained entries only', async () => {
    const data = randomTokens(80, tiny.vocabSize, 3);
    const model = await createModel(tiny, { backend: 'js' });
    const held = async (options: object): Promise<number> => {
      const before = model.backend.bytesInUse();
      const trainer = await Trainer.create(model, { data, ...oneStep, ...options });
      const bytes = model.backend.bytesInUse() - before;
      trainer.dispose();
      return bytes;
    };
    // the model's gradient buffer is made on first use: after this both runs find it there
    expect(model.grads.length).toBe(model.params.length);
    const fullBytes = await held({});
    const fewBytes = await held({ trainable: ['ln_f.weight'] });
    // m and v of 16 elements each plus the 1-element norm, against m and v of every parameter
    expect(fewBytes).toBeLessThanOrEqual(2 * 16 * 4 + 64);
    expect(fullBytes).toBeGreaterThanOrEqual(2 * model.numParameters() * 4);
  });

  it('refuses selectors that name nothing, both options at once, and freezing everything', async () => {
    const data = randomTokens(80, tiny.vocabSize, 4);
    const model = await createModel(tiny, { backend: 'js' });
    await expect(train(model, { data, ...oneStep, freeze: ['h.9.*'] })).rejects.toThrow(/freeze\[0\] = "h\.9\.\*" names no parameter/);
    await expect(train(model, { data, ...oneStep, trainable: [] })).rejects.toThrow(/trainable must be a non-empty array/);
    await expect(train(model, { data, ...oneStep, trainable: ['mlp'], freeze: ['attention'] })).rejects.toThrow(/at most one of trainable/);
    await expect(train(model, { data, ...oneStep, freeze: ['*'] })).rejects.toThrow(/nothing would train/);
  });
});

async function checkpointOf(model: Awaited<ReturnType<typeof createModel>>, data: Int32Array): Promise<Uint8Array> {
  const trainer = await Trainer.create(model, { data, ...oneStep, steps: 3, freeze: ['mlp'] });
  await trainer.step();
  const bytes = await trainer.checkpoint();
  trainer.dispose();
  return bytes;
}

describe('sftDataset: prompt/response pairs', () => {
  const tokenizer = CharTokenizer.train('abcdefgh ?!', { specialTokens: ['<|endoftext|>'] });
  const pairs = [
    { prompt: 'abc?', response: 'def' },
    { prompt: 'hg?', response: 'a b!' },
    { prompt: '', response: 'ha' },
  ];

  it('each example is prompt, response, end-of-text, with the prompt length', () => {
    const data = sftDataset(tokenizer, pairs);
    const eos = tokenizer.eosTokenId!;
    expect(data.examples[0].ids).toEqual(Int32Array.from([...tokenizer.encode('abc?'), ...tokenizer.encode('def'), eos]));
    expect(data.examples.map((e) => e.promptLength)).toEqual([4, 3, 0]);
    expect(() => sftDataset(CharTokenizer.train('ab'), pairs)).toThrow(/no end-of-text token/);
    expect(() => sftDataset(tokenizer, [{ prompt: 'a', response: 3 } as never])).toThrow(/pairs\[0\] must be/);
  });

  it("train's loss is the mean over response tokens and end-of-text only, recomputed in float64 from the logits", async () => {
    const data = sftDataset(tokenizer, pairs);
    const config = { ...tiny, vocabSize: tokenizer.vocabSize, maxSeqLen: 8 };
    const model = await createModel(config, { backend: 'js' });
    // the reference: -log softmax at each response position, from logits of the unchanged model
    let sum = 0;
    let count = 0;
    for (const { ids, promptLength } of data.examples) {
      const inputs = ids.subarray(0, ids.length - 1);
      const { logits } = await model.forward(Int32Array.from(inputs), null, 1, { returnLogits: true });
      const V = config.vocabSize;
      for (let t = 0; t < inputs.length; t++) {
        if (t + 1 < promptLength) continue;
        const row = logits!.subarray(t * V, (t + 1) * V);
        const max = Math.max(...row);
        let z = 0;
        for (const x of row) z += Math.exp(x - max);
        sum += -(row[ids[t + 1]] - max - Math.log(z));
        count++;
      }
    }
    expect(count).toBe(4 + 5 + 2);
    const trainer = await Trainer.create(model, { sequences: data, batchSize: 3, steps: 1, learningRate: 1e-3 });
    const { trainLoss } = await trainer.step();
    expect(trainLoss).toBeCloseTo(sum / count, 5);
    trainer.dispose();
  });

  it('an example longer than seqLen + 1 is refused by name', async () => {
    const model = await createModel({ ...tiny, vocabSize: tokenizer.vocabSize, maxSeqLen: 4 }, { backend: 'js' });
    await expect(train(model, { sequences: sftDataset(tokenizer, pairs), steps: 1 })).rejects.toThrow(
      /sequences\.examples\[0\] has 8 tokens/,
    );
  });
});
