// Matmul GFLOP/s: tinygpt's wasm kernels (build/tinygpt.wasm, called directly: the backend's JS
// wrapper only adds argument checks) beside tfjs-backend-wasm's tf.matMul in the same run, one
// thread each. Square sizes, then the matmuls of one GPT training step for config A (B*T 512, C 128,
// V 256) and config B (B*T 1024, C 384, V 256): forward x@W, and the two backward products
// dinp = dout@W^T and dweight = x^T@dout; last, decoding: one row through config B's weights (GB/s of
// weights read). tfjs runs each training product both with matMul's transpose flags (what autograd
// emits) and with an explicit tf.transpose first (the fast way on that backend); the ratio is against
// the faster of the two.
//
// Run after `npm run build` (or `npm run build:wasm`): node bench/matmul.mjs [--quick] [--threads N]
// Times are medians of CPU time (see cpuMs); on a shared machine compare the ratios, not the
// absolute figures. With --threads N, tinygpt runs through the wasm backend of dist/ on N threads
// (N = 1 included, for a like-for-like baseline) and every time is wall time instead: CPU time
// would add up the threads.
import { readFile } from 'node:fs/promises';
import { startTfjsWasm } from './lib/tfjs-wasm.mjs';

const quick = process.argv.includes('--quick');
const threadsArg = process.argv.indexOf('--threads');
/** undefined: the kernels called directly on this thread, timed by CPU time */
const threadCount = threadsArg >= 0 ? Number(process.argv[threadsArg + 1]) : undefined;
if (threadCount !== undefined && !(Number.isInteger(threadCount) && threadCount >= 1)) {
  throw new Error(`--threads must be an integer >= 1, got ${process.argv[threadsArg + 1]}`);
}
/** per measurement: at least this many runs, and more until this much time is spent */
const MIN_RUNS = 3;
const MAX_RUNS = 50;
const TARGET_MS = quick ? 200 : 600;
const SLOW_MS = 500;

const wasmUrl = new URL('../build/tinygpt.wasm', import.meta.url);
const { instance } = await WebAssembly.instantiate(await readFile(wasmUrl), {});
const k = instance.exports;
k._initialize?.();

/** a bump allocator over the kernels' memory, reset per shape */
let top = 0;
function resetHeap() {
  top = Math.ceil(k.heapBase() / 16) * 16;
}
function allocRandom(floats) {
  const ptr = top;
  top += Math.ceil((floats * 4) / 16) * 16;
  const need = top - k.memory.buffer.byteLength;
  if (need > 0) k.memory.grow(Math.ceil(need / 65536));
  const view = new Float32Array(k.memory.buffer, ptr, floats);
  for (let i = 0; i < floats; i++) view[i] = Math.random() * 2 - 1;
  return ptr;
}

/**
 * Median milliseconds of each function, run in interleaved rounds so that a shared machine's load
 * falls on all of them alike. The first call warms up; a function whose first call already took
 * over SLOW_MS keeps that single time (tfjs's transposed matMul flags at large sizes).
 */
function interleavedMedians(fns) {
  const names = Object.keys(fns);
  const times = Object.fromEntries(names.map((n) => [n, []]));
  const slow = new Set();
  for (const n of names) {
    const ms = cpuMs(fns[n]);
    if (ms > SLOW_MS) {
      slow.add(n);
      times[n].push(ms);
    }
  }
  const start = performance.now();
  for (let round = 0; round < MAX_RUNS && (round < MIN_RUNS || performance.now() - start < TARGET_MS); round++) {
    for (const n of names) {
      if (slow.has(n)) continue;
      times[n].push(cpuMs(fns[n]));
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(times[n])]));
}

/**
 * CPU time of one call in ms (this process, user + system). Both sides run single-threaded in this
 * thread, so on an idle machine this equals wall time, and on a shared one it leaves out the time
 * the process waited for a core.
 */
