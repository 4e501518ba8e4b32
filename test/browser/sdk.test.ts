/**
 * The built browser bundle (dist/browser/index.js) in a real browser: Debian's Chromium, driven by
 * playwright-core, loads it from a page on 127.0.0.1 as an application would; Node runs dist/index.js. The same scenarios (scenarios.js) run in
 * Node on the same bundle, so the browser is checked against an independent runtime:
 * - wasm (tinygpt.wasm fetched by URL): a few training steps lower the loss, and the saved model's
 *   bytes and the seeded sample's ids equal Node's exactly: same seed, same bytes everywhere;
 * - webgpu (SwiftShader's adapter): the forward loss and every gradient match the js reference
 *   backend within float32 tolerance, and training tracks wasm's losses;
 * - 'auto' passes over SwiftShader's adapter (a software rasteriser, slower than wasm) with one
 *   notice saying so, in words for a browser (no Node advice);
 * - train() gives the page's event loop a turn, so a Stop button (a timer here) can abort it;
 * - model files by URL, in OPFS and as Blobs sample exactly what Node samples from the same bytes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { assertClose } from '../helpers/random.js';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../helpers/static-server.js';
import * as scenarios from './scenarios.js';
import type { LossAndGradientsResult, SDK, TrainSampleSaveResult } from './scenarios.js';
import { enableRelaxedSimd } from '../helpers/relaxed-simd.js';

// Chromium runs the relaxed-SIMD kernels (fused multiply-adds), so Node, which computes what the page must
// equal bit for bit, runs them too
enableRelaxedSimd();

const DIST_ENTRY = join(REPO_ROOT, 'dist', 'index.js');
const DIST_WASM = join(REPO_ROOT, 'dist', 'tinygpt.wasm');
const chromiumMissing = chromiumMissingReason();

function float32FromBase64(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

async function loadBundleInNode(): Promise<SDK> {
  if (!existsSync(DIST_ENTRY) || !existsSync(DIST_WASM)) {
    throw new Error(`the browser tests run the built bundle, and ${DIST_ENTRY} or ${DIST_WASM} is missing: run \`npm run build\` first`);
  }
  return (await import(/* @vite-ignore */ pathToFileURL(DIST_ENTRY).href)) as SDK;
}

/** the scenarios that take the SDK first: they can run in Node and in the page alike */
type ScenarioName = {
  [K in keyof typeof scenarios]: (typeof scenarios)[K] extends (sdk: SDK, ...args: never[]) => Promise<unknown> ? K : never;
}[keyof typeof scenarios];

const FIXTURE_PATH = '/fixtures/names.safetensors';
const FILE_SAMPLE = { doSample: true, maxNewTokens: 10, temperature: 0.9, topK: 8, seed: 31 } as const;

interface NamesModelFile {
  bytes: Uint8Array;
  /** what Node samples from those bytes with FILE_SAMPLE after the prompt 'ma' */
  expected: { ids: number[]; text: string | undefined };
}

/** Node: a character-level model trained a little on the names and saved with its tokenizer */
async function namesModelFile(sdk: SDK): Promise<NamesModelFile> {
  const text = scenarios.namesText();
  const tokenizer = sdk.CharTokenizer.train(text);
  const model = await sdk.createModel({ ...scenarios.TINY_CONFIG, vocabSize: tokenizer.vocabSize, backend: 'wasm' });
  await sdk.train(model, { ...scenarios.TRAIN_OPTIONS, data: tokenizer.encode(text) });
  const bytes = await sdk.saveModel(model, { tokenizer });
  model.dispose();
  const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
  const sampled = await sdk.generate(loaded.model, 'ma', { ...FILE_SAMPLE, tokenizer: loaded.tokenizer });
  loaded.model.dispose();
  return { bytes, expected: { ids: sampled.ids, text: sampled.text } };
}

