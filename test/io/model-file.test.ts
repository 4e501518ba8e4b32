import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { ModelFileError, TINYGPT_VERSION, loadModel, saveModel } from '../../src/io/model-file.js';
import {
  SafetensorsError,
  decodeSafetensors,
  encodeSafetensors,
  float16BitsToFloat32,
  roundToFloat16Bits,
  type TensorInput,
} from '../../src/io/safetensors.js';
import { BPETokenizer, CharTokenizer } from '../../src/tokenizer/index.js';
import { encodeCheckpoint, type TrainerState } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/util/rng.js';

const small: GPTConfigInput = { vocabSize: 37, maxSeqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, dFF: 48, seed: 5, backend: 'js' };

const live: GPTModel[] = [];
afterEach(() => {
  for (const model of live.splice(0)) model.dispose();
});

function keep<T extends GPTModel>(model: T): T {
  live.push(model);
  return model;
}

/** A model whose every parameter (LayerNorm gains and biases too) is random, so nothing round-trips by luck. */
async function randomModel(config: GPTConfigInput, seed: number): Promise<GPTModel> {
  const model = keep(await createModel(config));
  const rng = new Rng(seed);
  const record: Record<string, Float32Array> = {};
  for (const entry of model.paramLayout) record[entry.name] = new Float32Array(entry.length).map(() => rng.normal() * 0.3);
  await model.setParameters(record);
  return model;
}

function batch(config: GPTConfigInput, B: number, T: number, seed: number): { inputs: Int32Array; targets: Int32Array } {
  const rng = new Rng(seed);
  const ids = () => Int32Array.from({ length: B * T }, () => rng.nextInt(config.vocabSize));
  return { inputs: ids(), targets: ids() };
}

