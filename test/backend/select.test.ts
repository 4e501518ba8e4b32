/**
 * Backend selection refuses a backend that cannot hold the model's largest parameter in one buffer
 * before anything is allocated, and 'auto' then moves on to wasm saying why. (The flat parameters
 * as a whole may be stored in several buffers; see test/model/webgpu-split.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, createBackend } from '../../src/backend/select.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const probe = await createNodeWebGPU();
const webgpuLimit = probe.backend?.limits.maxTensorLength;
probe.backend?.dispose();

describe('backend selection by tensor size', () => {
  it('a named backend whose largest buffer is too small for the largest parameter is refused, with both sizes', async () => {
    const js = await createBackend('js');
    const tooLarge = js.limits.maxTensorLength + 1;
    js.dispose();
    const error = await createBackend('js', { largestTensorLength: tooLarge }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toMatch(
      /the js backend holds at most 8\.0 GiB in one buffer, but this model's largest parameter takes 8\.0 GiB/,
    );
  });

  it.skipIf(webgpuLimit === undefined)("'auto' passes over WebGPU when a parameter exceeds its largest buffer, and says so", async () => {
    const notices: string[] = [];
    const backend = await createBackend('auto', {
      largestTensorLength: webgpuLimit! + 1,
      onNotice: (m) => notices.push(m),
      wasmThreads: 1,
    });
    expect(backend.name).toBe('wasm');
    expect(notices.join('\n')).toMatch(
      /using the wasm backend \(webgpu unavailable: the webgpu backend holds at most [\d.]+ [GM]iB in one buffer/,
    );
    backend.dispose();
  });
});
