/**
 * The `model.generate(prompt, options)` shortcut wired in src/index.ts: greedy unless a sampling
 * option (temperature, topK, topP, minP) is given, in which case it samples; doSample overrides.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, generate, type GenerateResult } from '../../src/index.js';

const model = await createModel({ vocabSize: 24, maxSeqLen: 12, dModel: 16, nLayers: 1, nHeads: 2, seed: 8, backend: 'js' });
afterAll(() => model.dispose());
const prompt = [1, 2, 3];

describe('model.generate shortcut', () => {
  it('is greedy by default', async () => {
    const viaShortcut = (await model.generate(prompt, { maxNewTokens: 15 })) as GenerateResult;
    expect(viaShortcut.ids).toEqual((await generate(model, prompt, { maxNewTokens: 15 })).ids);
  });

  it('samples when temperature / topK is given, seeded', async () => {
    const options = { maxNewTokens: 15, temperature: 1.7, topK: 10, seed: 4 };
    const viaShortcut = (await model.generate(prompt, options)) as GenerateResult;
    const sampled = await generate(model, prompt, { ...options, doSample: true });
    const greedy = await generate(model, prompt, options);
    expect(viaShortcut.ids).toEqual(sampled.ids);
    expect(sampled.ids).not.toEqual(greedy.ids);
  });

  it('doSample: false keeps it greedy even with sampling options', async () => {
    const viaShortcut = (await model.generate(prompt, { maxNewTokens: 15, temperature: 1.7, doSample: false })) as GenerateResult;
    expect(viaShortcut.ids).toEqual((await generate(model, prompt, { maxNewTokens: 15 })).ids);
  });
});
