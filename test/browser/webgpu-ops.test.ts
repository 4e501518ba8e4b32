/**
 * Every op of the WebGPU backend against the js reference in Chromium (SwiftShader's adapter through
 * navigator.gpu), on the same random inputs and shapes as the Node test: small odd shapes, shapes
 * past every tile and chunk boundary, and bindings capped so that every op runs in pieces. The cases
 * (test/helpers/conformance.ts) are bundled with esbuild and served to a page on 127.0.0.1.
 */
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { opCases } from '../helpers/conformance.js';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../helpers/static-server.js';
import type { OpOutcome } from './webgpu-ops-entry.js';

const chromiumMissing = chromiumMissingReason();

const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module">
  import { runOps } from '/webgpu-ops.js';
  window.runOps = runOps;
  window.opsReady = true;
</script>`;

describe.skipIf(chromiumMissing !== null)(`WebGPU ops in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;
  let result: { adapter: string; outcomes: OpOutcome[] };

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [`${REPO_ROOT}/test/browser/webgpu-ops-entry.ts`],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      // Node-only branches of the device set-up, never taken in a page
      external: ['node:*', 'webgpu'],
    });
    server = await startStaticServer({
      routes: {
        '/webgpu-ops.html': { body: PAGE, type: 'text/html' },
        '/webgpu-ops.js': { body: bundle.outputFiles[0].contents, type: 'text/javascript' },
      },
    });
    browser = await launchChromium();
    const { page, errors } = await openPage(browser, `${server.origin}/webgpu-ops.html`);
    await page.waitForFunction(() => (window as unknown as { opsReady?: boolean }).opsReady === true);
    try {
      result = await page.evaluate(() =>
        (window as unknown as { runOps: () => Promise<{ adapter: string; outcomes: OpOutcome[] }> }).runOps(),
      );
    } catch (error) {
      throw new Error(`the ops did not run in Chromium: ${(error as Error).message}\npage errors:\n${errors.join('\n')}`, { cause: error });
    }
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('every case of every set was compared, on a WebGPU adapter of the page', () => {
    expect(result.adapter).not.toBe('');
    const sets = [...new Set(result.outcomes.map((o) => o.set))];
    expect(sets).toHaveLength(3);
    for (const set of sets) {
      const compared = new Set(result.outcomes.filter((o) => o.set === set).map((o) => o.name));
      expect([...compared].sort(), set).toEqual(opCases.map((c) => c.name).sort());
    }
  });

  test('every output equals the float64 reference within float32 tolerance', () => {
    const failures = result.outcomes.filter((o) => !o.ok).map((o) => `${o.set} / ${o.name} / ${o.output}: ${o.message}`);
    expect(failures).toEqual([]);
  });
});
