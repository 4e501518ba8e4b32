// The model shapes and the option parsing that the WebGPU profiling benches share
// (bench/webgpu-profile.mjs, bench/webgpu-host.mjs).

/** C: GPT-2 small's shape; B: the wasm benches' config B; S: a small model to check a harness on SwiftShader */
export const WEBGPU_CONFIGS = {
  C: { vocabSize: 50257, maxSeqLen: 1024, dModel: 768, nLayers: 12, nHeads: 12, dFF: 3072 },
  B: { vocabSize: 256, maxSeqLen: 1024, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
  S: { vocabSize: 512, maxSeqLen: 128, dModel: 64, nLayers: 2, nHeads: 1, dFF: 256 },
};

/** the value after `--name` on the command line, else `fallback` */
export function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** `--config` (default C): its name and shape */
export function configOption() {
  const configName = option('config', 'C');
  const config = WEBGPU_CONFIGS[configName];
  if (!config) throw new Error(`--config: unknown config ${configName}; choose from ${Object.keys(WEBGPU_CONFIGS).join(', ')}`);
  return { configName, config };
}
