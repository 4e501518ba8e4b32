/**
 * Where the wasm backend may run threads, and how many it may ask for. The pool itself
 * (thread-pool.ts) is imported only when a backend starts threads, so a page that runs one thread
 * (a page's main thread, an edge runtime) does not carry it.
 */
import { hardwareThreads, isNode } from '../../host/node.js';

/** the most threads a backend may be asked for */
export const MAX_THREADS = 64;

export type ThreadSupport = { ok: true; cores: number } | { ok: false; reason: string; silent: boolean };

/** Whether this thread may block in Atomics.wait (a browser page's main thread may not). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the runtime allows threads: Node (worker_threads), or a Web Worker that is cross-origin
 * isolated. Edge runtimes have no workers: they get one thread silently.
 */
export async function threadSupport(): Promise<ThreadSupport> {
  if (isNode()) {
    if (typeof SharedArrayBuffer !== 'function')
      return { ok: false, reason: 'SharedArrayBuffer is unavailable in this Node process', silent: false };
    return { ok: true, cores: await hardwareThreads() };
  }
  const scope = globalThis as { Worker?: unknown; crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
  if (typeof scope.Worker !== 'function') return { ok: false, reason: 'this runtime has no workers', silent: true };
  if (scope.crossOriginIsolated !== true || typeof SharedArrayBuffer !== 'function') {
    return {
      ok: false,
      reason:
        'the page is not cross-origin isolated, so there is no shared memory (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)',
      silent: false,
    };
  }
  if (!canBlock()) {
    return {
      ok: false,
      reason: "a browser page's main thread may not block on Atomics.wait; create the model inside a Web Worker to use threads there",
      silent: false,
    };
  }
  return { ok: true, cores: scope.navigator?.hardwareConcurrency ?? 1 };
}
