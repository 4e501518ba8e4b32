/**
 * Backend selection refuses a backend that cannot hold the model's largest parameter in one buffer
 * before anything is allocated, and 'auto' then moves on to wasm saying why. (The flat parameters
 * as a whole may be stored in several buffers; see test/model/webgpu-split.test.ts.) 'auto' also
 * passes over software adapters: in Node here the only adapter is SwiftShader (vitest.config.ts),
 * which 'auto' refuses with one notice saying so, while backend 'webgpu' by name still runs on it.
 */
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, createBackend } from '../../src/backend/select.js';
import { softwareAdapterReason } from '../../src/backend/webgpu/device.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const probe = await createNodeWebGPU();
const webgpuLimit = probe.backend?.limits.maxTensorLength;
const adapterName = probe.backend?.adapterName;
const softwareOnly = adapterName !== undefined && /swiftshader|llvmpipe|lavapipe/i.test(adapterName);
probe.backend?.dispose();

/** an adapter as far as softwareAdapterReason reads one */
const fakeAdapter = (info: Record<string, string | boolean>, isFallbackAdapter?: boolean) =>
  ({ info, isFallbackAdapter }) as unknown as GPUAdapter;

describe('createBackend options', () => {
  it('an option it does not know is refused by name, with the ones it knows (not silently ignored)', async () => {
    await expect(createBackend('js', { minMacsPerShare: 1 } as never)).rejects.toThrow(
      /^createBackend: unknown option "minMacsPerShare"; known options: requiredBytes, largestTensorLength, onNotice, wasmAssets, wasmThreads, memoryLimit$/,
    );
    await expect(createBackend('js', null as never)).rejects.toThrow(/createBackend: options must be an object, got null/);
    const js = await createBackend('js', { memoryLimit: 1 << 20 });
    expect(js.name).toBe('js');
    js.dispose();
  });
});

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

  it.skipIf(webgpuLimit === undefined || softwareOnly)(
    "'auto' passes over WebGPU when a parameter exceeds its largest buffer, and says so",
    async () => {
      const notices: string[] = [];
      const backend = await createBackend('auto', {
        largestTensorLength: webgpuLimit! + 1,
        onNotice: (m) => notices.push(m),
        wasmThreads: 1,
      });
      expect(backend.name).toBe('wasm');
      expect(notices.join('\n')).toMatch(
        /^using the wasm backend, not webgpu: the webgpu backend holds at most [\d.]+ [GM]iB in one buffer/,
      );
      backend.dispose();
    },
  );
});

describe('software adapters', () => {
  it('are recognised by the fallback flag or by the driver names adapters report, and real GPUs are not', () => {
    // what Dawn over SwiftShader reports in Node here (adapter.info, isFallbackAdapter on info)
    const swiftshader = fakeAdapter({
      vendor: 'google',
      architecture: 'swiftshader',
      device: 'swiftshader-device-subzero-',
      description: 'SwiftShader driver 5.0.0',
      isFallbackAdapter: true,
    });
    expect(softwareAdapterReason(swiftshader)).toMatch(
      /^the WebGPU adapter is SwiftShader \(google \/ swiftshader .*\), a software rasteriser/,
    );
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }))).toMatch(/llvmpipe/);
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'mesa', device: 'lavapipe' }))).toMatch(/lavapipe/);
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' }))).toMatch(/WARP/);
    // the flag alone, with nothing the names catch (older browsers put it on the adapter itself)
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'unknown' }, true))).toMatch(
      /^the WebGPU adapter is a fallback adapter \(unknown\)/,
    );
    expect(
      softwareAdapterReason(fakeAdapter({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' })),
    ).toBeNull();
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'apple', architecture: 'metal-3' }))).toBeNull();
    // 'warp' as a word only: a vendor string that merely contains the letters is not WARP
    expect(softwareAdapterReason(fakeAdapter({ vendor: 'nvidia', description: 'warpdrive 9000' }))).toBeNull();
  });

  it.skipIf(!softwareOnly)(
    "'auto' picks wasm over a software adapter with one notice saying why; 'webgpu' by name still runs on it",
    async () => {
      const notices: string[] = [];
      const auto = await createBackend('auto', { onNotice: (m) => notices.push(m), wasmThreads: 1 });
      expect(auto.name).toBe('wasm');
      auto.dispose();
      expect(notices).toHaveLength(1);
      expect(notices[0]).toMatch(
        /^using the wasm backend, not webgpu: the WebGPU adapter is SwiftShader \(.+\), a software rasteriser on the CPU, slower than wasm on the same CPU \(ask for backend: 'webgpu' to use it anyway\)$/,
      );

      const named = await createBackend('webgpu', { onNotice: (m) => notices.push(m) });
      expect(named.name).toBe('webgpu');
      // it computes: 2 x 3 @ 3 x 2 against a hand-worked product
      const x = named.alloc(6);
      const w = named.alloc(6);
      const y = named.alloc(4);
      named.upload(x, new Float32Array([1, 2, 3, 4, 5, 6]));
      named.upload(w, new Float32Array([1, 0, 0, 1, 1, 1]));
      named.matmulForward(y, x, w, null, 2, 3, 2);
      expect(Array.from(await named.download(y))).toEqual([4, 5, 10, 11]);
      named.dispose();
      expect(notices).toHaveLength(1);
    },
  );
});
