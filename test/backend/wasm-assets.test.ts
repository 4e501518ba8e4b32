/**
 * The asset table (src/backend/wasm/assets.ts): with no location given, every file is found through
 * its row (from the sources, the build folder); `wasmAssets` on createModel and loadModel names
 * the files instead; and a file that cannot be had ends in an error that names that option, with
 * what was tried, including a server that answers a missing file with a page (a dev server's SPA
 * fallback), which is told apart from a .wasm by WebAssembly's magic number.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSETS, defaultLocations } from '../../src/backend/wasm/assets.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createModel, loadModel, quantizeModel, saveModel } from '../../src/index.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const THREADS_URL = new URL('../../build/tinygpt-threads.wasm', import.meta.url);
const CONFIG = { vocabSize: 11, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, backend: 'wasm' as const };

let server: Server;
let origin: string;
beforeAll(async () => {
  // every path gets a 200 HTML page, as a single-page app's dev server does; /missing.wasm gets a 404
  server = createServer((req, res) => {
    if (req.url === '/missing.wasm') res.writeHead(404).end('not found');
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><html></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('the asset table', () => {
  it('has one row per file, each a URL beside the module that holds the table', () => {
    for (const row of Object.values(ASSETS)) {
      expect(row.url().href).toBe(new URL(`../../src/backend/wasm/${row.file}`, import.meta.url).href);
    }
    // from the sources the kernels are looked for in build/ too; the worker is a source file
    expect(defaultLocations('kernels').map(String)).toContain(WASM_URL.href);
    expect(defaultLocations('worker')).toHaveLength(1);
  });

  it('gives a backend with threads when no location is given', async () => {
    const backend = await createWasmBackend({ threads: 2 });
    expect(backend.threads).toBe(2);
    expect(backend.threadsNote).toBe('');
    backend.dispose();
  });
});

describe('wasmAssets', () => {
  it('names the files for createModel (URL or compiled module) and loadModel', async () => {
    const model = await createModel(CONFIG, { wasmAssets: { kernels: WASM_URL, threadedKernels: THREADS_URL }, wasmThreads: 2 });
    expect((model.backend as WasmBackend).threads).toBe(2);
    const bytes = await saveModel(model);
    model.dispose();
    const module = new WebAssembly.Module(readFileSync(WASM_URL));
    const { model: loaded } = await loadModel(bytes, { backend: 'wasm', wasmAssets: { kernels: module }, wasmThreads: 1 });
    expect(loaded.backendName).toBe('wasm');
    expect((loaded.backend as WasmBackend).threads).toBe(1);
    loaded.dispose();
  });

  it('quantizeModel, and loadModel for a quantized file, make their backend from the files it names', async () => {
    const model = await createModel({ ...CONFIG, dModel: 32 }, { wasmThreads: 1 });
    const missing = { kernels: `${origin}/missing.wasm` };
    await expect(quantizeModel(model, { backend: 'wasm', wasmAssets: missing })).rejects.toThrow(/missing\.wasm.*HTTP 404.*wasmAssets/s);
    const quantized = await quantizeModel(model, { backend: 'wasm', wasmAssets: { kernels: WASM_URL }, wasmThreads: 1 });
    const bytes = await saveModel(quantized);
    for (const m of [model, quantized]) m.dispose();
    await expect(loadModel(bytes, { backend: 'wasm', wasmAssets: missing })).rejects.toThrow(/missing\.wasm.*HTTP 404.*wasmAssets/s);
    const { model: loaded } = await loadModel(bytes, { backend: 'wasm', wasmAssets: { kernels: WASM_URL }, wasmThreads: 1 });
    expect('format' in loaded && loaded.format).toBe('q8_0');
    loaded.dispose();
  });

  it("quantizeModel's backend starts as the model's did (its files, threads and notices) unless told otherwise", async () => {
    const model = await createModel({ ...CONFIG, dModel: 32 }, { backend: 'wasm', wasmThreads: 1 });
    const quantized = await quantizeModel(model);
    expect(quantized.backendName).toBe('wasm');
    expect((quantized.backend as WasmBackend).threads).toBe(1);
    const twoThreads = await quantizeModel(model, { wasmThreads: 2 });
    expect((twoThreads.backend as WasmBackend).threads).toBe(2);
    for (const m of [model, quantized, twoThreads]) m.dispose();
    // threaded kernels the model could not find: its copy asks the same place, and says so the same way
    const notices: string[] = [];
    const oneThread = await createModel(
      { ...CONFIG, dModel: 32 },
      {
        wasmAssets: { kernels: WASM_URL, threadedKernels: `${origin}/missing.wasm` },
        wasmThreads: 2,
        onBackendNotice: (m) => notices.push(m),
      },
    );
    notices.length = 0;
    const copy = await quantizeModel(oneThread);
    expect((copy.backend as WasmBackend).threads).toBe(1);
    expect(notices.join('\n')).toMatch(/missing\.wasm.*HTTP 404.*wasmAssets: \{ threadedKernels: url \}/s);
    for (const m of [oneThread, copy]) m.dispose();
  });

  it('a page served for a missing .wasm, and a 404, end in an error naming the option', async () => {
    await expect(createModel(CONFIG, { wasmAssets: { kernels: `${origin}/assets/tinygpt.wasm` } })).rejects.toThrow(
      /tinygpt\.wasm.*text\/html, not a \.wasm file.*createModel\(config, \{ wasmAssets: \{ kernels: url \} \}\)/s,
    );
    await expect(createModel(CONFIG, { wasmAssets: { kernels: `${origin}/missing.wasm` } })).rejects.toThrow(
      /HTTP 404.*wasmAssets: \{ kernels: url \}/s,
    );
  });

  it('threaded kernels or a worker that cannot be had leave one thread, and the note names the option', async () => {
    const notices: string[] = [];
    const noThreads = await createModel(CONFIG, {
      wasmAssets: { kernels: WASM_URL, threadedKernels: `${origin}/missing.wasm` },
      wasmThreads: 2,
      onBackendNotice: (m) => notices.push(m),
    });
    expect((noThreads.backend as WasmBackend).threads).toBe(1);
    expect((noThreads.backend as WasmBackend).threadsNote).toMatch(
      /tinygpt-threads\.wasm.*HTTP 404.*wasmAssets: \{ threadedKernels: url \}/s,
    );
    expect(notices.join('\n')).toContain((noThreads.backend as WasmBackend).threadsNote);
    noThreads.dispose();
    const noWorker = await createModel(CONFIG, {
      wasmAssets: { kernels: WASM_URL, threadedKernels: THREADS_URL, worker: new URL('./no-such-worker.js', WASM_URL) },
      wasmThreads: 2,
      onBackendNotice: () => {},
    });
    expect((noWorker.backend as WasmBackend).threads).toBe(1);
    expect((noWorker.backend as WasmBackend).threadsNote).toMatch(/no-such-worker\.js.*wasmAssets: \{ worker: url \}/s);
    noWorker.dispose();
  });
});
