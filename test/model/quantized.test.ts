/**
 * QuantizedGPT (src/model/quantized.ts): a Q8_0 / Q4_0 model computes what the float32 model made
 * of its dequantized weights computes (js: to float32 rounding; wasm, 1 and 2 threads: within the
 * rounding of activations, to int16 for Q8_0 and int8 for Q4_0; more threads give one thread's bits), generate / generateStream /
 * beam search give that model's tokens (wasm and WebGPU: the js reference's),
 * files round-trip bit for bit, and training is refused with a clear error. With a float32 LoRA
 * adapter attached it computes what the dequantized model with the same adapter computes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { quantizeModel, QuantizedGPT } from '../../src/model/quantized.js';
import { generate, generateStream } from '../../src/generate/generate.js';
import type { GenerateSequences } from '../../src/generate/options.js';
import { loadModel, saveModel } from '../../src/io/model-file.js';
import { decodeSafetensors, encodeSafetensors, type TensorInput } from '../../src/io/safetensors.js';
import { Rng } from '../../src/util/rng.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import type { GPT } from '../../src/model/gpt.js';
import { addLoRA, loadAdapter, LORA_TARGETS, mergeAdapter, saveAdapter, withAdapter } from '../../src/model/lora.js';
import { train } from '../../src/train/trainer.js';

import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

/** WebGPU through Dawn (SwiftShader without a GPU); its tests are skipped where no adapter exists */
const gpu = await createNodeWebGPU();
gpu.backend?.dispose();

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const THREADS_URL = new URL('../../build/tinygpt-threads.wasm', import.meta.url);
const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);

const config: GPTConfigInput = { vocabSize: 61, maxSeqLen: 24, dModel: 64, nLayers: 2, nHeads: 4, dFF: 96, backend: 'js' };

const live: GPTModel[] = [];
afterEach(() => {
  for (const model of live.splice(0)) model.dispose();
});
const keep = <T extends GPTModel>(model: T): T => (live.push(model), model);

async function randomModel(seed: number): Promise<GPTModel> {
  const model = keep(await createModel(config));
  const rng = new Rng(seed);
  const record: Record<string, Float32Array> = {};
  for (const entry of model.paramLayout) record[entry.name] = new Float32Array(entry.length).map(() => rng.normal() * 0.2);
  await model.setParameters(record);
  return model;
}

/** the float32 model whose weights are the quantized model's, dequantized */
async function dequantizedTwin(q: GPTModel): Promise<GPTModel> {
  const twin = keep(await createModel(config));
  await twin.setParameters(await q.getParameters());
  return twin;
}

const ids = Int32Array.from({ length: 2 * 20 }, (_, i) => (i * 7 + 3) % 61);

