// The module Web Worker: the scenario on 2 wasm threads.
import { run } from './scenario.js';

run({ wasmThreads: 2 }).then(
  (result) => postMessage({ ...result, crossOriginIsolated: globalThis.crossOriginIsolated }),
  (err) => postMessage({ error: String(err?.stack ?? err) }),
);
