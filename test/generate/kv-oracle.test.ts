/**
 * KV-cached decoding on a real random model against full recomputation: at every step the oracle
 * runs model.forward over the whole window and takes the last position's logits. The oracle applies
 * the documented sliding rule on its own: the window grows until it would pass maxSeqLen, then
 * restarts from the last windowKeep tokens (maxSeqLen 16 keeps 16 - round(16 / 4) = 12).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { generate } from '../../src/generate/generate.js';
import type { GenerateSequences } from '../../src/generate/options.js';
import { ContextWindow, windowKeep } from '../../src/generate/window.js';
import { createModel } from '../../src/model/create.js';
import type { GPTModel } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const MAX_T = 16;
const KEEP = 12;
const V = 40;

// WebGPU runs where Dawn finds an adapter (SwiftShader on CPU-only machines: slow but exact enough)
const probe = await createNodeWebGPU();
probe.backend?.dispose();
const webgpuSkip = probe.skipReason;

type BackendUnderTest = 'js' | 'wasm' | 'webgpu';

/** the same random model on any backend (`instance`: a backend made by the caller, such as the float64 js one) */
async function randomModel(backend: BackendUnderTest, instance?: Backend): Promise<GPTModel> {
  const config = { vocabSize: V, maxSeqLen: MAX_T, dModel: 32, nLayers: 2, nHeads: 4, seed: 5 };
  let model: GPTModel;
  if (instance) {
    model = await createModel(config, { backendInstance: instance });
  } else if (backend === 'webgpu') {
    const gpu = await createNodeWebGPU();
    if (!gpu.backend) throw new Error(`webgpu: ${gpu.skipReason}`);
    model = await createModel(config, { backendInstance: gpu.backend });
  } else {
    model = await createModel({ ...config, backend });
  }
  // spread the token embeddings (the tied head) so logits are far from ties: argmax is then stable
  // under float32 differences between the two paths
  const params = await model.getParameters();
  const rng = new Rng(99);
  params['wte.weight'] = Float32Array.from(params['wte.weight'], () => 0.5 * rng.normal());
  params['wpe.weight'] = Float32Array.from(params['wpe.weight'], () => 0.3 * rng.normal());
  await model.setParameters(params);
  expect(model.backendName).toBe(backend);
  return model;
}

/** last-position logits of a full forward over `window` [1, T] */
async function fullLogits(model: GPTModel, window: number[]): Promise<Float32Array> {
  const { logits } = await model.forward(Int32Array.from(window), null, 1, { returnLogits: true });
  return logits!.slice((window.length - 1) * V, window.length * V);
}

/** the window start before feeding a history of `length` tokens, given the previous start */
function slide(start: number, length: number): number {
  return length - start > MAX_T ? length - KEEP : start;
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

function logSoftmaxAt(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[id] - max - Math.log(sum);
}

/** the work per backend: WebGPU through SwiftShader costs a lot per dispatch, so it does less (still sliding) */
interface Workload {
  prompts: number[];
  newTokens: number;
  minSlides: number;
  beamPrompt: number[];
  beamSteps: number;
  /** new tokens of the generations that stay below maxSeqLen (a 3-token prompt) */
  shortNew: number;
}
const full: Workload = {
  prompts: [5, 20],
  newTokens: 40,
  minSlides: 3,
  beamPrompt: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3],
  beamSteps: 12,
  shortNew: 6,
};
const light: Workload = {
  prompts: [20],
  newTokens: 12,
  minSlides: 2,
  beamPrompt: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7],
  beamSteps: 5,
  shortNew: 3,
};
const backends: { backend: BackendUnderTest; skip: string | null; work: Workload }[] = [
  { backend: 'js', skip: null, work: full },
  { backend: 'wasm', skip: null, work: full },
  { backend: 'webgpu', skip: webgpuSkip, work: light },
];
const models: GPTModel[] = [];
afterAll(() => models.forEach((m) => m.dispose()));

