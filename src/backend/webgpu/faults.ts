/**
 * WebGPU fault tracking: faults never hang and never pass silently. Error scopes (shader,
 * validation, out of memory) and uncaptured errors are collected and reported by the next
 * download; once the device is lost, every download rejects with a DeviceLostError.
 */
/// <reference types="@webgpu/types" />
import { DeviceLostError } from '../errors.js';

export class FaultLog {
  /** resolves when the device is lost (including by dispose) */
  readonly lost: Promise<GPUDeviceLostInfo>;
  /** the error downloads reject with once the device is lost */
  lostError: Error | null = null;
  /** error-scope results not yet reported by a download */
  private pending: Promise<string | null>[] = [];
  /** errors reported by the device outside any scope, waiting for the next download */
  private uncaptured: string[] = [];

  /** `disposed` tells a loss by dispose from a real one */
  constructor(device: GPUDevice, disposed: () => boolean) {
    this.lost = device.lost.then((info) => {
      this.lostError = disposed()
        ? new Error('WebGPU backend was disposed')
        : new DeviceLostError(`WebGPU device lost (reason: ${info.reason ?? 'unknown'}): ${info.message || 'no message'}`);
      return info;
    });
    device.addEventListener('uncapturederror', (event) => {
      this.uncaptured.push(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
    });
  }

  /** report the scope's error, if any, at the next download, saying what was being done */
  track(scope: Promise<GPUError | null>, what: string): void {
    this.pending.push(scope.then((error) => (error ? `WebGPU: ${what}: ${error.message}` : null)));
  }

  /** error messages of everything submitted so far, in order, then the uncaptured ones */
  async take(): Promise<string[]> {
    const checks = this.pending;
    this.pending = [];
    const messages = (await Promise.all(checks)).filter((m): m is string => m !== null);
    messages.push(...this.uncaptured.splice(0));
    return messages;
  }

  /** `work`, or a rejection with the loss reason if the device is lost first */
  unlessLost<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.lost.then(() => Promise.reject(this.lostError ?? new DeviceLostError('WebGPU device lost')))]);
  }
}
