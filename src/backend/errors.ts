import { describe } from '../util/describe.js';

/** The GPU device a backend ran on is gone (driver reset, removal, or destroy): its tensors are lost with it. */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
}

/** What a refused allocation asked for, against what the backend holds and may hold. */
export interface MemoryLimitDetails {
  /** bytes the refused allocation (or batch, or model) needs beyond what is in use */
  requestedBytes: number;
  /** bytes the backend held when it was refused */
  bytesInUse: number;
  /** the most the backend may hold: the memoryLimit option, or the backend's own bound */
  limitBytes: number;
}

/**
 * An allocation, batch or model that does not fit: past the `memoryLimit` option, past a backend's
 * own bound (wasm32's 4 GiB) or refused by the device (WebGPU out of memory). Nothing it would have
 * made is kept, and the model that asked stays usable. A RangeError, as any out-of-range argument.
 */
export class MemoryLimitError extends RangeError {
  override name = 'MemoryLimitError';
  /** absent when the bound was met inside the runtime (a wasm memory that would not grow, a GPU out of memory) */
  readonly requestedBytes?: number;
  readonly bytesInUse?: number;
  readonly limitBytes?: number;

  constructor(message: string, details?: MemoryLimitDetails, options?: ErrorOptions) {
    super(message, options);
    if (details !== undefined) {
      this.requestedBytes = details.requestedBytes;
      this.bytesInUse = details.bytesInUse;
      this.limitBytes = details.limitBytes;
    }
  }
}

/** the memoryLimit option, checked: a positive integer number of bytes, or Infinity for none */
export function checkMemoryLimit(value: unknown, field: string): number {
  const allowed = 'a positive integer number of bytes (or Infinity for none)';
  if (typeof value !== 'number') throw new TypeError(`${field} must be ${allowed}, got ${describe(value)}`);
  if (value !== Infinity && !(Number.isSafeInteger(value) && value > 0)) {
    throw new RangeError(`${field} must be ${allowed}, got ${value}`);
  }
  return value;
}
