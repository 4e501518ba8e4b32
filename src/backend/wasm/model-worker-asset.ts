/**
 * Where the package's model worker (model-worker.js, the bundle of src/worker/entry.ts) is: beside
 * the asset table's files, in dist/ and in dist/browser/backend/wasm/, since the worker's own copy of
 * the table looks for the kernels beside itself. Written as the literal
 * `new URL('./model-worker.js', import.meta.url)`, which Vite, webpack 5 and Parcel follow to emit
 * the file. Not a row of the asset table: bundlers emit what such an expression names in any module
 * they reach, before tree-shaking, so only tinygpt/worker (worker/client.ts) imports this module, and
 * apps that do not import that entry are not given the file.
 */

/** the default worker of createModelWorker and loadModelWorker; a function, so nothing is resolved at import time */
export function packagedModelWorker(): URL {
  return new URL('./model-worker.js', import.meta.url);
}
