/**
 * tinygpt/worker: a model that lives in a worker (createModelWorker, loadModelWorker, ModelWorker),
 * and serveModelWorker for a worker module of your own.
 *
 *   import { createModelWorker } from 'tinygpt/worker';
 *
 * Its own entry point because the handle's default worker is the package's model-worker.js,
 * referenced as `new URL('./model-worker.js', import.meta.url)`: Vite, webpack and Parcel emit what
 * such an expression names in any module they reach, before tree-shaking, so only apps that import
 * this entry get that file (251 kB). The main entry never names it. The classes these functions
 * take and return (tokenizers, errors) are the main entry's own modules, not a second copy.
 */
export { createModelWorker, loadModelWorker, ModelWorker } from './worker/client.js';
export type {
  ModelWorkerOptions,
  CreateModelWorkerOptions,
  LoadModelWorkerOptions,
  ModelWorkerTrainOptions,
  WorkerAdapterInfo,
  WorkerAdapters,
} from './worker/client.js';
export { serveModelWorker } from './worker/host.js';
