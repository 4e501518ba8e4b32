#!/usr/bin/env node
/**
 * Our WebGPU matmul (src/backend/webgpu, matmulForward) against @tensorflow/tfjs-backend-webgpu's
 * tf.matMul on the same adapter, in the same process. Prints a markdown table: per size, the
 * median time of a batch of `--reps` back-to-back products (one submission each side, one element
 * read back), GFLOP/s, the ratio, the largest difference between the two results, and our error
 * against float64 on sampled outputs (relative to the root-sum-square of the products summed).
 *
 *   node bench/webgpu.mjs --sizes 256,512,1024,768x768x2304 [--reps 10] [--trials 5] [--matmul-block auto|4|8]
 *
 * A size is N (square) or MxKxN. `--ops B,T,C,NH,V` instead times every model op of our backend
 * once at that GPT shape (e.g. 8,1024,768,12,50257 for GPT-2 small), one submission per op batch. In Node this needs the `webgpu` package; without a GPU, run with
 * VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium
 * (SwiftShader, a CPU driver: keep sizes small, it is for correctness only).
 * `--backend-module <file>` loads a prebuilt ESM of src/backend/webgpu/index.ts instead of bundling
 * the TypeScript in memory with esbuild.
 */
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';

function parseArgs(argv) {
  const args = { sizes: '128,256', reps: 10, trials: 5, warmup: 2, backendModule: null, matmulBlock: 'auto', ops: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--sizes') args.sizes = value;
    else if (flag === '--reps') args.reps = positiveInt('--reps', value);
    else if (flag === '--trials') args.trials = positiveInt('--trials', value);
    else if (flag === '--warmup') args.warmup = positiveInt('--warmup', value);
    else if (flag === '--backend-module') args.backendModule = value;
    else if (flag === '--matmul-block') args.matmulBlock = value === 'auto' ? 'auto' : positiveInt('--matmul-block', value);
    else if (flag === '--ops') {
      const dims = value.split(',').map((d) => positiveInt('--ops', d));
      if (dims.length !== 5) throw new Error(`--ops takes B,T,C,NH,V, got ${value}`);
      const [B, T, C, NH, V] = dims;
      if (C % NH !== 0) throw new Error(`--ops: C = ${C} must be divisible by NH = ${NH}`);
      args.ops = { B, T, C, NH, V };
    } else
      throw new Error(`unknown argument ${flag} (known: --sizes, --reps, --trials, --warmup, --backend-module, --matmul-block, --ops)`);
    i++;
  }
  args.shapes = args.sizes.split(',').map((size) => {
    const dims = size
      .toLowerCase()
      .split('x')
      .map((d) => positiveInt('--sizes', d));
    if (dims.length === 1) return { M: dims[0], K: dims[0], N: dims[0] };
    if (dims.length === 3) return { M: dims[0], K: dims[1], N: dims[2] };
    throw new Error(`--sizes: each size is N or MxKxN, got ${size}`);
  });
  return args;
}

function positiveInt(flag, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs positive integers, got ${value}`);
  return n;
}

async function loadBackendModule(path) {
  if (path) return import(new URL(path, `file://${process.cwd()}/`).href);
  // bundle the TypeScript source in memory: no build step needed
  const { build } = await import('esbuild');
  const entry = fileURLToPath(new URL('../src/backend/webgpu/index.ts', import.meta.url));
  const result = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', write: false, external: ['webgpu'] });
  return import(`data:text/javascript;base64,${Buffer.from(result.outputFiles[0].text).toString('base64')}`);
}

/** deterministic values in [-1, 1) */
function randomData(n, seed) {
  const out = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/** largest |ours - exact| / sqrt(sum_k (a b)^2) over 64 sampled outputs, the exact ones in float64 */
function sampledErrorVsFloat64(result, a, b, M, K, N) {
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const m = (s * 7919) % M;
    const n = (s * 104729) % N;
    let exact = 0;
    let scale = 0;
    for (let k = 0; k < K; k++) {
      exact += a[m * K + k] * b[k * N + n];
      scale += (a[m * K + k] * b[k * N + n]) ** 2;
    }
    worst = Math.max(worst, Math.abs(result[m * N + n] - exact) / Math.sqrt(scale));
  }
  return worst;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** median over trials of (time of `reps` runs of `enqueue`, then `sync`) / reps, in ms */
async function timeBatches(enqueue, sync, { reps, trials, warmup }) {
  for (let i = 0; i < warmup; i++) {
    enqueue();
    await sync();
  }
  const times = [];
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    for (let r = 0; r < reps; r++) enqueue();
    await sync();
    times.push((performance.now() - start) / reps);
  }
  return median(times);
}

