// Starts TensorFlow.js on tfjs-backend-wasm (XNNPACK, SIMD) in Node, one thread. The union package
// @tensorflow/tfjs is loaded through require: its Node bundle carries the gradient registrations,
// and tfjs-core's ESM files (extensionless imports) do not load in Node. The backend's .wasm files
// are given as a file path to the package's dist folder.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** @returns {Promise<{ tf: any, threads: number }>} */
export async function startTfjsWasm() {
  const tf = require('@tensorflow/tfjs');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
  wasm.setWasmPaths(dist);
  wasm.setThreadsCount(1);
  const ok = await tf.setBackend('wasm');
  if (!ok || tf.getBackend() !== 'wasm') throw new Error(`tfjs-backend-wasm did not start (backend is ${tf.getBackend()})`);
  await tf.ready();
  return { tf, threads: wasm.getThreadsCount() };
}
