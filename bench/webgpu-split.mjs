// What WebGPU's default limits cost: GPT-2 small (V 50257, C 768, 12 layers) trained on WebGPU three
// times in one process: with the adapter's own limits; with storage bindings capped at WebGPU's
// default 128 MiB, under which wte (154 MB), its gradient and the logits no longer fit one binding
// and every op on them runs in pieces; and with buffers capped at the default 256 MiB as well, under
// which the flat parameters (497 MB), gradients and AdamW moments are stored in several buffers.
//
//   node bench/webgpu-split.mjs [--seq 256] [--batch 8] [--steps 10]
//
// The runs start from the same weights and see the same batches; the table gives the median step,
// compute dispatches per step and the largest loss difference from the first run (float32
// rounding: the pieces add in another order). Needs a real GPU (Dawn through the `webgpu` package;
// see bench/lib/webgpu-node.mjs); SwiftShader would take hours.
import { installNodeWebGPU } from './lib/webgpu-node.mjs';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const T = option('seq', 256);
const B = option('batch', 8);
const STEPS = option('steps', 10);
const MIB = 1024 * 1024;
const WARM_STEPS = 3;
const config = { vocabSize: 50257, maxSeqLen: T, dModel: 768, nLayers: 12, nHeads: 12, dFF: 3072, seed: 1 };

/** the same pseudo-random token stream for both runs */
function corpus(length) {
  const out = new Int32Array(length);
  let s = 12345;
  for (let i = 0; i < length; i++) out[i] = ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % config.vocabSize;
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function run(label, caps) {
  const { createModel, createWebGPUBackend, Trainer } = await import('../dist/index.js');
  const backend = await createWebGPUBackend(caps);
  const model = await createModel(config, { backendInstance: backend });
  const trainer = await Trainer.create(model, {
    data: corpus(B * T * (WARM_STEPS + STEPS + 2)),
    batchSize: B,
    seqLen: T,
    steps: WARM_STEPS + STEPS,
    learningRate: 1e-4,
    warmupSteps: 0,
    maxGradNorm: 1,
  });
  const losses = [];
  for (let i = 0; i < WARM_STEPS; i++) losses.push((await trainer.step()).trainLoss);
  const times = [];
  const dispatchesBefore = backend.dispatches;
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    losses.push((await trainer.step()).trainLoss);
    times.push(performance.now() - t0);
  }
  const result = {
    label,
    binding: caps.maxBindingBytes ?? Math.min(backend.device.limits.maxStorageBufferBindingSize, backend.device.limits.maxBufferSize),
    buffer: caps.maxBufferBytes ?? backend.device.limits.maxBufferSize,
    stepMs: median(times),
    dispatchesPerStep: (backend.dispatches - dispatchesBefore) / STEPS,
    losses,
    adapter: backend.adapterName,
    maxBufferSize: backend.device.limits.maxBufferSize,
  };
  trainer.dispose();
  model.dispose();
  return result;
}

installNodeWebGPU();
const runs = [
  await run("adapter's limits", {}),
  await run('128 MiB bindings', { maxBindingBytes: 128 * MIB }),
  await run('256 MiB buffers, 128 MiB bindings (the defaults)', { maxBufferBytes: 256 * MIB, maxBindingBytes: 128 * MIB }),
];
const mib = (n) => `${(n / MIB).toFixed(0)} MiB`;
console.log(`GPT-2 small training step on ${runs[0].adapter}, batch ${B}, T ${T}; median of ${STEPS} steps after ${WARM_STEPS}.\n`);
console.log(
  '| limits | largest buffer / binding | step | tokens/s | dispatches per step | loss first -> last | largest loss difference from the first run |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of runs) {
  const diff = Math.max(...runs[0].losses.map((l, i) => Math.abs(l - r.losses[i]) / l));
  console.log(
    `| ${r.label} | ${mib(r.buffer)} / ${mib(r.binding)} | ${r.stepMs.toFixed(1)} ms | ${((B * T * 1000) / r.stepMs).toFixed(0)} | ${r.dispatchesPerStep.toFixed(0)} | ` +
      `${r.losses[0].toFixed(4)} -> ${r.losses.at(-1).toFixed(4)} | ${diff.toExponential(1)} |`,
  );
}
