import { copyFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import { defineConfig, type Options } from 'tsup';

/**
 * Two builds of the same sources:
 * - dist/: Node (ESM and CommonJS, with declarations), where the host module (src/host/node.ts) reads
 *   files and starts worker_threads. Bundled with splitting: `tinygpt/node`, `tinygpt/worker`,
 *   `tinygpt/gpt2` and the command line share the main entry's chunks, so there is one copy of the
 *   library however it is imported.
 * - dist/browser/: browsers, workers and edge runtimes (ESM). Not bundled: one file per source
 *   module, so a web app's bundler drops every module it does not reach (package.json says
 *   `sideEffects: false`; no module does work at import time), and the backends it does not start
 *   stay in chunks it loads only when asked. host/browser.js is put in place of host/node.js, so
 *   no `node:` import is left for a bundler to trip on.
 * - dist/browser/backend/wasm/model-worker.js: the model worker (src/worker/entry.ts) for browsers,
 *   bundled into one file, since toolchains copy a worker script as it is. It lies beside the wasm
 *   files, which its own asset table looks for beside itself, and beside model-worker-asset.js,
 *   which names it (only tinygpt/worker reaches that module).
 * Each build's output folder gets the files of the asset table (src/backend/wasm/assets.ts)
 * beside the module that holds the table.
 */
const ASSET_FILES = [
  'build/tinygpt.wasm',
  'build/tinygpt-threads.wasm',
  'build/tinygpt-relaxed.wasm',
  'build/tinygpt-threads-relaxed.wasm',
  'src/backend/wasm/wasm-worker.js',
];

function copyAssets(outDir: string): void {
  for (const file of ASSET_FILES) copyFileSync(file, `${outDir}/${file.slice(file.lastIndexOf('/') + 1)}`);
}

const BROWSER_HOST = fileURLToPath(new URL('./src/host/browser.ts', import.meta.url));

/** resolves every import of the Node host module to the browser one (for the bundled browser worker) */
const browserHost: Plugin = {
  name: 'tinygpt-browser-host',
  setup(build) {
    build.onResolve({ filter: /\/host\/node\.js$/ }, () => ({ path: BROWSER_HOST }));
  },
};

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

const shared: Options = {
  target: 'es2022',
  define: { __TINYGPT_VERSION__: JSON.stringify(version) },
  sourcemap: true,
  splitting: true,
  external: ['webgpu', /^node:/],
  // keep 'node:' specifiers: Deno and workerd's nodejs_compat resolve them, bare 'fs' they may not
  removeNodeProtocol: false,
};

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      node: 'src/node.ts',
      gpt2: 'src/gpt2.ts',
      worker: 'src/worker.ts',
      cli: 'src/cli/main.ts',
      'model-worker': 'src/worker/entry.ts',
    },
    format: ['esm', 'cjs'],
    platform: 'node',
    outDir: 'dist',
    // the CommonJS files have no import.meta: tsup's shim gives the asset table a URL from __filename
    shims: true,
    dts: { entry: { index: 'src/index.ts', node: 'src/node.ts', gpt2: 'src/gpt2.ts', worker: 'src/worker.ts' } },
    onSuccess: () => Promise.resolve(copyAssets('dist')),
  },
  {
    ...shared,
    // every module the main entry can reach; the Node-only ones stay out
    entry: [
      'src/**/*.ts',
      '!src/**/*.d.ts',
      '!src/cli/**',
      '!src/node.ts',
      '!src/io/node-files.ts',
      '!src/io/huggingface-node.ts',
      '!src/worker/entry.ts',
    ],
    bundle: false,
    splitting: false,
    sourcemap: false,
    format: ['esm'],
    platform: 'browser',
    outDir: 'dist/browser',
    onSuccess: () => {
      copyFileSync('dist/browser/host/browser.js', 'dist/browser/host/node.js');
      copyAssets('dist/browser/backend/wasm');
      return Promise.resolve();
    },
  },
  {
    ...shared,
    entry: { 'backend/wasm/model-worker': 'src/worker/entry.ts' },
    splitting: false,
    sourcemap: false,
    // every web app's bundler that follows the asset table emits this file as it is (Vite copies it
    // unminified): minified here, 251 kB instead of 417 kB, and less work for webpack's minifier
    minify: true,
    format: ['esm'],
    platform: 'browser',
    outDir: 'dist/browser',
    esbuildPlugins: [browserHost],
  },
]);
