/**
 * A whole GPT whose tensors are larger than one storage binding, and than one buffer. The WebGPU
 * backend with bindings capped at 4 KiB (1,024 floats) must cut every op that touches wte [V,C]
 * (2,328 floats), the flat parameters, gradients and AdamW moments (about 11,600 floats each), and
 * the logits [BT,V] (3,783 to 7,566) into pieces, as it does for GPT-2's 154 MB wte under the
 * 128 MiB default binding. With buffers capped at 16 KiB as well, those tensors are stored in
 * several buffers, cut between parameters and between rows, as GPT-2's 497 MB of parameters are
 * under the 256 MiB default buffer. Checked against the float64 reference (gradients) and against
 * the same backend uncapped (training, generation).
 */
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWebGPUBackend, type WebGPUBackendOptions } from '../../src/backend/webgpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { Trainer, type StepMetrics } from '../../src/train/trainer.js';
import { Rng, ints, maxRelErr } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const config: GPTConfigInput = { vocabSize: 97, maxSeqLen: 13, dModel: 24, nLayers: 2, nHeads: 3, dFF: 40, dropout: 0.1, seed: 77 };
const CAPS: Record<string, WebGPUBackendOptions> = {
  'bindings of 4 KiB': { maxBindingBytes: 4096 },
  'buffers of 16 KiB and bindings of 4 KiB': { maxBufferBytes: 16384, maxBindingBytes: 4096 },
};

const probe = await createNodeWebGPU();
probe.backend?.dispose();
const suite =
  probe.backend === null
    ? `a GPT past one binding (skipped: ${probe.skipReason})`
    : 'a GPT whose tensors exceed one WebGPU binding or buffer';

describe.skipIf(probe.backend === null)(suite, () => {
  for (const [label, caps] of Object.entries(CAPS)) {
    it(`${label}: loss and every gradient equal the float64 reference`, async () => {
      const capped = await createWebGPUBackend(caps);
      const gpu = await createModel(config, { backendInstance: capped });
      const ref = await createModel(config, { backendInstance: new JsBackend({ precision: 'f64' }) });
      const rng = new Rng(3);
      // 6 x 13 rows of logits: 7,566 floats, two buffers of 16 KiB
      const B = 6;
      const T = 13;
      const inputs = ints(rng, B * T, 0, 97);
      const targets = ints(rng, B * T, 0, 97);
      targets[5] = -1;
      const results = [];
      for (const model of [gpu, ref]) {
        await model.zeroGrad();
        model.setRngState({ dropoutStep: 1 });
        const { loss } = await model.forward(inputs, targets, B, { training: true });
        await model.backward();
        results.push({ loss: loss!, grads: await model.getGradients() });
      }
      const [g, r] = results;
      expect(Math.abs(g.loss - r.loss)).toBeLessThan(1e-5 * r.loss);
      for (const name of Object.keys(r.grads)) expect(maxRelErr(g.grads[name], r.grads[name]), name).toBeLessThan(1e-5);
      gpu.dispose();
      ref.dispose();
    });
  }

  it('three training steps and greedy generation match the uncapped backend under both caps', async () => {
    const backends = [await createWebGPUBackend(), ...(await Promise.all(Object.values(CAPS).map((caps) => createWebGPUBackend(caps))))];
    const rng = new Rng(9);
    const data = ints(rng, 3000, 0, 97);
    const runs: { steps: StepMetrics[]; tokens: number[]; dispatches: number }[] = [];
    for (const backend of backends) {
      const model = await createModel(config, { backendInstance: backend });
      const trainer = await Trainer.create(model, {
        data,
        batchSize: 3,
        seqLen: 13,
        steps: 3,
        learningRate: 1e-2,
        warmupSteps: 1,
        maxGradNorm: 1,
      });
      const before = backend.dispatches;
      const steps: StepMetrics[] = [];
      for (let i = 0; i < 3; i++) steps.push(await trainer.step());
      const dispatches = backend.dispatches - before;
      trainer.dispose();
      const result = await generate(model, [1, 2, 3], { maxNewTokens: 8, temperature: 0 });
      runs.push({ steps, tokens: 'ids' in result ? result.ids : [], dispatches });
      model.dispose();
    }
    const [whole, ...cappedRuns] = runs;
    expect(whole.tokens.length).toBe(8);
    for (const capped of cappedRuns) {
      expect(capped.dispatches).toBeGreaterThan(whole.dispatches);
      for (let i = 0; i < 3; i++) {
        expect(Math.abs(capped.steps[i].trainLoss - whole.steps[i].trainLoss), `step ${i + 1}`).toBeLessThan(
          1e-5 * whole.steps[i].trainLoss,
        );
        expect(Math.abs(capped.steps[i].gradNorm - whole.steps[i].gradNorm), `step ${i + 1}`).toBeLessThan(1e-5 * whole.steps[i].gradNorm);
      }
      expect(capped.tokens).toEqual(whole.tokens);
    }
  });
});
