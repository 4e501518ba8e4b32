// For toolchains that leave `new URL('./tinygpt.wasm', import.meta.url)` alone and emit nothing
// (esbuild, Rollup): the page gives the kernels' location with the documented wasmAssets option.
// The location comes from the page's URL (?kernels=...), where the app hosts the file.
import { run } from './scenario.js';

const kernels = new URLSearchParams(location.search).get('kernels');
run({ wasmAssets: { kernels: new URL(kernels, location.href) } }).then(
  (result) => (globalThis.consumerResult = result),
  (err) => (globalThis.consumerResult = { error: String(err?.stack ?? err) }),
);
