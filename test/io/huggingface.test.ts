import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { loadModel, saveModel } from '../../src/io/model-file.js';
import { exportHuggingFace, gpt2TokenizerFiles, loadHuggingFace, type HuggingFaceFileValue } from '../../src/io/huggingface.js';
import { loadHuggingFaceFolder, saveHuggingFaceFolder } from '../../src/io/huggingface-node.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  float16BitsToFloat32,
  roundToFloat16Bits,
  type TensorInput,
} from '../../src/io/safetensors.js';
import { BPETokenizer, CharTokenizer } from '../../src/tokenizer/index.js';
import { Rng } from '../../src/util/rng.js';
import { gpt2MergesTxt, gpt2VocabJson, mobyDick } from '../tokenizer/fixtures.js';

const live: GPTModel[] = [];
afterEach(() => {
  for (const model of live.splice(0)) model.dispose();
});
const keep = <T extends GPTModel>(model: T): T => (live.push(model), model);

const small: GPTConfigInput = { vocabSize: 300, maxSeqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, dFF: 48, seed: 5, backend: 'js' };

async function randomModel(config: GPTConfigInput, seed: number): Promise<GPTModel> {
  const model = keep(await createModel(config));
  const rng = new Rng(seed);
  const record: Record<string, Float32Array> = {};
  for (const entry of model.paramLayout) record[entry.name] = new Float32Array(entry.length).map(() => rng.normal() * 0.3);
  await model.setParameters(record);
  return model;
}

async function logitsOf(model: GPTModel, ids: number[], B: number): Promise<Float32Array> {
  return (await model.forward(Int32Array.from(ids), null, B, { returnLogits: true })).logits!;
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function expectSameParameters(a: GPTModel, b: GPTModel): Promise<void> {
  const pa = await a.getParameters();
  const pb = await b.getParameters();
  expect(Object.keys(pb)).toEqual(Object.keys(pa));
  for (const name of Object.keys(pa)) expect(sameBits(pa[name], pb[name]), name).toBe(true);
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

// fixtures/make-gpt2-tiny.py: weights written by Hugging Face's safetensors, logits from a float64 NumPy GPT-2
const fixtureBytes = () => new Uint8Array(readFileSync(new URL('./fixtures/gpt2-tiny.safetensors', import.meta.url)));
const fixtureLogits = () =>
  JSON.parse(readFileSync(new URL('./fixtures/gpt2-tiny-logits.json', import.meta.url), 'utf8')) as { ids: number[][]; logits: number[][] };
/** config.json as GPT2Config writes it for the fixture's shapes (V 23, T 8, C 16, L 2, H 4, inner 64) */
const fixtureConfig = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 22,
  embd_pdrop: 0.1,
  eos_token_id: 22,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 8,
  n_embd: 16,
  n_head: 4,
  n_inner: 64,
  n_layer: 2,
  n_positions: 8,
  resid_pdrop: 0.1,
  scale_attn_weights: true,
  vocab_size: 23,
};

function worstRelative(got: Float32Array, want: number[]): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  return worst;
}