/**
 * Keep the GPU busy for a second before timing: an H100 measured 7 ms for a product that takes
 * 1.3 ms once its clocks have ramped up under sustained load.
 */
async function warmUp(be) {
  const n = 1024;
  const a = be.alloc(n * n);
  const c = be.alloc(n * n);
  be.upload(a, randomData(n * n, 12));
  const probe = be.view(c, 0, 1);
  const start = performance.now();
  // batches sized to ~50 ms each, so a slow (CPU) adapter does one product and stops
  let batch = 1;
  while (performance.now() - start < 1000) {
    const batchStart = performance.now();
    for (let i = 0; i < batch; i++) be.matmulForward(c, a, a, null, n, n, n);
    await be.download(probe);
    const perProduct = (performance.now() - batchStart) / batch;
    batch = Math.max(1, Math.min(100, Math.round(50 / perProduct)));
  }
  be.free(a);
  be.free(c);
}

/** median time per call of each model op at one GPT shape, as a markdown table */
async function timeOps(be, { B, T, C, NH, V }, args) {
  const N = B * T;
  const floats = (n, scale = 1, seed = 3) => {
    const t = be.alloc(n);
    be.upload(
      t,
      randomData(n, seed).map((x) => x * scale),
    );
    return t;
  };
  const ids = be.alloc(N, 'i32');
  be.upload(
    ids,
    Int32Array.from({ length: N }, (_, i) => (i * 7919) % V),
  );
  // inputs stay fixed; every gradient goes to its own buffer, so repeated calls keep values finite
  const x = floats(N * C, 1, 1),
    dout = floats(N * C, 1, 2),
    qkv = floats(N * 3 * C, 1, 3),
    dqkvOut = floats(N * 3 * C, 1, 4);
  const w = floats(C * 3 * C, 0.05, 5),
    bias = floats(3 * C, 1, 6),
    gain = floats(C, 1, 7),
    wte = floats(V * C, 0.05, 8);
  const wpe = floats(T * C, 1, 9),
    hidden = floats(N * 4 * C, 1, 10);
  const y = be.alloc(N * C),
    out = be.alloc(N * C),
    mean = be.alloc(N),
    rstd = be.alloc(N),
    lse = be.alloc(B * NH * T);
  const dx = be.alloc(N * C),
    dqkv = be.alloc(N * 3 * C),
    dw = be.alloc(C * 3 * C),
    dbias = be.alloc(3 * C);
  const dgain = be.alloc(C),
    dshift = be.alloc(C),
    dwte = be.alloc(V * C),
    dwpe = be.alloc(T * C),
    gelu = be.alloc(N * 4 * C);
  const params = floats(V * C, 0.05, 11),
    m = be.alloc(V * C),
    v = be.alloc(V * C),
    losses = be.alloc(N),
    norm = be.alloc(1);
  const logits = be.alloc(N * V),
    probs = be.alloc(N * V),
    dlogits = be.alloc(N * V);
  be.layerNormForward(y, mean, rstd, x, gain, gain, N, C);
  be.attentionForward(out, lse, qkv, B, T, C, NH);
  const probe = be.view(norm, 0, 1);
  const ops = [
    ['encoderForward', () => be.encoderForward(y, ids, wte, wpe, B, T, C)],
    ['encoderBackward', () => be.encoderBackward(dwte, dwpe, dout, ids, B, T, C)],
    ['layerNormForward', () => be.layerNormForward(y, mean, rstd, x, gain, gain, N, C)],
    ['layerNormBackward', () => be.layerNormBackward(dx, dgain, dshift, dout, x, gain, mean, rstd, N, C)],
    [`matmulForward ${N}x${C}x${3 * C}`, () => be.matmulForward(dqkv, x, w, bias, N, C, 3 * C)],
    [`matmulBackward ${N}x${C}x${3 * C}`, () => be.matmulBackward(dx, dw, dbias, dqkvOut, x, w, N, C, 3 * C)],
    ['attentionForward', () => be.attentionForward(out, lse, qkv, B, T, C, NH)],
    ['attentionBackward', () => be.attentionBackward(dqkv, dout, qkv, out, lse, B, T, C, NH)],
    ['geluForward', () => be.geluForward(gelu, hidden, N * 4 * C)],
    ['residualForward', () => be.residualForward(y, x, dout, N * C)],
    [`matmulForward ${N}x${C}x${V} (LM head)`, () => be.matmulForward(logits, x, wte, null, N, C, V)],
    ['crossEntropyForward', () => be.crossEntropyForward(losses, probs, logits, ids, N, V)],
    ['crossEntropyBackward', () => be.crossEntropyBackward(dlogits, probs, ids, 1 / N, N, V)],
    ['squaredNorm (wte)', () => be.squaredNorm(norm, wte)],
    [
      'adamwUpdate (wte)',
      () => be.adamwUpdate(params, wte, m, v, { learningRate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 }),
    ],
  ];
  console.log(`adapter: ${be.adapterName}; B=${B} T=${T} C=${C} NH=${NH} V=${V}`);
  console.log(
    `each time: median of ${args.trials} batches of ${args.reps} calls, ${args.warmup} warm-up batches, after 1 s of GPU warm-up`,
  );
  console.log('');
  console.log('| op | ms per call |');
  console.log('|---|---:|');
  await warmUp(be);
  for (const [name, run] of ops) console.log(`| ${name} | ${(await timeBatches(run, () => be.download(probe), args)).toFixed(3)} |`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  Object.assign(globalThis, globals);
  const gpu = create([]);
  globalThis.navigator = { gpu };
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter (without a GPU, point VK_ICD_FILENAMES at SwiftShader: see the header)');

  const { createWebGPUBackend } = await loadBackendModule(args.backendModule);
  const ours = await createWebGPUBackend({ gpu, matmulBlock: args.matmulBlock });
  if (args.ops) {
    await timeOps(ours, args.ops, args);
    ours.dispose();
    return;
  }
  // tfjs-core's Node entry is CommonJS: its exports arrive as the namespace's default
  const tfModule = await import('@tensorflow/tfjs-core');
  const tf = tfModule.default ?? tfModule;
  await import('@tensorflow/tfjs-backend-webgpu');
  await tf.setBackend('webgpu');
  await tf.ready();

  await warmUp(ours);
  const rows = [];
  for (const { M, K, N } of args.shapes) {
    const aData = randomData(M * K, 1);
    const bData = randomData(K * N, 2);

    const a = ours.alloc(M * K);
    const b = ours.alloc(K * N);
    const c = ours.alloc(M * N);
    ours.upload(a, aData);
    ours.upload(b, bData);
    const probe = ours.view(c, 0, 1);
    const oursMs = await timeBatches(
      () => ours.matmulForward(c, a, b, null, M, K, N),
      () => ours.download(probe),
      args,
    );
    const oursResult = await ours.download(c);
    for (const t of [a, b, c]) ours.free(t);

    const tA = tf.tensor2d(aData, [M, K]);
    const tB = tf.tensor2d(bData, [K, N]);
    let tC = null;
    const tfjsMs = await timeBatches(
      () => {
        tC?.dispose();
        tC = tf.matMul(tA, tB);
      },
      async () => {
        const corner = tf.slice(tC, [0, 0], [1, 1]);
        await corner.data();
        corner.dispose();
      },
      args,
    );
    const tfjsResult = await tC.data();
    for (const t of [tA, tB, tC]) t.dispose();

    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < oursResult.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(oursResult[i] - tfjsResult[i]));
      maxRef = Math.max(maxRef, Math.abs(tfjsResult[i]));
    }
    const gflop = (2 * M * K * N) / 1e9;
    rows.push({
      size: `${M}x${K}x${N}`,
      oursMs,
      tfjsMs,
      oursGflops: gflop / (oursMs / 1e3),
      tfjsGflops: gflop / (tfjsMs / 1e3),
      relDiff: maxDiff / maxRef,
      sampledError: sampledErrorVsFloat64(oursResult, aData, bData, M, K, N),
    });
  }

  console.log(`adapter: ${ours.adapterName}; tinygpt matmul block: ${args.matmulBlock}`);
  console.log(
    `each time: median of ${args.trials} batches of ${args.reps} products, ${args.warmup} warm-up batches, after 1 s of GPU warm-up`,
  );
  console.log('');
  console.log(
    '| M x K x N | tinygpt ms | tfjs-webgpu ms | tinygpt GFLOP/s | tfjs GFLOP/s | tfjs time / tinygpt time | max abs diff / max abs | tinygpt error vs float64 |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.size} | ${r.oursMs.toFixed(3)} | ${r.tfjsMs.toFixed(3)} | ${r.oursGflops.toPrecision(3)} | ${r.tfjsGflops.toPrecision(3)} | ${(r.tfjsMs / r.oursMs).toFixed(2)} | ${r.relDiff.toExponential(1)} | ${r.sampledError.toExponential(1)} |`,
    );
  }
  ours.dispose();
  tf.engine().reset();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
