// Node, CommonJS: require('tinygpt') and require('tinygpt/node'), the same steps as scenario.js.
// With --plain-kernels the wasm backend is given the plain-SIMD kernels through wasmAssets (where
// the runtime has relaxed SIMD it would take the relaxed build). Prints one JSON line.
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');
const { CharTokenizer, GPT, createModel, generate, loadModel, quantizeModel, saveModel, train } = require('tinygpt');
const { loadModelFile, saveModelFile } = require('tinygpt/node');

const TEXT = 'hello world. hello tinygpt. the model trains in the page. '.repeat(8);

async function main() {
  const backendOptions = { backend: 'wasm', wasmThreads: 1 };
  if (process.argv.includes('--plain-kernels'))
    backendOptions.wasmAssets = { kernels: join(dirname(require.resolve('tinygpt')), 'tinygpt.wasm') };
  const tokenizer = CharTokenizer.train(TEXT);
  const model = await createModel(
    { vocabSize: tokenizer.vocabSize, maxSeqLen: 16, dModel: 32, nLayers: 1, nHeads: 2, seed: 7 },
    backendOptions,
  );
  const result = await train(model, { data: Int32Array.from(tokenizer.encode(TEXT)), batchSize: 2, steps: 3, learningRate: 1e-2, seed: 3 });
  const first = await generate(model, 'hello', { tokenizer, maxNewTokens: 12, doSample: true, seed: 5 });
  const bytes = await saveModel(model, { tokenizer });
  const loaded = await loadModel(bytes, backendOptions);
  const again = await generate(loaded.model, 'hello', { tokenizer: loaded.tokenizer, maxNewTokens: 12, doSample: true, seed: 5 });
  const quantized = await quantizeModel(model, { format: 'q8_0', ...backendOptions });
  const quantizedBytes = await saveModel(quantized, { tokenizer });
  const loadedQuantized = await loadModel(quantizedBytes, backendOptions);
  const fromQuantized = await generate(loadedQuantized.model, 'hello', {
    tokenizer: loadedQuantized.tokenizer,
    maxNewTokens: 12,
    doSample: true,
    seed: 5,
  });
  const dir = mkdtempSync(join(tmpdir(), 'tinygpt-cjs-'));
  await saveModelFile(join(dir, 'm.safetensors'), model, { tokenizer });
  const fromFile = await loadModelFile(join(dir, 'm.safetensors'), backendOptions);
  const sameInstance = fromFile.model instanceof GPT;
  for (const m of [model, loaded.model, fromFile.model, quantized, loadedQuantized.model]) m.dispose();
  rmSync(dir, { recursive: true });
  return {
    backend: model.backendName,
    threads: 1,
    vocabSize: tokenizer.vocabSize,
    losses: result.history.map((entry) => entry.trainLoss),
    ids: first.ids,
    text: first.text,
    reloadedIds: again.ids,
    savedBytes: bytes.length,
    quantizedFormat: loadedQuantized.model.format,
    quantizedBytes: quantizedBytes.length,
    quantizedIds: fromQuantized.ids,
    sameInstance,
  };
}

main().then(
  (result) => console.log(JSON.stringify(result)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
