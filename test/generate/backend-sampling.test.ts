/**
 * Generation that chooses tokens on the backend (forwardCachedTokens, sampleTokens) against the host
 * path (logits read back, then the plan's processors and the CPU sampler) on the same model: the host
 * path is forced by hiding forwardCachedTokens on the instance. On js the ids are identical for every
 * plain strategy; on WebGPU (Dawn on SwiftShader) greedy and seeded sampling give the host path's ids
 * for a tiny model. Plans that need the logits on the host keep reading them back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { generate } from '../../src/generate/generate.js';
import type { GenerateOptions, GenerateResult } from '../../src/generate/options.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput, GPTModel } from '../../src/model/types.js';
import { CharTokenizer } from '../../src/tokenizer/char.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const config: GPTConfigInput = { vocabSize: 37, maxSeqLen: 16, dModel: 20, nLayers: 2, nHeads: 4, dFF: 36, dropout: 0, seed: 77 };
const PROMPT = [3, 1, 4, 1, 5];

const PLANS: Record<string, GenerateOptions> = {
  greedy: {},
  'sampled, seed 1': { doSample: true, seed: 1 },
  'sampled, seed 2': { doSample: true, seed: 2 },
  'temperature 0.7, top-k 8, seed 3': { doSample: true, temperature: 0.7, topK: 8, seed: 3 },
  'top-p 0.9, min-p 0.05, seed 4': { doSample: true, topP: 0.9, minP: 0.05, seed: 4 },
  'temperature 0 while sampling, seed 5': { doSample: true, temperature: 0, seed: 5 },
};

async function idsOf(model: GPTModel, options: GenerateOptions): Promise<number[]> {
  return ((await generate(model, PROMPT, { maxNewTokens: 14, ...options })) as GenerateResult).ids;
}

/** generate with the host path: logits read back every step (forwardCachedTokens hidden on the instance) */
async function onHost(model: GPTModel, options: GenerateOptions): Promise<number[]> {
  const own = model as { forwardCachedTokens?: unknown };
  own.forwardCachedTokens = undefined;
  try {
    return await idsOf(model, options);
  } finally {
    delete own.forwardCachedTokens;
  }
}

/** what the backend sends back per generate call: element counts of each download */
function countDownloads(model: GPTModel): number[] {
  const counts: number[] = [];
  const backend = model.backend;
  const download = backend.download.bind(backend);
  backend.download = async (t) => {
    counts.push(t.length);
    return download(t);
  };
  return counts;
}

const model = await createModel(config, { backendInstance: new JsBackend() });
afterAll(() => model.dispose());

describe('generation chooses tokens on the js backend', () => {
  for (const [name, options] of Object.entries(PLANS)) {
    it(`${name}: the host path's ids, reading back one id per token`, async () => {
      const downloads = countDownloads(model);
      // maxSeqLen 16 with a 5-token prompt and 14 new tokens: the window slides on the backend path too
      const ids = await idsOf(model, options);
      expect(downloads.every((n) => n === 1)).toBe(true);
      expect(downloads.length).toBe(ids.length);
      expect(ids).toEqual(await onHost(model, options));
    });
  }

  it('a padded vocabulary never yields an id past the tokenizer on the backend path', async () => {
    const tokenizer = CharTokenizer.train('abcde');
    expect(tokenizer.vocabSize).toBeLessThan(config.vocabSize);
    const downloads = countDownloads(model);
    const { ids } = await generate(model, [1, 2], { tokenizer, maxNewTokens: 10, doSample: true, temperature: 3, seed: 9 });
    expect(downloads.every((n) => n === 1)).toBe(true);
    expect(ids.every((id) => id < tokenizer.vocabSize)).toBe(true);
  });

  for (const [name, options] of Object.entries({
    'repetition penalty': { repetitionPenalty: 1.3 },
    'no-repeat n-grams': { noRepeatNgramSize: 2 },
    'min new tokens': { minNewTokens: 3, eosTokenId: 0 },
    logprobs: { returnLogprobs: true },
    'several sequences': { doSample: true, numReturnSequences: 2, seed: 1 },
    'beam search': { numBeams: 2 },
  } satisfies Record<string, GenerateOptions>)) {
    it(`${name} reads the logits back`, async () => {
      const downloads = countDownloads(model);
      await generate(model, PROMPT, { maxNewTokens: 3, ...options });
      expect(downloads.length).toBeGreaterThan(0);
      expect(downloads.every((n) => n % config.vocabSize === 0)).toBe(true);
    });
  }
});

const gpu = await createNodeWebGPU();
gpu.backend?.dispose();
const suite =
  gpu.backend === null ? `generation on webgpu (skipped: ${gpu.skipReason})` : `generation on webgpu (${gpu.backend.adapterName})`;
describe.skipIf(gpu.backend === null)(suite, () => {
  it("greedy and seeded sampling give the host path's ids, one id read back per token", async () => {
    const model = await createModel(config, { backendInstance: await createWebGPUBackend() });
    try {
      // SwiftShader is slow: four of the plans, 8 new tokens
      for (const name of ['greedy', 'sampled, seed 1', 'temperature 0.7, top-k 8, seed 3', 'top-p 0.9, min-p 0.05, seed 4']) {
        const options = { ...PLANS[name], maxNewTokens: 8 };
        const downloads = countDownloads(model);
        const ids = await idsOf(model, options);
        expect(
          downloads.every((n) => n === 1),
          name,
        ).toBe(true);
        expect(ids, name).toEqual(await onHost(model, options));
      }
    } finally {
      model.dispose();
    }
  }, 300_000);
});
