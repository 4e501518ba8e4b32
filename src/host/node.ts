/**
 * Everything tinygpt takes from Node, in one module. The browser build (tsup.config.ts) puts
 * browser.ts in its place, which has none of it, so a web app's bundle holds no `node:` import. Each
 * import is dynamic, so Node code that never reads a file or starts a thread never loads the module.
 * Callers check that they run in Node (isNode) before calling anything here.
 */
import type { MessagePort, Worker } from 'node:worker_threads';

export function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === 'string';
}

/** the bytes of a file, named by path or file: URL */
export async function readFileBytes(location: string | URL): Promise<Uint8Array<ArrayBuffer>> {
  const { readFile } = await import('node:fs/promises');
  const buffer = await readFile(location);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** node:fs/promises itself, for the atomic file writes (io/files.ts) */
export async function fileSystem(): Promise<typeof import('node:fs/promises')> {
  return import('node:fs/promises');
}

/** node:fs's synchronous existence and directory checks (the Vulkan loader look-up) */
export async function syncFileSystem(): Promise<Pick<typeof import('node:fs'), 'existsSync' | 'readdirSync' | 'readFileSync'>> {
  return import('node:fs');
}

/** hardware threads this process may use */
export async function hardwareThreads(): Promise<number> {
  const os = await import('node:os');
  return os.availableParallelism();
}

/**
 * A worker_threads Worker running the module at `url`. A small CommonJS prelude hands the module its
 * parentPort as `globalThis.tinygptParentPort`, so the worker script itself imports nothing and
 * runs unchanged as a Web Worker (where bundlers copy it as a file).
 */
export async function startWorkerThread(url: URL): Promise<Worker> {
  const { Worker } = await import('node:worker_threads');
  const prelude = `globalThis.tinygptParentPort = require('node:worker_threads').parentPort; import(${JSON.stringify(url.href)});`;
  return new Worker(prelude, { eval: true });
}

/** this worker_threads Worker's port to its parent (null on the main thread) */
export async function workerParentPort(): Promise<MessagePort | null> {
  const { parentPort } = await import('node:worker_threads');
  return parentPort;
}

/** an optional package that only Node installs (the `webgpu` package: Dawn) */
export async function importOptional(specifier: string): Promise<unknown> {
  // a variable specifier keeps bundlers from resolving it
  return import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
}
