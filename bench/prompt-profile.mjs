// Where the time of one prompt pass goes, op by op, on the wasm backend: every backend op (the
// protected _ops the checked front calls) is timed with its self time (nested ops subtracted), over
// --passes prompt passes of --prompt tokens after --warmup seconds of prompt passes (V8 tiers wasm
// up only after about 2 s). What the ops do not cover is the model's own JS (views, checks, plan).
// With --train, a pass is one training step instead (batch 8, T 128, AdamW, as bench/train.mjs),
// and --warmup is 12 s by default: on a 2-core AMD EPYC host, steps after 4 s still took 2.4-2.7 s
// against 1.6 s once the kernels had tiered up.
//
//   node bench/prompt-profile.mjs [--config B] [--prompt 960] [--threads 1] [--warmup 4] [--passes 3] [--train]
import { createBackend, createModel, Trainer } from '../dist/index.js';

const CONFIGS = {
  A: { vocabSize: 256, maxSeqLen: 1024, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512 },
  B: { vocabSize: 256, maxSeqLen: 1024, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
};
function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const config = CONFIGS[option('config', 'B')];
if (!config) throw new Error(`--config: choose from ${Object.keys(CONFIGS).join(', ')}`);
const promptLength = Number(option('prompt', '960'));
const threads = Number(option('threads', '1'));
const training = process.argv.includes('--train');
const warmupSeconds = Number(option('warmup', training ? '12' : '4'));
const passes = Number(option('passes', '3'));
const [BATCH, T] = [8, 128];

const backend = await createBackend('wasm', { wasmThreads: threads });
const model = await createModel({ ...config, ...(training ? { maxSeqLen: T } : {}), seed: 1 }, { backendInstance: backend });
let s = 12345;
const tokens = (length) => Int32Array.from({ length }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % config.vocabSize);
const prompt = tokens(promptLength);
const trainer = training
  ? await Trainer.create(model, {
      data: tokens(16 * BATCH * T + 1),
      batchSize: BATCH,
      seqLen: T,
      steps: 1e6,
      warmupSteps: 0,
      schedule: 'constant',
    })
  : null;
async function pass() {
  const t0 = performance.now();
  if (trainer) {
    await trainer.step();
    return performance.now() - t0;
  }
  const cache = model.createKVCache(1);
  await model.forwardCached(cache, prompt, promptLength);
  const ms = performance.now() - t0;
  cache.dispose();
  return ms;
}

const until = performance.now() + warmupSeconds * 1000;
while (performance.now() < until) await pass();
let plain = Infinity;
for (let i = 0; i < passes; i++) plain = Math.min(plain, await pass());

// self time per op: a stack of running ops, each op's time minus its nested ops' time
const self = new Map();
const stack = [];
const names = new Set();
for (let proto = Object.getPrototypeOf(backend); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
  for (const name of Object.getOwnPropertyNames(proto)) if (name.startsWith('_') && typeof proto[name] === 'function') names.add(name);
}
for (const name of names) {
  const original = backend[name];
  backend[name] = function (...args) {
    const frame = { start: performance.now(), nested: 0 };
    stack.push(frame);
    try {
      return original.apply(this, args);
    } finally {
      stack.pop();
      const total = performance.now() - frame.start;
      if (stack.length) stack[stack.length - 1].nested += total;
      const entry = self.get(name) ?? { ms: 0, calls: 0 };
      entry.ms += total - frame.nested;
      entry.calls++;
      self.set(name, entry);
    }
  };
}
let profiled = 0;
for (let i = 0; i < passes; i++) profiled += await pass();
profiled /= passes;

console.log(
  `${training ? `training step, batch ${BATCH} x T ${T}` : `prompt pass of ${promptLength} tokens`}, config ${option('config', 'B')}, wasm ${threads} thread(s)${backend.fusedMultiplyAdd ? ', relaxed SIMD' : ''}, Node ${process.versions.node}`,
);
console.log(`best of ${passes} unprofiled: ${plain.toFixed(1)} ms; profiled mean ${profiled.toFixed(1)} ms`);
console.log('');
console.log('| op (self time) | ms per pass | calls per pass | share |');
console.log('|---|---:|---:|---:|');
let covered = 0;
for (const [name, { ms, calls }] of [...self].sort((a, b) => b[1].ms - a[1].ms)) {
  covered += ms / passes;
  console.log(`| ${name} | ${(ms / passes).toFixed(1)} | ${calls / passes} | ${((100 * ms) / passes / profiled).toFixed(1)}% |`);
}
console.log(`| (outside the ops) | ${(profiled - covered).toFixed(1)} | | ${((100 * (profiled - covered)) / profiled).toFixed(1)}% |`);
trainer?.dispose();
model.dispose();
backend.dispose();
