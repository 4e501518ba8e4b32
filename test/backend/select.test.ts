/**
 * Backend selection refuses a backend that cannot hold the model's largest tensor (the flat
 * parameters) before anything is allocated, and 'auto' then moves on to wasm saying why: an
 * adapter whose largest buffer is smaller than GPT-2's 497 MB of parameters, say.
 */
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, createBackend } from '../../src/backend/select.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const probe = await createNodeWebGPU();
const webgpuLimit = probe.backend?.limits.maxTensorLength;
probe.backend?.dispose();

describe('backend selection by tensor size', () => {
  it('a named backend whose largest tensor is too small is refused, with both sizes', async () => {
    const js = await createBackend('js');
    const tooLarge = js.limits.maxTensorLength + 1;
    js.dispose();
    const error = await createBackend('js', { largestTensorLength: tooLarge }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toMatch(/the js backend holds at most 8\.0 GiB in one tensor, but this model's flat parameters take 8\.0 GiB/);
  });

  it.skipIf(webgpuLimit === undefined)("'auto' passes over WebGPU when the parameters exceed its largest buffer, and says so", async () => {
    const notices: string[] = [];
    const backend = await createBackend('auto', { largestTensorLength: webgpuLimit! + 1, onNotice: (m) => notices.push(m), wasmThreads: 1 });
    expect(backend.name).toBe('wasm');
    expect(notices.join('\n')).toMatch(/using the wasm backend \(webgpu unavailable: the webgpu backend holds at most [\d.]+ [GM]iB in one tensor/);
    backend.dispose();
  });
});
