import { defineConfig } from 'tsup';
import { copyFileSync, mkdirSync } from 'node:fs';

export default defineConfig({
  entry: { index: 'src/index.ts', node: 'src/node.ts', gpt2: 'src/gpt2.ts', cli: 'src/cli/main.ts', 'model-worker': 'src/worker/entry.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts', node: 'src/node.ts', gpt2: 'src/gpt2.ts' } },
  target: 'es2022',
  platform: 'neutral',
  sourcemap: true,
  clean: true,
  splitting: false,
  external: ['webgpu', /^node:/],
  // keep 'node:' specifiers: Deno and workerd's nodejs_compat resolve them, bare 'fs' they may not
  removeNodeProtocol: false,
  async onSuccess() {
    mkdirSync('dist', { recursive: true });
    copyFileSync('build/tinygpt.wasm', 'dist/tinygpt.wasm');
    copyFileSync('build/tinygpt-threads.wasm', 'dist/tinygpt-threads.wasm');
    copyFileSync('build/tinygpt-relaxed.wasm', 'dist/tinygpt-relaxed.wasm');
    copyFileSync('build/tinygpt-threads-relaxed.wasm', 'dist/tinygpt-threads-relaxed.wasm');
    // the worker is plain JavaScript with no imports: it runs as is from src/ and from dist/
    copyFileSync('src/backend/wasm/wasm-worker.js', 'dist/wasm-worker.js');
  },
});
