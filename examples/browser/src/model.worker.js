// The model's worker: tinygpt serves createModelWorker's and loadModelWorker's calls from here.
// Starting it with `new Worker(new URL('./model.worker.js', import.meta.url), { type: 'module' })`
// lets Vite bundle it with tinygpt and the files tinygpt loads.
import { serveModelWorker } from 'tinygpt/worker';

void serveModelWorker();
