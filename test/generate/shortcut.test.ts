/**
 * The model's own surface: `model.generate(prompt, options)` is `generate(model, prompt, options)`
 * with the same overloads and defaults (greedy unless doSample: true, one warning when sampling
 * options come without it); the backend is chosen in createModel's / loadModel's options (the
 * config's old `backend` still works, with one deprecation warning); `dispose` and `using` release it.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createModel, generate, loadModel, saveModel } from '../../src/index.js';

const config = { vocabSize: 24, maxSeqLen: 12, dModel: 16, nLayers: 1, nHeads: 2, seed: 8 };
const model = await createModel(config, { backend: 'js' });
afterAll(() => model.dispose());
const prompt = [1, 2, 3];

describe('model.generate', () => {
  it('is greedy by default, as the free function, and types .ids without a cast', async () => {
    const viaMethod = await model.generate(prompt, { maxNewTokens: 15 });
    const viaFunction = await generate(model, prompt, { maxNewTokens: 15 });
    expect(viaMethod.ids).toHaveLength(15);
    expect(viaMethod.ids).toEqual(viaFunction.ids);
  });

  it('samples with doSample: true exactly as the free function, and differs from greedy', async () => {
    const options = { maxNewTokens: 15, temperature: 1.7, topK: 10, seed: 4, doSample: true };
    const viaMethod = await model.generate(prompt, options);
    expect(viaMethod.ids).toEqual((await generate(model, prompt, options)).ids);
    expect(viaMethod.ids).not.toEqual((await generate(model, prompt, { maxNewTokens: 15 })).ids);
  });

  it('stays greedy when sampling options come without doSample, and says so once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const greedy = await generate(model, prompt, { maxNewTokens: 15 });
      expect((await model.generate(prompt, { maxNewTokens: 15, temperature: 1.7, topK: 10 })).ids).toEqual(greedy.ids);
      expect((await generate(model, prompt, { maxNewTokens: 15, topP: 0.5 })).ids).toEqual(greedy.ids);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/temperature, topK given without doSample: true, so decoding is greedy/);
    } finally {
      warn.mockRestore();
    }
  });

  it('is on models from loadModel too', async () => {
    const { model: loaded } = await loadModel(await saveModel(model), { backend: 'js' });
    try {
      expect(loaded.backendName).toBe('js');
      expect((await loaded.generate(prompt, { maxNewTokens: 6 })).ids).toEqual((await model.generate(prompt, { maxNewTokens: 6 })).ids);
    } finally {
      loaded.dispose();
    }
  });
});

describe('backend choice and release', () => {
  it('takes the backend from the options, and refuses one it does not know', async () => {
    const onJs = await createModel(config, { backend: 'js' });
    expect(onJs.backendName).toBe('js');
    onJs.dispose();
    await expect(createModel(config, { backend: 'tpu' as never })).rejects.toThrow(
      /createModel: options\.backend must be one of 'auto', 'js', 'wasm', 'webgpu', got "tpu"/,
    );
  });

  it('still honours config.backend, with one deprecation warning', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const first = await createModel({ ...config, backend: 'js' });
      const second = await createModel({ ...config, backend: 'js' });
      expect([first.backendName, second.backendName]).toEqual(['js', 'js']);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/config\.backend is deprecated .* createModel\(config, \{ backend: 'js' \}\)/);
      first.dispose();
      second.dispose();
    } finally {
      warn.mockRestore();
    }
  });

  it('`using` disposes the model (and its backend) at the end of the block', async () => {
    let escaped;
    {
      using scoped = await createModel(config, { backend: 'js' });
      escaped = scoped;
      expect(scoped.backend.bytesInUse()).toBeGreaterThan(0);
    }
    expect(escaped.backend.bytesInUse()).toBe(0);
    await expect(escaped.forward(Int32Array.of(1, 2), null, 1)).rejects.toThrow('this model was disposed');
  });
});
