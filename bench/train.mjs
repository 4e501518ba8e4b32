// Training throughput: tinygpt (Trainer with AdamW + clipping) beside the same GPT written with
// TensorFlow.js ops (tf.train.adam), in the same run, on one of two backend pairs:
//
//   node bench/train.mjs [--configs A,B] [--warmup 2] [--warmup-seconds 12] [--steps-A 8] [--steps-B 3] [--rounds 1] [--check] [--threads N]
//   node bench/train.mjs --backend webgpu [--configs A,B,C] [--warmup 3] [--steps-A 20] [--steps-B 20] [--steps-C 10]
//
// --peer-steps N times N steps on the tfjs sides (default: as many as tinygpt's); their steps are
// slow and steady, so fewer of them save a lent GPU's time without moving the median.
//
// wasm (default): tinygpt's wasm backend against tfjs-backend-wasm (1 thread). --threads N runs
// tinygpt's backend on N threads (default: its 'auto', min(cores, 8)).
// webgpu: tinygpt's WebGPU backend against tfjs-backend-webgpu on the same adapter (Dawn through the
// `webgpu` package in Node; see bench/lib/webgpu-node.mjs). tfjs runs twice, with its products
// written with transpose flags and with explicit transposes (bench/lib/tfjs-gpt.mjs), both embedding
// by gather; the speed-up is against the faster. Each side warms the GPU with untimed steps for at
// least a second (idle clocks made an H100's first products 5x slower) and reads the loss back
// every step, as the Trainer does. Config C is GPT-2 small's shape at T = 256.
//
// Each side of each config runs in its own child process, one after another (never at once: the
// cores are shared), so that memory figures belong to one side: wasm linear memory and peak process
// RSS. On wasm each side warms up for at least --warmup steps and --warmup-seconds (both sides' wasm
// starts in V8's baseline compiler and is tiered up while it runs: on a 2-core AMD EPYC host config
// B's steps took 2.4-2.7 s after 4 s, 1.6 s after 12). With --rounds N the sides take turns N times
// and each keeps its fastest round: on a machine whose other work comes and goes, one round of each
// side can land in different weather. Both sides see the same random batches (batch 8, T =
// maxSeqLen) and report the median step.
// `--check` first copies tinygpt's initial weights into the tfjs model and compares their losses on
// one batch, to show the two compute the same function. Ratios compare figures from this run only;
// absolute figures drift with the machine's load.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CONFIGS = {
  A: { vocabSize: 256, maxSeqLen: 64, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512 },
  B: { vocabSize: 256, maxSeqLen: 128, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
  C: { vocabSize: 50257, maxSeqLen: 256, dModel: 768, nLayers: 12, nHeads: 12, dFF: 3072 },
};
const BATCH = 8;
/** the least time of untimed steps on a GPU before timing, so that its clocks have ramped up */
const GPU_WARM_MS = 1000;
/** the sides of one config per backend pair: tinygpt, then tfjs (twice on webgpu: two ways of writing products) */
const SIDES = {
  wasm: ['sdk', 'tfjs'],
  webgpu: ['sdk', 'tfjs-flags', 'tfjs-transposes'],
};

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

/** tinygpt's Trainer at a constant learning rate of 1e-3 (AdamW, clipping at norm 1) */
async function sdkTrainer(model, config) {
  const { Trainer } = await import('../dist/index.js');
  const T = config.maxSeqLen;
  // the trainer draws its own seeded windows of the same shape from a stream made of the same
  // pseudo-random batches; a rate does not depend on which tokens
  const stream = new Int32Array(16 * BATCH * T + 1);
  for (let k = 0; k < 16; k++) stream.set(batchOf(k, config).inputs, k * BATCH * T);
  return Trainer.create(model, {
    data: stream,
    batchSize: BATCH,
    seqLen: T,
    steps: 1_000_000,
    warmupSteps: 0,
    schedule: 'constant',
    learningRate: 1e-3,
  });
}

