// Compute dispatches per training step and per decoded token on WebGPU, with the fused products
// (the model as it runs) and without them (each fused product replaced by the composition of
// unfused ops that defines it in the contract: the op sequence the model ran before the fusion).
// Dispatch counts depend on the layer count and on which kernel each op takes, not on the speed
// of the device, so this runs on SwiftShader (a few minutes there):
//
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium \
//     node bench/webgpu-dispatches.mjs [--decode]
//
// Decoding is counted with the logits read back per token (sampled on the CPU) and with the token
// chosen on the GPU (sampleTokens), with the bytes each reads back per token.
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
// --decode: decoding only, the model as it runs (the training and unfused counts take minutes on SwiftShader)
const DECODE_ONLY = process.argv.includes('--decode');
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
  let perStep = NaN;
  if (!DECODE_ONLY) {
    const trainer = await Trainer.create(model, { data: tokens(B * T * 8, 7), batchSize: B, seqLen: T, steps: 3, learningRate: 1e-3 });
    await trainer.step();
    const before = backend.dispatches;
    await trainer.step();
    perStep = backend.dispatches - before;
    trainer.dispose();
  }

  // decoding: logits [1, V] read back per token (forwardCached, what generation does for plans that
  // need them on the host), or the token chosen on the GPU and its id read back (forwardCachedTokens)
  let readBytes = 0;
  const download = backend.download.bind(backend);
  backend.download = async (t) => {
    readBytes += t.length * 4;
    return download(t);
  };
  const decode = async (step) => {
    const cache = model.createKVCache(1);
    await model.forwardCached(cache, tokens(8, 3), 8);
    const steps = 4;
    const [dispatches, bytes] = [backend.dispatches, readBytes];
    for (let i = 0; i < steps; i++) await step(cache, Int32Array.of(i + 1));
    cache.dispose();
    return { perToken: (backend.dispatches - dispatches) / steps, bytesPerToken: (readBytes - bytes) / steps };
  };
  const logits = await decode((cache, ids) => model.forwardCached(cache, ids, 1));
  const sampling = { greedy: false, temperature: 0.8, topK: 40, topP: 0.9, minP: 0, allowed: base.vocabSize };
  const chosen = await decode((cache, ids) => model.forwardCachedTokens(cache, ids, 1, { sampling, uniforms: [0.5] }));
  const perToken = logits.perToken;
  const adapter = backend.adapterName;
  model.dispose();
  return { perStep, perToken, adapter, logits, chosen };
}

installNodeWebGPU();
const rows = [];
let adapter = '';
const decodeRows = {};
for (const fused of DECODE_ONLY ? [true] : [false, true]) {
  const [one, two] = [await count(fused, 1), await count(fused, 2)];
  if (fused) Object.assign(decodeRows, { 1: one, 2: two });
  adapter = one.adapter;
  const layer = { perStep: two.perStep - one.perStep, perToken: two.perToken - one.perToken };
  const gpt2 = { perStep: one.perStep + (GPT2_LAYERS - 1) * layer.perStep, perToken: one.perToken + (GPT2_LAYERS - 1) * layer.perToken };
  rows.push({ fused, layer, gpt2, rest: { perStep: one.perStep - layer.perStep, perToken: one.perToken - layer.perToken } });
}
console.log(`Training batch ${B} x ${T} (no dropout), decoding one row after an 8-token prompt; on ${adapter}\n`);
console.log('| | per layer | outside the layers | GPT-2 small (12 layers) |');
console.log('|---|---|---|---|');
for (const what of DECODE_ONLY ? ['perToken'] : ['perStep', 'perToken']) {
  for (const { fused, layer, gpt2, rest } of rows) {
    const label = `${what === 'perStep' ? 'training step (forward, backward, AdamW)' : 'decoded token (logits read back)'}, ${fused ? 'fused' : 'unfused'}`;
    console.log(`| ${label} | ${layer[what]} | ${rest[what]} | ${gpt2[what]} |`);
  }
}
// sampling on the GPU adds one dispatch per token whatever the strategy (sampleTokens is one kernel)
// and takes the logits off the readback: a token then reads back its id instead of V floats
const GPT2_VOCAB = 50257;
const [one, two] = [decodeRows[1], decodeRows[2]];
console.log(`\nDecoding (fused) on ${adapter}: dispatches and bytes read back per token, V = ${base.vocabSize} here\n`);
console.log(
  '| decoded token | dispatches per layer | outside the layers | GPT-2 small (12 layers) | bytes read back | at GPT-2 small (V 50257) |',
);
console.log('|---|---|---|---|---|---|');
for (const [label, key] of [
  ['logits read back, sampled on the CPU', 'logits'],
  ['sampled on the GPU (sampleTokens: temperature, top-k 40, top-p 0.9), id read back', 'chosen'],
]) {
  const layer = two[key].perToken - one[key].perToken;
  const rest = one[key].perToken - layer;
  const bytes = one[key].bytesPerToken;
  const atGpt2 = key === 'logits' ? (bytes / base.vocabSize) * GPT2_VOCAB : bytes;
  console.log(`| ${label} | ${layer} | ${rest} | ${one[key].perToken + (GPT2_LAYERS - 1) * layer} | ${bytes} | ${atGpt2} |`);
}
