// WebGPU in Node for the benches: Dawn through the `webgpu` package, installed as navigator.gpu so
// that tinygpt's WebGPU backend and @tensorflow/tfjs-backend-webgpu open the same kind of adapter.
// Without a GPU, Dawn needs a Vulkan driver: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
// LD_LIBRARY_PATH=/usr/lib/chromium (SwiftShader: for correctness only, far too slow to time).
import { create, globals } from 'webgpu';

/** held for the process's lifetime: Dawn aborts if its GPU object is collected while devices live */
let gpu = null;

/** navigator.gpu and the GPU* globals (GPUBufferUsage, ...) that browser code expects */
export function installNodeWebGPU() {
  if (gpu) return gpu;
  gpu = create([]);
  Object.assign(globalThis, globals);
  // Node 20 has no navigator; Node 21+ has one whose properties are getters
  if (globalThis.navigator) Object.defineProperty(globalThis.navigator, 'gpu', { value: gpu, configurable: true });
  else globalThis.navigator = { gpu };
  return gpu;
}

/** the adapter's vendor / architecture / device / description, as tinygpt's backend names it */
export function describeAdapter(adapter) {
  const info = adapter.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((part) => part);
  return parts.length > 0 ? parts.join(' / ') : 'unknown adapter';
}

/**
 * TensorFlow.js on tfjs-backend-webgpu. The union package's Node bundle carries the gradient
 * registrations; the backend registers itself only if navigator.gpu exists when it is first
 * imported, so it is imported after installNodeWebGPU.
 * @returns {Promise<{ tf: any, adapterName: string }>}
 */
export async function startTfjsWebGPU() {
  installNodeWebGPU();
  const { default: tf } = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  const ok = await tf.setBackend('webgpu');
  if (!ok || tf.getBackend() !== 'webgpu') throw new Error(`tfjs-backend-webgpu did not start (backend is ${tf.getBackend()})`);
  await tf.ready();
  const info = tf.backend().adapterInfo ?? {};
  return { tf, adapterName: [info.vendor, info.architecture].filter((part) => part).join(' / ') || 'unknown adapter' };
}
