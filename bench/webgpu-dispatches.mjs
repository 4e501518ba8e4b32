// Compute dispatches per training step and per decoded token on WebGPU, with the fused products
// (the model as it runs) and without them (each fused product replaced by the composition of
// unfused ops that defines it in the contract: the op sequence the model ran before the fusion).
// Dispatch counts depend on the layer count and on which kernel each op takes, not on the speed
// of the device, so this runs on SwiftShader (a few minutes there):
//
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium \
//     node bench/webgpu-dispatches.mjs
//
// Each count is taken on models of 1 and 2 layers with GPT-2 small's head size (HS 64) at a small
// width (C 128, 2 heads, dFF 512, V 512); their difference is one layer, and GPT-2 small's row is
// the 1-layer count plus 11 more layers. At GPT-2 small's width the products take the same
// kernels (tiled; few-rows when decoding one row), so the counts are the same unless a tensor
// exceeds one storage binding (then ops run in pieces: see bench/webgpu-split.mjs). Training runs
// without dropout: with it the residual adds stay separate ops. Needs the built package (npm run build).
import { installNodeWebGPU } from './lib/webgpu-node.mjs';

const B = 2;
const T = 16;
const GPT2_LAYERS = 12;
const base = { vocabSize: 512, maxSeqLen: 2 * T, dModel: 128, nHeads: 2, dFF: 512, seed: 1 };
const FUSED_OPS = ['_matmulGeluForward', '_matmulResidualForward', '_matmulGeluBackward', '_layerNormMatmulForward'];

function tokens(length, seed) {
  const out = new Int32Array(length);
  let s = seed;
  for (let i = 0; i < length; i++) out[i] = ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % base.vocabSize;
  return out;
}

async function count(fused, nLayers) {
  const config = { ...base, nLayers };
  const { createModel, createWebGPUBackend, Trainer } = await import('../dist/index.js');
  const backend = await createWebGPUBackend();
  if (!fused) {
    // the contract's definitions: CheckedBackend composes each fused product of unfused ops
    const checked = Object.getPrototypeOf(Object.getPrototypeOf(backend));
    for (const op of FUSED_OPS) backend[op] = checked[op];
  }
  const model = await createModel(config, { backendInstance: backend });
  const trainer = await Trainer.create(model, { data: tokens(B * T * 8, 7), batchSize: B, seqLen: T, steps: 3, learningRate: 1e-3 });
  await trainer.step();
  let before = backend.dispatches;
  await trainer.step();
  const perStep = backend.dispatches - before;
  trainer.dispose();

  const cache = model.createKVCache(1);
  await model.forwardCached(cache, tokens(8, 3), 8);
  const steps = 4;
  before = backend.dispatches;
  for (let i = 0; i < steps; i++) await model.forwardCached(cache, Int32Array.of(i + 1), 1);
  const perToken = (backend.dispatches - before) / steps;
  cache.dispose();
  const adapter = backend.adapterName;
  model.dispose();
  return { perStep, perToken, adapter };
}

installNodeWebGPU();
const rows = [];
let adapter = '';
for (const fused of [false, true]) {
  const [one, two] = [await count(fused, 1), await count(fused, 2)];
  adapter = one.adapter;
  const layer = { perStep: two.perStep - one.perStep, perToken: two.perToken - one.perToken };
  const gpt2 = { perStep: one.perStep + (GPT2_LAYERS - 1) * layer.perStep, perToken: one.perToken + (GPT2_LAYERS - 1) * layer.perToken };
  rows.push({ fused, layer, gpt2, rest: { perStep: one.perStep - layer.perStep, perToken: one.perToken - layer.perToken } });
}
console.log(`Training batch ${B} x ${T} (no dropout), decoding one row after an 8-token prompt; on ${adapter}\n`);
console.log('| | per layer | outside the layers | GPT-2 small (12 layers) |');
console.log('|---|---|---|---|');
for (const what of ['perStep', 'perToken']) {
  for (const { fused, layer, gpt2, rest } of rows) {
    const label = `${what === 'perStep' ? 'training step (forward, backward, AdamW)' : 'decoded token (logits read back)'}, ${fused ? 'fused' : 'unfused'}`;
    console.log(`| ${label} | ${layer[what]} | ${rest[what]} | ${gpt2[what]} |`);
  }
}
