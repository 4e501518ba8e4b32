// Same-process comparison of builds, or of thread counts: each side is a checkout's built package
// (its dist/) and a thread count, all loaded into this one process and run in alternation, so that
// a shared host's swings in memory bandwidth and clock fall on every side alike. On hosts where the
// same command's figures move by a half between runs, this decides whether a change helped.
//
//   node bench/compare-builds.mjs --job decode --sides /tmp/before:1,.:1,.:2 [--quant q4_0] [--prompt 8] [--new 64] [--rounds 6]
//   node bench/compare-builds.mjs --job train --sides /tmp/before:1,.:1 [--rounds 5]
//
// A checkout of an earlier commit: `git worktree add /tmp/before <commit>`, link node_modules into it
// and `npm run build` there. decode: config B (random weights, seed 1), greedy, ms per new token
// (a generate of --new tokens less a generate of one, over --new - 1), after 4 s of warm-up; each
// side's fastest round, and whether every side gave the same ids. train: config B's step as
// bench/train.mjs runs it (batch 8, T 128, AdamW), after 15 s of warm-up; each side's fastest step
// and its losses, which must agree where a change keeps the bits.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : process.argv[at + 1];
};
const job = option('job', 'decode');
if (job !== 'decode' && job !== 'train') throw new RangeError(`--job must be decode or train, got ${job}`);
const rounds = Number(option('rounds', job === 'decode' ? '6' : '5'));
const quant = option('quant', undefined);
const promptLength = Number(option('prompt', '8'));
const newTokens = Number(option('new', '64'));
const CONFIG_B = { vocabSize: 256, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536, seed: 1 };
const BATCH = 8;
const T = 128;

async function decodeSide(lib, threads) {
  let model = await lib.createModel({ ...CONFIG_B, maxSeqLen: 1024 }, { backend: 'wasm', wasmThreads: threads });
  if (quant !== undefined) {
    const quantized = await lib.quantizeModel(model, { format: quant, wasmThreads: threads });
    model.dispose();
    model = quantized;
  }
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 37) % CONFIG_B.vocabSize);
  return async () => {
    const t0 = performance.now();
    await lib.generate(model, prompt, { maxNewTokens: 1 });
    const t1 = performance.now();
    const { ids } = await lib.generate(model, prompt, { maxNewTokens: newTokens });
    const t2 = performance.now();
    return { ms: (t2 - t1 - (t1 - t0)) / (newTokens - 1), result: ids.join(',') };
  };
}

async function trainSide(lib, threads) {
  const model = await lib.createModel({ ...CONFIG_B, maxSeqLen: T }, { backend: 'wasm', wasmThreads: threads });
  let s = 12345;
  const data = Int32Array.from(
    { length: 16 * BATCH * T + 1 },
    () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % CONFIG_B.vocabSize,
  );
  const trainer = await lib.Trainer.create(model, {
    data,
    batchSize: BATCH,
    seqLen: T,
    steps: 1e6,
    warmupSteps: 0,
    schedule: 'constant',
    learningRate: 1e-3,
  });
  return async () => {
    const t0 = performance.now();
    const { trainLoss } = await trainer.step();
    return { ms: performance.now() - t0, result: trainLoss.toFixed(6) };
  };
}

const sides = [];
for (const spec of option('sides', '.:1').split(',')) {
  const [dir, threads = '1'] = spec.split(':');
  const lib = await import(pathToFileURL(resolve(dir, 'dist/index.js')).href);
  const run = await (job === 'decode' ? decodeSide : trainSide)(lib, Number(threads));
  sides.push({ spec, run, best: Infinity, results: [] });
}
const warmUntil = performance.now() + (job === 'decode' ? 4000 : 15000);
while (performance.now() < warmUntil) for (const side of sides) await side.run();
for (let round = 0; round < rounds; round++) {
  for (const side of sides) {
    const { ms, result } = await side.run();
    side.best = Math.min(side.best, ms);
    side.results.push(result);
  }
}
const unit =
  job === 'decode'
    ? `ms per token${quant ? ` (${quant})` : ''}, config B, ${promptLength} -> ${promptLength + newTokens}`
    : 'ms per training step, config B, batch 8 x 128';
console.log(`fastest of ${rounds} alternating rounds, ${unit}, Node ${process.versions.node}`);
for (const side of sides)
  console.log(
    `${side.spec.padEnd(24)} ${side.best.toFixed(job === 'decode' ? 3 : 0)}${job === 'train' ? `  losses ${side.results.join(' ')}` : ''}`,
  );
if (job === 'decode')
  console.log(`every side gave the same ids: ${sides.every((side) => side.results.at(-1) === sides[0].results.at(-1))}`);
process.exit(0);
