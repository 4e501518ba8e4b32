// Where a WebGPU training step and a decoded token spend their time: the host's side (JS and Dawn
// recording the commands, then the wait for the read-back) from plain timed runs, and the GPU's
// side per kernel from timestamps (a second run in which each dispatch gets a compute pass of its
// own, timed with timestampWrites; the extra passes cost a little, so kernel times are for
// comparing kernels, the plain runs for wall time).
//
//   node bench/webgpu-profile.mjs [--config C] [--batch 8] [--seq 256] [--steps 5] [--contexts 8,960] [--tokens 24] [--top 12]
//     [--only train|decode] [--matmul-block auto|4|8] [--submit-every N]
//
// Config C is GPT-2 small's shape (V 50257, C 768, L 12, H 12; maxSeqLen 1024 for decoding). Needs
// an adapter with 'timestamp-query' (real GPUs have it; so has SwiftShader, slowly, to check the
// harness: --config S is a small model for that). Needs the built package (npm run build).
import { configOption, option } from './lib/webgpu-configs.mjs';
import { installNodeWebGPU } from './lib/webgpu-node.mjs';

/** at most this many timed dispatches per submission (two timestamps each; 4096 is WebGPU's query set limit) */
const MAX_TIMED = 2048;

const { configName, config } = configOption();
const batch = Number(option('batch', '8'));
const seq = Number(option('seq', String(Math.min(256, config.maxSeqLen))));
const steps = Number(option('steps', '5'));
const contexts = option('contexts', configName === 'S' ? '8,64' : '8,960')
  .split(',')
  .map(Number);
const tokens = Number(option('tokens', '24'));
const top = Number(option('top', '12'));
const only = option('only', 'all');
const matmulBlock = option('matmul-block', 'auto');
const submitEvery = option('submit-every', undefined);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x, digits = 2) => x.toFixed(digits);

function randomIds(length, seed) {
  let s = seed >>> 0;
  return Int32Array.from({ length }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % config.vocabSize);
}

installNodeWebGPU();
// the backend opens its own device; ask for timestamps on it where the adapter has them
const requestDevice = globalThis.GPUAdapter.prototype.requestDevice;
globalThis.GPUAdapter.prototype.requestDevice = function (descriptor = {}) {
  const features = this.features.has('timestamp-query') ? ['timestamp-query'] : [];
  return requestDevice.call(this, { ...descriptor, requiredFeatures: [...(descriptor.requiredFeatures ?? []), ...features] });
};
const { createModel, createWebGPUBackend, Trainer } = await import('../dist/index.js');
const backend = await createWebGPUBackend({
  matmulBlock: matmulBlock === 'auto' ? 'auto' : Number(matmulBlock),
  ...(submitEvery === undefined ? {} : { submitEvery: Number(submitEvery) }),
});
const { device, rec } = backend;
if (!device.features.has('timestamp-query')) throw new Error(`adapter ${backend.adapterName} has no 'timestamp-query'`);
const model = await createModel({ ...config, seed: 1 }, { backendInstance: backend });

// ---- host side: when each unit first waits for a read-back (what came before is the host's
// recording; early submissions let the GPU start meanwhile) and how many submissions it makes
let unitStart = 0;
let firstReadAt = 0;
let readsInUnit = 0;
let submitsInUnit = 0;
const plainFlush = rec.flush.bind(rec);
rec.flush = () => {
  if (rec.idle) return;
  submitsInUnit++;
  plainFlush();
};
const plainDownload = backend.download.bind(backend);
backend.download = (t) => {
  if (readsInUnit++ === 0) firstReadAt = performance.now();
  return plainDownload(t);
};

// ---- GPU side: each dispatch in its own timed pass, while `timing` is set
let timing = false;
const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * MAX_TIMED });
let timedNames = [];
let pendingReads = [];
let currentKernel = '';
const plainDispatch = rec.dispatch.bind(rec);
rec.dispatch = (kernel, call) => {
  if (!timing) return plainDispatch(kernel, call);
  currentKernel = call.variant ? `${kernel.name}[${call.variant}]` : kernel.name;
  plainDispatch(kernel, call);
  rec.endPass();
};
const plainComputePass = rec.computePass.bind(rec);
rec.computePass = () => {
  if (!timing || rec.pass) return plainComputePass();
  const i = timedNames.length;
  if (i === MAX_TIMED) throw new Error(`more than ${MAX_TIMED} dispatches in one submission`);
  timedNames.push(currentKernel);
  rec.pass = rec.commandEncoder().beginComputePass({
    timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
  });
  return rec.pass;
};
const countingFlush = rec.flush;
rec.flush = () => {
  if (timing && !rec.idle && timedNames.length > 0) {
    rec.endPass();
    const bytes = timedNames.length * 16;
    const resolved = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readable = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = rec.commandEncoder();
    encoder.resolveQuerySet(querySet, 0, 2 * timedNames.length, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, readable, 0, bytes);
    pendingReads.push({ names: timedNames, resolved, readable });
    timedNames = [];
  }
  countingFlush();
};

