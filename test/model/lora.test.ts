/**
 * LoRA adapters. References: central finite differences in float64 (js backend, f64 precision) for
 * the adapter's gradients, the float64 reference backend for wasm's, the merged-weights model (no
 * adapter code on its path) for outputs and generation, the parameters before training for the
 * frozen model, and the bytes the backend holds for what a LoRA run allocates.
 */
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { generate, generateStream } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import { type GPT } from '../../src/model/gpt.js';
import { addLoRA, LORA_TARGETS, loadAdapter, mergeAdapter, saveAdapter, withAdapter, type LoRAAdapter } from '../../src/model/lora.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { train, Trainer } from '../../src/train/trainer.js';
import { ints, maxAbsDiff, normal32, normal64, Rng } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';

const tiny: GPTConfigInput = { vocabSize: 11, maxSeqLen: 6, dModel: 8, nLayers: 2, nHeads: 2, dFF: 12, seed: 7 };
const allTargets = [...LORA_TARGETS];

/** adapter parameters of order `std` (B is zero at init, which would hide half the gradient paths) */
function randomizeAdapter(adapter: LoRAAdapter, rng: Rng, std: number): void {
  const record: Record<string, Float32Array> = {};
  for (const e of adapter.entries) record[e.name] = normal32(rng, e.length, std);
  adapter.setParameters(record);
}

async function logitsOf(model: GPT, ids: Int32Array, B: number): Promise<Float32Array> {
  return (await model.forward(ids, null, B, { returnLogits: true })).logits!;
}

describe('LoRA gradients', () => {
  it('equal central finite differences in float64, for every target, with and without adapter dropout', async () => {
    for (const dropout of [0, 0.3]) {
      const backend = new JsBackend({ precision: 'f64' });
      const model = await createModel(tiny, { backendInstance: backend });
      const rng = new Rng(11);
      const base = new Float64Array(model.params.length);
      for (const e of model.paramLayout) base.set(normal64(rng, e.length, 0.4), e.offset);
      backend.write(model.params, base);
      const adapter = addLoRA(model, { rank: 3, alpha: 6, dropout, targets: allTargets });
      const flat = new Float64Array(adapter.params.length);
      for (const e of adapter.entries) flat.set(normal64(rng, e.length, 0.4), e.offset);
      backend.write(adapter.params, flat);

      const B = 2;
      const inputs = ints(rng, B * 6, 0, 11);
      const targets = ints(rng, B * 6, 0, 11);
      targets[2] = -1;
      const loss = async () => {
        model.setRngState({ dropoutStep: 3 }); // the same masks at every evaluation
        return (await model.forward(inputs, targets, B, { training: true })).loss!;
      };
      await model.zeroGrad();
      await loss();
      await model.backward();
      const grads = backend.read(adapter.grads);

      const eps = 1e-3;
      const probe = new Rng(5);
      for (const e of adapter.entries) {
        let worst = 0;
        let scale = 1e-3;
        for (let k = 0; k < 3; k++) {
          const i = e.offset + probe.nextInt(e.length);
          const saved = flat[i];
          flat[i] = saved + eps;
          backend.write(adapter.params, flat);
          const up = await loss();
          flat[i] = saved - eps;
          backend.write(adapter.params, flat);
          const down = await loss();
          flat[i] = saved;
          backend.write(adapter.params, flat);
          const numeric = (up - down) / (2 * eps);
          worst = Math.max(worst, Math.abs(numeric - grads[i]));
          scale = Math.max(scale, Math.abs(numeric));
        }
        expect(worst, `${e.name} (dropout ${dropout})`).toBeLessThan(2e-4 + 2e-3 * scale);
      }
      // the frozen model gets no gradient at all: its buffer was never even allocated
      expect(backend.bytesInUse()).toBeLessThan(model.params.length * 4 * 2 + 4 * 11 * 8 * 8 + 1e5);
      model.dispose();
    }
  });

  it('on wasm equal the float64 reference backend’s', async () => {
    const rng = new Rng(12);
    const config = { ...tiny, dModel: 16, dFF: 40, vocabSize: 19 };
    const reference = await createModel(config, { backendInstance: new JsBackend({ precision: 'f64' }) });
    const wasm = await createModel(config, { backend: 'wasm', wasmThreads: 1 });
    const params = await reference.getParameters();
    for (const name of Object.keys(params)) params[name] = normal32(rng, params[name].length, 0.3);
    await reference.setParameters(params);
    await wasm.setParameters(params);
    const options = { rank: 4, alpha: 8, dropout: 0.2, targets: allTargets };
    const a = addLoRA(reference, options);
    const b = addLoRA(wasm, options);
    randomizeAdapter(a, rng, 0.3);
    b.setParameters(await a.getParameters());
    const inputs = ints(rng, 3 * 6, 0, 19);
    const targets = ints(rng, 3 * 6, 0, 19);
    for (const model of [reference, wasm]) {
      model.setRngState({ dropoutStep: 9 });
      await model.zeroGrad();
      await model.forward(inputs, targets, 3, { training: true });
      await model.backward();
    }
    const expected = await a.getGradients();
    const actual = await b.getGradients();
    for (const name of Object.keys(expected)) {
      let scale = 0;
      for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
      expect(maxAbsDiff(actual[name], expected[name]), name).toBeLessThan(1e-4 * Math.max(1, scale));
    }
    wasm.dispose();
  });
});

