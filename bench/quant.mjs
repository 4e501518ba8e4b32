// Quantized decoding: greedy tokens/s of one model in float32, Q8_0 and Q4_0 on the wasm backend,
// at a short and a long context, on 1 thread and on all threads, in one run; and the model file's
// size in float32, float16, Q8_0 and Q4_0. float16 weights (quantizeModel's 'f16') are decoded too. Random weights (N(0, 0.02)): speed does not depend on them.
//
//   node bench/quant.mjs [--configs B,C] [--prompts 8,960] [--new 64] [--threads 1,auto] [--rounds 1] [--warmup 4]
//   node bench/quant.mjs --backend webgpu [--configs B,C] ...   (Dawn through the webgpu package; a GPU)
//
// B: V 256, C 384, L 6, H 6, dFF 1536; C: GPT-2 small's shape (V 50257, C 768, L 12, H 12), both at
// maxSeqLen 1024. tokens/s counts the prompt's pass too (end to end, as bench/generate.mjs);
// "decode ms/token" times the steps after the first new token, in wall-clock time, and "decode CPU
// ms/token" in the CPU time the process used meanwhile (every thread's): on a machine shared with
// other work the second leaves out the time other processes held the core, so on one thread it is
// the steadier measure of the kernels. With --rounds N every variant is timed N times, interleaved,
// and keeps its fastest round. Before the rounds of each context, the variants decode in turn for
// --warmup seconds: V8 compiles each kernel with its baseline compiler first and tiers it up only
// after it has run a while (a single short warm-up left float32's first rounds on baseline code).
// Ratios against float32 are from this run only.
import { createModel, generateStream, quantizeModel, saveModel } from '../dist/index.js';

const CONFIGS = {
  B: { vocabSize: 256, maxSeqLen: 1024, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
  C: { vocabSize: 50257, maxSeqLen: 1024, dModel: 768, nLayers: 12, nHeads: 12, dFF: 3072 },
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const configNames = option('configs', 'B').split(',');
const prompts = option('prompts', '8,960').split(',').map(Number);
const newTokens = Number(option('new', '64'));
const rounds = Number(option('rounds', '1'));
const warmupSeconds = Number(option('warmup', '4'));
const backend = option('backend', 'wasm');
if (backend !== 'wasm' && backend !== 'webgpu') throw new Error(`--backend must be wasm or webgpu, got ${backend}`);
if (backend === 'webgpu') {
  const { installNodeWebGPU } = await import('./lib/webgpu-node.mjs');
  installNodeWebGPU();
}
// threads are the wasm backend's; WebGPU runs one row of the table per config
const threadCounts = (backend === 'webgpu' ? '1' : option('threads', '1,auto')).split(',').map((t) => (t === 'auto' ? 'auto' : Number(t)));
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds: ${rounds} must be a positive integer`);
if (!(warmupSeconds >= 0)) throw new Error(`--warmup: ${warmupSeconds} must be a number of seconds >= 0`);
for (const c of configNames)
  if (!CONFIGS[c]) throw new Error(`--configs: unknown config ${c}; choose from ${Object.keys(CONFIGS).join(', ')}`);
for (const p of prompts)
  if (!(Number.isInteger(p) && p >= 1 && p + newTokens <= 1024)) throw new Error(`--prompts: ${p} must be in [1, ${1024 - newTokens}]`);

function promptOf(length, vocabSize) {
  let s = 12345;
  return Array.from({ length }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % vocabSize);
}

async function timeDecode(model, prompt) {
  const t0 = performance.now();
  let first = 0;
  let cpu0 = process.cpuUsage();
  let count = 0;
  for await (const _ of generateStream(model, prompt, { maxNewTokens: newTokens, eosTokenId: null })) {
    if (count++ === 0) {
      first = performance.now();
      cpu0 = process.cpuUsage();
    }
  }
  const end = performance.now();
  const cpu = process.cpuUsage(cpu0);
  return {
    tokensPerSec: (count * 1000) / (end - t0),
    decodeMs: (end - first) / (count - 1),
    decodeCpuMs: (cpu.user + cpu.system) / 1000 / (count - 1),
  };
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const rows = [];
const sizes = [];
if (backend === 'webgpu') console.log(`WebGPU: ${(await createModel(CONFIGS.B, { backend })).backend.adapterName}\n`);
for (const name of configNames) {
  for (const threads of threadCounts) {
    const placement = backend === 'wasm' ? { backend, wasmThreads: threads } : { backend };
    const float = await createModel(CONFIGS[name], placement);
    const usedThreads = backend === 'wasm' ? (float.backend.threads ?? 1) : 'GPU';
    const variants = [['float32', float]];
    for (const format of ['f16', 'q8_0', 'q4_0']) variants.push([format, await quantizeModel(float, { format, ...placement })]);
    if (threads === threadCounts[0]) {
      sizes.push([
        name,
        (await saveModel(float)).length,
        (await saveModel(float, { dtype: 'float16' })).length,
        (await saveModel(variants[2][1])).length,
        (await saveModel(variants[3][1])).length,
      ]);
    }
    for (const p of prompts) {
      const prompt = promptOf(p, CONFIGS[name].vocabSize);
      // warm-up: workspaces, threads, and every variant's kernels tiered up
      const warmStart = performance.now();
      do for (const [, model] of variants) await timeDecode(model, prompt);
      while (performance.now() - warmStart < warmupSeconds * 1000);
      // each round times every variant in turn; each keeps its fastest round (wall and CPU separately)
      const best = variants.map(() => ({ tokensPerSec: 0, decodeMs: Infinity, decodeCpuMs: Infinity }));
      for (let round = 0; round < rounds; round++) {
        for (const [i, [, model]] of variants.entries()) {
          const r = await timeDecode(model, prompt);
          best[i] = {
            tokensPerSec: Math.max(best[i].tokensPerSec, r.tokensPerSec),
            decodeMs: Math.min(best[i].decodeMs, r.decodeMs),
            decodeCpuMs: Math.min(best[i].decodeCpuMs, r.decodeCpuMs),
          };
        }
      }
      const base = best[0];
      for (const [i, [label]] of variants.entries()) {
        const r = best[i];
        rows.push(
          `| ${name} | ${usedThreads} | ${p} -> ${p + newTokens} | ${label} | ${r.tokensPerSec.toFixed(1)} | ${r.decodeMs.toFixed(2)} | ${(base.decodeMs / r.decodeMs).toFixed(2)}x | ${r.decodeCpuMs.toFixed(2)} | ${(base.decodeCpuMs / r.decodeCpuMs).toFixed(2)}x |`,
        );
        console.error(rows[rows.length - 1]);
      }
    }
    for (const [, model] of variants) model.dispose();
  }
}
console.log(
  '| config | threads | context | weights | tok/s | decode ms/token | decode speed-up vs float32 | decode CPU ms/token | CPU speed-up vs float32 |',
);
console.log('| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const row of rows) console.log(row);
console.log('\n| config | float32 file | float16 | Q8_0 | Q4_0 |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [name, f32, f16, q8, q4] of sizes) console.log(`| ${name} | ${mb(f32)} | ${mb(f16)} | ${mb(q8)} | ${mb(q4)} |`);
