// A page (served cross-origin isolated) that runs the scenario twice on 2 wasm threads: in a module
// Web Worker of its own that imports tinygpt, then with the model in a worker through tinygpt/worker
// (createModelWorker, handed the app's own worker module). The first result carries the second.
import { runInModelWorker } from './model-worker-scenario.js';

const asError = (err) => ({ error: String(err?.stack ?? err) });

const inWorker = new Promise((resolve) => {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (event) => resolve(event.data);
  worker.onerror = (event) => resolve({ error: `worker error: ${event.message}` });
});
inWorker.then(async (result) => {
  const startModelWorker = () => new Worker(new URL('./model.worker.js', import.meta.url), { type: 'module' });
  const modelWorker = await runInModelWorker(startModelWorker, { wasmThreads: 2 }).catch(asError);
  globalThis.consumerResult = { ...result, modelWorker };
});
