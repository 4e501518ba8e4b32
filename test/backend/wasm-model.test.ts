/**
 * A whole GPT on the wasm backend against the same GPT on the float64 reference backend: same
 * config and seed (so the same initial parameters), same batch. Loss and every parameter's gradient
 * in training mode (dropout, ignored targets), then next-token logits through the KV cache.
 *
 * Tolerance: per tensor, max|wasm - ref| <= 1e-5 max|ref|. The ops chain float32 rounding through
 * two layers forward and backward; the worst measured was ~1e-6 (layerNorm parameter gradients).
 */
import { describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { Rng, ints, maxRelErr } from '../helpers/random.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const SEED = Math.floor(Math.random() * 2 ** 31);
const TOL = 1e-5;

// odd sizes: C = 20 over 4 heads (HS 5), dFF 36, V 37, T 13
const config: GPTConfigInput = { vocabSize: 37, maxSeqLen: 16, dModel: 20, nLayers: 2, nHeads: 4, dFF: 36, dropout: 0.2, seed: 4242 };

async function both() {
  const wasm = await createModel(config, { backendInstance: await createWasmBackend({ url: WASM_URL }) });
  const ref = await createModel(config, { backendInstance: new JsBackend({ precision: 'f64' }) });
  return { wasm, ref };
}

describe('a whole GPT on wasm against the f64 reference', () => {
  it('loss and every gradient match in training mode (dropout, ignored targets)', async () => {
    const { wasm, ref } = await both();
    const rng = new Rng(SEED);
    const B = 3;
    const T = 13;
    const inputs = ints(rng, B * T, 0, 37);
    const targets = ints(rng, B * T, 0, 37);
    targets[2] = -1;
    targets[20] = -1;
    const results = [];
    for (const model of [wasm, ref]) {
      await model.zeroGrad();
      model.setRngState({ dropoutStep: 3 });
      const { loss } = await model.forward(inputs, targets, B, { training: true });
      await model.backward();
      results.push({ loss: loss!, grads: await model.getGradients() });
    }
    const [w, r] = results;
    expect(Math.abs(w.loss - r.loss), `loss ${w.loss} vs ${r.loss} (seed ${SEED})`).toBeLessThan(TOL * Math.abs(r.loss));
    const names = Object.keys(r.grads);
    // every parameter of the layout has a gradient on both backends, no more and no fewer
    expect(names).toEqual(ref.paramLayout.map((entry) => entry.name));
    expect(Object.keys(w.grads)).toEqual(names);
    for (const name of names) {
      expect(maxRelErr(w.grads[name], r.grads[name]), `${name} (seed ${SEED})`).toBeLessThan(TOL);
    }
    wasm.dispose();
    ref.dispose();
  });

  it('the KV cache gives the same next-token logits', async () => {
    const { wasm, ref } = await both();
    const rng = new Rng(SEED + 1);
    const B = 2;
    const prompt = ints(rng, B * 6, 0, 37);
    const next = ints(rng, B, 0, 37);
    const logits = [];
    for (const model of [wasm, ref]) {
      const cache = model.createKVCache(B);
      await model.forwardCached(cache, prompt, 6);
      logits.push(await model.forwardCached(cache, next, 1));
      cache.dispose();
    }
    expect(logits[0].length).toBe(B * 37);
    expect(maxRelErr(logits[0], logits[1]), `seed ${SEED}`).toBeLessThan(TOL);
    wasm.dispose();
    ref.dispose();
  });
});
