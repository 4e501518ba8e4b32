/**
 * examples/browser in Chromium, driven like a user would: press Train, watch the loss fall, press
 * Stop, sample with a seed, and type bad settings. What the page shows is read back through
 * window.tinygptExample() (chart data, output, status) and the DOM.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { startStaticServer, type StaticServer } from '../helpers/static-server.js';

interface ExampleState {
  phase: string;
  backend: string | null;
  trainLosses: number[];
  valLosses: number[];
  output: string;
  status: string;
}

const chromiumMissing = chromiumMissingReason();

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

describe.skipIf(chromiumMissing !== null)(`examples/browser in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];

  const readState = () => page.evaluate(() => (window as unknown as { tinygptExample(): ExampleState }).tinygptExample());
  const statusIsError = () =>
    page
      .locator('#status.error')
      .count()
      .then((n) => n > 0);
  /** wait until the page is back at rest (trained or idle), or shows an error */
  const settle = () =>
    page.waitForFunction(
      () => ['trained', 'idle'].includes(document.body.dataset.phase ?? '') || document.querySelector('#status.error') !== null,
      null,
      { timeout: 50_000 },
    );

  beforeAll(async () => {
    server = await startStaticServer();
    browser = await launchChromium();
    ({ page, errors: pageErrors } = await openPage(browser, `${server.origin}/examples/browser/`));
    try {
      await page.waitForFunction(() => document.body.dataset.phase === 'idle', null, { timeout: 20_000 });
    } catch (err) {
      throw new Error(`the example page did not become ready: ${(err as Error).message}\npage errors:\n${pageErrors.join('\n')}`, {
        cause: err,
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('Train on the prefilled names: the charted training and validation losses fall', async () => {
    await page.selectOption('#backend-choice', 'wasm');
    await page.fill('#steps', '60');
    await page.click('#train');
    await settle();
    const state = await readState();
    expect(await statusIsError(), state.status).toBe(false);
    expect(state.phase).toBe('trained');
    expect(state.backend).toBe('wasm');
    expect(await page.textContent('#backend')).toBe('wasm');
    expect(state.trainLosses).toHaveLength(60);
    expect(state.trainLosses.every(Number.isFinite)).toBe(true);
    // 27 characters: an untrained model sits near ln(27) = 3.3; 60 steps of names reach well below
    expect(mean(state.trainLosses.slice(0, 5))).toBeGreaterThan(3.0);
    expect(mean(state.trainLosses.slice(-10))).toBeLessThan(mean(state.trainLosses.slice(0, 5)) - 0.4);
    expect(state.valLosses.length).toBeGreaterThanOrEqual(2);
    expect(state.valLosses.at(-1)!).toBeLessThan(state.valLosses[0]);
    expect(state.status).toMatch(/trained 60 steps .* on wasm/);
  });

  test('Generate streams text made of the corpus characters, and the same seed gives the same text', async () => {
    const corpusChars = new Set(await page.inputValue('#corpus'));
    await page.fill('#sample-seed', '7');
    await page.fill('#max-new-tokens', '40');
    const outputs: string[] = [];
    for (let i = 0; i < 2; i++) {
      await page.click('#generate');
      await settle();
      const state = await readState();
      expect(await statusIsError(), state.status).toBe(false);
      expect(state.status).toBe('sampled 40 tokens on wasm with seed 7');
      outputs.push(state.output);
    }
    expect([...outputs[0]]).toHaveLength(40);
    expect([...outputs[0]].every((ch) => corpusChars.has(ch))).toBe(true);
    expect(outputs[1]).toBe(outputs[0]);
  });

  test('Stop ends a long training run between steps', async () => {
    await page.fill('#steps', '100000');
    await page.click('#train');
    await page.waitForFunction(() => (window as unknown as { tinygptExample(): ExampleState }).tinygptExample().trainLosses.length >= 3);
    await page.click('#stop-training');
    await settle();
    const state = await readState();
    expect(state.phase).toBe('trained');
    const stoppedAt = Number(/stopped after (\d+) of 100000 steps/.exec(state.status)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(3);
    expect(stoppedAt).toBeLessThan(100000);
    expect(state.trainLosses).toHaveLength(stoppedAt);
  });

  test('Stop ends a long generation between tokens', async () => {
    await page.fill('#max-new-tokens', '100000');
    await page.click('#generate');
    await page.waitForFunction(() => (document.querySelector('#output')?.textContent ?? '').length >= 5);
    await page.click('#stop-generating');
    await settle();
    const state = await readState();
    expect(state.phase).toBe('trained');
    const stoppedAt = Number(/^stopped after (\d+) tokens$/.exec(state.status)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(5);
    expect(stoppedAt).toBeLessThan(100000);
    expect([...state.output]).toHaveLength(stoppedAt);
    await page.fill('#max-new-tokens', '40');
  });

  test('bad settings are refused with a message naming the field, the value and the range', async () => {
    await page.fill('#temperature', '-1');
    await page.click('#generate');
    await settle();
    expect(await page.textContent('#status')).toBe('temperature must be a number in [0, 10], got "-1"');
    await page.fill('#temperature', '0.8');

    await page.fill('#steps', '10');
    await page.fill('#heads', '5');
    await page.click('#train');
    await settle();
    expect(await page.textContent('#status')).toBe('width (dModel) must be a multiple of heads (5), got 32');
    await page.fill('#heads', '4');
  });

  test("backend 'auto' without WebGPU in the browser: the page trains on wasm and shows why", async () => {
    // SwiftShader's WebGPU is far too slow to train here; that 'auto' picks it when present is
    // checked in sdk.test.ts. This page hides navigator.gpu before any script runs.
    const noGpu = await browser.newPage();
    await noGpu.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await noGpu.goto(`${server.origin}/examples/browser/`);
    await noGpu.waitForFunction(() => document.body.dataset.phase === 'idle', null, { timeout: 20_000 });
    expect(await noGpu.evaluate(() => 'gpu' in navigator && navigator.gpu !== undefined)).toBe(false);
    await noGpu.selectOption('#backend-choice', 'auto');
    await noGpu.fill('#steps', '3');
    await noGpu.click('#train');
    await noGpu.waitForFunction(() => ['trained', 'idle'].includes(document.body.dataset.phase ?? ''), null, { timeout: 50_000 });
    expect(await noGpu.textContent('#status')).toMatch(/trained 3 steps .* on wasm/);
    expect(await noGpu.textContent('#backend')).toBe('wasm');
    expect(await noGpu.textContent('#notice')).toMatch(/using the wasm backend, not webgpu: WebGPU: navigator\.gpu is missing/);
    await noGpu.close();
  });
});
