/**
 * The files the wasm backend loads at run time, in one table. Each default location is written as
 * the literal `new URL('./file', import.meta.url)`, the form Vite, webpack 5 and Parcel recognise:
 * they emit the file with the bundle and rewrite the URL to where they put it, so a web app needs no
 * plugin, no copying and no option. Toolchains that leave the expression as it is (Rollup, esbuild:
 * they keep `import.meta.url` but emit nothing) and unusual deployments name the files with the
 * `wasmAssets` option of createModel and loadModel instead; every load error names that option.
 *
 * A new file (another kernel build, another worker) is one more row in ASSETS and one more field in
 * WasmAssets: the loaders take their default and their error advice from here.
 */

declare global {
  // A compiled module, declared empty: it merges with the DOM or WebWorker lib's declaration where a
  // consumer has one, and the declarations still check under skipLibCheck: false in a Node project
  // without them (@types/node 20 does not declare WebAssembly).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace WebAssembly {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface Module {}
  }
}

/** Where the wasm backend's files are, for toolchains and deployments that cannot find them by themselves. */
export interface WasmAssets {
  /** tinygpt.wasm, the single-thread kernels: its URL (a file path or file: URL in Node), or the compiled module (edge runtimes) */
  kernels?: string | URL | WebAssembly.Module;
  /** tinygpt-threads.wasm, the kernels the threads share a memory with: its URL or path, or the compiled module */
  threadedKernels?: string | URL | WebAssembly.Module;
  /** wasm-worker.js, the script each thread runs: its URL or path */
  worker?: string | URL;
}

export type WasmAssetName = keyof WasmAssets;
/**
 * every file in the table: the wasm backend's. (The model worker that createModelWorker starts lies
 * beside them but is named in model-worker-asset.ts, which only tinygpt/worker reaches.)
 */
export type AssetName = WasmAssetName | 'relaxedKernels' | 'threadedRelaxedKernels';

interface AssetRow {
  /** the file's name in dist/ (and, for the kernels, in build/) */
  readonly file: string;
  /** its default URL: beside the module that holds this table (in dist/, beside every chunk) */
  readonly url: () => URL;
}

/**
 * Functions, so nothing is resolved at import time (and a CommonJS build, whose import.meta is
 * shimmed, is asked only when a file is needed).
 */
export const ASSETS: Readonly<Record<AssetName, AssetRow>> = {
  kernels: { file: 'tinygpt.wasm', url: () => new URL('./tinygpt.wasm', import.meta.url) },
  threadedKernels: { file: 'tinygpt-threads.wasm', url: () => new URL('./tinygpt-threads.wasm', import.meta.url) },
  // the relaxed-SIMD builds (fused multiply-adds), tried first where the runtime validates relaxed SIMD
  relaxedKernels: { file: 'tinygpt-relaxed.wasm', url: () => new URL('./tinygpt-relaxed.wasm', import.meta.url) },
  threadedRelaxedKernels: { file: 'tinygpt-threads-relaxed.wasm', url: () => new URL('./tinygpt-threads-relaxed.wasm', import.meta.url) },
  worker: { file: 'wasm-worker.js', url: () => new URL('./wasm-worker.js', import.meta.url) },
};

/** the advice every failed load ends with */
export function assetAdvice(name: WasmAssetName): string {
  return `pass its location as createModel(config, { wasmAssets: { ${name}: url } }) (loadModel and quantizeModel take the same option)`;
}

/**
 * Where to look for a file nobody named: its default URL, and when this module runs from the
 * sources (tests, examples run with a TypeScript loader) the kernels' build folder, since the
 * sources have no .wasm beside them. Built bundles never take the second path.
 */
export function defaultLocations(name: AssetName): URL[] {
  const row = ASSETS[name];
  const primary = row.url();
  const fromSources = primary.pathname.endsWith(`/src/backend/wasm/${row.file}`);
  return fromSources && row.file.endsWith('.wasm') ? [primary, new URL(`../../../build/${row.file}`, primary)] : [primary];
}
