/**
 * A whole GPT on the WebGPU backend (Dawn in Node) against independent backends: every parameter's
 * gradient against the float64 js reference, ten Trainer steps against the wasm backend, and a
 * device lost mid-training against the documented failure (downloads reject with "WebGPU device
 * lost" and say how to go on; the last checkpoint written before stays loadable; going on on wasm by
 * itself, onDeviceLost: 'wasm', is test/model/webgpu-fallback.test.ts). Without a GPU, Dawn runs on
 * SwiftShader (see vitest.config.ts), which is slow: models stay tiny. The browser side is
 * test/browser/sdk.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { Trainer, train, type StepMetrics } from '../../src/train/trainer.js';
import { Rng, ints, maxRelErr } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const SEED = Math.floor(Math.random() * 2 ** 31);

// odd sizes: C = 20 over 4 heads (HS 5), dFF 36, V 37, T 13 of 16
const config: GPTConfigInput = { vocabSize: 37, maxSeqLen: 16, dModel: 20, nLayers: 2, nHeads: 4, dFF: 36, dropout: 0.2, seed: 4242 };

/** one probe decides for the whole file whether an adapter exists; each test then makes its own device */
const probe = await createNodeWebGPU();
const adapter = probe.backend?.adapterName;
probe.backend?.dispose();
const suite = probe.backend === null ? `a whole GPT on WebGPU (skipped: ${probe.skipReason})` : `a whole GPT on WebGPU (${adapter})`;

/** a token stream with some structure to learn: a noisy cycle through the vocabulary */
function corpus(length: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const out = new Int32Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.next() < 0.8 ? (i * 7) % 37 : rng.nextInt(37);
  return out;
}