describe.each(backends)('KV cache vs full recomputation ($backend backend)', ({ backend, skip, work }) => {
  if (skip) {
    it.skip(`skipped: ${skip}`, () => {});
    return;
  }

  it('documents the slide for maxSeqLen 16', () => {
    expect(windowKeep(MAX_T)).toBe(KEEP);
  });

  for (const promptLength of work.prompts) {
    it(`greedy matches token for token with logits within 1e-4, past maxSeqLen (prompt ${promptLength})`, async () => {
      const model = await randomModel(backend);
      models.push(model);
      const promptRng = new Rng(promptLength);
      const prompt = Array.from({ length: promptLength }, () => promptRng.nextInt(V));
      const newTokens = work.newTokens;

      // cached: drive the window by hand to see its logits
      const window = new ContextWindow(model, 1);
      const history = [...prompt];
      const cachedIds: number[] = [];
      const cachedLogits: Float32Array[] = [];
      let logits = await window.prefill([history]);
      for (let step = 0; step < newTokens; step++) {
        cachedLogits.push(logits.slice());
        const id = argmax(logits);
        cachedIds.push(id);
        history.push(id);
        if (step < newTokens - 1) logits = await window.step([id], [history]);
      }
      window.dispose();

      // oracle: full forward over the window at every step
      const tokens = [...prompt];
      let start = prompt.length > MAX_T ? prompt.length - KEEP : 0;
      let maxDiff = 0;
      let slides = 0;
      for (let step = 0; step < newTokens; step++) {
        const next = slide(start, tokens.length);
        if (next !== start) slides++;
        start = next;
        const oracle = await fullLogits(model, tokens.slice(start));
        for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(oracle[v] - cachedLogits[step][v]));
        const id = argmax(oracle);
        expect(id, `step ${step}`).toBe(cachedIds[step]);
        tokens.push(id);
      }
      expect(maxDiff).toBeLessThan(1e-4);
      expect(slides).toBeGreaterThanOrEqual(work.minSlides);

      // and generate itself gives the same tokens
      const r = await generate(model, prompt, { maxNewTokens: newTokens });
      expect(r.ids).toEqual(cachedIds);
    });
  }

  it('beam search scores equal full-recomputation scores of the returned sequences (real reorderKVCache, past maxSeqLen)', async () => {
    const model = await randomModel(backend);
    models.push(model);
    const prompt = work.beamPrompt;
    const steps = work.beamSteps;
    const { sequences } = (await generate(model, prompt, {
      maxNewTokens: steps,
      numBeams: 4,
      numReturnSequences: 4,
      returnLogprobs: true,
    })) as GenerateSequences;
    expect(sequences).toHaveLength(4);
    for (const s of sequences) {
      expect(s.ids).toHaveLength(steps);
      const tokens = [...prompt];
      let start = 0;
      let total = 0;
      for (let i = 0; i < steps; i++) {
        start = slide(start, tokens.length);
        const lp = logSoftmaxAt(await fullLogits(model, tokens.slice(start)), s.ids[i]);
        expect(Math.abs(lp - s.logprobs![i]), `token ${i}`).toBeLessThan(1e-4);
        total += lp;
        tokens.push(s.ids[i]);
      }
      expect(s.score!).toBeCloseTo(total / steps, 4);
    }
    for (let i = 1; i < sequences.length; i++) expect(sequences[i - 1].score!).toBeGreaterThanOrEqual(sequences[i].score!);
  });

  it('a generation shorter than maxSeqLen caches only its prompt and new tokens, and gives what a maxSeqLen cache gives (greedy, two sampled rows, beam search)', async () => {
    const model = await randomModel(backend);
    models.push(model);
    const prompt = [3, 1, 4];
    const maxNewTokens = work.shortNew;
    const requested: number[] = [];
    const sized = model.createKVCache.bind(model);
    const generations = async (cacheSize: 'as requested' | 'maxSeqLen') => {
      model.createKVCache = (batchSize: number, capacity?: number) => {
        requested.push(capacity!);
        return sized(batchSize, cacheSize === 'maxSeqLen' ? MAX_T : capacity);
      };
      return [
        await generate(model, prompt, { maxNewTokens, returnLogprobs: true }),
        await generate(model, prompt, { maxNewTokens, doSample: true, seed: 3, numReturnSequences: 2, returnLogprobs: true }),
        await generate(model, prompt, { maxNewTokens, numBeams: 3, numReturnSequences: 3, returnLogprobs: true }),
      ];
    };
    const small = await generations('as requested');
    expect(requested).toEqual([3 + maxNewTokens, 3 + maxNewTokens, 3 + maxNewTokens]);
    expect(await generations('maxSeqLen')).toEqual(small);
  });

  it('a window fed past the positions it was sized for grows to maxSeqLen and decodes as full recomputation does', async () => {
    const model = await randomModel(backend);
    models.push(model);
    const history = [2, 7];
    const window = new ContextWindow(model, 1, 3);
    let logits = await window.prefill([history]);
    for (let step = 0; step < work.shortNew; step++) {
      const oracle = await fullLogits(model, history);
      let maxDiff = 0;
      for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(oracle[v] - logits[v]));
      expect(maxDiff, `after ${history.length} tokens`).toBeLessThan(1e-4);
      history.push(argmax(logits));
      logits = await window.step([history[history.length - 1]], [history]);
    }
    expect(window.length).toBe(history.length);
    window.dispose();
  });
});

describe.skipIf(webgpuSkip !== null)('KV-cached decoding on WebGPU against the float64 js reference', () => {
  it('two rows decoded greedily to maxSeqLen give the reference ids, logits within 1e-4 (attention appending the cache, ln_f in the head)', async () => {
    const reference = await randomModel('js', new JsBackend({ precision: 'f64' }));
    const gpu = await randomModel('webgpu');
    models.push(reference, gpu);
    const B = 2;
    const promptLength = 6;
    const rng = new Rng(17);
    let ids = Int32Array.from({ length: B * promptLength }, () => rng.nextInt(V));
    let Tn = promptLength;
    const caches = [reference.createKVCache(B), gpu.createKVCache(B)];
    const decoded: number[][] = [[], []];
    let maxDiff = 0;
    try {
      // a 6-token prompt, then one token per row per step until the cache is full
      while (caches[0].length + Tn <= MAX_T) {
        const expected = await reference.forwardCached(caches[0], ids, Tn);
        const got = await gpu.forwardCached(caches[1], ids, Tn);
        const next = new Int32Array(B);
        for (let r = 0; r < B; r++) {
          const row = (logits: Float32Array) => logits.subarray(r * V, (r + 1) * V);
          for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(row(expected)[v] - row(got)[v]));
          next[r] = argmax(row(expected));
          expect(argmax(row(got)), `row ${r}, position ${caches[0].length}`).toBe(next[r]);
          decoded[r].push(next[r]);
        }
        ids = next;
        Tn = 1;
      }
    } finally {
      caches.forEach((c) => c.dispose());
    }
    expect(decoded[0]).toHaveLength(MAX_T - promptLength + 1);
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
