/**
 * Launch Debian's Chromium (never a downloaded browser) through playwright-core, with WebGPU
 * exposed: on a machine without a GPU, --enable-unsafe-webgpu gives a SwiftShader adapter on
 * secure-context pages (127.0.0.1 counts).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.TINYGPT_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** why browser tests cannot run here, or null when Chromium is present */
export function chromiumMissingReason(): string | null {
  return existsSync(CHROMIUM_PATH) ? null : `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium, or set TINYGPT_CHROMIUM)`;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A page that fails loudly: console errors and uncaught exceptions are collected so a test can
 * show them when something in the page goes wrong. `beforeNavigation` sees the page before it
 * loads: a listener attached after `goto` misses what the page fetched before its load event.
 */
export async function openPage(
  browser: Browser,
  url: string,
  beforeNavigation: (page: Page) => void = () => {},
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  beforeNavigation(page);
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
  });
  await page.goto(url);
  return { page, errors };
}
