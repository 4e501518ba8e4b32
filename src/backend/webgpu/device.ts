/**
 * Getting a GPUDevice: navigator.gpu in browsers and workers; in Node, where there is no
 * navigator.gpu, the optional `webgpu` package (Dawn) when it is installed. Every failure says why.
 */
/// <reference types="@webgpu/types" />
import { importOptional, isNode, syncFileSystem } from '../../host/node.js';

declare global {
  // The WebGPU objects this package's public declarations name, declared empty: they merge with the
  // full declarations where a consumer has them (@webgpu/types, a DOM lib with WebGPU) and are
  // opaque where it has not, so the package's types check under skipLibCheck: false either way.
  /* eslint-disable @typescript-eslint/no-empty-object-type */
  interface GPU {}
  interface GPUAdapter {}
  interface GPUBuffer {}
  interface GPUDevice {}
  interface GPUDeviceLostInfo {}
  /* eslint-enable @typescript-eslint/no-empty-object-type */
}

export interface WebGPUOptions {
  /** a GPU object to use instead of navigator.gpu (or the `webgpu` package in Node) */
  gpu?: GPU;
  /** an adapter to use instead of requesting one */
  adapter?: GPUAdapter;
  /** WebGPU's GPUPowerPreference, spelled out so the declarations need no WebGPU types */
  powerPreference?: 'low-power' | 'high-performance';
}

export interface AcquiredDevice {
  adapter: GPUAdapter;
  device: GPUDevice;
  /** a human-readable adapter name from adapter.info */
  adapterName: string;
}

/** the limits our kernels and large tensors benefit from; each is requested at the adapter's value */
const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** what the kernels need at least (the WebGPU defaults, checked in case an adapter offers less) */
const REQUIRED_LIMITS: Partial<Record<(typeof REQUESTED_LIMITS)[number], number>> = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxStorageBuffersPerShaderStage: 8,
};

/** An adapter from `opts.gpu`, navigator.gpu or Dawn; rejects, saying why and what to try in this runtime, when there is none. */
export async function requestAdapter(opts: WebGPUOptions = {}): Promise<GPUAdapter> {
  if (opts.adapter) return opts.adapter;
  const gpu = opts.gpu ?? (await findGpu());
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
  if (adapter === null) throw new Error(`WebGPU: requestAdapter() found no adapter (${noAdapterAdvice()})`);
  return adapter;
}

/** what to try when no adapter exists, for the runtime at hand: Dawn's Vulkan driver in Node, browser flags elsewhere */
function noAdapterAdvice(): string {
  if (isNode()) {
    return (
      'no usable GPU or driver; in Node on Linux, Dawn needs a Vulkan driver: install the one for your GPU, or for a slow ' +
      'software one, VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium'
    );
  }
  return 'the browser offers no GPU here: it may have WebGPU turned off for this GPU or driver (in Chromium on Linux, see chrome://gpu)';
}

/**
 * Names of software rasterisers, as adapters report them in vendor, architecture, device or
 * description: they run WebGPU on the CPU, far slower than tinygpt's wasm kernels on the same CPU.
 */
const SOFTWARE_ADAPTERS: readonly [RegExp, string][] = [
  [/swiftshader/i, 'SwiftShader'],
  [/llvmpipe/i, 'llvmpipe'],
  [/lavapipe/i, 'lavapipe'],
  [/softpipe/i, 'softpipe'],
  [/microsoft basic render/i, 'Microsoft Basic Render Driver (WARP)'],
  [/\bwarp\b/i, 'WARP'],
];

/**
 * Why `adapter` is a fallback or software adapter (a CPU rasteriser), or null when it looks like a
 * real GPU. `isFallbackAdapter` (on the adapter in older browsers, on adapter.info in newer ones) is
 * what the browser says; the names catch software drivers it does not flag.
 */