/** one side of one config on tfjs-backend-wasm / tinygpt wasm, in this process; prints one JSON line */
async function worker(side, name, warmup, steps, warmupSeconds) {
  const config = { ...CONFIGS[name], seed: 1 };
  const T = config.maxSeqLen;
  let step;
  let wasmBytes;
  let cleanup;
  let wasmThreads = 1;
  if (side === 'sdk') {
    const { createModel, createBackend } = await import('../dist/index.js');
    // --threads N: the wasm backend on N threads; without it, the backend's default ('auto')
    const threads = option('threads', undefined);
    const backendInstance = threads === undefined ? undefined : await createBackend('wasm', { wasmThreads: Number(threads) });
    const model = await createModel(config, { backendInstance });
    wasmThreads = model.backend.threads;
    const trainer = await sdkTrainer(model, config);
    step = async () => (await trainer.step()).trainLoss;
    wasmBytes = () => model.backend.memoryBytes;
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
  const warmStart = performance.now();
  for (let i = 0; i < warmup || performance.now() - warmStart < warmupSeconds * 1000; i++) losses.push(await step());
  const warmupSteps = losses.length;
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(await step());
    times.push(performance.now() - t0);
  }
  const result = {
    side,
    config: name,
    warmupSteps,
    stepMs: median(times),
    tokensPerSec: (BATCH * T * 1000) / median(times),
    firstLoss: losses[0],
    lastLoss: losses.at(-1),
    wasmBytes: wasmBytes(),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    threads: wasmThreads,
  };
  cleanup();
  console.log(JSON.stringify(result));
}

/**
 * Counts compute dispatches from here on (both sides dispatch through Dawn's GPUComputePassEncoder):
 * the host work of a step grows with them, which explains where a small model's time goes.
 */
function countDispatches() {
  const counter = { count: 0 };
  const proto = globalThis.GPUComputePassEncoder.prototype;
  for (const name of ['dispatchWorkgroups', 'dispatchWorkgroupsIndirect']) {
    const original = proto[name];
    proto[name] = function (...args) {
      counter.count++;
      return original.apply(this, args);
    };
  }
  return counter;
}

/** one side of one config on WebGPU, in this process; prints one JSON line */
async function webgpuWorker(side, name, warmup, steps) {
  const config = { ...CONFIGS[name], seed: 1 };
  const T = config.maxSeqLen;
  const { installNodeWebGPU, startTfjsWebGPU } = await import('./lib/webgpu-node.mjs');
  let step;
  let adapterName;
  let gpuBytes;
  let cleanup;
  if (side === 'sdk') {
    installNodeWebGPU();
    const { createModel } = await import('../dist/index.js');
    const model = await createModel(config, { backend: 'webgpu' });
    const trainer = await sdkTrainer(model, config);
    adapterName = model.backend.adapterName;
    step = async () => (await trainer.step()).trainLoss;
    gpuBytes = () => model.backend.bytesInUse();
    cleanup = () => {
      trainer.dispose();
      model.dispose();
    };
  } else {
    const { createTfjsGPT } = await import('./lib/tfjs-gpt.mjs');
    const started = await startTfjsWebGPU();
    const { tf } = started;
    adapterName = started.adapterName;
    const products = side === 'tfjs-flags' ? 'transpose-flags' : 'explicit-transposes';
    const gpt = createTfjsGPT(tf, config, { learningRate: 1e-3 }, { products, embedding: 'gather' });
    let k = 0;
    step = async () => {
      const { inputs, targets } = batchOf(k++, config);
      return gpt.trainStep(inputs, targets, BATCH, T);
    };
    gpuBytes = () => tf.memory().numBytesInGPU;
    cleanup = () => gpt.dispose();
  }
  const dispatches = countDispatches();
  const losses = [];
  const warmStart = performance.now();
  for (let i = 0; i < warmup || performance.now() - warmStart < GPU_WARM_MS; i++) losses.push(await step());
  const warmupSteps = losses.length;
  const times = [];
  dispatches.count = 0;
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(await step());
    times.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpuStart);
  const result = {
    side,
    config: name,
    adapterName,
    warmupSteps,
    stepMs: median(times),
    tokensPerSec: (BATCH * T * 1000) / median(times),
    firstLoss: losses[0],
    lastLoss: losses.at(-1),
    gpuBytes: gpuBytes(),
    dispatchesPerStep: dispatches.count / steps,
    // host time of this process (JS, Dawn's recording and submission; every thread) per timed step
    cpuMsPerStep: (cpu.user + cpu.system) / 1000 / steps,
  };
  cleanup();
  console.log(JSON.stringify(result));
}