function cpuMs(fn) {
  if (threadCount !== undefined) {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  }
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const gflops = (M, K, N, ms) => (2 * M * K * N) / (ms * 1e6);

const { tf, threads } = await startTfjsWasm();

/** with --threads: the backend, and its three products on tensors at the same addresses as the direct calls */
let backend;
if (threadCount !== undefined) {
  const { createBackend } = await import('../dist/index.js');
  backend = await createBackend('wasm', { wasmThreads: threadCount });
  if (backend.threads !== threadCount)
    throw new Error(`asked for ${threadCount} threads, the backend runs ${backend.threads}: ${backend.threadsNote}`);
}
function backendProducts(M, K, N) {
  const t = (n) => {
    const x = backend.alloc(n);
    backend.upload(
      x,
      Float32Array.from({ length: n }, () => Math.random() * 2 - 1),
    );
    return x;
  };
  const [x, w, b, out, dout, dinp, dw] = [t(M * K), t(K * N), t(N), t(M * N), t(M * N), t(M * K), t(K * N)];
  return {
    forward: () => backend.matmulForward(out, x, w, b, M, K, N),
    dinp: () => backend.matmulBackward(dinp, dw, null, dout, x, w, M, K, N),
    dweight: () => backend.matmulBackward(null, dw, null, dout, x, w, M, K, N),
    free: () => [x, w, b, out, dout, dinp, dw].forEach((y) => backend.free(y)),
  };
}

/** medians in ms of tinygpt's three products and tfjs's variants of each, for one shape */
function measure(M, K, N) {
  resetHeap();
  const x = allocRandom(M * K);
  const w = allocRandom(K * N);
  const b = allocRandom(N);
  const out = allocRandom(M * N);
  const dout = allocRandom(M * N);
  const dinp = allocRandom(M * K);
  const dw = allocRandom(K * N);
  const tx = tf.randomUniform([M, K], -1, 1);
  const tw = tf.randomUniform([K, N], -1, 1);
  const tb = tf.randomUniform([N], -1, 1);
  const tdout = tf.randomUniform([M, N], -1, 1);
  const viaBackend = backend === undefined ? undefined : backendProducts(M, K, N);
  // build inside tidy (frees the transposes), read back outside: dataSync inside tidy runs ~20x slower
  const tfRun = (f) => () => {
    const result = tf.tidy(f);
    result.dataSync();
    result.dispose();
  };
  const forward = interleavedMedians({
    ours: viaBackend?.forward ?? (() => k.matmulForward(out, x, w, b, M, K, N)),
    flags: tfRun(() => tf.add(tf.matMul(tx, tw), tb)),
  });
  const dinpProduct = interleavedMedians({
    // through the backend the dinp product comes with a dweight product (one matmulBackward)
    ours: viaBackend?.dinp ?? (() => k.matmulBackwardInputCols(dinp, dout, w, M, K, N, 0, K)),
    flags: tfRun(() => tf.matMul(tdout, tw, false, true)),
    transpose: tfRun(() => tf.matMul(tdout, tf.transpose(tw))),
  });
  const dweightProduct = interleavedMedians({
    ours: viaBackend?.dweight ?? (() => k.matmulBackwardWeightCols(dw, 0, dout, x, M, K, N, 0, N)),
    flags: tfRun(() => tf.matMul(tx, tdout, true, false)),
    transpose: tfRun(() => tf.matMul(tf.transpose(tx), tdout)),
  });
  tf.dispose([tx, tw, tb, tdout]);
  viaBackend?.free();
  return { forward, dinp: dinpProduct, dweight: dweightProduct };
}

const shapes = [
  ...[64, 128, 256, 512, 1024].map((n) => ({ label: `${n}^3`, M: n, K: n, N: n })),
  { label: 'A qkv', M: 512, K: 128, N: 384 },
  { label: 'A attn proj', M: 512, K: 128, N: 128 },
  { label: 'A mlp fc', M: 512, K: 128, N: 512 },
  { label: 'A mlp proj', M: 512, K: 512, N: 128 },
  { label: 'A lm head', M: 512, K: 128, N: 256 },
  { label: 'B qkv', M: 1024, K: 384, N: 1152 },
  { label: 'B attn proj', M: 1024, K: 384, N: 384 },
  { label: 'B mlp fc', M: 1024, K: 384, N: 1536 },
  { label: 'B mlp proj', M: 1024, K: 1536, N: 384 },
  { label: 'B lm head', M: 1024, K: 384, N: 256 },
];

const fmt = (x) => x.toFixed(1);
const oursLabel =
  threadCount === undefined ? 'SIMD, 1 thread, kernels called directly' : `SIMD, ${threadCount} thread(s), through the backend`;
const timeLabel = threadCount === undefined ? 'CPU time' : 'wall time';
console.log(
  `tinygpt wasm (${oursLabel}) vs tfjs-backend-wasm ${tf.version.tfjs} (${threads} thread), GFLOP/s from ${timeLabel}, medians of >= ${MIN_RUNS} interleaved runs\n`,
);
console.log('| shape | M x K x N | product | tinygpt | tfjs flags | tfjs transpose+matMul | ratio vs best tfjs |');
console.log('|---|---|---|---:|---:|---:|---:|');
// through the backend, the dinp row is both backward products (one matmulBackward call) against the
// sum of tfjs's times for the two
const bothBackward = backend !== undefined;
const products = [
  ['forward', 'x@W + b'],
  ['dinp', bothBackward ? 'dout@W^T + x^T@dout' : 'dout@W^T'],
  ['dweight', 'x^T@dout'],
];
for (const { label, M, K, N } of shapes) {
  const ms = measure(M, K, N);
  for (const [product, name] of products) {
    const t = { ...ms[product] };
    const productsTimed = bothBackward && product === 'dinp' ? 2 : 1;
    if (productsTimed === 2) {
      t.flags += ms.dweight.flags;
      t.transpose += ms.dweight.transpose;
    }
    const rate = (msTaken) => productsTimed * gflops(M, K, N, msTaken);
    const ours = rate(t.ours);
    const flags = rate(t.flags);
    const tr = t.transpose === undefined ? undefined : rate(t.transpose);
    const best = Math.max(flags, tr ?? 0);
    console.log(
      `| ${label} | ${M}x${K}x${N} | ${name} | ${fmt(ours)} | ${fmt(flags)} | ${tr === undefined ? '-' : fmt(tr)} | ${(ours / best).toFixed(2)}x |`,
    );
  }
}

/**
 * Decoding: one row through config B's 24 weight matrices (42 MB, more than the caches hold), as a
 * token's forward does, so the time is reading the weights once; tfjs multiplies the same [1,K] rows.
 */
function decodeSweep() {
  const mats = [];
  for (let l = 0; l < 6; l++) mats.push([384, 1152], [384, 384], [384, 1536], [1536, 384]);
  resetHeap();
  const ws = mats.map(([K, N]) => allocRandom(K * N));
  const x = allocRandom(1536);
  const out = allocRandom(1536);
  const second = allocRandom(1536);
  const tws = mats.map(([K, N]) => tf.randomUniform([K, N], -1, 1));
  const txs = mats.map(([K]) => tf.randomUniform([1, K], -1, 1));
  const t = interleavedMedians({
    // as the backend runs it on one thread: K in two halves, the second added after (matmulRowsCols)
    ours: () =>
      mats.forEach(([K, N], i) => {
        k.matmulRowsCols(out, x, ws[i], 0, 1, K, N, 0, K >> 1, 0, N);
        k.matmulRowsCols(second, x, ws[i], 0, 1, K, N, K >> 1, K, 0, N);
        k.accumulate(out, second, N);
      }),
    tfjs: () =>
      mats.forEach((_, i) => {
        const y = tf.matMul(txs[i], tws[i]);
        y.dataSync();
        y.dispose();
      }),
  });
  tf.dispose([...tws, ...txs]);
  const bytes = mats.reduce((sum, [K, N]) => sum + K * N * 4, 0);
  const rate = (ms) => `${ms.toFixed(2)} ms (${(bytes / (ms * 1e6)).toFixed(1)} GB/s)`;
  console.log(
    `\ndecode: one row through config B's 24 weight matrices (${(bytes / 2 ** 20).toFixed(0)} MiB): tinygpt ${rate(t.ours)}, tfjs ${rate(t.tfjs)}, ${(t.tfjs / t.ours).toFixed(2)}x`,
  );
}
// the backend's threads take a half of K each (matmulRowsCols); this row times both halves on this thread
if (threadCount === undefined) decodeSweep();
backend?.dispose();