export function softwareAdapterReason(adapter: GPUAdapter): string | null {
  const info = (adapter as { info?: Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> }).info;
  const flagged =
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  const text = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ');
  const named = SOFTWARE_ADAPTERS.find(([pattern]) => pattern.test(text))?.[1];
  if (named !== undefined) return `the WebGPU adapter is ${named} (${describeAdapter(adapter)}), a software rasteriser on the CPU`;
  if (flagged) return `the WebGPU adapter is a fallback adapter (${describeAdapter(adapter)}), which may run on the CPU`;
  return null;
}

export async function acquireDevice(opts: WebGPUOptions = {}): Promise<AcquiredDevice> {
  const adapter = await requestAdapter(opts);
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) {
    const offered = adapter.limits[name];
    const needed = REQUIRED_LIMITS[name];
    if (needed !== undefined && offered < needed) {
      throw new Error(`WebGPU: adapter limit ${name} is ${offered}, the kernels need at least ${needed}`);
    }
    requiredLimits[name] = offered;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits });
  } catch (error) {
    throw new Error(`WebGPU: requestDevice failed: ${(error as Error).message}`, { cause: error });
  }
  return { adapter, device, adapterName: describeAdapter(adapter) };
}

export function describeAdapter(adapter: GPUAdapter): string {
  // adapter.info is newer than some type packages (and browsers); read it defensively
  const info = (adapter as { info?: Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> }).info;
  const parts = [info?.vendor, info?.architecture, info?.device, info?.description].filter((part) => part);
  return parts.length > 0 ? parts.join(' / ') : 'unknown adapter';
}

/**
 * Dawn's GPU object for this process. Held for the process's lifetime: if it is garbage-collected
 * while its devices live, Dawn aborts the process.
 */
let nodeGpu: GPU | null = null;

async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (!isNode()) {
    throw new Error('WebGPU: navigator.gpu is missing (this runtime has no WebGPU, or the page is not a secure context)');
  }
  const missingLoader = await missingVulkanLoader();
  if (missingLoader) throw new Error(missingLoader);
  let dawn: { create(options: string[]): GPU };
  try {
    dawn = (await importOptional('webgpu')) as typeof dawn;
  } catch (error) {
    throw new Error(
      `WebGPU: Node has no navigator.gpu and the optional package 'webgpu' could not be loaded (${(error as Error).message}); install it with npm install webgpu`,
      { cause: error },
    );
  }
  nodeGpu ??= dawn.create([]);
  return nodeGpu;
}

/**
 * Dawn on Linux drives the GPU through Vulkan and, without the loader library, prints a warning on
 * stderr before finding no adapter. Looking for libvulkan.so.1 first turns that into a plain reason,
 * so 'auto' falls back to wasm quietly. The search follows the dynamic linker's usual places.
 */
async function missingVulkanLoader(): Promise<string | null> {
  // read off globalThis: a bare `process` in the browser build makes Parcel demand a polyfill
  const { platform, env, arch } = (globalThis as { process: NodeJS.Process }).process;
  if (platform !== 'linux') return null;
  const fs = await syncFileSystem();
  const dirs = (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d.length > 0);
  try {
    for (const conf of fs.readdirSync('/etc/ld.so.conf.d')) {
      if (!conf.endsWith('.conf')) continue;
      for (const line of fs.readFileSync(`/etc/ld.so.conf.d/${conf}`, 'utf8').split('\n')) {
        if (line.startsWith('/')) dirs.push(line.trim());
      }
    }
  } catch {
    // no ld.so.conf.d: the standard directories below still apply
  }
  dirs.push('/lib', '/usr/lib', '/lib64', '/usr/lib64', '/usr/local/lib', `/usr/lib/${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`);
  if (dirs.some((d) => fs.existsSync(`${d}/libvulkan.so.1`))) return null;
  return 'WebGPU: no Vulkan loader (libvulkan.so.1) on this Linux machine, so Dawn can find no GPU (install libvulkan1 and a Vulkan driver)';
}