/** copy tinygpt's weights into the tfjs model and compare the loss of one batch */
async function check(backend) {
  const { createModel } = await import('../dist/index.js');
  const { createTfjsGPT } = await import('./lib/tfjs-gpt.mjs');
  const config = { vocabSize: 64, maxSeqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, dFF: 96, seed: 3 };
  let tf;
  let style;
  if (backend === 'webgpu') {
    const { startTfjsWebGPU } = await import('./lib/webgpu-node.mjs');
    ({ tf } = await startTfjsWebGPU());
    style = { products: 'transpose-flags', embedding: 'gather' };
  } else {
    const { startTfjsWasm } = await import('./lib/tfjs-wasm.mjs');
    ({ tf } = await startTfjsWasm());
  }
  const model = await createModel(config, { backend });
  const gpt = createTfjsGPT(tf, config, {}, style);
  const params = await model.getParameters();
  const named = gpt.namedVariables();
  if (Object.keys(named).length !== Object.keys(params).length) throw new Error('check: the two models have different parameter sets');
  for (const [key, variable] of Object.entries(named)) variable.assign(tf.tensor(params[key], variable.shape));
  const { inputs, targets } = batchOf(0, { ...config, maxSeqLen: 16 });
  const sdkLoss = (await model.forward(inputs, targets, BATCH)).loss;
  const tfjsLoss = await gpt.evalLoss(inputs, targets, BATCH, 16);
  const diff = Math.abs(sdkLoss - tfjsLoss);
  console.log(
    `check: same weights, same batch: tinygpt loss ${sdkLoss.toFixed(6)}, tfjs loss ${tfjsLoss.toFixed(6)}, |diff| ${diff.toExponential(2)}`,
  );
  if (!(diff < 1e-4)) throw new Error('check: the tfjs model does not compute the same function as tinygpt');
  gpt.dispose();
  model.dispose();
}

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;

/** the default timed steps of a config on a backend pair */
function defaultSteps(backend, name) {
  if (backend === 'webgpu') return name === 'C' ? '10' : '20';
  return name === 'A' ? '8' : '3';
}

async function main() {
  const backend = option('backend', 'wasm');
  if (!SIDES[backend]) throw new Error(`--backend must be one of ${Object.keys(SIDES).join(', ')}, got ${backend}`);
  if (process.argv.includes('--worker')) {
    const [side, name, warmup, steps, warmupSeconds] = process.argv.slice(process.argv.indexOf('--worker') + 1);
    await (backend === 'webgpu' ? webgpuWorker : worker)(side, name, Number(warmup), Number(steps), Number(warmupSeconds));
    return;
  }
  if (process.argv.includes('--check')) await check(backend);
  const names = option('configs', backend === 'webgpu' ? 'A,B,C' : 'A,B').split(',');
  for (const n of names) if (!CONFIGS[n]) throw new Error(`--configs: unknown config ${n}; choose from ${Object.keys(CONFIGS).join(', ')}`);
  // V8 tiers wasm up while it runs: two steps alone left config B's steps on Liftoff's code (see above)
  const warmup = option('warmup', backend === 'webgpu' ? '3' : '2');
  const warmupSeconds = option('warmup-seconds', backend === 'webgpu' ? '0' : '12');
  const rounds = Number(option('rounds', '1'));
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${rounds}`);
  if (!(Number(warmupSeconds) >= 0)) throw new Error(`--warmup-seconds must be a number of seconds >= 0, got ${warmupSeconds}`);
  const rows = [];
  for (const name of names) {
    const steps = option(`steps-${name}`, defaultSteps(backend, name));
    /** each side's fastest round, and every round's step time */
    const results = {};
    const roundTimes = Object.fromEntries(SIDES[backend].map((side) => [side, []]));
    for (let round = 0; round < rounds; round++)
      for (const side of SIDES[backend]) {
        const threads = option('threads', undefined);
        const args = [
          fileURLToPath(import.meta.url),
          '--backend',
          backend,
          ...(threads === undefined ? [] : ['--threads', threads]),
          '--worker',
          side,
          name,
          warmup,
          side === 'sdk' ? steps : option('peer-steps', steps),
          warmupSeconds,
        ];
        // the parent's V8 flags too (node --experimental-wasm-relaxed-simd bench/train.mjs runs both sides with relaxed SIMD)
        const child = spawnSync(process.execPath, [...process.execArgv, ...args], { encoding: 'utf8' });
        if (child.status !== 0) throw new Error(`${side} worker for config ${name} failed:\n${child.stderr}`);
        const result = JSON.parse(child.stdout.trim().split('\n').at(-1));
        roundTimes[side].push(result.stepMs);
        if (results[side] === undefined || result.stepMs < results[side].stepMs) results[side] = result;
      }
    rows.push({ name, steps, roundTimes, ...results });
  }
  if (backend === 'webgpu') {
    printWebGPUTable(rows, warmup);
    return;
  }
  console.log(
    `Training step, batch ${BATCH}, T = maxSeqLen; median of --steps-<config> timed steps after at least ${warmup} warm-up steps and ${warmupSeconds} s; ` +
      `each side in its own process; the fastest of ${rounds} round(s) that take the sides in turn.`,
  );
  if (rounds > 1)
    for (const { name, roundTimes } of rows)
      console.log(
        `config ${name}, each round's step (ms): ${SIDES.wasm.map((side) => `${side} ${roundTimes[side].map((ms) => ms.toFixed(0)).join(', ')}`).join('; ')}`,
      );
  console.log(
    `tinygpt: wasm backend on ${rows[0].sdk.threads} thread(s), AdamW + global-norm clipping; tfjs 4.22: tfjs-backend-wasm, 1 thread, tf.train.adam.\n`,
  );
  console.log(
    '| config | tinygpt step | tfjs step | tinygpt tokens/s | tfjs tokens/s | speed-up | tinygpt wasm memory | tfjs wasm memory | tinygpt peak RSS | tfjs peak RSS | loss first -> last (tinygpt / tfjs) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { name, sdk, tfjs } of rows) {
    console.log(
      `| ${name} | ${sdk.stepMs.toFixed(0)} ms | ${tfjs.stepMs.toFixed(0)} ms | ${sdk.tokensPerSec.toFixed(0)} | ${tfjs.tokensPerSec.toFixed(0)} | ` +
        `${(tfjs.stepMs / sdk.stepMs).toFixed(2)}x | ${mib(sdk.wasmBytes)} | ${mib(tfjs.wasmBytes)} | ${mib(sdk.maxRssBytes)} | ${mib(tfjs.maxRssBytes)} | ` +
        `${sdk.firstLoss.toFixed(3)} -> ${sdk.lastLoss.toFixed(3)} / ${tfjs.firstLoss.toFixed(3)} -> ${tfjs.lastLoss.toFixed(3)} |`,
    );
  }
}

