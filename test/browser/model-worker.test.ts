/**
 * ModelWorker in Debian's Chromium: the built bundle (dist/index.js and tinygpt/worker's dist/worker.js)
 * on a cross-origin isolated page (COOP/COEP) starts dist/model-worker.js as a module Web Worker, where the wasm backend runs on 2 threads. The same
 * scenarios as test/worker/model-worker.test.ts (Node, worker_threads): the worker's losses, bytes
 * and sampled ids equal the page's own in-thread run and Node's; errors keep their class; aborts
 * stop training and generation in the worker; dispose ends it; WebGPU (SwiftShader) runs there too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../helpers/static-server.js';
import type { SDK } from './scenarios.js';
import type { WorkerSDK } from './worker-scenarios.js';
import * as scenarios from './worker-scenarios.js';
import { enableRelaxedSimd } from '../helpers/relaxed-simd.js';

// Chromium runs the relaxed-SIMD kernels (fused multiply-adds), so Node, which computes what the page must
// equal bit for bit, runs them too
enableRelaxedSimd();

const DIST_ENTRY = join(REPO_ROOT, 'dist', 'index.js');
/** tinygpt/worker */
const DIST_WORKER_ENTRY = join(REPO_ROOT, 'dist', 'worker.js');
const chromiumMissing = chromiumMissingReason();

type ScenarioName = 'workerMatchesInThread' | 'workerErrors' | 'workerAborts' | 'workerDispose' | 'workerWebGPU';

describe.skipIf(chromiumMissing !== null)(`ModelWorker in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];
  let nodeSdk: WorkerSDK;

  async function inPage<K extends ScenarioName>(name: K, ...args: unknown[]): Promise<Awaited<ReturnType<(typeof scenarios)[K]>>> {
    try {
      // a string, so that vitest does not rewrite the page's dynamic imports
      const script = `(async () => {
        const sdk = { ...(await import('/dist/index.js')), ...(await import('/dist/worker.js')) };
        const scenarios = await import('/test/browser/worker-scenarios.js');
        return scenarios[${JSON.stringify(name)}](sdk, ...${JSON.stringify(args)});
      })()`;
      return await page.evaluate<Awaited<ReturnType<(typeof scenarios)[K]>>>(script);
    } catch (err) {
      throw new Error(`${name} failed in Chromium: ${(err as Error).message}\npage errors:\n${pageErrors.join('\n')}`, { cause: err });
    }
  }

  beforeAll(async () => {
    for (const file of [DIST_ENTRY, DIST_WORKER_ENTRY]) {
      if (!existsSync(file)) throw new Error(`the browser tests run the built bundle, and ${file} is missing: run \`npm run build\` first`);
    }
    nodeSdk = {
      ...((await import(/* @vite-ignore */ pathToFileURL(DIST_ENTRY).href)) as SDK),
      ...((await import(/* @vite-ignore */ pathToFileURL(DIST_WORKER_ENTRY).href)) as typeof import('../../src/worker.js')),
    };
    server = await startStaticServer({ crossOriginIsolated: true });
    browser = await launchChromium();
    ({ page, errors: pageErrors } = await openPage(browser, `${server.origin}/test/browser/harness.html`));
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test("trains, saves and samples in the worker on 2 wasm threads exactly as the page's thread and Node do", async () => {
    const [inBrowser, inNode] = await Promise.all([inPage('workerMatchesInThread', 2), scenarios.workerMatchesInThread(nodeSdk, 1)]);
    expect(inBrowser.backendName).toBe('wasm');
    expect(inBrowser.threads).toBe(2);
    expect(inBrowser.notices.join('\n')).not.toMatch(/one thread/);
    expect(inBrowser.workerLosses).toEqual(inBrowser.hereLosses);
    expect(inBrowser.sameBytes).toBe(true);
    expect(inBrowser.workerIds).toEqual(inBrowser.hereIds);
    expect(inBrowser.streamedIds).toEqual(inBrowser.hereIds);
    expect(inBrowser.workerBeams).toEqual(inBrowser.hereBeams);
    expect(inBrowser.loadedIds).toEqual(inBrowser.hereIds);
    expect(inBrowser.transferredLength).toBe(0);
    // and Chromium's worker gives what Node's gives
    expect(inBrowser.workerLosses).toEqual(inNode.workerLosses);
    expect(inBrowser.workerIds).toEqual(inNode.workerIds);
    expect(inBrowser.workerBeams).toEqual(inNode.workerBeams);
  });

  test('errors keep their class, message and fields across the Web Worker boundary', async () => {
    const errors = await inPage('workerErrors');
    expect(errors.config).toMatchObject({ isExpectedClass: true, name: 'ConfigError' });
    expect(errors.config.message).toMatch(/nHeads/);
    expect(errors.file).toMatchObject({ isExpectedClass: true });
    expect(errors.nonFinite).toMatchObject({ isExpectedClass: true, name: 'NonFiniteError' });
    expect(errors.nonFinite.message).toMatch(new RegExp(`^training diverged at step ${errors.nonFinite.step}: loss`));
    expect(errors.range).toMatchObject({ isExpectedClass: true, name: 'RangeError' });
    expect(errors.afterErrors).toBe(3);
  });

  test('an AbortSignal stops training and generation in the Web Worker', async () => {
    const aborts = await inPage('workerAborts');
    expect(aborts.trainStopped).toBe('aborted');
    expect(aborts.trainSteps).toBeLessThan(100000);
    expect(aborts.stepsSeen).toBe(aborts.trainSteps);
    expect(aborts.streamErrorIsReason).toBe(true);
    expect(aborts.streamedCount).toBeLessThan(100000);
    expect(aborts.generateErrorIsReason).toBe(true);
    expect(aborts.takenBeforeBreak).toBe(3);
    expect(aborts.afterIds).toBe(4);
  });

  test('dispose ends the Web Worker: the call under way and later ones reject', async () => {
    const result = await inPage('workerDispose');
    expect(result).toMatchObject({ running: false });
    expect(result.longFailure).toMatch(/disposed/);
    expect(result.later).toBe('DisposedError: ModelWorker.generate: this model worker was disposed');
  });

  test("WebGPU works from the worker: SwiftShader's adapter by name, the same greedy ids as on the page", async () => {
    const gpu = await inPage('workerWebGPU');
    expect(gpu.backendName).toBe('webgpu');
    expect(gpu.workerIds).toHaveLength(4);
    expect(gpu.workerIds).toEqual(gpu.hereIds);
  });
});
