// The scenario of scenario.js with the model in a worker, through tinygpt/worker: createModelWorker,
// train 3 steps, generate, save, then loadModelWorker the bytes in a second worker and generate
// again. `startWorker` starts the app's own worker module (model.worker.js, which the app's bundler
// bundles), as the README says to do with a bundler.
import { CharTokenizer } from 'tinygpt';
import { createModelWorker, loadModelWorker } from 'tinygpt/worker';
import { MODEL, SAMPLING, TEXT, TRAINING } from './scenario.js';

export async function runInModelWorker(startWorker, { wasmThreads = 1 } = {}) {
  const tokenizer = CharTokenizer.train(TEXT);
  const quiet = { wasmThreads, onBackendNotice: () => {} };
  const worker = await createModelWorker(
    { vocabSize: tokenizer.vocabSize, ...MODEL, backend: 'wasm' },
    { ...quiet, tokenizer, worker: startWorker() },
  );
  const result = await worker.train({ data: Int32Array.from(tokenizer.encode(TEXT)), ...TRAINING });
  const first = await worker.generate('hello', SAMPLING);
  const bytes = await worker.saveModel();
  const savedBytes = bytes.length;
  await worker.dispose();
  const loaded = await loadModelWorker(bytes, { ...quiet, backend: 'wasm', worker: startWorker() });
  const again = await loaded.generate('hello', SAMPLING);
  await loaded.dispose();
  return {
    backend: worker.backendName,
    threads: worker.threads,
    vocabSize: tokenizer.vocabSize,
    losses: result.history.map((entry) => entry.trainLoss),
    ids: first.ids,
    text: first.text,
    reloadedIds: again.ids,
    savedBytes,
  };
}
