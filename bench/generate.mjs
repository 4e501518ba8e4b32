// Generation speed: tinygpt (KV cache) beside a tfjs GPT that recomputes the whole context for
// every new token, in the same run, on one of two backend pairs. Greedy decoding, random weights.
//
//   node bench/generate.mjs [--configs A,B] [--prompts 8,64,256,960] [--new 64] [--tfjs-new 4] [--threads N]
//   node bench/generate.mjs --backend webgpu [--configs C] ...
//
// wasm (default): tinygpt's wasm backend against tfjs-backend-wasm (1 thread); --threads N runs
// tinygpt on N threads (default: its 'auto', min(cores, 8)). webgpu: tinygpt's WebGPU backend
// against tfjs-backend-webgpu on the same adapter (Dawn through the `webgpu` package in Node; see
// bench/lib/webgpu-node.mjs). Config C is GPT-2 small.
//
// For each prompt length p the SDK generates `--new` tokens after p tokens (maxSeqLen 1024, so the
// longest run, 960 + 64, ends exactly at the window and never slides). tokens/s counts the prompt's
// pass too (end to end); "decode ms/token" times the steps after the first token, which is what must
// grow linearly with the context. tfjs recomputes every position per token, so its cost per token
// is the same forward each time: it generates only `--tfjs-new` tokens (a rate needs no more).
// Ratios compare figures from this run only; the machine is shared, so absolute figures drift.
import { createBackend, createModel, generate, generateStream } from '../dist/index.js';
import { createTfjsGPTForward } from './lib/tfjs-gpt-forward.mjs';
import { startTfjsWebGPU } from './lib/webgpu-node.mjs';