async function lossOf(model: GPTModel, config: GPTConfigInput): Promise<number> {
  const { inputs, targets } = batch(config, 3, Math.min(10, config.maxSeqLen), 99);
  return (await model.forward(inputs, targets, 3)).loss!;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

async function expectSameParameters(a: GPTModel, b: GPTModel): Promise<void> {
  const pa = await a.getParameters();
  const pb = await b.getParameters();
  expect(Object.keys(pb)).toEqual(Object.keys(pa));
  for (const name of Object.keys(pa)) expect(sameBits(pa[name], pb[name]), name).toBe(true);
}

/** The model's parameters as a Hugging Face GPT-2 checkpoint would store them. */
async function gpt2Layout(
  model: GPTModel,
  options: { prefix?: string; dtype?: 'F32' | 'F16'; lmHead?: 'tied' | 'perturbed' | 'none' } = {},
): Promise<Record<string, TensorInput>> {
  const { prefix = 'transformer.', dtype = 'F32', lmHead = 'tied' } = options;
  const params = await model.getParameters();
  const T = model.config.maxSeqLen;
  const tensors: Record<string, TensorInput> = {};
  for (const entry of model.paramLayout) tensors[prefix + entry.name] = { dtype, shape: entry.shape, data: params[entry.name] };
  for (let l = 0; l < model.config.nLayers; l++) {
    // the causal mask buffers GPT2Attention registers: not parameters
    const mask = new Float32Array(T * T).map((_, i) => (i % T <= Math.floor(i / T) ? 1 : 0));
    tensors[`${prefix}h.${l}.attn.bias`] = { dtype, shape: [1, 1, T, T], data: mask };
    tensors[`${prefix}h.${l}.attn.masked_bias`] = { dtype, shape: [], data: new Float32Array([-1e4]) };
  }
  if (lmHead !== 'none') {
    const head = Float32Array.from(params['wte.weight']);
    if (lmHead === 'perturbed') head[5] += 0.5;
    tensors['lm_head.weight'] = { dtype, shape: [model.config.vocabSize, model.config.dModel], data: head };
  }
  return tensors;
}

describe('saveModel / loadModel', () => {
  it('gives bit-identical parameters, the same config and the same loss', async () => {
    const model = await randomModel(small, 1);
    const bytes = await saveModel(model);
    const { model: loaded, tokenizer } = await loadModel(bytes, { backend: 'js' });
    keep(loaded);
    expect(tokenizer).toBeUndefined();
    expect(loaded.config).toEqual(model.config);
    await expectSameParameters(model, loaded);
    const loss = await lossOf(model, small);
    expect(await lossOf(loaded, small)).toBe(loss);
    // not vacuous: another model gives another loss
    expect(await lossOf(await randomModel(small, 2), small)).not.toBe(loss);
    // an ArrayBuffer (what fetch and Blob hand out) is taken as well
    const fromBuffer = keep((await loadModel(bytes.buffer, { backend: 'js' })).model);
    await expectSameParameters(model, fromBuffer);
  });

  it('writes F32 tensors under GPT-2 names and the documented metadata, the same bytes every time', async () => {
    const model = await randomModel(small, 3);
    const bytes = await saveModel(model);
    expect(Buffer.from(await saveModel(model)).equals(Buffer.from(bytes))).toBe(true);
    const { tensors, metadata } = decodeSafetensors(bytes);
    const params = await model.getParameters();
    expect(Object.keys(tensors).sort()).toEqual(model.paramLayout.map((e) => e.name).sort());
    for (const entry of model.paramLayout) {
      expect(tensors[entry.name].dtype).toBe('F32');
      expect(tensors[entry.name].shape).toEqual(entry.shape);
      expect(sameBits(tensors[entry.name].data as Float32Array, params[entry.name])).toBe(true);
    }
    expect(tensors['h.1.attn.c_attn.weight'].shape).toEqual([32, 96]);
    expect(tensors['h.0.mlp.c_fc.weight'].shape).toEqual([32, 48]);
    const packageVersion = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
    expect(metadata).toEqual({ format: 'tinygpt', tinygpt_version: packageVersion, config: JSON.stringify(model.config) });
    expect(TINYGPT_VERSION).toBe(packageVersion);
  });

  it('lets options override the stored config where the tensors allow it', async () => {
    const model = await randomModel(small, 4);
    const { model: loaded } = await loadModel(await saveModel(model), { backend: 'js', config: { dropout: 0.25, seed: 9 } });
    keep(loaded);
    expect(loaded.config).toEqual({ ...model.config, dropout: 0.25, seed: 9 });
    await expectSameParameters(model, loaded);
    await expect(loadModel(await saveModel(model), { backend: 'js', config: { dModel: 64, nHeads: 1 } })).rejects.toThrow(
      /wrong shape: wte\.weight is \[37, 32\], config needs \[37, 64\]/,
    );
  });

  it('hands wasmThreads to the wasm backend it loads onto', async () => {
    const model = await randomModel(small, 5);
    const { model: loaded } = await loadModel(await saveModel(model), { backend: 'wasm', wasmThreads: 3 });
    keep(loaded);
    // 3, not the 'auto' count (two on a 2-core machine)
    expect((loaded.backend as { threads?: number }).threads).toBe(3);
    await expectSameParameters(model, loaded);
  });
});

describe('loading the model out of a training checkpoint', () => {
  it('takes the parameters, config and tokenizer and skips the optimizer moments', async () => {
    const model = await randomModel(small, 50);
    const tokenizer = CharTokenizer.train('a checkpoint');
    const params = await model.getParameters();
    const shapes = Object.fromEntries(model.paramLayout.map((e) => [e.name, e.shape]));
    const moments = Object.fromEntries(Object.entries(params).map(([name, p]) => [name, p.map((x) => x * 0.5)]));
    const bytes = encodeCheckpoint(
      { config: model.config, tokenizer: tokenizer.toJSON(), state: { step: 3 } as TrainerState, params, m: moments, v: moments },
      shapes,
    );
    const loaded = await loadModel(bytes, { backend: 'js' });
    keep(loaded.model);
    expect(loaded.model.config).toEqual(model.config);
    expect(loaded.tokenizer!.toJSON()).toEqual(tokenizer.toJSON());
    await expectSameParameters(model, loaded.model);
  });
});

describe('the tokenizer in the model file', () => {
  const text = 'the quick brown fox jumps over the lazy dog; the dog sleeps. ';

  it('round-trips a char tokenizer', async () => {
    const tokenizer = CharTokenizer.train(text, { specialTokens: ['<|endoftext|>'] });
    const model = await randomModel(small, 40);
    const bytes = await saveModel(model, { tokenizer });
    expect(JSON.parse(decodeSafetensors(bytes).metadata.tokenizer)).toEqual(tokenizer.toJSON());
    const loaded = await loadModel(bytes, { backend: 'js' });
    keep(loaded.model);
    expect(loaded.tokenizer!.toJSON()).toEqual(tokenizer.toJSON());
    expect(loaded.tokenizer!.encode('a lazy fox<|endoftext|>', { allowedSpecial: 'all' })).toEqual(
      tokenizer.encode('a lazy fox<|endoftext|>', { allowedSpecial: 'all' }),
    );
    expect(loaded.tokenizer!.eosTokenId).toBe(tokenizer.eosTokenId);
  });

  it('round-trips a byte-level BPE tokenizer', async () => {
    const tokenizer = BPETokenizer.train(text.repeat(4), { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
    const config = { ...small, vocabSize: 272 };
    const model = await randomModel(config, 41);
    const loaded = await loadModel(await saveModel(model, { tokenizer }), { backend: 'js' });
    keep(loaded.model);
    expect(loaded.tokenizer!.toJSON()).toEqual(tokenizer.toJSON());
    expect(loaded.tokenizer!.encode('the lazy dog jumps')).toEqual(tokenizer.encode('the lazy dog jumps'));
  });

  it('refuses a tokenizer with more tokens than the model has embeddings', async () => {
    const tokenizer = BPETokenizer.train(text, { vocabSize: 260 });
    const model = await randomModel(small, 42);
    await expect(loadModel(await saveModel(model, { tokenizer }), { backend: 'js' })).rejects.toThrow(
      /the tokenizer has 2\d\d tokens but the model's vocabSize is 37/,
    );
  });

  it('reports an unreadable tokenizer as a ModelFileError', async () => {
    const model = await randomModel(small, 43);
    const { tensors, metadata } = decodeSafetensors(await saveModel(model));
    for (const [json, message] of [
      ['{"kind": "char"', /metadata "tokenizer" cannot be read: .*JSON/],
      ['{"kind": "wordpiece"}', /metadata "tokenizer" cannot be read: .*kind is .*"wordpiece"/],
      ['{"kind": "char", "version": 1, "chars": ["ab"], "specialTokens": {}}', /metadata "tokenizer" cannot be read: .*chars\[0\]/],
    ] as const) {
      const error = await loadModel(encodeSafetensors(tensors, { ...metadata, tokenizer: json }), { backend: 'js' }).catch((e) => e);
      expect(error).toBeInstanceOf(ModelFileError);
      expect(error.message).toMatch(message);
    }
  });
});

describe('loading GPT-2 checkpoints in Hugging Face layout', () => {
  it('loads transformer.-prefixed names, skips attn.bias buffers, accepts a tied lm_head, infers the config', async () => {
    const model = await randomModel(small, 6);
    const bytes = encodeSafetensors(await gpt2Layout(model), { format: 'pt' });
    const { model: loaded, tokenizer } = await loadModel(bytes, { backend: 'js', config: { nHeads: 4 } });
    keep(loaded);
    expect(tokenizer).toBeUndefined();
    expect(loaded.config).toEqual({ ...model.config, seed: 1337 });
    await expectSameParameters(model, loaded);
    expect(await lossOf(loaded, small)).toBe(await lossOf(model, small));
  });

  it("computes what an independent float64 GPT-2 computes on a checkpoint written by Hugging Face's writer", async () => {
    // fixtures/make-gpt2-tiny.py: HF-layout file from safetensors' own writer, logits from a NumPy GPT-2
    const bytes = new Uint8Array(readFileSync(new URL('./fixtures/gpt2-tiny.safetensors', import.meta.url)));
    const expected = JSON.parse(readFileSync(new URL('./fixtures/gpt2-tiny-logits.json', import.meta.url), 'utf8'));
    const { model } = await loadModel(bytes, { backend: 'js', config: { nHeads: expected.config.nHeads } });
    keep(model);
    expect(model.config).toMatchObject(expected.config);
    const ids = Int32Array.from(expected.ids.flat());
    const { logits } = await model.forward(ids, null, expected.ids.length, { returnLogits: true });
    const want: number[] = expected.logits.flat();
    expect(logits!.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(logits![i] - want[i]) / (1 + Math.abs(want[i])));
    expect(worst).toBeLessThan(1e-4);
  });

  it('loads names without the prefix and without lm_head', async () => {
    const model = await randomModel(small, 7);
    const bytes = encodeSafetensors(await gpt2Layout(model, { prefix: '', lmHead: 'none' }));
    const { model: loaded } = await loadModel(bytes, { backend: 'js', config: { nHeads: 4 } });
    keep(loaded);
    await expectSameParameters(model, loaded);
  });

  it('takes nHeads = dModel / 64 when the caller does not say, as GPT-2 does', async () => {
    const config = { vocabSize: 20, maxSeqLen: 8, dModel: 128, nLayers: 1, nHeads: 2, dFF: 16, backend: 'js' } as const;
    const model = await randomModel(config, 8);
    const bytes = encodeSafetensors(await gpt2Layout(model));
    const { model: loaded } = await loadModel(bytes, { backend: 'js' });
    keep(loaded);
    expect(loaded.config).toMatchObject({ vocabSize: 20, maxSeqLen: 8, dModel: 128, nLayers: 1, nHeads: 2, dFF: 16 });
    expect(await lossOf(loaded, config)).toBe(await lossOf(model, config));
  });

  it('asks for nHeads when dModel is not a multiple of 64', async () => {
    const model = await randomModel(small, 9);
    const bytes = encodeSafetensors(await gpt2Layout(model));
    await expect(loadModel(bytes, { backend: 'js' })).rejects.toThrow(
      /no tinygpt config and dModel 32 is not a multiple of GPT-2's head size 64: pass options.config.nHeads/,
    );
  });

  it('widens F16 checkpoints to float32 exactly', async () => {
    const model = await randomModel(small, 10);
    const bytes = encodeSafetensors(await gpt2Layout(model, { dtype: 'F16' }));
    const { model: loaded } = await loadModel(bytes, { backend: 'js', config: { nHeads: 4 } });
    keep(loaded);
    const original = await model.getParameters();
    const got = await loaded.getParameters();
    for (const name of Object.keys(original)) {
      const expected = original[name].map((x) => float16BitsToFloat32(roundToFloat16Bits(x)));
      expect(sameBits(got[name], expected), name).toBe(true);
    }
  });

  it('refuses an lm_head.weight that differs from wte.weight', async () => {
    const model = await randomModel(small, 11);
    const bytes = encodeSafetensors(await gpt2Layout(model, { lmHead: 'perturbed' }));
    await expect(loadModel(bytes, { backend: 'js', config: { nHeads: 4 } })).rejects.toThrow(
      /lm_head\.weight differs from wte\.weight \(first at element 5: .*\); tinygpt ties the LM head/,
    );
    const tensors = await gpt2Layout(model);
    tensors['lm_head.weight'] = { dtype: 'F32', shape: [32, 37], data: new Float32Array(37 * 32) };
    await expect(loadModel(encodeSafetensors(tensors), { config: { nHeads: 4 } })).rejects.toThrow(
      /lm_head\.weight has shape \[32, 37\] but wte\.weight has \[37, 32\]/,
    );
  });

  it('refuses two tensors that name the same parameter', async () => {
    const model = await randomModel(small, 12);
    const tensors = await gpt2Layout(model);
    tensors['ln_f.bias'] = tensors['transformer.ln_f.bias'];
    await expect(loadModel(encodeSafetensors(tensors), { config: { nHeads: 4 } })).rejects.toThrow(
      /tensors "(transformer\.)?ln_f\.bias" and "(transformer\.)?ln_f\.bias" both name parameter ln_f\.bias/,
    );
  });

  it('says which tensor is needed to infer the config', async () => {
    const model = await randomModel(small, 13);
    const tensors = await gpt2Layout(model);
    delete tensors['transformer.wpe.weight'];
    await expect(loadModel(encodeSafetensors(tensors), { config: { nHeads: 4 } })).rejects.toThrow(
      /no tinygpt config, and wpe\.weight \(the position embedding \[T, C\]\) is missing, so the config cannot be inferred/,
    );
  });
});

describe('files that do not match their config', () => {
  async function savedTensors(seed: number): Promise<{ tensors: Record<string, TensorInput>; metadata: Record<string, string> }> {
    const model = await randomModel(small, seed);
    const { tensors, metadata } = decodeSafetensors(await saveModel(model));
    return { tensors, metadata };
  }

  it('lists missing, extra and wrong-shaped tensors by name', async () => {
    const { tensors, metadata } = await savedTensors(20);
    delete tensors['h.1.mlp.c_fc.bias'];
    delete tensors['ln_f.weight'];
    tensors['h.2.ln_1.weight'] = { dtype: 'F32', shape: [32], data: new Float32Array(32) };
    tensors['h.0.attn.c_proj.weight'] = { dtype: 'F32', shape: [32, 31], data: new Float32Array(32 * 31) };
    const error = await loadModel(encodeSafetensors(tensors, metadata), { backend: 'js' }).catch((e) => e);
    expect(error).toBeInstanceOf(ModelFileError);
    expect(error.message).toMatch(/missing 2 tensor\(s\): h\.1\.mlp\.c_fc\.bias, ln_f\.weight/);
    expect(error.message).toMatch(/1 tensor\(s\) the config has no place for: h\.2\.ln_1\.weight/);
    expect(error.message).toMatch(/1 tensor\(s\) of the wrong shape: h\.0\.attn\.c_proj\.weight is \[32, 31\], config needs \[32, 32\]/);
  });

  it('shortens long name lists', async () => {
    const { metadata } = await savedTensors(21);
    const error = await loadModel(encodeSafetensors({}, metadata), { backend: 'js' }).catch((e) => e);
    expect(error.message).toMatch(/missing 28 tensor\(s\): wte\.weight, wpe\.weight, h\.0\.ln_1\.weight, .*, and 16 more/);
  });

  it('rejects a stored config that does not validate, naming the field', async () => {
    const { tensors, metadata } = await savedTensors(22);
    const config = JSON.parse(metadata.config);
    for (const [override, message] of [
      [{ nHeads: 5 }, /model file config is invalid: config\.dModel \(32\) must be divisible by config\.nHeads \(5\)/],
      [{ vocabSize: 1e12 }, /model file config is invalid: config\.vocabSize must be an integer in \[1, \d+\], got 1000000000000/],
      [{ nLayers: 'two' }, /config\.nLayers must be an integer in \[1, 1024\], got "two"/],
    ] as const) {
      const forged = encodeSafetensors(tensors, { ...metadata, config: JSON.stringify({ ...config, ...override }) });
      await expect(loadModel(forged, { backend: 'js' })).rejects.toThrow(message);
    }
    await expect(loadModel(encodeSafetensors(tensors, { ...metadata, config: '{"vocabSize": 3' }))).rejects.toThrow(
      /metadata "config" is not valid JSON/,
    );
    await expect(loadModel(encodeSafetensors(tensors, { ...metadata, config: '[1]' }))).rejects.toThrow(
      /metadata "config" must be a JSON object, got \[1\]/,
    );
  });

  it('rejects non-finite and non-float parameters, naming the tensor', async () => {
    const { tensors, metadata } = await savedTensors(23);
    const withNaN = Float32Array.from(tensors['h.1.ln_2.bias'].data as Float32Array);
    withNaN[7] = NaN;
    await expect(
      loadModel(encodeSafetensors({ ...tensors, 'h.1.ln_2.bias': { dtype: 'F32', shape: [32], data: withNaN } }, metadata)),
    ).rejects.toThrow(/tensor h\.1\.ln_2\.bias holds a non-finite value \(NaN\) at element 7/);
    await expect(
      loadModel(encodeSafetensors({ ...tensors, 'ln_f.bias': { dtype: 'I32', shape: [32], data: new Int32Array(32) } }, metadata)),
    ).rejects.toThrow(/ln_f\.bias has dtype I32; expected a float dtype/);
  });
});

// a generous bound so a loaded CI machine is not mistaken for a hang
describe('random damage to a saved model ends in ModelFileError or a model equal to what the bytes say', { timeout: 60_000 }, () => {
  const tiny: GPTConfigInput = { vocabSize: 11, maxSeqLen: 4, dModel: 8, nLayers: 1, nHeads: 2, dFF: 8, backend: 'js' };

  /** Loads; on success the model must hold exactly the (damaged) file's values and a valid config. */
  async function loadChecked(bytes: Uint8Array): Promise<'error' | 'loaded'> {
    let loaded: GPTModel;
    try {
      loaded = (await loadModel(bytes, { backend: 'js' })).model;
    } catch (error) {
      if (!(error instanceof ModelFileError)) throw error;
      return 'error';
    }
    try {
      const { tensors } = decodeSafetensors(bytes);
      const params = await loaded.getParameters();
      for (const entry of loaded.paramLayout) {
        expect(sameBits(params[entry.name], tensors[entry.name].data as Float32Array)).toBe(true);
        expect(params[entry.name].every(Number.isFinite)).toBe(true);
      }
    } finally {
      loaded.dispose();
    }
    return 'loaded';
  }

  it('1,000 random truncations', async () => {
    const model = await randomModel(tiny, 30);
    const valid = await saveModel(model);
    const rng = new Rng(31);
    const outcomes = { error: 0, loaded: 0 };
    for (let trial = 0; trial < 1000; trial++) outcomes[await loadChecked(valid.slice(0, rng.nextInt(valid.length)))]++;
    expect(outcomes).toEqual({ error: 1000, loaded: 0 });
  });

  it('1,000 random bit flips', async () => {
    const model = await randomModel(tiny, 32);
    const valid = await saveModel(model);
    const rng = new Rng(33);
    const outcomes = { error: 0, loaded: 0 };
    for (let trial = 0; trial < 1000; trial++) {
      const damaged = valid.slice();
      const bit = rng.nextInt(damaged.length * 8);
      damaged[bit >> 3] ^= 1 << (bit & 7);
      outcomes[await loadChecked(damaged)]++;
    }
    expect(outcomes.error).toBeGreaterThan(50);
    expect(outcomes.loaded).toBeGreaterThan(50);
  });

  it('a forged config asking for a huge model fails before allocating it', async () => {
    const model = await randomModel(tiny, 34);
    const { tensors, metadata } = decodeSafetensors(await saveModel(model));
    const huge = JSON.stringify({ ...JSON.parse(metadata.config), vocabSize: 1 << 20, dModel: 1 << 16, nHeads: 1 });
    const before = process.memoryUsage().arrayBuffers;
    const error = await loadModel(encodeSafetensors(tensors, { ...metadata, config: huge }), { backend: 'js' }).catch((e) => e);
    expect(error).toBeInstanceOf(ModelFileError);
    expect(error.message).toMatch(/wrong shape: wte\.weight is \[11, 8\], config needs \[1048576, 65536\]/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 24);
  });

  it('a malformed file is a SafetensorsError, which is a ModelFileError', async () => {
    const error = await loadModel(new Uint8Array(3)).catch((e) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect(error).toBeInstanceOf(ModelFileError);
  });
});
