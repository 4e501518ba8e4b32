import { describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createModel } from '../../src/model/create.js';
import { GPT } from '../../src/model/gpt.js';
import { validateConfig } from '../../src/model/config.js';
import type { GPTConfigInput, KVCache } from '../../src/model/types.js';
import { ints, normal64, Rng } from '../helpers/random.js';

const tiny: GPTConfigInput = { vocabSize: 11, maxSeqLen: 5, dModel: 8, nLayers: 2, nHeads: 2, dFF: 12, seed: 7 };

async function f64Model(config: GPTConfigInput): Promise<{ model: GPT; backend: JsBackend }> {
  const backend = new JsBackend({ precision: 'f64' });
  const model = await createModel(config, { backendInstance: backend });
  return { model, backend };
}

/**
 * Replace the tiny init (std 0.02, which makes deep gradients vanish into rounding) with values of
 * order one, so finite differences compare gradients of a useful size.
 */
function randomizeParams(model: GPT, backend: JsBackend, rng: Rng): Float64Array {
  const flat = new Float64Array(model.params.length);
  for (const e of model.paramLayout) flat.set(normal64(rng, e.length, 0.4), e.offset);
  backend.write(model.params, flat);
  return flat;
}

describe('config validation', () => {
  const cases: [Partial<GPTConfigInput>, RegExp][] = [
    [{ dModel: 10, nHeads: 3 }, /dModel \(10\) must be divisible by config\.nHeads \(3\)/],
    [{ vocabSize: 0 }, /config\.vocabSize must be an integer in \[1, \d+\], got 0/],
    [{ maxSeqLen: 2.5 }, /config\.maxSeqLen must be an integer/],
    [{ nLayers: -1 }, /config\.nLayers/],
    [{ dFF: 0 }, /config\.dFF/],
    [{ dropout: 1 }, /config\.dropout must be a number in \[0, 1\), got 1/],
    [{ dropout: -0.1 }, /config\.dropout/],
    [{ backend: 'cuda' as never }, /config\.backend must be one of 'auto', 'js', 'wasm', 'webgpu', got "cuda"/],
    [{ seed: -3 }, /config\.seed/],
  ];
  for (const [override, message] of cases) {
    it(`rejects ${JSON.stringify(override)}`, () => {
      expect(() => validateConfig({ ...tiny, ...override })).toThrow(message);
    });
  }
  it('fills defaults', () => {
    const c = validateConfig({ vocabSize: 5, maxSeqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 });
    expect(c).toEqual({ vocabSize: 5, maxSeqLen: 4, dModel: 8, nLayers: 1, nHeads: 2, dFF: 32, dropout: 0, seed: 1337 });
  });
});