const CONFIGS = {
  A: { vocabSize: 256, maxSeqLen: 1024, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512 },
  B: { vocabSize: 256, maxSeqLen: 1024, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
  C: { vocabSize: 50257, maxSeqLen: 1024, dModel: 768, nLayers: 12, nHeads: 12, dFF: 3072 },
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const backend = option('backend', 'wasm');
if (backend !== 'wasm' && backend !== 'webgpu') throw new Error(`--backend must be wasm or webgpu, got ${backend}`);
const configNames = option('configs', backend === 'webgpu' ? 'C' : 'A,B').split(',');
const prompts = option('prompts', '8,64,256,960').split(',').map(Number);
const newTokens = Number(option('new', '64'));
const tfjsNew = Number(option('tfjs-new', '4'));
const threads = option('threads', undefined);
if (threads !== undefined && backend !== 'wasm') throw new Error(`--threads applies to the wasm backend, not ${backend}`);
for (const c of configNames)
  if (!CONFIGS[c]) throw new Error(`--configs: unknown config ${c}; choose from ${Object.keys(CONFIGS).join(', ')}`);
for (const p of prompts)
  if (!(Number.isInteger(p) && p >= 1 && p + newTokens <= 1024))
    throw new Error(`--prompts: ${p} must be an integer in [1, ${1024 - newTokens}] (prompt + new <= maxSeqLen 1024)`);

function promptOf(length, vocabSize) {
  // a fixed pseudo-random prompt (LCG), the same for both sides
  let s = 12345;
  return Array.from({ length }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % vocabSize);
}

async function timeSdk(model, prompt) {
  const t0 = performance.now();
  let first = 0;
  let count = 0;
  for await (const _ of generateStream(model, prompt, { maxNewTokens: newTokens, eosTokenId: null })) {
    if (count++ === 0) first = performance.now();
  }
  const end = performance.now();
  return { tokensPerSec: (count * 1000) / (end - t0), decodeMsPerToken: (end - first) / (count - 1), prefillMs: first - t0 };
}

async function timeTfjs(tfModel, prompt) {
  const t0 = performance.now();
  await tfModel.generateGreedy(prompt, tfjsNew);
  const ms = performance.now() - t0;
  return { tokensPerSec: (tfjsNew * 1000) / ms, msPerToken: ms / tfjsNew };
}

async function startTfjsWasm() {
  const { default: tf } = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm')) || tf.getBackend() !== 'wasm')
    throw new Error(`tfjs-backend-wasm did not start (backend is ${tf.getBackend()})`);
  await tf.ready();
  return { tf, adapterName: null };
}
const { tf, adapterName } = backend === 'webgpu' ? await startTfjsWebGPU() : await startTfjsWasm();

const fmt = (x, digits = 1) => x.toFixed(digits);
const sides =
  backend === 'wasm'
    ? `tinygpt wasm backend (${threads ?? 'auto'} threads) vs tfjs-backend-wasm ${tf.version_core} (1 thread)`
    : `tinygpt WebGPU backend vs tfjs-backend-webgpu ${tf.version_core}, both on ${adapterName}`;
console.log(`${sides}, greedy, ${newTokens} new tokens (tfjs: ${tfjsNew}), Node ${process.versions.node}`);
console.log('');
console.log(
  '| config | prompt -> end context | tinygpt tok/s (end to end) | tinygpt prompt pass ms | tinygpt decode ms/token | tfjs tok/s (recompute) | tfjs ms/token | speed-up |',
);
console.log('|---|---|---|---|---|---|---|---|');

const checks = [];
for (const name of configNames) {
  const config = CONFIGS[name];
  const backendInstance = threads === undefined ? undefined : await createBackend('wasm', { wasmThreads: Number(threads) });
  const model = await createModel({ ...config, seed: 1 }, backendInstance ? { backendInstance } : { backend });
  // the same weights on both sides: check they compute the same logits before timing anything
  const tfModel = createTfjsGPTForward(tf, config, await model.getParameters());
  const check = promptOf(64, config.vocabSize);
  const ours = await model.forward(Int32Array.from(check), null, 1, { returnLogits: true });
  const theirs = await tfModel.lastLogits(check);
  const oursLast = ours.logits.subarray(63 * config.vocabSize);
  const maxDiff = oursLast.reduce((m, x, i) => Math.max(m, Math.abs(x - theirs[i])), 0);
  if (!(maxDiff < 1e-3)) throw new Error(`config ${name}: tinygpt and tfjs logits differ by ${maxDiff}: not the same model`);
  checks.push(`${name}: max |logit difference| ${maxDiff.toExponential(1)}`);
  // warm-up: size the inference workspace for the longest prompt; let tfjs settle on short inputs
  await generate(model, promptOf(Math.max(...prompts), config.vocabSize), { maxNewTokens: 2, eosTokenId: null });
  for (let i = 0; i < 10; i++) await tfModel.lastLogits(promptOf(8, config.vocabSize));
  const rows = [];
  for (const p of prompts) {
    const prompt = promptOf(p, config.vocabSize);
    // one untimed pass at this length on each side (allocation of this size's buffers)
    await generate(model, prompt, { maxNewTokens: 2, eosTokenId: null });
    await tfModel.lastLogits(prompt);
    const sdk = await timeSdk(model, prompt);
    const peer = await timeTfjs(tfModel, prompt);
    rows.push({ p, sdk });
    console.log(
      `| ${name} | ${p} -> ${p + newTokens} | ${fmt(sdk.tokensPerSec)} | ${fmt(sdk.prefillMs, 0)} | ${fmt(sdk.decodeMsPerToken, 2)} | ${fmt(peer.tokensPerSec, 2)} | ${fmt(peer.msPerToken, 0)} | ${fmt(sdk.tokensPerSec / peer.tokensPerSec, 0)}x |`,
    );
  }
  if (rows.length >= 2) {
    // linear in context: decode time per token ~ a + b * context; quadratic would grow with context^2
    const [lo, hi] = [rows[0], rows[rows.length - 1]];
    const ctx = (r) => r.p + newTokens / 2;
    console.log(
      `|  | decode ms/token x${fmt(hi.sdk.decodeMsPerToken / lo.sdk.decodeMsPerToken, 2)} for mean context x${fmt(ctx(hi) / ctx(lo), 1)} (${fmt(ctx(lo), 0)} -> ${fmt(ctx(hi), 0)}) |  |  |  |  |  |  |`,
    );
  }
  model.dispose();
  tfModel.dispose();
}
console.log('');
console.log(`Same weights on both sides; last-position logits over a 64-token prompt agree (${checks.join('; ')}).`);