describe('loadHuggingFace', () => {
  it("reads Hugging Face's GPT-2 files and computes NumPy's logits", async () => {
    const files = new Map<string, HuggingFaceFileValue>([
      ['config.json', JSON.stringify(fixtureConfig)],
      ['model.safetensors', fixtureBytes()],
      ['generation_config.json', JSON.stringify({ bos_token_id: 22, eos_token_id: [22, 21], do_sample: true, top_k: 7 })],
    ]);
    const { model, tokenizer, generation } = await loadHuggingFace(files, { backend: 'js' });
    keep(model);
    expect(tokenizer).toBeUndefined();
    expect(model.config).toMatchObject({ vocabSize: 23, maxSeqLen: 8, dModel: 16, nLayers: 2, nHeads: 4, dFF: 64, dropout: 0.1 });
    expect(generation).toEqual({ bosTokenId: 22, eosTokenId: 22, doSample: true, topK: 7 });
    const expected = fixtureLogits();
    expect(worstRelative(await logitsOf(model, expected.ids.flat(), 2), expected.logits.flat())).toBeLessThan(1e-4);
  });

  it('loads a sharded checkpoint through model.safetensors.index.json', async () => {
    // the HF-written fixture's tensors cut into two shards, as save_pretrained(max_shard_size=...) does
    const { tensors, metadata } = decodeSafetensors(fixtureBytes(), { copy: true });
    const names = Object.keys(tensors);
    const shardOf = (name: string) => (name.includes('.h.1.') || name.startsWith('lm_head') ? 2 : 1);
    const shard = (k: number) =>
      encodeSafetensors(Object.fromEntries(names.filter((n) => shardOf(n) === k).map((n) => [n, tensors[n] as TensorInput])), metadata);
    const weightMap = Object.fromEntries(names.map((n) => [n, `model-0000${shardOf(n)}-of-00002.safetensors`]));
    const files = new Map<string, HuggingFaceFileValue>([
      ['config.json', JSON.stringify(fixtureConfig)],
      ['model.safetensors.index.json', JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap })],
      ['model-00001-of-00002.safetensors', new Blob([shard(1)])],
      ['model-00002-of-00002.safetensors', shard(2).buffer],
    ]);
    const { model } = await loadHuggingFace(files, { backend: 'js' });
    keep(model);
    const expected = fixtureLogits();
    expect(worstRelative(await logitsOf(model, expected.ids.flat(), 2), expected.logits.flat())).toBeLessThan(1e-4);

    files.delete('model-00002-of-00002.safetensors');
    await expect(loadHuggingFace(files, { backend: 'js' })).rejects.toThrow(
      /names shard model-00002-of-00002\.safetensors, which is missing/,
    );
    files.set('model-00002-of-00002.safetensors', shard(1));
    await expect(loadHuggingFace(files, { backend: 'js' })).rejects.toThrow(
      /puts \S+ in model-00002-of-00002\.safetensors, which does not hold it/,
    );
  });

  it('refuses other architectures and GPT-2 variants it would compute differently, naming the field', async () => {
    const load = (config: Record<string, unknown>) =>
      loadHuggingFace(
        new Map<string, HuggingFaceFileValue>([
          ['config.json', JSON.stringify(config)],
          ['model.safetensors', fixtureBytes()],
        ]),
        {
          backend: 'js',
        },
      );
    await expect(load({ ...fixtureConfig, model_type: 'llama', architectures: ['LlamaForCausalLM'] })).rejects.toThrow(
      /model_type is "llama"; tinygpt loads the GPT-2 family only/,
    );
    await expect(load({ ...fixtureConfig, architectures: ['BertModel'] })).rejects.toThrow(/architectures is \["BertModel"\]/);
    await expect(load({ ...fixtureConfig, activation_function: 'relu' })).rejects.toThrow(/activation_function is "relu"/);
    await expect(load({ ...fixtureConfig, layer_norm_epsilon: 1e-6 })).rejects.toThrow(/layer_norm_epsilon is 0.000001/);
    await expect(load({ ...fixtureConfig, scale_attn_by_inverse_layer_idx: true })).rejects.toThrow(/scale_attn_by_inverse_layer_idx/);
    await expect(load({ ...fixtureConfig, tie_word_embeddings: false })).rejects.toThrow(/tie_word_embeddings/);
    await expect(load({ ...fixtureConfig, n_head: 0 })).rejects.toThrow(/n_head is 0; expected an integer >= 1/);
    await expect(load({ ...fixtureConfig, n_embd: 32 })).rejects.toThrow(/wrong shape/);
    await expect(loadHuggingFace(new Map([['model.safetensors', fixtureBytes()]]))).rejects.toThrow(/config\.json is missing/);
    await expect(
      loadHuggingFace(
        new Map<string, HuggingFaceFileValue>([
          ['config.json', JSON.stringify(fixtureConfig)],
          ['pytorch_model.bin', 'x'],
        ]),
      ),
    ).rejects.toThrow(/only pytorch_model\.bin, a pickle/);
  });

  it('fetches the files under a base URL, treating 404 as absent', async () => {
    const served = new Map<string, Uint8Array<ArrayBuffer>>([
      ['/gpt2/config.json', json(fixtureConfig)],
      ['/gpt2/model.safetensors', fixtureBytes()],
    ]);
    const asked: string[] = [];
    const fakeFetch = ((url: URL) => {
      asked.push(url.pathname);
      const body = served.get(url.pathname);
      return Promise.resolve(body ? new Response(body) : new Response('not found', { status: 404 }));
    }) as unknown as typeof fetch;
    const { model, tokenizer } = await loadHuggingFace('https://example.test/gpt2', { backend: 'js', fetch: fakeFetch });
    keep(model);
    expect(tokenizer).toBeUndefined();
    expect(asked).toContain('/gpt2/tokenizer.json');
    const expected = fixtureLogits();
    expect(worstRelative(await logitsOf(model, expected.ids.flat(), 2), expected.logits.flat())).toBeLessThan(1e-4);
  });
});

