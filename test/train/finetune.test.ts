/**
 * Freezing chosen parameters (train's trainable / freeze options) and supervised fine-tuning on
 * prompt/response pairs (sftDataset). References: a run without freezing (one AdamW step is
 * elementwise, so the trained entries must match it bit for bit), the parameters before training
 * (frozen ones bit-identical), and the loss recomputed in float64 from the model's logits.
 */
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createModel } from '../../src/model/create.js';
import type { GPT } from '../../src/model/gpt.js';
import { allocGradientGroup } from '../../src/model/params.js';
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

describe.each([
  ['js in float64', () => ({ backendInstance: new JsBackend({ precision: 'f64' }) })],
  ['wasm', () => ({ backend: 'wasm' as const, wasmThreads: 1 })],
])('train: freezing parameters (%s)', (_, backendOptions) => {
  const make = () => createModel(tiny, backendOptions());

  it('frozen parameters stay bit-identical; the trained ones take the same step as in a run without freezing', async () => {
    const data = randomTokens(80, tiny.vocabSize, 1);
    const frozenRun = await make();
    const fullRun = await make();
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
        // one AdamW step without clipping is elementwise: equal gradients give equal parameters
        expect(after[name], name).toEqual(full[name]);
        expect(after[name], name).not.toEqual(before[name]);
      }
    }
  });

  it("backward into a frozen fine-tune's packed gradients computes the trained gradients of a full backward, bit for bit", async () => {
    const model = await createModel({ ...tiny, dropout: 0.2 }, backendOptions());
    const rng = new Rng(8, 1);
    const inputs = Int32Array.from({ length: 2 * 8 }, () => rng.nextInt(tiny.vocabSize));
    const targets = Int32Array.from({ length: 2 * 8 }, (_, i) => (i === 3 ? -1 : rng.nextInt(tiny.vocabSize)));
    const forward = async () => {
      model.setRngState({ dropoutStep: 7 });
      await model.forward(inputs, targets, 2, { training: true });
    };
    // the reference: every gradient, from the full backward
    await model.zeroGrad();
    await forward();
    await model.backward();
    const full = await model.getGradients();
    model.releaseGradients();
    const plans: Record<string, (name: string) => boolean> = {
      // the upper block only: backward stops above block 0 and the embedding
      'layer:1': (n) => n.startsWith('h.1.'),
      // biases alone (BitFit): matmul's dbias without dweight, LayerNorm's dbias without dweight
      biases: (n) => n.endsWith('.bias'),
      // the position table alone: encoderBackward without dwte, the head without its gradient
      wpe: (n) => n === 'wpe.weight',
      // the tied embedding alone: the head's and the encoder's shares
      wte: (n) => n === 'wte.weight',
      'ln_f and the MLPs': (n) => n.startsWith('ln_f') || n.includes('.mlp.'),
    };
    for (const [label, trains] of Object.entries(plans)) {
      const entries = model.paramLayout.filter((e) => trains(e.name));
      const group = allocGradientGroup(model.backend, model.params, entries);
      await forward();
      const bytesBefore = model.backend.bytesInUse();
      await model.backward(group);
      // no gradient buffer of the model's own was made (the head's [V,C] scratch is there from the full backward)
      expect(model.holdsGradients, label).toBe(false);
      expect(model.backend.bytesInUse() - bytesBefore, label).toBe(0);
      const packed = (await model.backend.download(group.grads)) as Float32Array;
      entries.forEach((e, i) => {
        const offset = group.gradOffsets![i];
        expect(packed.slice(offset, offset + e.length), `${label}: ${e.name}`).toEqual(full[e.name]);
      });
      model.backend.free(group.grads);
    }
    model.dispose();
  });

  it('a frozen run holds no gradient or moments for its frozen parameters: the bytes a full run holds, less exactly those', async () => {
    const data = randomTokens(80, tiny.vocabSize, 3);
    const heldAfterStep = async (options: object) => {
      const model = await make();
      const fresh = model.backend.bytesInUse();
      const trainer = await Trainer.create(model, { data, ...oneStep, ...options });
      await trainer.step();
      const held = model.backend.bytesInUse() - fresh;
      trainer.dispose();
      // and the run's gradient memory goes with it
      expect(model.backend.bytesInUse() - fresh).toBeLessThan(held);
      return { held, layout: model.paramLayout, bytesPerElement: bytesPer(model) };
    };
    const full = await heldAfterStep({});
    const frozen = await heldAfterStep({ trainable: ['h.1.*', 'ln_f.*'] });
    const bytes = full.bytesPerElement;
    const all = full.layout;
    const trained = all.filter((e) => e.name.startsWith('h.1.') || e.name.startsWith('ln_f'));
    const packed = (entries: typeof all) => entries.reduce((sum, e) => sum + Math.ceil(e.length / 16) * 16, 0);
    const wte = all.find((e) => e.name === 'wte.weight')!;
    // the model's gradients (all) against the packed trained ones; two moments per parameter; the head's gradient [V,C]
    const saved = (packed(all) - packed(trained)) * bytes + 2 * (packed(all) - packed(trained)) * bytes + wte.length * bytes;
    expect(full.held - frozen.held).toBe(saved);
  });
});

describe('train: choosing what trains', () => {
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

  it('refuses selectors that name nothing, both options at once, and freezing everything', async () => {
    const data = randomTokens(80, tiny.vocabSize, 4);
    const model = await createModel(tiny, { backend: 'js' });
    await expect(train(model, { data, ...oneStep, freeze: ['h.9.*'] })).rejects.toThrow(/freeze\[0\] = "h\.9\.\*" names no parameter/);
    await expect(train(model, { data, ...oneStep, trainable: [] })).rejects.toThrow(/trainable must be a non-empty array/);
    await expect(train(model, { data, ...oneStep, trainable: ['mlp'], freeze: ['attention'] })).rejects.toThrow(/at most one of trainable/);
    await expect(train(model, { data, ...oneStep, freeze: ['*'] })).rejects.toThrow(/nothing would train/);
  });
});

/** bytes per float element of the model's backend (the js reference in float64 stores 8) */
function bytesPer(model: GPT): number {
  return model.backend instanceof JsBackend && model.backend.precision === 'f64' ? 8 : 4;
}

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
