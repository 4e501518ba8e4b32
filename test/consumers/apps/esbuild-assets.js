// esbuild emits no file for `new URL('./tinygpt.wasm', import.meta.url)`. With its file loader
// (--loader:.wasm=file) an import of the package's .wasm export gives the emitted file's URL, which
// the page passes with the documented wasmAssets option.
import kernels from 'tinygpt/tinygpt.wasm';
import { run } from './scenario.js';

run({ wasmAssets: { kernels: new URL(kernels, location.href) } }).then(
  (result) => (globalThis.consumerResult = result),
  (err) => (globalThis.consumerResult = { error: String(err?.stack ?? err) }),
);
