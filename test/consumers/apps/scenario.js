// What every consumer's app does with the installed package, in a page, a module Web Worker or
// Node: create a model on wasm, train 3 steps, generate, save, load the bytes back and generate
// again; then quantize it to Q8_0, save and load that file (loadModel fetches the quantized file's
// code as a chunk of its own, which each bundler must emit and find) and generate from it (dModel
// is 32 because Q8_0's blocks run along dModel and dFF in 32s). The test copies this file into each
// fresh project as the app's own code; it imports 'tinygpt' by its package name only, as an app
// would, and names no file of the package.
import { CharTokenizer, createModel, generate, loadModel, quantizeModel, saveModel, train } from 'tinygpt';

export const TEXT = 'hello world. hello tinygpt. the model trains in the page. '.repeat(8);
/** the model (with the tokenizer's vocabSize), the training and the sampling every run does */
export const MODEL = { maxSeqLen: 16, dModel: 32, nLayers: 1, nHeads: 2, seed: 7 };
export const TRAINING = { batchSize: 2, steps: 3, learningRate: 1e-2, seed: 3 };
export const SAMPLING = { maxNewTokens: 12, doSample: true, seed: 5 };

/** options: `wasmThreads` (default 1) and `wasmAssets` (only where a toolchain cannot emit the files) */
export async function run(options = {}) {
  const backendOptions = {
    backend: 'wasm',
    wasmThreads: options.wasmThreads ?? 1,
    ...(options.wasmAssets ? { wasmAssets: options.wasmAssets } : {}),
  };
  const tokenizer = CharTokenizer.train(TEXT);
  const model = await createModel({ vocabSize: tokenizer.vocabSize, ...MODEL }, backendOptions);
  const threads = model.backend.threads;
  const result = await train(model, { data: Int32Array.from(tokenizer.encode(TEXT)), ...TRAINING });
  const first = await generate(model, 'hello', { tokenizer, ...SAMPLING });
  const bytes = await saveModel(model, { tokenizer });
  const quantized = await quantizeModel(model, { format: 'q8_0', ...backendOptions });
  const quantizedBytes = await saveModel(quantized, { tokenizer });
  quantized.dispose();
  model.dispose();
  const loaded = await loadModel(bytes, backendOptions);
  const again = await generate(loaded.model, 'hello', { tokenizer: loaded.tokenizer, ...SAMPLING });
  loaded.model.dispose();
  const loadedQuantized = await loadModel(quantizedBytes, backendOptions);
  const fromQuantized = await generate(loadedQuantized.model, 'hello', { tokenizer: loadedQuantized.tokenizer, ...SAMPLING });
  loadedQuantized.model.dispose();
  return {
    backend: model.backendName,
    threads,
    vocabSize: tokenizer.vocabSize,
    losses: result.history.map((entry) => entry.trainLoss),
    ids: first.ids,
    text: first.text,
    reloadedIds: again.ids,
    savedBytes: bytes.length,
    quantizedFormat: loadedQuantized.model.format,
    quantizedBytes: quantizedBytes.length,
    quantizedIds: fromQuantized.ids,
  };
}
