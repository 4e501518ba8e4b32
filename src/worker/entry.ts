/**
 * The package's model worker (dist/model-worker.js): the module createModelWorker and
 * loadModelWorker start when no worker is given. It serves one model; see host.ts.
 */
import { serveModelWorker } from './host.js';

void serveModelWorker();
