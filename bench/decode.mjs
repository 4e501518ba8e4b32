// Generation with a KV cache against ONNX Runtime, what transformers.js runs on: the same model (
// tinygpt's weights written out as ONNX, bench/lib/onnx-gpt.mjs, per-layer past_key_values) on
// onnxruntime-web (wasm, SIMD, 1 thread) and onnxruntime-node (native, 1 intra-op thread), greedy,
// in the same run as tinygpt's wasm backend.
//
//   node bench/decode.mjs [--configs A,B] [--contexts 8,960] [--new 64] [--prompt 960] [--threads 1] [--warmup 3] [--rounds 3]
//
// For each context p, each side takes a p-token prompt and generates --new tokens; "decode ms/token"
// times the steps after the first token (p -> p + new), in --rounds rounds that take the sides in
// turn, each side keeping its fastest round (wall and CPU time separately): one round alone swings
// with the process's other work right after the peers' runs (likely their garbage), which costs most
// when tinygpt has both cores. The prompt pass is the best of 3 passes of --prompt tokens (to the
// first token). Before timing, each side decodes for --warmup seconds (V8 tiers wasm up only after
// about 2 s) and every side's greedy ids are checked to be the same.
// Figures are wall time and, beside it, this process's CPU time (user + system) for the same work:
// on a shared machine CPU time is less disturbed by other processes taking the core. Ratios compare
// figures from this run only.
import { createBackend, createModel } from '../dist/index.js';
import * as ortWeb from 'onnxruntime-web';
import ortNode from 'onnxruntime-node';
import { gptToOnnx } from './lib/onnx-gpt.mjs';

