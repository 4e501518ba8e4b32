import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * WebGPU tests in Node use Dawn (the `webgpu` package), which needs a Vulkan driver. Without a system
 * one, Chromium's bundled SwiftShader serves; its loader must be on LD_LIBRARY_PATH before the
 * worker process starts (dlopen reads it once), so it goes into the workers' environment here.
 */
function webgpuEnv(): Record<string, string> {
  const icd = '/usr/lib/chromium/vk_swiftshader_icd.json';
  const systemIcds = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some((dir) => existsSync(dir) && readdirSync(dir).length > 0);
  if (process.env.VK_ICD_FILENAMES || systemIcds || !existsSync(icd)) return {};
  const libraryPath = ['/usr/lib/chromium', process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return { VK_ICD_FILENAMES: icd, LD_LIBRARY_PATH: libraryPath };
}

/** the sources read the package version from this constant, as the build puts it in (src/version.ts) */
const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  define: { __TINYGPT_VERSION__: JSON.stringify(version) },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    env: webgpuEnv(),
  },
});
