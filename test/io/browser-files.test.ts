/**
 * Blob / Response / URL helpers run in Node (which has the same web globals); OPFS runs in a real
 * Chromium (Debian's, through playwright-core) on an esbuild bundle of the sources, and the bytes
 * it saves there are compared with Node's for the same model.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import {
  MODEL_MIME_TYPE,
  loadModelFromBlob,
  loadModelFromOPFS,
  loadModelFromResponse,
  loadModelFromURL,
  modelToBlob,
  opfsAvailable,
  saveModelToOPFS,
} from '../../src/io/browser-files.js';
import { ModelFileError } from '../../src/io/errors.js';
import { saveModel } from '../../src/io/model-file.js';
import { TINYGPT_VERSION } from '../../src/version.js';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../helpers/static-server.js';

const config: GPTConfigInput = { vocabSize: 17, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, dFF: 24, seed: 21, backend: 'js' };

describe('Blob, Response and URL helpers', () => {
  let server: StaticServer;
  let bytes: Uint8Array<ArrayBuffer>;
  beforeAll(async () => {
    const model = await createModel(config);
    bytes = await saveModel(model);
    model.dispose();
    server = await startStaticServer({ routes: { '/models/tiny.safetensors': { body: bytes, type: MODEL_MIME_TYPE } } });
  });
  afterAll(() => server.close());

  it('modelToBlob holds the saveModel bytes and loads back', async () => {
    const model = await createModel(config);
    const blob = await modelToBlob(model);
    expect(blob.type).toBe(MODEL_MIME_TYPE);
    expect(Buffer.from(await blob.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
    const { model: loaded } = await loadModelFromBlob(blob, { backend: 'js' });
    expect(await loaded.getParameters()).toEqual(await model.getParameters());
    model.dispose();
    loaded.dispose();
  });

  it('loads from a Response and from a URL served over HTTP', async () => {
    const fromResponse = await loadModelFromResponse(new Response(bytes), { backend: 'js' });
    const fromURL = await loadModelFromURL(`${server.origin}/models/tiny.safetensors`, { backend: 'js' });
    expect(await fromURL.model.getParameters()).toEqual(await fromResponse.model.getParameters());
    expect(fromURL.model.config).toEqual(fromResponse.model.config);
    fromResponse.model.dispose();
    fromURL.model.dispose();
  });

  it('names the HTTP status of a failed fetch', async () => {
    const url = `${server.origin}/models/missing.safetensors`;
    await expect(loadModelFromURL(url)).rejects.toThrow(`cannot load the model: HTTP 404 Not Found from ${url}`);
    await expect(loadModelFromResponse(new Response('x', { status: 500, statusText: 'Server Error' }))).rejects.toThrow(
      /HTTP 500 Server Error from the response/,
    );
  });

  it('uses an injected fetch, and reports damaged bodies as ModelFileError', async () => {
    const seen: string[] = [];
    const fakeFetch = (async (url: string | URL) => {
      seen.push(String(url));
      return new Response(bytes.slice(0, 100));
    }) as typeof fetch;
    const error = await loadModelFromURL('https://example.invalid/m.safetensors', { fetch: fakeFetch }).catch((e) => e);
    expect(seen).toEqual(['https://example.invalid/m.safetensors']);
    expect(error).toBeInstanceOf(ModelFileError);
  });

  it('says when OPFS is missing and checks OPFS paths', async () => {
    expect(opfsAvailable()).toBe(false);
    const model = await createModel(config);
    await expect(saveModelToOPFS('m.safetensors', model)).rejects.toThrow(/OPFS is not available in this runtime/);
    await expect(loadModelFromOPFS('m.safetensors')).rejects.toThrow(/OPFS is not available in this runtime/);
    for (const path of ['', 'a//b', '../m', 'a/./b', '/abs']) {
      await expect(saveModelToOPFS(path, model)).rejects.toThrow(/OPFS path must be names joined by "\/"/);
    }
    model.dispose();
  });
});

const chromiumMissing = chromiumMissingReason();

describe.skipIf(chromiumMissing !== null)(`OPFS in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let directory: string;
  let server: StaticServer;
  let browser: Browser;

  beforeAll(async () => {
    directory = mkdtempSync(join(tmpdir(), 'tinygpt-opfs-'));
    await build({
      stdin: {
        contents: `
          export { createModel } from './src/model/create.ts';
          export { saveModel } from './src/io/model-file.ts';
          export * from './src/io/browser-files.ts';`,
        resolveDir: REPO_ROOT,
        loader: 'ts',
      },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      // only the wasm loader's Node branch needs these, and the js backend never reaches it
      external: ['node:*'],
      // what the package build puts in (src/version.ts)
      define: { __TINYGPT_VERSION__: JSON.stringify(TINYGPT_VERSION) },
      outfile: join(directory, 'sdk.js'),
      logLevel: 'silent',
    });
    writeFileSync(
      join(directory, 'index.html'),
      '<!doctype html><link rel="icon" href="data:,"><script type="module">window.sdk = await import("./sdk.js");</script>',
    );
    server = await startStaticServer({ root: directory });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it('saves into OPFS, overwrites, loads back, and writes the same bytes as Node', async () => {
    const { page, errors } = await openPage(browser, `${server.origin}/index.html`);
    await page.waitForFunction(() => 'sdk' in window, undefined, { timeout: 30_000 });
    const result = await page.evaluate(async (cfg) => {
      type SDK = typeof import('../../src/io/browser-files.js') & {
        createModel: typeof import('../../src/model/create.js').createModel;
        saveModel: typeof import('../../src/io/model-file.js').saveModel;
      };
      const sdk = (window as unknown as { sdk: SDK }).sdk;
      const first = await sdk.createModel({ ...cfg, seed: 1 });
      const second = await sdk.createModel(cfg);
      const path = 'tinygpt-test/models/tiny.safetensors';
      await sdk.saveModelToOPFS(path, first);
      await sdk.saveModelToOPFS(path, second);
      const { model: loaded } = await sdk.loadModelFromOPFS(path, { backend: 'js' });
      const want = await second.getParameters();
      const got = await loaded.getParameters();
      const mismatched = Object.keys(want).filter((name) => want[name].some((x, i) => !Object.is(x, got[name][i])));
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle('tinygpt-test')).getDirectoryHandle('models');
      const stored = new Uint8Array(await (await (await dir.getFileHandle('tiny.safetensors')).getFile()).arrayBuffer());
      let missingError = '';
      await sdk.loadModelFromOPFS('tinygpt-test/none.safetensors').catch((e: Error) => (missingError = e.name));
      return { available: sdk.opfsAvailable(), mismatched, stored: Array.from(stored), missingError };
    }, config);
    expect(errors).toEqual([]);
    expect(result.available).toBe(true);
    expect(result.mismatched).toEqual([]);
    expect(result.missingError).toBe('NotFoundError');
    const nodeModel = await createModel(config);
    const nodeBytes = await saveModel(nodeModel);
    nodeModel.dispose();
    expect(Buffer.from(result.stored).equals(Buffer.from(nodeBytes))).toBe(true);
    await page.close();
  }, 120_000);
});