describe.skipIf(probe.backend === null)(suite, () => {
  const scratchDirs: string[] = [];
  afterAll(() => {
    for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Tolerance: per tensor, max|webgpu - ref| <= TOL max|ref|, as for wasm (test/backend/wasm-model.test.ts):
   * float32 rounding chained through two layers forward and backward.
   */
  // with dropout the residual adds stay separate ops; without, they ride in c_proj's products
  it.each([
    ['dropout, ignored targets', 0.2],
    ['no dropout: every fused product, ignored targets', 0],
  ])('loss and every gradient equal the float64 reference in training mode (%s)', async (_label, dropout) => {
    const gpu = await createModel({ ...config, dropout }, { backendInstance: await createWebGPUBackend() });
    const ref = await createModel({ ...config, dropout }, { backendInstance: new JsBackend({ precision: 'f64' }) });
    const TOL = 1e-5;
    const rng = new Rng(SEED);
    const B = 3;
    const T = 13;
    const inputs = ints(rng, B * T, 0, 37);
    const targets = ints(rng, B * T, 0, 37);
    targets[2] = -1;
    targets[20] = -1;
    targets[B * T - 1] = -1;
    const results = [];
    for (const model of [gpu, ref]) {
      await model.zeroGrad();
      model.setRngState({ dropoutStep: 3 });
      const { loss } = await model.forward(inputs, targets, B, { training: true });
      await model.backward();
      results.push({ loss: loss!, grads: await model.getGradients() });
    }
    const [g, r] = results;
    expect(Math.abs(g.loss - r.loss), `loss ${g.loss} vs ${r.loss} (seed ${SEED})`).toBeLessThan(TOL * Math.abs(r.loss));
    const names = Object.keys(r.grads);
    expect(names.length).toBe(4 + 12 * 2);
    for (const name of names) {
      expect(maxRelErr(g.grads[name], r.grads[name]), `${name} (seed ${SEED})`).toBeLessThan(TOL);
    }
    gpu.dispose();
    ref.dispose();
  });

  /**
   * Decoding runs other fused products than training (LayerNorm folded into the products, the
   * residual stream updated in place): a prompt pass of 5 rows (few-rows products) and 9 (tiled), then
   * single tokens, against the float64 reference's logits and greedy ids.
   */
  it('cached decoding equals the float64 reference: logits and greedy ids', async () => {
    const gpu = await createModel(config, { backendInstance: await createWebGPUBackend() });
    const ref = await createModel(config, { backendInstance: new JsBackend({ precision: 'f64' }) });
    await ref.setParameters(await gpu.getParameters());
    for (const promptLength of [5, 9]) {
      const prompt = Int32Array.from({ length: promptLength }, (_, i) => (i * 5 + 3) % 37);
      const caches = [gpu.createKVCache(1), ref.createKVCache(1)];
      let logits = await Promise.all([
        gpu.forwardCached(caches[0], prompt, promptLength),
        ref.forwardCached(caches[1], prompt, promptLength),
      ]);
      for (let step = 0; step < 4; step++) {
        expect(maxRelErr(logits[0], logits[1]), `prompt ${promptLength}, step ${step}`).toBeLessThan(1e-5);
        const next = Int32Array.of(logits[1].indexOf(Math.max(...logits[1])));
        expect(logits[0].indexOf(Math.max(...logits[0]))).toBe(next[0]);
        logits = await Promise.all([gpu.forwardCached(caches[0], next, 1), ref.forwardCached(caches[1], next, 1)]);
      }
      caches[0].dispose();
      caches[1].dispose();
    }
    gpu.dispose();
    ref.dispose();
  });

  /**
   * The same Trainer (AdamW, clipping, dropout, seeded data order) on WebGPU and on wasm from the
   * same initial parameters: each step's loss and gradient norm agree to float32 rounding, which
   * ten steps of learning rate 1e-2 amplify only slightly (measured on SwiftShader: <= 6e-8 relative
   * for losses, <= 3e-7 for gradient norms; the bound is 1e-5), and so do the parameters (<= 2e-5
   * relative per tensor; the bound is 1e-4).
   */
  it('ten training steps track the wasm backend', async () => {
    const gpu = await createModel(config, { backendInstance: await createWebGPUBackend() });
    const wasm = await createModel(config, { backendInstance: await createWasmBackend({ url: WASM_URL }) });
    const data = corpus(2000, 5);
    const options = { data, batchSize: 4, seqLen: 16, steps: 10, learningRate: 1e-2, warmupSteps: 2 };
    const runs: StepMetrics[][] = [];
    for (const model of [gpu, wasm]) {
      const trainer = await Trainer.create(model, options);
      const steps: StepMetrics[] = [];
      for (let i = 0; i < 10; i++) steps.push(await trainer.step());
      trainer.dispose();
      runs.push(steps);
    }
    const [g, w] = runs;
    for (let i = 0; i < 10; i++) {
      expect(Math.abs(g[i].trainLoss - w[i].trainLoss), `step ${i + 1} loss ${g[i].trainLoss} vs wasm ${w[i].trainLoss}`).toBeLessThan(
        1e-5 * w[i].trainLoss,
      );
      expect(Math.abs(g[i].gradNorm - w[i].gradNorm), `step ${i + 1} grad norm ${g[i].gradNorm} vs wasm ${w[i].gradNorm}`).toBeLessThan(
        1e-5 * w[i].gradNorm,
      );
    }
    // the steps learned something, so the comparison covered real updates
    expect(g[9].trainLoss).toBeLessThan(g[0].trainLoss - 0.3);
    const [gp, wp] = [await gpu.getParameters(), await wasm.getParameters()];
    const C = config.dModel;
    for (const name of Object.keys(wp)) {
      if (name.endsWith('attn.c_attn.bias')) {
        // the key bias adds q.b_k to every score of a row, which softmax ignores: its true gradient
        // is zero, so AdamW (which divides by the gradient's scale) steps along rounding noise there
        expect(maxRelErr(gp[name].subarray(0, C), wp[name].subarray(0, C)), `${name}, query part`).toBeLessThan(1e-4);
        expect(maxRelErr(gp[name].subarray(2 * C), wp[name].subarray(2 * C)), `${name}, value part`).toBeLessThan(1e-4);
      } else {
        expect(maxRelErr(gp[name], wp[name]), `${name} after 10 steps`).toBeLessThan(1e-4);
      }
    }
    gpu.dispose();
    wasm.dispose();
  });

  it('a device lost mid-training rejects with the documented error, and the last checkpoint still loads', async () => {
    const backend = await createWebGPUBackend();
    const model = await createModel(config, { backendInstance: backend });
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-webgpu-lost-'));
    scratchDirs.push(dir);
    const checkpointPath = join(dir, 'run.ckpt');
    const data = corpus(2000, 6);
    const common = { data, batchSize: 4, seqLen: 16, steps: 10, learningRate: 1e-2 };
    const saved: number[] = [];
    const run = train(model, {
      ...common,
      checkpointPath,
      checkpointInterval: 2,
      onCheckpoint: (_bytes, step) => void saved.push(step),
      // after step 5 (checkpoints at 2 and 4), as if the driver reset the GPU
      onStep: (metrics) => {
        if (metrics.step === 5) backend.device.destroy();
      },
    });
    await expect(run).rejects.toThrow(/WebGPU device lost/);
    expect(saved).toEqual([2, 4]);
    expect(model.backendName).toBe('webgpu');
    await expect(model.forward(new Int32Array(16), null, 1, { returnLogits: true })).rejects.toThrow(/WebGPU device lost/);
    // generation does not move by itself: its error says how to go on
    await expect(generate(model, [1, 2, 3], { maxNewTokens: 2 })).rejects.toThrow(
      /WebGPU device lost.*loadModel\(file, \{ backend: 'wasm' \}\).*onDeviceLost: 'wasm'/,
    );
    model.dispose();

    // the host rebuilds from the checkpoint, here on the js reference, and goes on training
    const rebuilt = await createModel(config, { backendInstance: new JsBackend() });
    const resumed = await Trainer.create(rebuilt, { ...common, resumeFrom: checkpointPath });
    expect(resumed.stepsDone).toBe(4);
    const next = await resumed.step();
    expect(next.step).toBe(5);
    expect(Number.isFinite(next.trainLoss)).toBe(true);
    resumed.dispose();
    rebuilt.dispose();
  });
});
