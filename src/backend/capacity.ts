/**
 * How much a backend may still hold: its own bound (wasm32's 4 GiB, the js backend's 4 GiB) or the
 * memoryLimit option, whichever is lower, so the model's and the trainer's up-front checks and
 * every alloc refuse against the same number and say which bound it was.
 */
import type { Backend } from './contract.js';

export interface Capacity {
  /** the most bytes the backend may hold */
  limitBytes: number;
  /** what sets it, for messages: "its memoryLimit" or "the backend's own bound" */
  bound: string;
}

export function capacityOf(backend: Pick<Backend, 'limits' | 'memoryLimit'>): Capacity {
  const own = backend.limits.maxTotalBytes;
  const set = backend.memoryLimit ?? Infinity;
  return set < own ? { limitBytes: set, bound: `memoryLimit = ${set} bytes` } : { limitBytes: own, bound: formatBytes(own) };
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
