// Training throughput: tinygpt (wasm backend, Trainer with AdamW + clipping) beside the same GPT
// written with TensorFlow.js ops on tfjs-backend-wasm (1 thread, tf.train.adam), in the same run.
//
//   node bench/train.mjs [--configs A,B] [--warmup 1] [--steps-A 8] [--steps-B 3] [--check]
//
// Each side of each config runs in its own child process, one after another (never at once: the
// cores are shared), so that memory figures belong to one side: wasm linear memory and peak process
// RSS. Both sides see the same random batches (batch 8, T = maxSeqLen) and report the median step.
// `--check` first copies tinygpt's initial weights into the tfjs model and compares their losses on
// one batch, to show the two compute the same function. Ratios compare figures from this run only;
// absolute figures drift with the machine's load.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CONFIGS = {
  A: { vocabSize: 256, maxSeqLen: 64, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512 },
  B: { vocabSize: 256, maxSeqLen: 128, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
};
const BATCH = 8;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** the same pseudo-random windows for both sides: inputs and next-token targets, [B*T] each */
function batchOf(step, config) {
  const T = config.maxSeqLen;
  let s = (0x9e3779b9 * (step + 1)) >>> 0;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % config.vocabSize;
  const tokens = Int32Array.from({ length: BATCH * (T + 1) }, next);
  const inputs = new Int32Array(BATCH * T);
  const targets = new Int32Array(BATCH * T);
  for (let b = 0; b < BATCH; b++) {
    inputs.set(tokens.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(tokens.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  return { inputs, targets };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** one side of one config, in this process; prints one JSON line */
async function worker(side, name, warmup, steps) {
  const config = { ...CONFIGS[name], seed: 1 };
  const T = config.maxSeqLen;
  let step;
  let wasmBytes;
  let cleanup;
  if (side === 'sdk') {
    const { createModel, Trainer } = await import('../dist/index.js');
    const model = await createModel({ ...config, backend: 'wasm' });
    // the trainer draws its own seeded windows of the same shape from a stream made of the same
    // pseudo-random batches; a rate does not depend on which tokens
    const stream = new Int32Array(16 * BATCH * T + 1);
    for (let k = 0; k < 16; k++) stream.set(batchOf(k, config).inputs, k * BATCH * T);
    const trainer = await Trainer.create(model, { data: stream, batchSize: BATCH, seqLen: T, steps: 1_000_000, warmupSteps: 0, schedule: 'constant', learningRate: 1e-3 });
    step = async () => (await trainer.step()).trainLoss;
    wasmBytes = () => model.backend.k?.memory?.buffer.byteLength ?? model.backend.bytesInUse();
    cleanup = () => {
      trainer.dispose();
      model.dispose();
    };
  } else {
    const { startTfjsWasm } = await import('./lib/tfjs-wasm.mjs');
    const { createTfjsGPT } = await import('./lib/tfjs-gpt.mjs');
    const { tf, threads } = await startTfjsWasm();
    if (threads !== 1) throw new Error(`tfjs-backend-wasm runs ${threads} threads; this bench compares one`);
    const gpt = createTfjsGPT(tf, config, { learningRate: 1e-3 });
    let k = 0;
    step = async () => {
      const { inputs, targets } = batchOf(k++, config);
      return gpt.trainStep(inputs, targets, BATCH, T);
    };
    wasmBytes = () => tf.backend().wasm.HEAPU8.buffer.byteLength;
    cleanup = () => gpt.dispose();
  }
  const losses = [];
  for (let i = 0; i < warmup; i++) losses.push(await step());
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(await step());
    times.push(performance.now() - t0);
  }
  const result = {
    side,
    config: name,
    stepMs: median(times),
    tokensPerSec: (BATCH * T * 1000) / median(times),
    firstLoss: losses[0],
    lastLoss: losses.at(-1),
    wasmBytes: wasmBytes(),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  cleanup();
  console.log(JSON.stringify(result));
}

/** copy tinygpt's weights into the tfjs model and compare the loss of one batch */
async function check() {
  const { createModel } = await import('../dist/index.js');
  const { startTfjsWasm } = await import('./lib/tfjs-wasm.mjs');
  const { createTfjsGPT } = await import('./lib/tfjs-gpt.mjs');
  const { tf } = await startTfjsWasm();
  const config = { vocabSize: 64, maxSeqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, dFF: 96, seed: 3 };
  const model = await createModel({ ...config, backend: 'wasm' });
  const gpt = createTfjsGPT(tf, config);
  const params = await model.getParameters();
  const named = gpt.namedVariables();
  if (Object.keys(named).length !== Object.keys(params).length) throw new Error('check: the two models have different parameter sets');
  for (const [key, variable] of Object.entries(named)) variable.assign(tf.tensor(params[key], variable.shape));
  const { inputs, targets } = batchOf(0, { ...config, maxSeqLen: 16 });
  const sdkLoss = (await model.forward(inputs, targets, BATCH)).loss;
  const tfjsLoss = await gpt.evalLoss(inputs, targets, BATCH, 16);
  const diff = Math.abs(sdkLoss - tfjsLoss);
  console.log(`check: same weights, same batch: tinygpt loss ${sdkLoss.toFixed(6)}, tfjs loss ${tfjsLoss.toFixed(6)}, |diff| ${diff.toExponential(2)}`);
  if (!(diff < 1e-4)) throw new Error('check: the tfjs model does not compute the same function as tinygpt');
  gpt.dispose();
  model.dispose();
}

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

async function main() {
  if (process.argv.includes('--worker')) {
    const [side, name, warmup, steps] = process.argv.slice(process.argv.indexOf('--worker') + 1);
    await worker(side, name, Number(warmup), Number(steps));
    return;
  }
  if (process.argv.includes('--check')) await check();
  const names = option('configs', 'A,B').split(',');
  for (const n of names) if (!CONFIGS[n]) throw new Error(`--configs: unknown config ${n}; choose from ${Object.keys(CONFIGS).join(', ')}`);
  const warmup = option('warmup', '1');
  const rows = [];
  for (const name of names) {
    const steps = option(`steps-${name}`, name === 'A' ? '8' : '3');
    const results = {};
    for (const side of ['sdk', 'tfjs']) {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--worker', side, name, warmup, steps], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`${side} worker for config ${name} failed:\n${child.stderr}`);
      results[side] = JSON.parse(child.stdout.trim().split('\n').at(-1));
    }
    rows.push({ name, steps, ...results });
  }
  console.log(`Training step, batch ${BATCH}, T = maxSeqLen; median of --steps-<config> timed steps after ${warmup} warm-up; each side in its own process.`);
  console.log('tinygpt: wasm backend, AdamW + global-norm clipping; tfjs 4.22: tfjs-backend-wasm, 1 thread, tf.train.adam.\n');
  console.log('| config | tinygpt step | tfjs step | tinygpt tokens/s | tfjs tokens/s | speed-up | tinygpt wasm memory | tfjs wasm memory | tinygpt peak RSS | tfjs peak RSS | loss first -> last (tinygpt / tfjs) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { name, sdk, tfjs } of rows) {
    console.log(
      `| ${name} | ${sdk.stepMs.toFixed(0)} ms | ${tfjs.stepMs.toFixed(0)} ms | ${sdk.tokensPerSec.toFixed(0)} | ${tfjs.tokensPerSec.toFixed(0)} | ` +
        `${(tfjs.stepMs / sdk.stepMs).toFixed(2)}x | ${mib(sdk.wasmBytes)} | ${mib(tfjs.wasmBytes)} | ${mib(sdk.maxRssBytes)} | ${mib(tfjs.maxRssBytes)} | ` +
        `${sdk.firstLoss.toFixed(3)} -> ${sdk.lastLoss.toFixed(3)} / ${tfjs.firstLoss.toFixed(3)} -> ${tfjs.lastLoss.toFixed(3)} |`,
    );
  }
}

await main();
