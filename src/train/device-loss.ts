/**
 * Telling a lost GPU device apart from every other failure, for train()'s onDeviceLost: 'wasm'.
 * Only a backend with a `lost` promise (WebGPUBackend) can lose its device; a failure counts as the
 * loss only when that promise has resolved and the error is a DeviceLostError, so a
 * validation error, a NaN or a failing onCheckpoint callback is never taken for one.
 */
import type { Backend, BackendName } from '../backend/contract.js';
import { DeviceLostError } from '../backend/errors.js';

/** What train() reports when it moved the model to another backend to go on. */
export interface BackendChange {
  from: BackendName;
  to: BackendName;
  /** why: the device-lost error */
  reason: string;
  /** steps done in the state training went on from; the steps after it were redone on `to` */
  resumedFromStep: number;
  /** that state as checkpoint bytes (the same format as onCheckpoint's) */
  checkpoint: Uint8Array;
}

export class DeviceLossWatch {
  /** whether this backend can lose a device at all (CPU backends cannot) */
  readonly canLose: boolean;
  private lost = false;

  constructor(backend: Backend) {
    const lost = (backend as { lost?: PromiseLike<unknown> }).lost;
    this.canLose = typeof lost?.then === 'function';
    if (lost && this.canLose) {
      lost.then(
        () => {
          this.lost = true;
        },
        () => {},
      );
    }
  }

  /** the device's own words: without the advice the model adds (which train() has just followed) */
  static reason(err: Error): string {
    return err.cause instanceof DeviceLostError ? err.cause.message : err.message;
  }

  /** whether `err` is the loss of the device */
  async explains(err: unknown): Promise<boolean> {
    if (!this.canLose || !(err instanceof DeviceLostError)) return false;
    // downloads reject only after `lost` resolved, but in a reaction of their own that may run
    // before ours: one macrotask lets every pending reaction run
    await new Promise((resolve) => setTimeout(resolve, 0));
    return this.lost;
  }
}
