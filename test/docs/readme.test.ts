/**
 * The README's TypeScript samples, line for line, so that `npm run typecheck` holds them to the API
 * (this file is in tsconfig's include). Only the imports differ: 'tinygpt' is ../../src/index.js,
 * 'tinygpt/gpt2' ../../src/gpt2.js and 'tinygpt/worker' ../../src/worker.js. Each sample is a function; the cheap ones also run here, the
 * others (a 3,000-step training run on a fetched corpus, a worker) are only type-checked. The edge
 * sample is JavaScript that imports a .wasm file: not included.
 */
import { describe, expect, it } from 'vitest';
import { BPETokenizer, CharTokenizer, createModel, generate, loadModel, saveModel, train } from '../../src/index.js';
import { gpt2Tokenizer } from '../../src/gpt2.js';
import { createModelWorker } from '../../src/worker.js';

/** "Using it" */
export async function usingIt(): Promise<void> {
  const text = await (await fetch('/corpus.txt')).text();
  const tokenizer = BPETokenizer.train(text, { vocabSize: 2048, specialTokens: ['<|endoftext|>'] });
  const ids = Int32Array.from(tokenizer.encode(text));
  const cut = Math.floor(ids.length * 0.9);

  const model = await createModel({ vocabSize: tokenizer.vocabSize, maxSeqLen: 128, dModel: 192, nLayers: 4, nHeads: 6, dropout: 0.1 });
  console.log(model.backendName); // 'webgpu' where a GPU adapter is available, else 'wasm'

  const result = await train(model, {
    data: ids.subarray(0, cut),
    valData: ids.subarray(cut),
    tokenizer,
    batchSize: 16,
    steps: 3000,
    learningRate: 2e-3,
    warmupSteps: 100, // cosine decay to minLearningRate
    gradientAccumulationSteps: 2,
    maxGradNorm: 1,
    weightDecay: 0.1,
    evalInterval: 250,
    onStep: (m) => console.log(m.step, m.trainLoss, m.learningRate, m.tokensPerSecond),
    onEval: (m) => console.log('val', m.valLoss, m.valPerplexity),
    signal: AbortSignal.timeout(10 * 60_000), // stops after the current step, returns what was done
  });

  const out = await generate(model, 'Call me Ishmael.', {
    tokenizer,
    maxNewTokens: 80,
    doSample: true,
    topP: 0.9,
    temperature: 0.8,
    seed: 1,
  });
  console.log(out.text);

  const bytes = await saveModel(model, { tokenizer }); // safetensors, identical in Node and browsers
  const { model: again, tokenizer: tok } = await loadModel(bytes);
  void [result, again, tok];
}

/** "Models": using, the backend in the options, the generate method */
export async function models(): Promise<number[]> {
  using model = await createModel({ vocabSize: 256, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 }, { backend: 'wasm' });
  const { ids } = await model.generate([72, 105], { maxNewTokens: 8 }); // greedy: no doSample
  console.log(ids.length); // 8
  return ids;
}

/** "Tokenizers": GPT-2's vocabulary */
export async function gpt2(): Promise<void> {
  const tokenizer = await gpt2Tokenizer(); // vocabSize 50257, eosTokenId 50256, GPT-2's ids
  expect([tokenizer.vocabSize, tokenizer.eosTokenId]).toEqual([50257, 50256]);
}

/** "In a worker" (`text`, `chart` and `show` are the page's) */
export async function inAWorker(text: string, chart: (m: unknown) => void, show: (text: string | undefined) => void): Promise<void> {
  const tokenizer = CharTokenizer.train(text);
  const worker = await createModelWorker(
    { vocabSize: tokenizer.vocabSize, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 },
    { tokenizer },
  );
  const stop = new AbortController();
  await worker.train({ data: Int32Array.from(tokenizer.encode(text)), steps: 2000, onStep: (m) => chart(m), signal: stop.signal });
  for await (const token of worker.generateStream('Ishmael', { maxNewTokens: 80, doSample: true, topP: 0.9, seed: 1 })) show(token.text);
  const bytes = await worker.saveModel(); // moved out of the worker, not copied
  await worker.dispose(); // ends the worker
  void bytes;
}

describe('README samples', () => {
  it('"Models" runs: eight greedy tokens, the same as the free function on a model with the same seed', async () => {
    const ids = await models();
    expect(ids).toHaveLength(8);
    using twin = await createModel({ vocabSize: 256, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 }, { backend: 'wasm' });
    expect((await generate(twin, [72, 105], { maxNewTokens: 8 })).ids).toEqual(ids);
  });

  it('"Tokenizers" runs: GPT-2 vocabulary size and end-of-text id as commented', async () => {
    await gpt2();
  });
});
