/**
 * A WebGPU backend for Node tests, through the `webgpu` package (Dawn). On machines without a GPU,
 * vitest.config.ts points Dawn at Chromium's SwiftShader (a CPU Vulkan driver): slow, so tests keep
 * shapes small. When no adapter can be had at all, `skipReason` says why.
 */
import { createWebGPUBackend, type WebGPUBackend } from '../../src/backend/webgpu/index.js';

export type NodeWebGPU = { backend: WebGPUBackend; skipReason: null } | { backend: null; skipReason: string };

export async function createNodeWebGPU(): Promise<NodeWebGPU> {
  try {
    return { backend: await createWebGPUBackend(), skipReason: null };
  } catch (error) {
    return { backend: null, skipReason: (error as Error).message };
  }
}