describe('exportHuggingFace', () => {
  it("writes the fixture back under Hugging Face's names, bit for bit, without the tied head and mask buffers", async () => {
    const source = new Map<string, HuggingFaceFileValue>([
      ['config.json', JSON.stringify(fixtureConfig)],
      ['model.safetensors', fixtureBytes()],
    ]);
    const { model } = await loadHuggingFace(source, { backend: 'js' });
    keep(model);
    const files = await exportHuggingFace(model);
    expect([...files.keys()].sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
    const original = decodeSafetensors(fixtureBytes()).tensors;
    const written = decodeSafetensors(files.get('model.safetensors')!);
    expect(written.metadata).toEqual({ format: 'pt' });
    const parameters = Object.keys(original).filter((name) => !/\.attn\.(masked_)?bias$/.test(name) && name !== 'lm_head.weight');
    expect(Object.keys(written.tensors).sort()).toEqual(parameters.sort());
    for (const name of parameters) {
      expect(written.tensors[name].shape, name).toEqual(original[name].shape);
      expect(sameBits(written.tensors[name].data as Float32Array, original[name].data as Float32Array), name).toBe(true);
    }
    const config = JSON.parse(new TextDecoder().decode(files.get('config.json'))) as Record<string, unknown>;
    // n_inner null means 4 * n_embd (64 here), as GPT2Config writes it
    expect(config).toMatchObject({
      ...fixtureConfig,
      n_inner: null,
      attn_pdrop: 0,
      bos_token_id: null,
      eos_token_id: null,
      torch_dtype: 'float32',
    });
  });

  it('round-trips model and tokenizer: the same parameters, logits and token ids', async () => {
    const text = mobyDick().slice(0, 20_000);
    const tokenizer = BPETokenizer.train(text, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    const model = await randomModel(small, 1);
    const files = await exportHuggingFace(model, { tokenizer });
    expect([...files.keys()].sort()).toEqual([
      'config.json',
      'generation_config.json',
      'merges.txt',
      'model.safetensors',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ]);
    const loaded = await loadHuggingFace(files, { backend: 'js' });
    keep(loaded.model);
    await expectSameParameters(model, loaded.model);
    const ids = [5, 17, 260, 3, 299, 42, 7, 7, 100, 1];
    expect(sameBits(await logitsOf(loaded.model, ids, 2), await logitsOf(model, ids, 2))).toBe(true);
    expect(loaded.model.config).toMatchObject({ ...model.config, seed: loaded.model.config.seed }); // GPT2Config has no seed
    expect(loaded.generation).toEqual({ bosTokenId: 299, eosTokenId: 299 });
    const sample = text.slice(5_000, 8_000) + '<|endoftext|>';
    expect(loaded.tokenizer!.encode(sample, { allowedSpecial: 'all' })).toEqual(tokenizer.encode(sample, { allowedSpecial: 'all' }));
    // the slow-tokenizer pair alone gives the same tokenizer
    files.delete('tokenizer.json');
    const fromPair = await loadHuggingFace(files, { backend: 'js' });
    keep(fromPair.model);
    expect(fromPair.tokenizer!.encode(sample, { allowedSpecial: 'all' })).toEqual(tokenizer.encode(sample, { allowedSpecial: 'all' }));
    const tokenizerConfig = JSON.parse(new TextDecoder().decode(files.get('tokenizer_config.json'))) as Record<string, unknown>;
    expect(tokenizerConfig).toMatchObject({ tokenizer_class: 'GPT2Tokenizer', eos_token: '<|endoftext|>', model_max_length: 16 });
  });

  it("writes GPT-2's own vocab.json and merges.txt back as OpenAI published them", () => {
    const { vocab, merges } = gpt2TokenizerFiles(BPETokenizer.fromGPT2(gpt2VocabJson(), gpt2MergesTxt()));
    expect(JSON.parse(vocab)).toEqual(JSON.parse(gpt2VocabJson()));
    const lines = (text: string) => text.split('\n').filter((line) => line !== '' && !line.startsWith('#version'));
    expect(lines(merges)).toEqual(lines(gpt2MergesTxt()));
  });

  it('shards the weights with an index that loads back bit for bit', async () => {
    const model = await randomModel(small, 2);
    const files = await exportHuggingFace(model, { maxShardBytes: 40_000 });
    const shards = [...files.keys()].filter((name) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(name));
    expect(shards.length).toBeGreaterThan(2);
    expect(files.has('model.safetensors')).toBe(false);
    const index = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json'))) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    expect(index.metadata.total_size).toBe(model.numParameters() * 4);
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    for (const name of shards) expect(files.get(name)!.length).toBeLessThan(40_000 + 4096);
    const { model: loaded } = await loadHuggingFace(files, { backend: 'js' });
    keep(loaded);
    await expectSameParameters(model, loaded);
  });

  it('stores float16 in half the bytes and loads it widened', async () => {
    const model = await randomModel(small, 3);
    const full = await exportHuggingFace(model);
    const half = await exportHuggingFace(model, { dtype: 'float16' });
    const ratio = half.get('model.safetensors')!.length / full.get('model.safetensors')!.length;
    // the headers are the same size and small beside the data
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(0.52);
    expect((JSON.parse(new TextDecoder().decode(half.get('config.json'))) as { torch_dtype: string }).torch_dtype).toBe('float16');
    const { model: loaded } = await loadHuggingFace(half, { backend: 'js' });
    keep(loaded);
    const original = await model.getParameters();
    const widened = await loaded.getParameters();
    for (const name of Object.keys(original)) {
      const expected = original[name].map((x) => float16BitsToFloat32(roundToFloat16Bits(x)));
      expect(sameBits(widened[name], expected), name).toBe(true);
    }
    await expect(exportHuggingFace(model, { dtype: 'bfloat16' as 'float16' })).rejects.toThrow(
      /options\.dtype must be 'float32' or 'float16'/,
    );
  });

  it('refuses a tokenizer with no GPT-2 form', async () => {
    const model = await randomModel(small, 4);
    const tokenizer = CharTokenizer.train('abc');
    await expect(exportHuggingFace(model, { tokenizer })).rejects.toThrow(/a char tokenizer has no Hugging Face GPT-2 form/);
  });

  it('saves to and loads from a folder in Node', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'tinygpt-hf-'));
    try {
      const model = await randomModel(small, 6);
      // a stale single file from an earlier save must not shadow the shards written now
      await writeFile(join(folder, 'model.safetensors'), 'stale');
      const written = await saveHuggingFaceFolder(folder, model, { maxShardBytes: 60_000 });
      expect((await readdir(folder)).sort()).toEqual(written.sort());
      const { model: loaded } = await loadHuggingFaceFolder(folder, { backend: 'js' });
      keep(loaded);
      await expectSameParameters(model, loaded);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('saveModel with dtype float16', () => {
  it('halves the file and widens every value on load', async () => {
    const model = await randomModel(small, 7);
    const full = await saveModel(model);
    const half = await saveModel(model, { dtype: 'float16' });
    expect(half.length / full.length).toBeLessThan(0.52);
    const { model: loaded } = await loadModel(half, { backend: 'js' });
    keep(loaded);
    const original = await model.getParameters();
    const widened = await loaded.getParameters();
    for (const name of Object.keys(original)) {
      expect(
        sameBits(
          widened[name],
          original[name].map((x) => float16BitsToFloat32(roundToFloat16Bits(x))),
        ),
        name,
      ).toBe(true);
    }
  });
});
