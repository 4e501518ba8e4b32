/**
 * The static server the browser tests and examples are served from: MIME types browsers insist on
 * (application/wasm for instantiateStreaming, JavaScript for module scripts), directory index,
 * cross-origin isolation headers on request, extra routes, and no way out of the served folder.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startStaticServer, type StaticServer } from '../helpers/static-server.js';

/** a raw GET that keeps the path exactly as written (fetch would normalise ../ away) */
function rawGet(origin: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('static server', () => {
  let root: string;
  let outside: string;
  let plain: StaticServer;
  let isolated: StaticServer;

  beforeAll(async () => {
    const base = mkdtempSync(join(tmpdir(), 'tinygpt-static-'));
    root = join(base, 'site');
    outside = join(base, 'secret.txt');
    mkdirSync(join(root, 'dist'), { recursive: true });
    mkdirSync(join(root, 'page'));
    writeFileSync(join(root, 'dist', 'tinygpt.wasm'), new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    writeFileSync(join(root, 'dist', 'index.js'), 'export const x = 1;\n');
    writeFileSync(join(root, 'page', 'index.html'), '<!doctype html><title>page</title>');
    writeFileSync(outside, 'not for the web');
    plain = await startStaticServer({
      root,
      routes: { '/generated.bin': { body: new Uint8Array([1, 2, 3]), type: 'application/octet-stream' } },
    });
    isolated = await startStaticServer({ root, crossOriginIsolated: true });
  });

  afterAll(async () => {
    await plain?.close();
    await isolated?.close();
    rmSync(join(root, '..'), { recursive: true, force: true });
  });

  test('listens on 127.0.0.1 at a port of its own', () => {
    expect(plain.origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(plain.port).toBeGreaterThan(0);
    expect(isolated.port).not.toBe(plain.port);
  });

  test('serves .wasm as application/wasm and .js as JavaScript, byte for byte', async () => {
    const wasm = await fetch(`${plain.origin}/dist/tinygpt.wasm`);
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect([...new Uint8Array(await wasm.arrayBuffer())]).toEqual([0, 97, 115, 109, 1, 0, 0, 0]);
    const js = await fetch(`${plain.origin}/dist/index.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toBe('export const x = 1;\n');
  });

  test('a folder serves its index.html; a missing file is a 404 naming the path', async () => {
    const page = await fetch(`${plain.origin}/page/`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('<title>page</title>');
    const missing = await fetch(`${plain.origin}/dist/nope.js`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('not found: /dist/nope.js');
  });

  test('extra routes answer before files', async () => {
    const generated = await fetch(`${plain.origin}/generated.bin`);
    expect(generated.headers.get('content-type')).toBe('application/octet-stream');
    expect([...new Uint8Array(await generated.arrayBuffer())]).toEqual([1, 2, 3]);
  });

  test('cross-origin isolation headers only when asked for', async () => {
    const isolatedPage = await fetch(`${isolated.origin}/page/`);
    expect(isolatedPage.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(isolatedPage.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    const plainPage = await fetch(`${plain.origin}/page/`);
    expect(plainPage.headers.get('cross-origin-opener-policy')).toBeNull();
  });

  test('paths that climb out of the served folder never reach a file outside it', async () => {
    // URL parsing folds plain and %2e-encoded dot segments back inside the root (a 404 there) ...
    for (const path of ['/../secret.txt', '/dist/../../secret.txt', '/%2e%2e/secret.txt']) {
      const response = await rawGet(plain.origin, path);
      expect(response.status, path).toBe(404);
      expect(response.body).not.toContain('not for the web');
    }
    // ... but an encoded slash only becomes a separator after decoding: refused outright
    const encodedSlashes = await rawGet(plain.origin, '/dist/..%2f..%2fsecret.txt');
    expect(encodedSlashes.status).toBe(403);
    expect(encodedSlashes.body).not.toContain('not for the web');
  });

  test('a path that is not valid percent-encoding is a 400', async () => {
    const response = await rawGet(plain.origin, '/dist/%E0%A4%A');
    expect(response.status).toBe(400);
    expect(response.body).toBe('malformed path: /dist/%E0%A4%A');
  });
});