const CONFIGS = {
  A: { vocabSize: 256, maxSeqLen: 1024, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512 },
  B: { vocabSize: 256, maxSeqLen: 1024, dModel: 384, nLayers: 6, nHeads: 6, dFF: 1536 },
};

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const configNames = option('configs', 'A,B').split(',');
const contexts = option('contexts', '8,960').split(',').map(Number);
const newTokens = Number(option('new', '64'));
const promptLength = Number(option('prompt', '960'));
const threads = Number(option('threads', '1'));
const warmupSeconds = Number(option('warmup', '3'));
const rounds = Number(option('rounds', '3'));
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${rounds}`);
for (const c of configNames)
  if (!CONFIGS[c]) throw new Error(`--configs: unknown config ${c}; choose from ${Object.keys(CONFIGS).join(', ')}`);
for (const p of [...contexts, promptLength])
  if (!(Number.isInteger(p) && p >= 1 && p + newTokens <= 1024))
    throw new Error(`--contexts/--prompt: ${p} must be an integer in [1, ${1024 - newTokens}] (prompt + new <= maxSeqLen 1024)`);
if (!(Number.isInteger(newTokens) && newTokens >= 2)) throw new Error(`--new must be an integer >= 2, got ${newTokens}`);

function promptOf(length, vocabSize) {
  // a fixed pseudo-random prompt (LCG), the same for every side
  let s = 12345;
  return Array.from({ length }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % vocabSize);
}

function argmax(logits) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** a greedy decoder over one side: start(prompt) -> first token, step(token) -> next token */
function tinygptSide(model) {
  let cache = null;
  return {
    name: 'tinygpt',
    async start(prompt) {
      cache?.dispose();
      cache = model.createKVCache(1);
      return argmax(await model.forwardCached(cache, Int32Array.from(prompt), prompt.length));
    },
    async step(token) {
      return argmax(await model.forwardCached(cache, Int32Array.of(token), 1));
    },
    dispose() {
      cache?.dispose();
      model.dispose();
    },
  };
}

function ortSide(name, ort, session, config) {
  const { nLayers: L, nHeads: NH, dModel: C } = config;
  const HS = C / NH;
  let past = null;
  let length = 0;
  const run = async (ids) => {
    const T = ids.length;
    const P = length;
    const bias = new Float32Array(T * (P + T));
    for (let i = 0; i < T; i++) for (let j = P + i + 1; j < P + T; j++) bias[i * (P + T) + j] = -1e9;
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, T]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (_, i) => BigInt(P + i)),
        [1, T],
      ),
      attention_bias: new ort.Tensor('float32', bias, [T, P + T]),
    };
    for (let l = 0; l < L; l++) {
      feeds[`past_key_${l}`] = past?.[`present_key_${l}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, NH, 0, HS]);
      feeds[`past_value_${l}`] = past?.[`present_value_${l}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, NH, 0, HS]);
    }
    past = await session.run(feeds);
    length += T;
    return argmax(past.logits.data);
  };
  return {
    name,
    start(prompt) {
      past = null;
      length = 0;
      return run(prompt);
    },
    step: (token) => run([token]),
    dispose: () => session.release(),
  };
}

/** greedy ids and timings of `count` tokens after `prompt` */
async function decode(side, prompt, count) {
  const t0 = performance.now();
  const c0 = cpuMs();
  const ids = [await side.start(prompt)];
  const t1 = performance.now();
  const c1 = cpuMs();
  while (ids.length < count) ids.push(await side.step(ids[ids.length - 1]));
  const steps = count - 1;
  return {
    ids,
    promptMs: t1 - t0,
    promptCpuMs: c1 - c0,
    decodeMs: (performance.now() - t1) / steps,
    decodeCpuMs: (cpuMs() - c1) / steps,
  };
}

ortWeb.env.wasm.numThreads = 1;
ortWeb.env.wasm.simd = true;
const fmt = (x, digits = 2) => x.toFixed(digits);
console.log(
  `tinygpt wasm backend (${threads} thread${threads > 1 ? 's' : ''}) vs onnxruntime-web ${ortWeb.env.versions.web} (wasm, SIMD, 1 thread) and onnxruntime-node ${ortNode.env.versions.node ?? ''} (1 thread), greedy, ${newTokens} new tokens, Node ${process.versions.node}`,
);
console.log('');
console.log('| config | | tinygpt | onnxruntime-web | onnxruntime-node | tinygpt / ort-web speed | tinygpt / ort-node speed |');
console.log('|---|---|---:|---:|---:|---:|---:|');

for (const name of configNames) {
  const config = CONFIGS[name];
  const backendInstance = await createBackend('wasm', { wasmThreads: threads });
  const model = await createModel({ ...config, seed: 1 }, { backendInstance });
  const onnx = gptToOnnx(config, await model.getParameters());
  const sides = [
    tinygptSide(model),
    ortSide(
      'onnxruntime-web',
      ortWeb,
      await ortWeb.InferenceSession.create(onnx, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }),
      config,
    ),
    ortSide(
      'onnxruntime-node',
      ortNode,
      await ortNode.InferenceSession.create(onnx, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' }),
      config,
    ),
  ];
  // warm-up, each side in turn, and one pass at each length (buffers of that size)
  for (const side of sides) {
    const until = performance.now() + warmupSeconds * 1000;
    while (performance.now() < until) await decode(side, promptOf(8, config.vocabSize), 16);
    for (const p of [...contexts, promptLength]) await decode(side, promptOf(p, config.vocabSize), 2);
  }
  const row = (label, values, digits) => {
    const [ours, web, node] = values;
    const cells = values.map((v) => `${fmt(v.wall, digits)} / ${fmt(v.cpu, digits)}`);
    const ratio = (peer) => `${fmt(peer.wall / ours.wall)}x / ${fmt(peer.cpu / ours.cpu)}x`;
    console.log(`| ${name} | ${label} | ${cells.join(' | ')} | ${ratio(web)} | ${ratio(node)} |`);
  };
  for (const p of contexts) {
    const prompt = promptOf(p, config.vocabSize);
    const best = sides.map(() => ({ wall: Infinity, cpu: Infinity }));
    for (let round = 0; round < rounds; round++) {
      const results = [];
      for (const side of sides) results.push(await decode(side, prompt, newTokens));
      for (const r of results.slice(1)) {
        const at = r.ids.findIndex((id, i) => id !== results[0].ids[i]);
        if (at !== -1) throw new Error(`config ${name}, context ${p}: greedy ids differ from tinygpt's at token ${at}: not the same model`);
      }
      results.forEach((r, i) => {
        best[i] = { wall: Math.min(best[i].wall, r.decodeMs), cpu: Math.min(best[i].cpu, r.decodeCpuMs) };
      });
    }
    row(`decode ms/token, ${p} -> ${p + newTokens}`, best, 2);
  }
  const prompt = promptOf(promptLength, config.vocabSize);
  const best = [];
  for (const side of sides) {
    let b = { wall: Infinity, cpu: Infinity };
    for (let i = 0; i < 3; i++) {
      const r = await decode(side, prompt, 1);
      b = { wall: Math.min(b.wall, r.promptMs), cpu: Math.min(b.cpu, r.promptCpuMs) };
    }
    best.push(b);
  }
  row(`prompt pass ms, ${promptLength} tokens`, best, 0);
  for (const side of sides) await side.dispose();
}
console.log('');
console.log('Each cell: wall time / CPU time of this process. Every side gave the same greedy ids at every context.');