describe.each(['js', 'wasm'] as const)('LoRA on the %s backend', (backendName) => {
  async function adapted(seed = 21): Promise<{ model: GPT; adapter: LoRAAdapter }> {
    const model = await createModel(tiny, { backend: backendName, wasmThreads: 1 });
    const adapter = addLoRA(model, { rank: 2, alpha: 4, targets: allTargets, seed });
    randomizeAdapter(adapter, new Rng(seed), 0.2);
    return { model, adapter };
  }

  it('a fresh adapter leaves the outputs unchanged; a trained one changes them; merging gives the same outputs as the adapter', async () => {
    const model = await createModel(tiny, { backend: backendName, wasmThreads: 1 });
    const ids = ints(new Rng(2), 2 * 6, 0, 11);
    const plain = await logitsOf(model, ids, 2);
    const adapter = addLoRA(model, { rank: 2, targets: allTargets });
    // B = 0: the same logits, up to the rounding of unfused products (the plain model's fuse GELU and residual adds)
    expect(maxAbsDiff(await logitsOf(model, ids, 2), plain)).toBeLessThan(1e-5);
    randomizeAdapter(adapter, new Rng(3), 0.2);
    const withAdapter = await logitsOf(model, ids, 2);
    expect(maxAbsDiff(withAdapter, plain)).toBeGreaterThan(1e-3);
    mergeAdapter(model);
    expect(model.lora).toBeNull();
    expect(adapter.isDisposed).toBe(true);
    expect(maxAbsDiff(await logitsOf(model, ids, 2), withAdapter)).toBeLessThan(2e-5);
    model.dispose();
  });

  it('generate (greedy, sampled, beam) and generateStream give the merged model’s tokens', async () => {
    const { model } = await adapted();
    const merged = await createModel(tiny, { backend: backendName, wasmThreads: 1 });
    // merge on a host copy: the adapter stays on `model`
    const mergedParams = await model.getParameters();
    const ab = await model.lora!.getParameters();
    for (const target of allTargets) {
      for (let l = 0; l < 2; l++) {
        const name = `h.${l}.${target}`;
        const W = mergedParams[`${name}.weight`];
        const A = ab[`${name}.lora_A`];
        const B = ab[`${name}.lora_B`];
        const N = B.length / 2;
        const K = A.length / 2;
        for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) W[k * N + n] += 2 * (A[k * 2] * B[n] + A[k * 2 + 1] * B[N + n]);
      }
    }
    await merged.setParameters(mergedParams);
    const prompt = [1, 2, 3];
    for (const options of [
      { maxNewTokens: 3 },
      { maxNewTokens: 3, doSample: true, seed: 4, temperature: 0.5 },
      { maxNewTokens: 3, numBeams: 2 },
    ]) {
      const a = await generate(model, prompt, options);
      const b = await generate(merged, prompt, options);
      expect(a.ids, JSON.stringify(options)).toEqual(b.ids);
    }
    const streamed: number[] = [];
    for await (const token of generateStream(model, prompt, { maxNewTokens: 3 })) streamed.push(token.id);
    expect(streamed).toEqual((await generate(merged, prompt, { maxNewTokens: 3 })).ids);
    model.dispose();
    merged.dispose();
  });

  it('saveAdapter / loadAdapter round trip onto a fresh base gives the same outputs; adapters swap on one base', async () => {
    const { model, adapter } = await adapted(31);
    const ids = ints(new Rng(4), 6, 0, 11);
    const first = await logitsOf(model, ids, 1);
    const bytes = await saveAdapter(adapter);
    expect(bytes.length).toBeLessThan(20_000);

    const fresh = await createModel(tiny, { backend: backendName, wasmThreads: 1 });
    const loaded = loadAdapter(fresh, bytes);
    expect(loaded.config).toEqual(adapter.config);
    expect(await logitsOf(fresh, ids, 1)).toEqual(first);

    // a second adapter on the first base; the first comes back unchanged
    model.setAdapter(null);
    const second = addLoRA(model, { rank: 3, targets: ['mlp.c_fc'] });
    randomizeAdapter(second, new Rng(5), 0.2);
    const other = await logitsOf(model, ids, 1);
    expect(maxAbsDiff(other, first)).toBeGreaterThan(1e-4);
    model.setAdapter(adapter);
    expect(await logitsOf(model, ids, 1)).toEqual(first);

    const wider = await createModel({ ...tiny, dModel: 12, nHeads: 2 }, { backend: backendName, wasmThreads: 1 });
    expect(() => loadAdapter(wider, bytes)).toThrow(/made for dModel = 8, but the model has 12/);
    expect(() => loadAdapter(fresh, bytes, { attach: true })).toThrow(/already has an adapter attached/);
    expect(() => loadAdapter(fresh, new Uint8Array(16))).toThrow();
    for (const m of [model, fresh, wider]) m.dispose();
  });

  it('withAdapter views interleave generations with different adapters on one base, each as with its adapter attached', async () => {
    const { model, adapter: first } = await adapted(41);
    model.setAdapter(null);
    const second = addLoRA(model, { rank: 3, targets: ['mlp.c_fc', 'attn.c_proj'], seed: 42 });
    randomizeAdapter(second, new Rng(42), 0.3);
    const prompt = [1, 2, 3];
    const sampled = { maxNewTokens: 5, doSample: true, seed: 9, temperature: 0.7 };
    const beams = { maxNewTokens: 4, numBeams: 2 };
    const expected = new Map<LoRAAdapter | null, { ids: number[]; beams: number[] }>();
    for (const adapter of [first, second, null]) {
      model.setAdapter(adapter);
      expected.set(adapter, { ids: (await generate(model, prompt, sampled)).ids, beams: (await generate(model, prompt, beams)).ids });
    }
    expect(expected.get(first)!.ids).not.toEqual(expected.get(null)!.ids);
    // whatever the base has attached, each view runs its own adapter, token by token in turn
    model.setAdapter(second);
    const views = [first, null, second].map((adapter) => ({ adapter, view: withAdapter(model, adapter) }));
    const streams = views.map(({ view }) => generateStream(view, prompt, sampled)[Symbol.asyncIterator]());
    const streamed: number[][] = views.map(() => []);
    for (let open = streams.length; open > 0;) {
      open = 0;
      for (const [i, stream] of streams.entries()) {
        const { done, value } = await stream.next();
        if (done) continue;
        streamed[i].push(value.id);
        open++;
      }
    }
    const beamed = await Promise.all(views.map(({ view }) => generate(view, prompt, beams)));
    for (const [i, { adapter }] of views.entries()) {
      expect(streamed[i], String(i)).toEqual(expected.get(adapter)!.ids);
      expect(beamed[i].ids, String(i)).toEqual(expected.get(adapter)!.beams);
    }
    expect(model.lora).toBe(second);

    const view = views[0].view;
    expect(view.lora).toBe(first);
    expect(() => view.forward(Int32Array.from(prompt), null, 1)).toThrow(/withAdapter's view is for generation only/);
    const elsewhere = await createModel(tiny, { backend: backendName, wasmThreads: 1 });
    const foreign = addLoRA(elsewhere, { rank: 2 });
    expect(() => withAdapter(model, foreign)).toThrow(/withAdapter: the adapter was made on another backend/);
    view.dispose();
    expect(model.isDisposed).toBe(false);
    first.dispose();
    await expect(generate(views[0].view, prompt, sampled)).rejects.toThrow(/disposed/);
    elsewhere.dispose();
    model.dispose();
  });

  it('train() updates the adapter only: the model stays bit-identical, optimizer state is the adapter’s, no gradient buffer for the model', async () => {
    // parameters outweigh a 2 x 8 batch's activations here, as they do in any real fine-tune
    const config = { vocabSize: 64, maxSeqLen: 8, dModel: 32, nLayers: 2, nHeads: 2, seed: 3 };
    const rng = new Rng(6);
    const data = ints(rng, 200, 0, 64);
    const options = { data, batchSize: 2, steps: 3, learningRate: 0.02, warmupSteps: 0 };
    // bytes held after two steps beyond what the fresh model held (its parameters, gradients, head copy)
    const heldAfterTwoSteps = async (model: GPT, start: number): Promise<{ held: number; trainer: Trainer }> => {
      const trainer = await Trainer.create(model, options);
      await trainer.step();
      await trainer.step();
      return { held: model.backend.bytesInUse() - start, trainer };
    };
    const full = await createModel(config, { backend: backendName, wasmThreads: 1 });
    const fullRun = await heldAfterTwoSteps(full, full.backend.bytesInUse());
    fullRun.trainer.dispose();
    full.dispose();

    const model = await createModel(config, { backend: backendName, wasmThreads: 1 });
    const before = await model.getParameters();
    const fresh = model.backend.bytesInUse();
    const adapter = addLoRA(model, { rank: 2, targets: allTargets, dropout: 0.1 });
    const adapterBefore = await adapter.getParameters();
    const { held, trainer } = await heldAfterTwoSteps(model, fresh);
    const saved = decodeCheckpoint(await trainer.checkpoint());
    expect(Object.keys(saved.m).sort()).toEqual(adapter.entries.map((e) => e.name).sort());
    // a full run holds gradients and two moments of every parameter; the LoRA run none of them
    // (attaching the adapter freed the model's gradients), only the adapter's, its moments and scratch
    const perParameterState = 3 * model.params.length * 4;
    expect(fullRun.held).toBeGreaterThan(2 * model.params.length * 4);
    expect(held).toBeLessThan(fullRun.held - perParameterState + adapter.bytes() + 2 * adapter.params.length * 4 + 4096);
    trainer.dispose();
    expect(await model.getParameters()).toEqual(before);
    const adapterAfter = await adapter.getParameters();
    for (const name of Object.keys(adapterBefore)) expect(adapterAfter[name], name).not.toEqual(adapterBefore[name]);

    // train() refuses to pick among the model's parameters while an adapter is attached
    await expect(train(model, { data, steps: 1, freeze: ['mlp'] })).rejects.toThrow(/only the adapter trains/);
    model.dispose();
  });
});