/** per kernel: total GPU ns and count over the reads pending; also the span from first start to last end */
async function collect(totals) {
  let first = Infinity;
  let last = -Infinity;
  let busy = 0;
  for (const { names, resolved, readable } of pendingReads) {
    await readable.mapAsync(GPUMapMode.READ);
    const stamps = new BigInt64Array(readable.getMappedRange().slice(0));
    readable.unmap();
    readable.destroy();
    resolved.destroy();
    names.forEach((name, i) => {
      const [start, end] = [Number(stamps[2 * i]), Number(stamps[2 * i + 1])];
      const ns = Math.max(0, end - start);
      const entry = totals.get(name) ?? { ns: 0, count: 0 };
      entry.ns += ns;
      entry.count++;
      totals.set(name, entry);
      busy += ns;
      first = Math.min(first, start);
      last = Math.max(last, end);
    });
  }
  pendingReads = [];
  return { busy, span: last - first };
}

/**
 * Times `unit` `count` times plain (wall, host recording until the first submission, submissions),
 * then `count` times with per-dispatch timestamps; returns medians and the per-kernel table.
 */
async function profile(label, count, unit) {
  const wall = [];
  const record = [];
  const submits = [];
  const dispatches = [];
  for (let i = 0; i < count; i++) {
    const d0 = backend.dispatches;
    submitsInUnit = 0;
    readsInUnit = 0;
    unitStart = performance.now();
    await unit(i);
    const end = performance.now();
    wall.push(end - unitStart);
    record.push(firstReadAt - unitStart);
    submits.push(submitsInUnit);
    dispatches.push(backend.dispatches - d0);
  }
  const totals = new Map();
  const busy = [];
  const span = [];
  timing = true;
  // a unit may leave commands recorded for the next submission (the Trainer records AdamW after
  // reading the loss back): one untimed unit first, and what the last one leaves is dropped
  await unit(count);
  await collect(new Map());
  for (let i = 0; i < count; i++) {
    await unit(count + 1 + i);
    const times = await collect(totals);
    busy.push(times.busy / 1e6);
    span.push(times.span / 1e6);
  }
  rec.flush();
  await collect(new Map());
  timing = false;
  const row = {
    label,
    wallMs: median(wall),
    recordMs: median(record),
    submits: median(submits),
    dispatches: median(dispatches),
    gpuBusyMs: median(busy),
    gpuSpanMs: median(span),
  };
  const kernels = [...totals].map(([name, { ns, count: n }]) => ({ name, ms: ns / 1e6 / count, perUnit: n / count }));
  kernels.sort((a, b) => b.ms - a.ms);
  return { row, kernels };
}

/** the untimed wait of one empty submission and a 4-byte read-back: the floor of a token's round trip */
async function roundTripMs() {
  const target = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const source = device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_SRC });
  const times = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(source, 0, target, 0, 16);
    device.queue.submit([encoder.finish()]);
    await target.mapAsync(GPUMapMode.READ);
    target.unmap();
    times.push(performance.now() - t0);
  }
  target.destroy();
  source.destroy();
  return median(times);
}

const results = [];
if (only !== 'decode') {
  const trainer = await Trainer.create(model, {
    data: randomIds(batch * (seq + 1) * 16, 7),
    batchSize: batch,
    seqLen: seq,
    steps: 1_000_000,
    learningRate: 1e-4,
  });
  for (let i = 0; i < 3; i++) await trainer.step();
  results.push(await profile(`training step ${batch} x ${seq}`, steps, () => trainer.step()));
  trainer.dispose();
}

const sampling = { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0, allowed: config.vocabSize };
for (const context of only === 'train' ? [] : contexts) {
  for (const onGpu of [false, true]) {
    const cache = model.createKVCache(1);
    await model.forwardCached(cache, randomIds(context, 3), context);
    const next = (i) => Int32Array.of((i * 7919 + 1) % config.vocabSize);
    const step = onGpu
      ? (i) => model.forwardCachedTokens(cache, next(i), 1, { sampling, uniforms: [0.5] })
      : (i) => model.forwardCached(cache, next(i), 1);
    for (let i = 0; i < 4; i++) await step(i);
    const label = `decoded token at context ${context}, ${onGpu ? 'id chosen on the GPU' : 'logits read back'}`;
    results.push(await profile(label, Math.floor(tokens / 2), step));
    cache.dispose();
  }
}
const roundTrip = await roundTripMs();

console.log(
  `WebGPU profile on ${backend.adapterName}; config ${configName} (${JSON.stringify(config)}), matmulBlock ${matmulBlock}, submitEvery ${submitEvery ?? 'default'}, Node ${process.versions.node}\n`,
);
console.log(`An empty submission and a 4-byte read-back take ${fmt(roundTrip, 3)} ms (median of 40).\n`);
console.log(
  '| unit | wall ms | host ms before the first read-back | submissions | dispatches | GPU busy ms (sum of kernels) | GPU span ms (first start to last end, timed run) |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const { row } of results) {
  console.log(
    `| ${row.label} | ${fmt(row.wallMs)} | ${fmt(row.recordMs)} | ${row.submits} | ${row.dispatches} | ${fmt(row.gpuBusyMs, 3)} | ${fmt(row.gpuSpanMs, 3)} |`,
  );
}
for (const { row, kernels } of results) {
  console.log(`\n${row.label}: the ${top} kernels with the most GPU time (timed run)\n`);
  console.log('| kernel | dispatches | ms | share |');
  console.log('|---|---:|---:|---:|');
  const total = kernels.reduce((sum, k) => sum + k.ms, 0);
  for (const k of kernels.slice(0, top))
    console.log(`| ${k.name} | ${fmt(k.perUnit, 1)} | ${fmt(k.ms, 3)} | ${fmt((100 * k.ms) / total, 1)}% |`);
}
model.dispose();
