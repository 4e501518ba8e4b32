/**
 * WebGPU fault tracking: faults never hang and never pass silently. Error scopes (shader,
 * validation, out of memory) and uncaptured errors are collected and reported by the next
 * download (or `settle`): as a MemoryLimitError when the device ran out of memory, naming the
 * allocation or submission it refused, else as an Error; once the device is lost, every download
 * rejects with a DeviceLostError.
 */
/// <reference types="@webgpu/types" />
import { DeviceLostError, MemoryLimitError } from '../errors.js';

/** one error a scope caught, and whether it was the device running out of memory */
export interface Fault {
  message: string;
  outOfMemory: boolean;
}

export class FaultLog {
  /** resolves when the device is lost (including by dispose) */
  readonly lost: Promise<GPUDeviceLostInfo>;
  /** the error downloads reject with once the device is lost */
  lostError: Error | null = null;
  /** error-scope results not yet reported by a download */
  private pending: Promise<Fault | null>[] = [];
  /** errors reported by the device outside any scope, waiting for the next download */
  private uncaptured: Fault[] = [];

  /** `disposed` tells a loss by dispose from a real one */
  constructor(device: GPUDevice, disposed: () => boolean) {
    this.lost = device.lost.then((info) => {
      this.lostError = disposed()
        ? new Error('WebGPU backend was disposed')
        : new DeviceLostError(`WebGPU device lost (reason: ${info.reason ?? 'unknown'}): ${info.message || 'no message'}`);
      return info;
    });
    device.addEventListener('uncapturederror', (event) => {
      const { error } = event as GPUUncapturedErrorEvent;
      this.uncaptured.push({ message: `WebGPU error: ${error.message}`, outOfMemory: isOutOfMemory(error) });
    });
  }

  /**
   * report the scope's error, if any, at the next download, saying what was being done;
   * `onOutOfMemory` hears of an out-of-memory error first (the allocation marks its buffer unusable)
   */
  track(scope: Promise<GPUError | null>, what: string, onOutOfMemory?: () => void): void {
    this.pending.push(
      scope.then((error) => {
        if (!error) return null;
        const outOfMemory = isOutOfMemory(error);
        if (outOfMemory) onOutOfMemory?.();
        return { message: `WebGPU: ${what}: ${error.message}`, outOfMemory };
      }),
    );
  }

  /** errors of everything submitted so far, in order, then the uncaptured ones */
  async take(): Promise<Fault[]> {
    const checks = this.pending;
    this.pending = [];
    const faults = (await Promise.all(checks)).filter((f): f is Fault => f !== null);
    faults.push(...this.uncaptured.splice(0));
    return faults;
  }

  /** what `take` found, as the error a download rejects with (null: nothing went wrong) */
  static errorOf(faults: Fault[]): Error | null {
    if (faults.length === 0) return null;
    const message = faults.map((f) => f.message).join('\n');
    if (faults.some((f) => f.outOfMemory)) {
      return new MemoryLimitError(
        `${message}\n(the device refused the memory: free some, make the batch smaller, or set memoryLimit below what this GPU holds so it is refused before allocating)`,
      );
    }
    return new Error(message);
  }

  /** `work`, or a rejection with the loss reason if the device is lost first */
  unlessLost<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.lost.then(() => Promise.reject(this.lostError ?? new DeviceLostError('WebGPU device lost')))]);
  }
}

/** GPUOutOfMemoryError, told by its class name (the class is not a global in every runtime) */
function isOutOfMemory(error: GPUError): boolean {
  return error.constructor.name === 'GPUOutOfMemoryError' || /out of memory/i.test(error.message);
}
