/**
 * A tiny static file server for browser tests and examples: serves a directory (the repo root by
 * default) on 127.0.0.1 at a random port. 127.0.0.1 is a secure context, so pages get WebGPU and
 * `crypto.subtle`; `crossOriginIsolated` adds COOP/COEP so pages may use SharedArrayBuffer.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const MIME_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

export interface StaticServerOptions {
  /** directory to serve (default: the repository root) */
  root?: string;
  /** send Cross-Origin-Opener-Policy/Embedder-Policy so pages are cross-origin isolated (default false) */
  crossOriginIsolated?: boolean;
  /** extra routes answered before files: path (e.g. '/fixture.bin') to body */
  routes?: Record<string, { body: Uint8Array | string; type: string }>;
}

export interface StaticServer {
  /** e.g. http://127.0.0.1:43121 (no trailing slash) */
  readonly origin: string;
  readonly port: number;
  close(): Promise<void>;
}

export function mimeTypeOf(path: string): string {
  return MIME_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

export async function startStaticServer(options: StaticServerOptions = {}): Promise<StaticServer> {
  const root = resolve(options.root ?? REPO_ROOT);
  const routes = options.routes ?? {};
  const isolationHeaders: Record<string, string> = options.crossOriginIsolated
    ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }
    : {};

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const headers = { 'Cache-Control': 'no-store', ...isolationHeaders };
    const rawPath = new URL(req.url ?? '/', 'http://localhost').pathname;
    let pathname: string;
    try {
      pathname = decodeURIComponent(rawPath);
    } catch {
      res.writeHead(400, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`malformed path: ${rawPath}`);
      return;
    }
    const route = routes[pathname];
    if (route) {
      res.writeHead(200, { ...headers, 'Content-Type': route.type });
      res.end(req.method === 'HEAD' ? undefined : route.body);
      return;
    }
    let file = join(root, pathname);
    // refuse anything that resolves outside the served directory (../ in the path)
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403, headers).end('forbidden');
      return;
    }
    let info = await stat(file).catch(() => null);
    if (info?.isDirectory()) {
      file = join(file, 'index.html');
      info = await stat(file).catch(() => null);
    }
    if (!info?.isFile()) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${pathname}`);
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': mimeTypeOf(file), 'Content-Length': info.size });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file).pipe(res);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(String(err.message));
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}