function worstRelative(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

/**
 * how far wasm's logits may stray from the dequantized model's, relative to the largest: its products
 * round each block of 32 activations to int16 codes (Q8_0) or int8 (Q4_0, a step of 1/127 of the
 * block's largest value; about 1.4e-2 seen here), f16 weights not at all
 */
const WASM_TOLERANCE = { q8_0: 2e-4, q4_0: 3e-2, f16: 2e-4 };

describe('QuantizedGPT', () => {
  for (const format of ['q8_0', 'q4_0', 'f16'] as const) {
    for (const [backend, tolerance] of [
      ['js', 1e-5],
      ['wasm', WASM_TOLERANCE[format]],
    ] as const) {
      it(`${format} on ${backend}: forward logits and loss equal the dequantized float32 model's`, async () => {
        const q = keep(await quantizeModel(await randomModel(1), { format, backend, wasmThreads: 2 }));
        expect(q.backendName).toBe(backend);
        const twin = await dequantizedTwin(q);
        const targets = ids.map((id) => (id * 5 + 1) % 61);
        targets[3] = -1;
        const got = await q.forward(ids, targets, 2, { returnLogits: true });
        const want = await twin.forward(ids, targets, 2, { returnLogits: true });
        expect(worstRelative(got.logits!, want.logits!)).toBeLessThan(tolerance);
        expect(Math.abs(got.loss! - want.loss!)).toBeLessThan(tolerance * 10);
        // cached decoding, the prompt in one pass then one position at a time, gives the same last logits
        const cache = q.createKVCache(2);
        await q.forwardCached(cache, Int32Array.from([...ids.subarray(0, 12), ...ids.subarray(20, 32)]), 12);
        let last: Float32Array = new Float32Array();
        for (let t = 12; t < 20; t++) last = await q.forwardCached(cache, Int32Array.from([ids[t], ids[20 + t]]), 1);
        cache.dispose();
        const full = want.logits!;
        const V = 61;
        const expected = Float32Array.from([...full.subarray(19 * V, 20 * V), ...full.subarray(39 * V, 40 * V)]);
        expect(worstRelative(last, expected)).toBeLessThan(tolerance);
      });
    }
  }

  it('the weights differ from the float32 model by no more than the format allows, Q4_0 more than Q8_0', async () => {
    const model = await randomModel(2);
    const original = await model.getParameters();
    const errors: number[] = [];
    for (const format of ['q8_0', 'q4_0'] as const) {
      const q = keep(await quantizeModel(model, { format, backend: 'js' }));
      const back = await q.getParameters();
      let worst = 0;
      for (const name of Object.keys(original)) {
        const quantized = /wte|c_attn\.weight|c_proj\.weight|c_fc\.weight/.test(name);
        for (let i = 0; i < original[name].length; i++) {
          const err = Math.abs(back[name][i] - original[name][i]);
          if (!quantized) expect(err, name).toBe(0);
          worst = Math.max(worst, err);
        }
      }
      errors.push(worst);
    }
    // weights ~ N(0, 0.2^2): block maxima ~0.5, so Q8_0 steps ~0.004 and Q4_0 steps ~0.06
    expect(errors[0]).toBeGreaterThan(0);
    expect(errors[0]).toBeLessThan(0.005);
    expect(errors[1]).toBeLessThan(0.15);
    expect(errors[1]).toBeGreaterThan(errors[0] * 4);
  });

  it('wasm threads (every product split by columns) give the prompt pass and decoding logits of one thread, bit for bit', async () => {
    const model = await randomModel(7);
    for (const format of ['q8_0', 'q4_0', 'f16'] as const) {
      const runs: Float32Array[][] = [];
      for (const threads of [1, 3]) {
        const backend = await createWasmBackend({
          url: WASM_URL,
          threadsSource: { url: THREADS_URL },
          workerUrl: WORKER_URL,
          threads,
          minMacsPerShare: 0,
        });
        const q = keep(await quantizeModel(model, { format, backend }));
        expect(backend.threads).toBe(threads);
        const cache = q.createKVCache(2);
        const logits = [await q.forwardCached(cache, ids.subarray(0, 2 * 9), 9)];
        for (let t = 9; t < 14; t++) logits.push(await q.forwardCached(cache, Int32Array.from([ids[t], ids[20 + t]]), 1));
        cache.dispose();
        logits.push((await q.forward(ids, null, 2, { returnLogits: true })).logits!);
        runs.push(logits);
      }
      expect(runs[1]).toEqual(runs[0]);
    }
  });

  it('generate, generateStream and beam search give the dequantized model tokens, unchanged', async () => {
    const q = keep(await quantizeModel(await randomModel(3), { format: 'q4_0', backend: 'js' }));
    const twin = await dequantizedTwin(q);
    const prompt = [5, 9, 17];
    const greedy = await generate(q, prompt, { maxNewTokens: 12 });
    expect(greedy.ids).toEqual((await generate(twin, prompt, { maxNewTokens: 12 })).ids);
    const streamed: number[] = [];
    for await (const piece of generateStream(q, prompt, { maxNewTokens: 12 })) streamed.push(piece.id);
    expect(streamed).toEqual(greedy.ids);
    const beams = (await generate(q, prompt, { maxNewTokens: 8, numBeams: 3, numReturnSequences: 2 })) as GenerateSequences;
    const twinBeams = (await generate(twin, prompt, { maxNewTokens: 8, numBeams: 3, numReturnSequences: 2 })) as GenerateSequences;
    expect(beams.sequences.map((s) => s.ids)).toEqual(twinBeams.sequences.map((s) => s.ids));
    const sampled = await generate(q, prompt, { maxNewTokens: 10, doSample: true, seed: 4, topK: 5 });
    expect(sampled.ids).toEqual((await generate(twin, prompt, { maxNewTokens: 10, doSample: true, seed: 4, topK: 5 })).ids);
  });

  for (const format of ['q8_0', 'q4_0', 'f16'] as const) {
    it(`${format} on wasm: generate, generateStream and beam search give the js reference's tokens`, async () => {
      const model = await randomModel(11);
      const q = keep(await quantizeModel(model, { format, backend: 'wasm', wasmThreads: 1 }));
      const reference = keep(await quantizeModel(model, { format, backend: 'js' }));
      const prompt = [7, 1, 30, 2];
      const greedy = await generate(q, prompt, { maxNewTokens: 12 });
      expect(greedy.ids).toEqual((await generate(reference, prompt, { maxNewTokens: 12 })).ids);
      const streamed: number[] = [];
      for await (const piece of generateStream(q, prompt, { maxNewTokens: 12 })) streamed.push(piece.id);
      expect(streamed).toEqual(greedy.ids);
      const beamOptions = { maxNewTokens: 8, numBeams: 3, numReturnSequences: 2 };
      const beams = (await generate(q, prompt, beamOptions)) as GenerateSequences;
      const referenceBeams = (await generate(reference, prompt, beamOptions)) as GenerateSequences;
      expect(beams.sequences.map((s) => s.ids)).toEqual(referenceBeams.sequences.map((s) => s.ids));
    });
  }

  for (const format of ['q8_0', 'q4_0', 'f16'] as const) {
    it.skipIf(gpu.backend === null)(`${format} on WebGPU: logits of the dequantized model, and the js reference's tokens`, async () => {
      const model = await randomModel(13);
      const q = keep(await quantizeModel(model, { format, backend: await createWebGPUBackend() }));
      expect(q.backendName).toBe('webgpu');
      const reference = keep(await quantizeModel(model, { format, backend: 'js' }));
      const twin = await dequantizedTwin(q);
      const got = await q.forward(ids, null, 2, { returnLogits: true });
      const want = await twin.forward(ids, null, 2, { returnLogits: true });
      expect(worstRelative(got.logits!, want.logits!)).toBeLessThan(1e-5);
      const prompt = [3, 40, 12];
      const greedy = await generate(q, prompt, { maxNewTokens: 10 });
      expect(greedy.ids).toEqual((await generate(reference, prompt, { maxNewTokens: 10 })).ids);
      const streamed: number[] = [];
      for await (const piece of generateStream(q, prompt, { maxNewTokens: 10 })) streamed.push(piece.id);
      expect(streamed).toEqual(greedy.ids);
      const beamOptions = { maxNewTokens: 6, numBeams: 3, numReturnSequences: 2 };
      const beams = (await generate(q, prompt, beamOptions)) as GenerateSequences;
      const referenceBeams = (await generate(reference, prompt, beamOptions)) as GenerateSequences;
      expect(beams.sequences.map((s) => s.ids)).toEqual(referenceBeams.sequences.map((s) => s.ids));
    });
  }

  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format}: saves integer codes with float16 scales and loads back bit for bit`, async () => {
      const q = keep(await quantizeModel(await randomModel(5), { format, backend: 'js' }));
      const bytes = await saveModel(q);
      const { tensors, metadata } = decodeSafetensors(bytes);
      expect(metadata.quantization).toBe(format);
      const codes = tensors[`h.0.mlp.c_fc.weight.${format}`];
      // c_fc is [in 64, out 96] in float32; quantized transposed: 96 rows of 64
      expect([codes.dtype, codes.shape]).toEqual(format === 'q8_0' ? ['I8', [96, 64]] : ['U8', [96, 32]]);
      expect([tensors['h.0.mlp.c_fc.weight.scales'].dtype, tensors['h.0.mlp.c_fc.weight.scales'].shape]).toEqual(['F16', [96, 2]]);
      expect([tensors['wte.weight.scales'].shape, tensors['wpe.weight'].dtype]).toEqual([[61, 2], 'F32']);
      const float32Bytes = (await saveModel(await dequantizedTwin(q))).length;
      // quantized weights take 34/128 (Q8_0) or 18/128 (Q4_0) of their float32 bytes; biases, LayerNorms and wpe stay float32
      expect(bytes.length / float32Bytes).toBeLessThan(format === 'q8_0' ? 0.32 : 0.2);
      for (const backend of ['js', 'wasm'] as const) {
        const { model: loaded } = await loadModel(bytes, { backend });
        keep(loaded);
        expect(loaded).toBeInstanceOf(QuantizedGPT);
        expect(loaded.backendName).toBe(backend);
        expect(Buffer.from(await saveModel(loaded)).equals(Buffer.from(bytes))).toBe(true);
      }
    });
  }

  it('f16: every weight within 2^-11 of its float32 value, and logits that track the float32 model within the stated tolerance', async () => {
    const model = await randomModel(9);
    const original = await model.getParameters();
    for (const backend of ['js', 'wasm'] as const) {
      const q = keep(await quantizeModel(model, { format: 'f16', backend, wasmThreads: 1 }));
      const back = await q.getParameters();
      for (const name of Object.keys(original)) {
        for (let i = 0; i < original[name].length; i++) {
          // the weights are N(0, 0.2^2): none is below float16's normal range (2^-14) but by chance, hence the absolute 2^-25
          expect(Math.abs(back[name][i] - original[name][i]), name).toBeLessThanOrEqual(Math.abs(original[name][i]) * 2 ** -11 + 2 ** -25);
        }
      }
      // stated: logits within 2e-3 of the float32 model's largest logit (2 layers, C 64; measured ~3e-4)
      const got = await q.forward(ids, null, 2, { returnLogits: true });
      const want = await model.forward(ids, null, 2, { returnLogits: true });
      expect(worstRelative(got.logits!, want.logits!)).toBeLessThan(2e-3);
      // and half the float32 bytes for the matrices (wpe, LayerNorms and biases stay float32)
      expect(q.weightBytes()).toBeLessThan(0.55 * model.numParameters() * 4);
    }
  });

  it('f16: saves the weights as F16 tensors, half the bytes, and loads back bit for bit; refuses a non-finite half', async () => {
    const q = keep(await quantizeModel(await randomModel(5), { format: 'f16', backend: 'js' }));
    const bytes = await saveModel(q);
    const { tensors, metadata } = decodeSafetensors(bytes, { copy: true });
    expect(metadata.quantization).toBe('f16');
    // c_fc is [in 64, out 96] in float32; stored transposed, [96, 64], as every format
    expect([tensors['h.0.mlp.c_fc.weight.f16'].dtype, tensors['h.0.mlp.c_fc.weight.f16'].shape]).toEqual(['F16', [96, 64]]);
    expect(Object.keys(tensors).some((name) => name.endsWith('.scales'))).toBe(false);
    expect(bytes.length / (await saveModel(await dequantizedTwin(q))).length).toBeLessThan(0.55);
    for (const backend of ['js', 'wasm'] as const) {
      const { model: loaded } = await loadModel(bytes, { backend });
      keep(loaded);
      expect(loaded).toBeInstanceOf(QuantizedGPT);
      expect(Buffer.from(await saveModel(loaded)).equals(Buffer.from(bytes))).toBe(true);
    }
    const bits = Uint16Array.from(tensors['wte.weight.f16'].data as Uint16Array);
    bits[9] = 0xfc00; // -Infinity in float16
    const forged = encodeSafetensors({ ...tensors, 'wte.weight.f16': { dtype: 'F16', shape: [61, 64], data: bits } }, metadata);
    await expect(loadModel(forged, { backend: 'js' })).rejects.toThrow(/wte\.weight\.f16 holds a non-finite value at element 9/);
  });

  it('refuses forged quantized files, naming the tensor or field', async () => {
    const q = keep(await quantizeModel(await randomModel(7), { format: 'q4_0', backend: 'js' }));
    const { tensors, metadata } = decodeSafetensors(await saveModel(q), { copy: true });
    const forge = (edit: (t: Record<string, TensorInput>, m: Record<string, string>) => void) => {
      const t: Record<string, TensorInput> = { ...tensors };
      const m = { ...metadata };
      edit(t, m);
      return loadModel(encodeSafetensors(t, m), { backend: 'js' });
    };
    await expect(forge((_, m) => (m.quantization = 'q5_1'))).rejects.toThrow(
      /metadata "quantization" must be one of 'q8_0', 'q4_0', 'f16', got "q5_1"/,
    );
    await expect(forge((t) => delete t['h.1.attn.c_proj.weight.scales'])).rejects.toThrow(/h\.1\.attn\.c_proj\.weight\.scales is missing/);
    await expect(
      forge((t) => (t['h.0.mlp.c_fc.weight.q4_0'] = { dtype: 'I8', shape: [96, 32], data: new Int8Array(96 * 32) })),
    ).rejects.toThrow(/h\.0\.mlp\.c_fc\.weight\.q4_0 is I8 \[96, 32\], the config needs U8 \[96, 32\]/);
    await expect(
      forge((t) => {
        const scales = Uint16Array.from(tensors['wte.weight.scales'].data as Uint16Array);
        scales[5] = 0x7c00; // +Infinity in float16
        t['wte.weight.scales'] = { dtype: 'F16', shape: [61, 2], data: scales };
      }),
    ).rejects.toThrow(/wte\.weight\.scales holds a non-finite scale at element 5/);
    await expect(forge((t) => (t['h.0.mlp.c_fc.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) }))).rejects.toThrow(
      /1 tensor\(s\) the config has no place for: h\.0\.mlp\.c_fc\.weight/,
    );
  });

  it('refuses training, a format it does not know and shapes that are not whole blocks', async () => {
    const model = await randomModel(6);
    const q = keep(await quantizeModel(model, { backend: 'js' }));
    expect(q.format).toBe('q8_0');
    expect(() => q.params).toThrow(/runs inference only: train the float32 model, then quantize it again/);
    await expect(q.backward()).rejects.toThrow(/inference only/);
    await expect(q.forward(ids, ids, 2, { training: true })).rejects.toThrow(/inference only/);
    await expect(quantizeModel(model, { format: 'q5_1' as 'q8_0' })).rejects.toThrow(
      /options\.format must be one of 'q8_0', 'q4_0', 'f16'/,
    );
    const odd = keep(await createModel({ ...config, dModel: 48, nHeads: 4, dFF: 64 }));
    await expect(quantizeModel(odd, { backend: 'js' })).rejects.toThrow(
      /dModel \(48\) and dFF \(64\) must be multiples of the block size 32/,
    );
  });
});

/**
 * A float32 LoRA adapter on a quantized model, for inference: it adds its low-rank term after each
 * quantized product, so the quantized model with the adapter computes what the dequantized float32
 * model with the same adapter computes (the float32 LoRA path is tested in lora.test.ts).
 */
describe('QuantizedGPT with a LoRA adapter', () => {
  /** the adapter file of a random adapter on every projection, left attached to `model` */
  async function randomAdapter(model: GPTModel, seed: number): Promise<Uint8Array> {
    const adapter = addLoRA(model as GPT, { rank: 4, alpha: 8, targets: [...LORA_TARGETS] });
    const rng = new Rng(seed);
    adapter.setParameters(
      Object.fromEntries(adapter.entries.map((e) => [e.name, new Float32Array(e.length).map(() => rng.normal() * 0.2)])),
    );
    return saveAdapter(adapter);
  }

  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format} on js: logits, loss and every generation equal the dequantized model's with the same adapter`, async () => {
      const q = keep(await quantizeModel(await randomModel(21), { format, backend: 'js' }));
      const twin = await dequantizedTwin(q);
      const bytes = await randomAdapter(twin, 22);
      const plain = await q.forward(ids, null, 2, { returnLogits: true });
      const adapter = loadAdapter(q, bytes);
      expect(q.lora).toBe(adapter);
      const targets = ids.map((id) => (id * 5 + 1) % 61);
      const got = await q.forward(ids, targets, 2, { returnLogits: true });
      const want = await twin.forward(ids, targets, 2, { returnLogits: true });
      expect(worstRelative(got.logits!, want.logits!)).toBeLessThan(1e-5);
      expect(worstRelative(got.logits!, plain.logits!)).toBeGreaterThan(1e-2);
      expect(Math.abs(got.loss! - want.loss!)).toBeLessThan(1e-4);

      const prompt = [5, 9, 17];
      for (const options of [
        { maxNewTokens: 10 },
        { maxNewTokens: 8, doSample: true, seed: 4, topK: 5 },
        { maxNewTokens: 6, numBeams: 3 },
      ]) {
        expect((await generate(q, prompt, options)).ids, JSON.stringify(options)).toEqual((await generate(twin, prompt, options)).ids);
      }
      const streamed: number[] = [];
      for await (const piece of generateStream(q, prompt, { maxNewTokens: 10 })) streamed.push(piece.id);
      expect(streamed).toEqual((await generate(twin, prompt, { maxNewTokens: 10 })).ids);
      // a view with the adapter on the detached model generates as the attached one did
      q.setAdapter(null);
      expect((await generate(withAdapter(q, adapter), prompt, { maxNewTokens: 10 })).ids).toEqual(streamed);
      expect((await generate(q, prompt, { maxNewTokens: 10 })).ids).not.toEqual(streamed);
    });
  }

  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`${format} on wasm: logits of the dequantized model with the adapter, and the js reference's tokens`, async () => {
      const model = await randomModel(23);
      const q = keep(await quantizeModel(model, { format, backend: 'wasm', wasmThreads: 1 }));
      const reference = keep(await quantizeModel(model, { format, backend: 'js' }));
      const twin = await dequantizedTwin(q);
      const bytes = await randomAdapter(twin, 24);
      loadAdapter(q, bytes);
      loadAdapter(reference, bytes);
      const got = await q.forward(ids, null, 2, { returnLogits: true });
      const want = await twin.forward(ids, null, 2, { returnLogits: true });
      expect(worstRelative(got.logits!, want.logits!)).toBeLessThan(WASM_TOLERANCE[format]);
      const prompt = [7, 1, 30, 2];
      for (const options of [{ maxNewTokens: 10 }, { maxNewTokens: 6, numBeams: 3 }]) {
        expect((await generate(q, prompt, options)).ids, JSON.stringify(options)).toEqual((await generate(reference, prompt, options)).ids);
      }
    });
  }

  it('refuses training and merging, saying why', async () => {
    const model = await randomModel(25);
    const q = keep(await quantizeModel(model, { backend: 'js' }));
    loadAdapter(q, await randomAdapter(model, 26));
    const why = /a LoRA adapter on a quantized model runs inference only: the quantized products have no backward/;
    await expect(train(q, { data: ids, steps: 1, batchSize: 1, seqLen: 8 })).rejects.toThrow(why);
    await expect(q.forward(ids, ids, 2, { training: true })).rejects.toThrow(why);
    expect(() => mergeAdapter(q)).toThrow(/mergeAdapter: model must be a float32 GPT: merge into the float32 model, then quantize it/);
    // an adapter made on another backend is refused by name of the call
    const foreign = keep(await createModel(config));
    expect(() => q.setAdapter(addLoRA(foreign as GPT))).toThrow(/setAdapter: the adapter was made on another backend/);
  });
});