describe('GPT on the js reference backend', () => {
  it('counts parameters as GPT-2 does', async () => {
    const model = await createModel({ ...tiny }, { backend: 'js' });
    const { vocabSize: V, maxSeqLen: T, dModel: C, dFF: F, nLayers: L } = validateConfig(tiny);
    const perLayer = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * F + F + F * C + C;
    expect(model.numParameters()).toBe(V * C + T * C + L * perLayer + 2 * C);
    const params = await model.getParameters();
    expect(Object.keys(params)).toContain('h.1.attn.c_attn.weight');
    expect(params['h.1.attn.c_attn.weight'].length).toBe(C * 3 * C);
    expect(params['h.0.ln_1.weight'].every((x) => x === 1)).toBe(true);
  });

  it('starts near ln(V) loss', async () => {
    const model = await createModel({ ...tiny }, { backend: 'js' });
    const rng = new Rng(3);
    const inputs = ints(rng, 2 * 5, 0, 11);
    const targets = ints(rng, 2 * 5, 0, 11);
    const { loss } = await model.forward(inputs, targets, 2);
    expect(loss!).toBeGreaterThan(Math.log(11) - 0.1);
    expect(loss!).toBeLessThan(Math.log(11) + 0.1);
  });

  it('whole-model gradients equal central finite differences in float64 (ignored targets, dropout)', async () => {
    for (const dropout of [0, 0.3]) {
      const { model, backend } = await f64Model({ ...tiny, dropout });
      const rng = new Rng(11);
      const flat = randomizeParams(model, backend, rng);
      const B = 2;
      const inputs = ints(rng, B * 5, 0, 11);
      const targets = ints(rng, B * 5, 0, 11);
      targets[1] = -1;
      targets[7] = -1;
      const step = 4;
      const loss = async () => {
        model.setRngState({ dropoutStep: step }); // the same dropout mask at every evaluation
        return (await model.forward(inputs, targets, B, { training: true })).loss!;
      };
      await model.zeroGrad();
      await loss();
      await model.backward();
      const grads = backend.read(model.grads);

      const eps = 1e-3;
      const probe = new Rng(5);
      for (const e of model.paramLayout) {
        // a handful of coordinates per tensor keeps this quick while touching every tensor
        let worst = 0;
        let scale = 1e-3;
        for (let k = 0; k < 4; k++) {
          const i = e.offset + probe.nextInt(e.length);
          const saved = flat[i];
          flat[i] = saved + eps;
          backend.write(model.params, flat);
          const up = await loss();
          flat[i] = saved - eps;
          backend.write(model.params, flat);
          const down = await loss();
          flat[i] = saved;
          backend.write(model.params, flat);
          const numeric = (up - down) / (2 * eps);
          worst = Math.max(worst, Math.abs(numeric - grads[i]));
          scale = Math.max(scale, Math.abs(numeric));
        }
        // the loss comes back through a float32 download: ~2e-7 absolute, /2eps gives ~1e-4
        expect(worst, `${e.name} (dropout ${dropout})`).toBeLessThan(2e-4 + 2e-3 * scale);
      }
      model.dispose();
    }
  });

  it('the KV cache fed in chunks gives the same last-position logits as a full forward', async () => {
    const model = await createModel({ ...tiny, maxSeqLen: 9 }, { backend: 'js' });
    const rng = new Rng(21);
    const ids = ints(rng, 2 * 9, 0, 11);
    const { logits } = await model.forward(ids, null, 2, { returnLogits: true });
    const cache = model.createKVCache(2);
    const chunk = (from: number, to: number) => {
      const out = new Int32Array(2 * (to - from));
      for (let r = 0; r < 2; r++) out.set(ids.subarray(r * 9 + from, r * 9 + to), r * (to - from));
      return out;
    };
    await model.forwardCached(cache, chunk(0, 4), 4);
    await model.forwardCached(cache, chunk(4, 5), 1);
    const cached = await model.forwardCached(cache, chunk(5, 9), 4);
    expect(cache.length).toBe(9);
    for (let r = 0; r < 2; r++) {
      const full = logits!.subarray((r * 9 + 8) * 11, (r * 9 + 9) * 11);
      const got = cached.subarray(r * 11, (r + 1) * 11);
      for (let v = 0; v < 11; v++) expect(got[v]).toBeCloseTo(full[v], 5);
    }
    // reordering rows swaps what each row continues from
    model.reorderKVCache(cache, [1, 1]);
    await expect(model.forwardCached(cache, new Int32Array([3, 3]), 1)).rejects.toThrow(/exceeds config\.maxSeqLen \(9\)/);
    cache.dispose();
  });

  it('a KV cache is released by dispose, by leaving a using block, or by the deprecated freeKVCache, and refused afterwards', async () => {
    const model = await createModel(tiny, { backend: 'js' });
    const before = model.backend.bytesInUse();
    const cacheBytes = 2 * 2 * (2 * 5 * 8) * 4; // 2 layers, k and v [B = 2, maxSeqLen = 5, C = 8] each, f32
    const refused = /this cache was freed or belongs to another model/;

    const disposed = model.createKVCache(2);
    expect(model.backend.bytesInUse() - before).toBe(cacheBytes);
    disposed.dispose();
    disposed.dispose(); // a second dispose frees nothing
    expect(model.backend.bytesInUse()).toBe(before);
    await expect(model.forwardCached(disposed, new Int32Array([1, 2]), 1)).rejects.toThrow(refused);

    let scoped: KVCache | undefined;
    {
      using cache = model.createKVCache(2);
      scoped = cache;
      expect(model.backend.bytesInUse() - before).toBe(cacheBytes);
    }
    expect(model.backend.bytesInUse()).toBe(before);
    await expect(model.forwardCached(scoped, new Int32Array([1, 2]), 1)).rejects.toThrow(refused);

    const old = model.createKVCache(2);
    model.freeKVCache(old);
    expect(model.backend.bytesInUse()).toBe(before);
    await expect(model.forwardCached(old, new Int32Array([1, 2]), 1)).rejects.toThrow(refused);
  });

  it('reorderKVCache makes a row continue from another row', async () => {
    const model = await createModel({ ...tiny, maxSeqLen: 6 }, { backend: 'js' });
    const a = model.createKVCache(2);
    await model.forwardCached(a, new Int32Array([1, 2, 3, 4, 5, 6]), 3);
    model.reorderKVCache(a, [1, 0]);
    const swapped = await model.forwardCached(a, new Int32Array([7, 7]), 1);
    const b = model.createKVCache(2);
    await model.forwardCached(b, new Int32Array([4, 5, 6, 1, 2, 3]), 3);
    const direct = await model.forwardCached(b, new Int32Array([7, 7]), 1);
    expect(Array.from(swapped)).toEqual(Array.from(direct));
  });

  it('rejects bad inputs with messages naming the field', async () => {
    const model = await createModel({ ...tiny }, { backend: 'js' });
    await expect(model.forward(new Int32Array([1, 2, 11]), null, 1)).rejects.toThrow(
      /inputs\[2\] = 11 is out of range: token ids must be in \[0, 11\)/,
    );
    await expect(model.forward(new Int32Array([1, 2, 3]), new Int32Array([1, 2, -2]), 1)).rejects.toThrow(/targets\[2\] = -2/);
    await expect(model.forward(new Int32Array(6), null, 1)).rejects.toThrow(/T = 6 exceeds config\.maxSeqLen = 5/);
    await expect(model.forward(new Int32Array(5), null, 2)).rejects.toThrow(/multiple of batchSize \(2\)/);
    await expect(model.forward(new Int32Array(4), new Int32Array(3), 1)).rejects.toThrow(
      /targets\.length \(3\) must equal inputs\.length \(4\)/,
    );
    await expect(model.backward()).rejects.toThrow(/forward with targets first/);
    const params = await model.getParameters();
    delete params['ln_f.bias'];
    await expect(model.setParameters(params)).rejects.toThrow(/missing 1 parameter\(s\): ln_f\.bias/);
    params['ln_f.bias'] = new Float32Array(3);
    await expect(model.setParameters(params)).rejects.toThrow(/ln_f\.bias has 3 elements, expected 8/);
    await expect(createModel({ ...tiny, backend: 'tpu' as never })).rejects.toThrow(/config\.backend/);
  });

  it('setParameters then getParameters round-trips exactly', async () => {
    const model = await createModel({ ...tiny }, { backend: 'js' });
    const rng = new Rng(2);
    const params = await model.getParameters();
    for (const k of Object.keys(params)) params[k] = Float32Array.from(normal64(rng, params[k].length));
    await model.setParameters(params);
    const back = await model.getParameters();
    for (const k of Object.keys(params)) expect(Array.from(back[k])).toEqual(Array.from(params[k]));
  });
});