function printWebGPUTable(rows, warmup) {
  const adapters = new Set(rows.flatMap((row) => SIDES.webgpu.map((side) => row[side].adapterName)));
  console.log(
    `Training step on WebGPU, batch ${BATCH}, T = maxSeqLen; median of --steps-<config> timed steps after at least ${warmup} warm-up steps and ${GPU_WARM_MS} ms; each side in its own process.`,
  );
  console.log(`Adapter (as each side names it): ${[...adapters].join(' | ')}`);
  console.log('tinygpt: WebGPU backend, Trainer (AdamW + global-norm clipping), loss and gradient norm read back each step.');
  console.log(
    'tfjs 4.22: tfjs-backend-webgpu, tf.train.adam, gather embedding, loss read back each step; products with transpose flags / explicit transposes.\n',
  );
  console.log("Host CPU ms: this process's CPU time per timed step (every thread); dispatches: compute dispatches per step.\n");
  console.log(
    '| config | tinygpt step | tfjs step (flags / transposes) | tinygpt tokens/s | tfjs tokens/s (best) | speed-up vs best tfjs | dispatches (tinygpt / tfjs best) | host CPU ms (tinygpt / tfjs best) | GPU memory (tinygpt / tfjs best) | loss first -> last (tinygpt / tfjs best) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    const sdk = row.sdk;
    const best = row['tfjs-flags'].stepMs <= row['tfjs-transposes'].stepMs ? row['tfjs-flags'] : row['tfjs-transposes'];
    console.log(
      `| ${row.name} | ${sdk.stepMs.toFixed(1)} ms | ${row['tfjs-flags'].stepMs.toFixed(1)} / ${row['tfjs-transposes'].stepMs.toFixed(1)} ms | ` +
        `${sdk.tokensPerSec.toFixed(0)} | ${best.tokensPerSec.toFixed(0)} | ${(best.stepMs / sdk.stepMs).toFixed(2)}x | ` +
        `${sdk.dispatchesPerStep.toFixed(0)} / ${best.dispatchesPerStep.toFixed(0)} | ${sdk.cpuMsPerStep.toFixed(1)} / ${best.cpuMsPerStep.toFixed(1)} | ${mib(sdk.gpuBytes)} / ${mib(best.gpuBytes)} | ` +
        `${sdk.firstLoss.toFixed(3)} -> ${sdk.lastLoss.toFixed(3)} / ${best.firstLoss.toFixed(3)} -> ${best.lastLoss.toFixed(3)} |`,
    );
  }
}

await main();