describe('LoRA checkpoints', () => {
  it('2 steps, checkpoint, resume onto a fresh base with a fresh adapter, 2 steps: bit-identical to 4 steps in one go', async () => {
    const data = ints(new Rng(8), 200, 0, 11);
    const options = { data, batchSize: 2, steps: 4, learningRate: 0.02, warmupSteps: 0 };
    const loraOptions = { rank: 2, targets: allTargets, dropout: 0.1 };
    const straight = await createModel(tiny, { backend: 'js' });
    addLoRA(straight, loraOptions);
    await train(straight, options);

    const first = await createModel(tiny, { backend: 'js' });
    addLoRA(first, loraOptions);
    const trainer = await Trainer.create(first, options);
    await trainer.step();
    await trainer.step();
    const bytes = await trainer.checkpoint();
    trainer.dispose();
    const resumed = await createModel(tiny, { backend: 'js' });
    addLoRA(resumed, { ...loraOptions, seed: 99 }); // its own initial A is replaced by the checkpoint's
    await train(resumed, { ...options, resumeFrom: bytes });
    expect(await resumed.lora!.getParameters()).toEqual(await straight.lora!.getParameters());
    expect(await resumed.getParameters()).toEqual(await straight.getParameters());
  });
});

describe('addLoRA options', () => {
  it('are checked by name', async () => {
    const model = await createModel(tiny, { backend: 'js' });
    expect(() => addLoRA(model, { rank: 0 })).toThrow(/rank must be an integer in \[1, 8\]/);
    expect(() => addLoRA(model, { alpha: -1 })).toThrow(/alpha must be a finite number > 0/);
    expect(() => addLoRA(model, { dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => addLoRA(model, { targets: ['attn.c_q' as never] })).toThrow(/targets\[0\] must be one of 'attn.c_attn'/);
    expect(() => addLoRA(model, { ranks: 2 } as never)).toThrow(/unknown option "ranks"/);
    const adapter = addLoRA(model, { rank: 4, targets: ['mlp.c_proj', 'attn.c_attn'] });
    // targets in the blocks' order; A [K, r], B [r, N]
    expect(adapter.entries.slice(0, 4).map((e) => [e.name, e.shape])).toEqual([
      ['h.0.attn.c_attn.lora_A', [8, 4]],
      ['h.0.attn.c_attn.lora_B', [4, 24]],
      ['h.0.mlp.c_proj.lora_A', [12, 4]],
      ['h.0.mlp.c_proj.lora_B', [4, 8]],
    ]);
    expect(adapter.numParameters).toBe(2 * (8 * 4 + 4 * 24 + 12 * 4 + 4 * 8));
    expect(() => addLoRA(model)).toThrow(/already has an adapter attached/);
    model.dispose();
  });
});

/** one probe decides whether Dawn finds an adapter (SwiftShader without a GPU: slow, so the model stays tiny) */
const probe = await createNodeWebGPU();
probe.backend?.dispose();

describe.skipIf(probe.backend === null)('LoRA on the WebGPU backend', () => {
  it('adapter gradients equal the float64 reference’s; merging keeps the outputs; generate gives the merged model’s tokens', async () => {
    const rng = new Rng(13);
    const gpu = await createModel(tiny, { backendInstance: await createWebGPUBackend() });
    const reference = await createModel(tiny, { backendInstance: new JsBackend({ precision: 'f64' }) });
    const options = { rank: 2, alpha: 4, dropout: 0.2, targets: allTargets };
    const a = addLoRA(reference, options);
    const b = addLoRA(gpu, options);
    randomizeAdapter(a, rng, 0.3);
    b.setParameters(await a.getParameters());
    const inputs = ints(rng, 2 * 6, 0, 11);
    const targets = ints(rng, 2 * 6, 0, 11);
    for (const model of [reference, gpu]) {
      model.setRngState({ dropoutStep: 2 });
      await model.zeroGrad();
      await model.forward(inputs, targets, 2, { training: true });
      await model.backward();
    }
    const expected = await a.getGradients();
    const actual = await b.getGradients();
    for (const name of Object.keys(expected)) {
      let scale = 0;
      for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
      expect(maxAbsDiff(actual[name], expected[name]), name).toBeLessThan(1e-4 * Math.max(1, scale));
    }
    const withAdapter = await logitsOf(gpu, inputs, 2);
    const greedy = await generate(gpu, [1, 2, 3], { maxNewTokens: 3 });
    mergeAdapter(gpu);
    expect(maxAbsDiff(await logitsOf(gpu, inputs, 2), withAdapter)).toBeLessThan(2e-5);
    expect((await generate(gpu, [1, 2, 3], { maxNewTokens: 3 })).ids).toEqual(greedy.ids);
    gpu.dispose();
  });
});