describe.skipIf(chromiumMissing !== null)(`the bundle in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];
  const wasmResponses: { status: number; contentType: string | undefined }[] = [];
  let nodeSdk: SDK;

  /** run a scenario in the page; page-side failures come back with the page's own errors */
  async function inPage<K extends ScenarioName>(
    name: K,
    ...args: Parameters<(typeof scenarios)[K]> extends [SDK, ...infer Rest] ? Rest : never
  ): Promise<Awaited<ReturnType<(typeof scenarios)[K]>>> {
    try {
      return (await page.evaluate(
        ([scenario, scenarioArgs]) => {
          const w = window as unknown as { tinygpt: unknown; scenarios: Record<string, (...a: unknown[]) => unknown> };
          return w.scenarios[scenario](w.tinygpt, ...scenarioArgs);
        },
        [name, args] as const,
      )) as Awaited<ReturnType<(typeof scenarios)[K]>>;
    } catch (err) {
      throw new Error(`${name}(${args.join(', ')}) failed in Chromium: ${(err as Error).message}\npage errors:\n${pageErrors.join('\n')}`, {
        cause: err,
      });
    }
  }

  // Computed once, used by the byte-identity test and the webgpu-tracks-wasm test.
  let browserWasmRun: Promise<TrainSampleSaveResult> | undefined;
  const browserWasm = () => (browserWasmRun ??= inPage('trainSampleSave', 'wasm'));

  let fixture: NamesModelFile;

  beforeAll(async () => {
    nodeSdk = await loadBundleInNode();
    fixture = await namesModelFile(nodeSdk);
    server = await startStaticServer({
      routes: { [FIXTURE_PATH]: { body: fixture.bytes, type: 'application/octet-stream' } },
    });
    browser = await launchChromium();
    const opened = await openPage(browser, `${server.origin}/test/browser/harness.html`, (fresh) =>
      fresh.on('response', (response) => {
        if (/^\/dist\/browser\/backend\/wasm\/tinygpt(-relaxed)?\.wasm$/.test(new URL(response.url()).pathname)) {
          wasmResponses.push({ status: response.status(), contentType: response.headers()['content-type'] });
        }
      }),
    );
    page = opened.page;
    pageErrors = opened.errors;
    const state = await page.waitForFunction(() => {
      const w = window as unknown as { harnessReady?: boolean; harnessError?: string };
      return w.harnessReady ? 'ready' : w.harnessError;
    });
    const outcome = await state.jsonValue();
    if (outcome !== 'ready') throw new Error(`the page could not import /dist/browser/index.js: ${outcome}\n${pageErrors.join('\n')}`);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test("wasm: training lowers the loss, and the saved bytes and seeded sample equal Node's", async () => {
    const [inBrowser, inNode] = await Promise.all([browserWasm(), scenarios.trainSampleSave(nodeSdk, 'wasm')]);

    expect(inBrowser.backendName).toBe('wasm');
    expect(wasmResponses).toEqual([{ status: 200, contentType: 'application/wasm' }]);
    expect(inBrowser.steps).toBe(scenarios.TRAIN_OPTIONS.steps);
    expect(inBrowser.losses).toHaveLength(scenarios.TRAIN_OPTIONS.steps);
    expect(inBrowser.losses.every(Number.isFinite)).toBe(true);
    // untrained, the loss is near ln(vocabSize); a few steps at lr 1e-2 must bring it down
    expect(inBrowser.losses[0]).toBeGreaterThan(Math.log(scenarios.TINY_CONFIG.vocabSize) - 0.3);
    expect(inBrowser.losses.at(-1)!).toBeLessThan(inBrowser.losses[0] - 0.3);

    expect(inBrowser.losses).toEqual(inNode.losses);
    expect(inBrowser.ids).toHaveLength(scenarios.SAMPLE_OPTIONS.maxNewTokens!);
    expect(inBrowser.ids).toEqual(inNode.ids);
    const browserBytes = Buffer.from(inBrowser.modelBase64, 'base64');
    const nodeBytes = Buffer.from(inNode.modelBase64, 'base64');
    expect(browserBytes.length).toBe(nodeBytes.length);
    expect(browserBytes.equals(nodeBytes)).toBe(true);

    // and the bytes are a model: Node loads the browser's file and samples the same ids from it
    const { model } = await nodeSdk.loadModel(new Uint8Array(browserBytes), { backend: 'wasm' });
    try {
      const again = await nodeSdk.generate(model, [0, 13, 1], scenarios.SAMPLE_OPTIONS);
      expect(again.ids).toEqual(inBrowser.ids);
    } finally {
      model.dispose();
    }
  });

  test('webgpu: the forward loss and every gradient match the js reference backend', async () => {
    const [gpu, reference]: LossAndGradientsResult[] = await Promise.all([
      inPage('lossAndGradients', 'webgpu'),
      scenarios.lossAndGradients(nodeSdk, 'js'),
    ]);
    expect(gpu.backendName).toBe('webgpu');
    expect(Math.abs(gpu.loss - reference.loss)).toBeLessThan(1e-5 * reference.loss);
    expect(Object.keys(gpu.gradients).sort()).toEqual(Object.keys(reference.gradients).sort());
    let nonZero = 0;
    for (const [name, b64] of Object.entries(reference.gradients)) {
      const expected = float32FromBase64(b64);
      const actual = float32FromBase64(gpu.gradients[name]);
      // float32 sums in a different order: relative 1e-4, plus a floor scaled to the tensor's largest gradient
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assertClose(actual, expected, { rtol: 1e-4, atol: 1e-5 * scale + 1e-9 }, `gradient of ${name}`);
      if (scale > 0) nonZero++;
    }
    expect(nonZero).toBe(Object.keys(reference.gradients).length);
  });

  test("webgpu: a few training steps track the wasm backend's losses", async () => {
    const wasm = await browserWasm();
    const gpu = await inPage('trainSampleSave', 'webgpu');
    expect(gpu.backendName).toBe('webgpu');
    expect(gpu.losses).toHaveLength(wasm.losses.length);
    // float32 sums run in a different order on each backend (the curves agree to ~1e-7 here); the
    // margin leaves room for AdamW, which amplifies rounding in the tiniest gradients
    assertClose(gpu.losses, wasm.losses, { rtol: 1e-4, atol: 0 }, 'webgpu losses vs wasm losses');
  });

  test("'auto' passes over SwiftShader's software adapter for wasm, with one notice that says so and gives no Node advice", async () => {
    const hasAdapter = await page.evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return gpu !== undefined && (await gpu.requestAdapter()) !== null;
    });
    expect(hasAdapter, 'Chromium with --enable-unsafe-webgpu offers SwiftShader on 127.0.0.1').toBe(true);
    const auto = await inPage('autoBackend');
    expect(auto.backendName).toBe('wasm');
    // the page is not cross-origin isolated: the one-thread notice is a second fact, in its own message
    expect(auto.notices).toHaveLength(2);
    expect(auto.notices[0]).toMatch(
      /^using the wasm backend, not webgpu: the WebGPU adapter is SwiftShader \(.+\), a software rasteriser on the CPU, slower than wasm on the same CPU \(ask for backend: 'webgpu' to use it anyway\)$/,
    );
    expect(auto.notices[1]).toMatch(/^one thread: the page is not cross-origin isolated/);
    expect(auto.notices.join('\n')).not.toMatch(/VK_ICD_FILENAMES|LD_LIBRARY_PATH/);
  });

  test('train() lets a Stop button land: a timer aborting its signal stops it after the current step', async () => {
    // 3,000 steps of the tiny model take seconds; the page aborts after 200 ms (a run that ignores the
    // abort completes them all and fails here)
    const run = await inPage('trainStoppedByTimer', 'wasm', 3000, 200);
    expect(run.stopped).toBe('aborted');
    expect(run.steps).toBeGreaterThan(0);
    expect(run.steps).toBeLessThan(run.totalSteps);
  });

  test("model files in the browser: fetched by URL, stored in OPFS, turned into a Blob; samples equal Node's", async () => {
    const files = await inPage('browserFiles', FIXTURE_PATH, '/fixtures/missing.safetensors', 'ma', FILE_SAMPLE);
    expect(files.opfsAvailable).toBe(true);
    expect(files.fromUrl.ids).toHaveLength(FILE_SAMPLE.maxNewTokens);
    expect(files.fromUrl).toEqual(fixture.expected);
    expect(files.fromOpfs).toEqual(fixture.expected);
    // saving a loaded model gives back the file it came from, byte for byte
    expect(files.blobType).toBe('application/octet-stream');
    expect(Buffer.from(files.blobBase64, 'base64').equals(Buffer.from(fixture.bytes))).toBe(true);
    expect(files.missingError).toMatch(/HTTP 404/);
  });

  test("in a dedicated Web Worker: wasm training, sampling and saving give Node's bytes and ids, and auto passes over SwiftShader there too", async () => {
    const [inWorker, inNode] = await Promise.all([
      page.evaluate(
        ([backend]) =>
          (window as unknown as { runInWorker(n: string, a: unknown[]): Promise<TrainSampleSaveResult> }).runInWorker('trainSampleSave', [
            backend,
          ]),
        ['wasm'],
      ),
      scenarios.trainSampleSave(nodeSdk, 'wasm'),
    ]);
    expect(inWorker.backendName).toBe('wasm');
    expect(inWorker.losses).toEqual(inNode.losses);
    expect(inWorker.ids).toEqual(inNode.ids);
    expect(inWorker.modelBase64 === inNode.modelBase64).toBe(true);
    const auto = await page.evaluate(() =>
      (window as unknown as { runInWorker(n: string, a: unknown[]): Promise<{ backendName: string; notices: string[] }> }).runInWorker(
        'autoBackend',
        [],
      ),
    );
    expect(auto.backendName).toBe('wasm');
    expect(auto.notices[0]).toMatch(/^using the wasm backend, not webgpu: the WebGPU adapter is SwiftShader/);
  });
});
