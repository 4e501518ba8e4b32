#!/usr/bin/env node
/**
 * The `tinygpt` command: train a model on a text file, generate from a saved one.
 * Node only; it drives the same public API that applications use.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createModel } from '../model/create.js';
import type { BackendChoice } from '../model/types.js';
import { train, Trainer, type TrainOptions } from '../train/trainer.js';
import { generate, generateStream } from '../generate/generate.js';
import type { GenerateOptions, GenerateResult } from '../generate/options.js';
import { saveModel, loadModel } from '../io/model-file.js';
import { writeFileAtomic } from '../io/node-files.js';
import { BPETokenizer, CharTokenizer } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { formatDuration, lossChart, ProgressBar } from './terminal.js';
import { plotHistorySVG } from '../plot/history-svg.js';
import { historyFromBytes } from '../plot/history-file.js';
import { checkInput, checkRoom, EXIT_USAGE, exitCodeFor, prepareOutput, sameFileSystem, UsageError } from './outputs.js';
import type { GPT } from '../model/gpt.js';

/** A command-line flag: what parseArgs needs, plus the line --help prints. */
interface Flag {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  help: string;
}
type Flags = Record<string, Flag>;
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], flags: Flags): Values {
  const options = Object.fromEntries(Object.entries(flags).map(([name, { help: _help, ...o }]) => [name, o]));
  return parseArgs({ args: argv, options, strict: true }).values as Values;
}

const str = (values: Values, name: string): string | undefined => values[name] as string | undefined;

const TRAIN_OPTIONS = {
  data: { type: 'string', help: 'UTF-8 text file to train on (required)' },
  out: { type: 'string', help: 'where to save the model (default model.safetensors)' },
  tokenizer: { type: 'string', help: "'char' (default), 'bpe' (trained on the data) or 'gpt2'" },
  'vocab-size': { type: 'string', help: 'BPE vocabulary size when --tokenizer bpe (default 1024)' },
  'gpt2-vocab': { type: 'string', help: 'GPT-2 encoder.json (vocab.json) for --tokenizer gpt2 (default: the copy inside tinygpt)' },
  'gpt2-merges': { type: 'string', help: 'GPT-2 vocab.bpe (merges.txt) for --tokenizer gpt2 (default: the copy inside tinygpt)' },
  lines: { type: 'boolean', help: 'treat each line as its own sequence (names, short texts), padded' },
  'd-model': { type: 'string', help: 'model width (default 128)' },
  layers: { type: 'string', help: 'transformer blocks (default 4)' },
  heads: { type: 'string', help: 'attention heads (default 4)' },
  'seq-len': { type: 'string', help: 'context length in tokens (default 64)' },
  dropout: { type: 'string', help: 'dropout probability (default 0.1)' },
  'batch-size': { type: 'string', help: 'sequences per step (default 16)' },
  steps: { type: 'string', help: 'optimizer steps (default 2000)' },
  lr: { type: 'string', help: 'peak learning rate (default 3e-3)' },
  'min-lr': { type: 'string', help: 'final learning rate of the cosine decay (default lr/10)' },
  warmup: { type: 'string', help: 'warmup steps (default steps/20)' },
  'weight-decay': { type: 'string', help: 'AdamW decoupled weight decay (default 0.1)' },
  'grad-accum': { type: 'string', help: 'micro-batches per step (default 1)' },
  'max-grad-norm': { type: 'string', help: 'global-norm clipping (default 1)' },
  'eval-interval': { type: 'string', help: 'steps between validation passes (default steps/10)' },
  'val-fraction': { type: 'string', help: 'share of the data held out for validation (default 0.1)' },
  checkpoint: { type: 'string', help: 'checkpoint file written every --checkpoint-interval steps' },
  'checkpoint-interval': { type: 'string', help: 'steps between checkpoints (default eval interval)' },
  resume: { type: 'string', help: 'checkpoint file to continue from' },
  backend: { type: 'string', help: "'auto' (default), 'wasm', 'webgpu' or 'js'" },
  'on-device-lost': { type: 'string', help: "if the GPU device is lost: 'error' (default) or 'wasm' (go on there)" },
  threads: { type: 'string', help: "wasm threads: 'auto' (default) or a count" },
  seed: { type: 'string', help: 'seed for init, data order and dropout (default 1337)' },
  samples: { type: 'string', help: 'samples to print after training (default 5)' },
  plot: { type: 'string', help: 'write the loss and learning-rate curves to this SVG file' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} satisfies Flags;

const PLOT_OPTIONS = {
  out: { type: 'string', short: 'o', help: 'the SVG file to write (default: the input name with .svg)' },
  title: { type: 'string', help: 'a line above the two panels' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} satisfies Flags;

const GENERATE_OPTIONS = {
  model: { type: 'string', help: 'model file written by `tinygpt train` (required)' },
  prompt: { type: 'string', help: 'text to continue (default: start from the end-of-text token)' },
  'max-new-tokens': { type: 'string', help: 'tokens to generate (default 200)' },
  temperature: { type: 'string', help: 'sampling temperature (default 0.8)' },
  'top-k': { type: 'string', help: 'keep the k most likely tokens' },
  'top-p': { type: 'string', help: 'nucleus sampling mass in (0, 1]' },
  'min-p': { type: 'string', help: 'drop tokens below min-p x the top probability' },
  'repetition-penalty': { type: 'string', help: 'CTRL repetition penalty (> 1 discourages repeats)' },
  'no-repeat-ngram': { type: 'string', help: 'never repeat an n-gram of this size' },
  beams: { type: 'string', help: 'beam search with this many beams (deterministic)' },
  greedy: { type: 'boolean', help: 'always take the most likely token' },
  stop: { type: 'string', multiple: true, help: 'stop at this string (repeatable)' },
  num: { type: 'string', help: 'independent samples to draw (default 1)' },
  seed: { type: 'string', help: 'sampling seed (default: random)' },
  backend: { type: 'string', help: "'auto' (default), 'wasm', 'webgpu' or 'js'" },
  'no-bos': { type: 'boolean', help: 'do not start the prompt with the end-of-text token' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} satisfies Flags;

function deviceLostChoice(values: Values): 'error' | 'wasm' {
  const choice = str(values, 'on-device-lost') ?? 'error';
  if (choice !== 'error' && choice !== 'wasm') throw new UsageError(`--on-device-lost must be 'error' or 'wasm', got '${choice}'`);
  return choice;
}

function usage(command: string, flags: Flags, summary: string): string {
  const rows = Object.entries(flags).map(([name, f]) => `  ${`--${name}${f.type === 'string' ? ' <value>' : ''}`.padEnd(30)} ${f.help}`);
  return `tinygpt ${command}: ${summary}\n\n${rows.join('\n')}\n`;
}

const MAIN_HELP = `tinygpt: train and sample small GPT language models

  tinygpt train --data corpus.txt --out model.safetensors [options]
  tinygpt generate --model model.safetensors --prompt "..." [options]
  tinygpt plot checkpoint.safetensors -o run.svg   (or a history as JSON)

Run \`tinygpt <command> --help\` for the options of each command.

Exit codes: 0 done (also when stopped with Ctrl-C, after saving); 2 the command line or an input is
wrong (a flag, an input file that cannot be read or is malformed, an output that is a directory,
read-only or has no room, a setting out of range), checked before any training; 1 the run failed
(a checkpoint or model write that failed part-way, a lost GPU device, memory, a non-finite loss).
`;

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function num(
  values: Values,
  name: string,
  fallback: number,
  check: (x: number) => boolean = Number.isFinite,
  allowed = 'a number',
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  // decimal only: Number() would also take '0x10', '0b1', '' and ' 5 '
  const x = typeof raw === 'string' && DECIMAL.test(raw) ? Number(raw) : NaN;
  if (!check(x)) throw new UsageError(`--${name} must be ${allowed}, got ${JSON.stringify(raw)}`);
  return x;
}

const positiveInt = (x: number) => Number.isInteger(x) && x > 0;

function threadsOption(values: Values): number | 'auto' {
  return str(values, 'threads') === undefined || str(values, 'threads') === 'auto'
    ? 'auto'
    : num(values, 'threads', 1, positiveInt, "'auto' or a positive integer");
}

/**
 * --out and --checkpoint must have room for what the run will write, checked before the first step:
 * the model file exactly (its size depends on the shapes, config and tokenizer only), a checkpoint
 * up to the trainer's bound (parameters, AdamW moments and the header with the history to come).
 * On one file system the model file is written while the last checkpoint is on disk: both must fit.
 */
async function checkFilesFit(
  model: GPT,
  tokenizer: Tokenizer,
  options: TrainOptions,
  outPath: string,
  checkpointPath?: string,
): Promise<void> {
  const modelBytes = (await saveModel(model, { tokenizer })).byteLength;
  let checkpointBytes = 0;
  if (checkpointPath !== undefined) {
    const trainer = await Trainer.create(model, options);
    try {
      checkpointBytes = await trainer.checkpointBytesBound();
    } finally {
      trainer.dispose();
    }
    await checkRoom('checkpoint', checkpointPath, checkpointBytes, 'a checkpoint of this run');
  }
  const shared = checkpointPath !== undefined && (await sameFileSystem(outPath, checkpointPath));
  await checkRoom(
    'out',
    outPath,
    modelBytes + (shared ? checkpointBytes : 0),
    shared ? 'the model file beside the last checkpoint' : 'the model file',
  );
}
async function buildTokenizer(values: Values, text: string): Promise<Tokenizer> {
  const kind = str(values, 'tokenizer') ?? 'char';
  switch (kind) {
    case 'char':
      return CharTokenizer.train(text, { specialTokens: ['<|endoftext|>'] });
    case 'bpe': {
      const vocabSize = num(values, 'vocab-size', 1024, (x) => Number.isInteger(x) && x >= 257, 'an integer >= 257');
      return BPETokenizer.train(text, { vocabSize, specialTokens: ['<|endoftext|>'] });
    }
    case 'gpt2': {
      // without files: the copy of GPT-2's vocabulary that tinygpt/gpt2 ships
      if (!values['gpt2-vocab'] && !values['gpt2-merges']) return (await import('../gpt2.js')).gpt2Tokenizer();
      if (!values['gpt2-vocab'] || !values['gpt2-merges'])
        throw new UsageError('--tokenizer gpt2 with files needs both --gpt2-vocab encoder.json and --gpt2-merges vocab.bpe');
      const [vocab, merges] = await Promise.all([
        readFile(str(values, 'gpt2-vocab')!, 'utf8'),
        readFile(str(values, 'gpt2-merges')!, 'utf8'),
      ]);
      return BPETokenizer.fromGPT2(vocab, merges);
    }
    default:
      throw new UsageError(`--tokenizer must be 'char', 'bpe' or 'gpt2', got ${JSON.stringify(kind)}`);
  }
}

async function trainCommand(argv: string[]): Promise<void> {
  const values = parse(argv, TRAIN_OPTIONS);
  if (values.help) return void process.stdout.write(usage('train', TRAIN_OPTIONS, 'train a GPT on a text file'));
  const dataPath = str(values, 'data');
  if (!dataPath) throw new UsageError('--data <file> is required (a UTF-8 text file)');
  // every file is checked before the tokenizer and the model are built, so nothing fails after training
  await checkInput('data', dataPath);
  for (const flag of ['resume', 'gpt2-vocab', 'gpt2-merges']) {
    const path = str(values, flag);
    if (path !== undefined) await checkInput(flag, path);
  }
  const outPath = str(values, 'out') ?? 'model.safetensors';
  const checkpointPath = str(values, 'checkpoint');
  const outputs: [string, string][] = [['out', outPath]];
  if (checkpointPath !== undefined) outputs.push(['checkpoint', checkpointPath]);
  if (str(values, 'plot') !== undefined) outputs.push(['plot', str(values, 'plot')!]);
  for (const [flag, path] of outputs) {
    for (const stale of await prepareOutput(flag, path)) process.stderr.write(`removed ${stale}, left by an interrupted run\n`);
  }
  const text = await readFile(dataPath, 'utf8');
  if (text.length === 0) throw new UsageError(`--data ${dataPath} is empty`);

  const steps = num(values, 'steps', 2000, positiveInt, 'a positive integer');
  const seqLen = num(values, 'seq-len', 64, positiveInt, 'a positive integer');
  const lr = num(values, 'lr', 3e-3, (x) => x > 0, 'a positive number');
  const evalInterval = num(values, 'eval-interval', Math.max(1, Math.round(steps / 10)), positiveInt, 'a positive integer');
  const valFraction = num(values, 'val-fraction', 0.1, (x) => x > 0 && x < 0.5, 'in (0, 0.5)');
  const seed = num(values, 'seed', 1337, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  const onDeviceLost = deviceLostChoice(values);

  const started = performance.now();
  const tokenizer = await buildTokenizer(values, text);
  const eos = tokenizer.eosTokenId;
  process.stderr.write(`tokenizer: ${tokenizer.kind}, ${tokenizer.vocabSize} tokens (${formatDuration(performance.now() - started)})\n`);

  // Hold out the tail (or every k-th line) for validation, so the split is reproducible.
  let data: Record<string, unknown>;
  if (values.lines) {
    const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
    // each line is framed by end-of-text tokens: the model learns where lines start and stop
    const seqs = lines.map((l) => (eos === undefined ? tokenizer.encode(l) : [eos, ...tokenizer.encode(l), eos]));
    const every = Math.round(1 / valFraction);
    data = { sequences: seqs.filter((_, i) => i % every !== 0), valSequences: seqs.filter((_, i) => i % every === 0) };
  } else {
    const ids = Int32Array.from(tokenizer.encode(text));
    const cut = Math.floor(ids.length * (1 - valFraction));
    data = { data: ids.subarray(0, cut), valData: ids.subarray(cut) };
  }

  const model = await createModel(
    {
      vocabSize: tokenizer.vocabSize,
      maxSeqLen: seqLen,
      dModel: num(values, 'd-model', 128, positiveInt, 'a positive integer'),
      nLayers: num(values, 'layers', 4, positiveInt, 'a positive integer'),
      nHeads: num(values, 'heads', 4, positiveInt, 'a positive integer'),
      dropout: num(values, 'dropout', 0.1, (x) => x >= 0 && x < 1, 'in [0, 1)'),
      seed,
    },
    { backend: (str(values, 'backend') ?? 'auto') as BackendChoice, wasmThreads: threadsOption(values) },
  );
  const threads = (model.backend as { threads?: number }).threads;
  process.stderr.write(
    `model: ${(model.numParameters() / 1e6).toFixed(2)}M parameters on the ${model.backendName} backend${threads ? ` (${threads} thread${threads > 1 ? 's' : ''})` : ''}\n`,
  );

  const bar = new ProgressBar();
  const abort = new AbortController();
  process.once('SIGINT', () => {
    bar.log('interrupted: finishing the current step, then saving');
    abort.abort();
  });
  // A checkpoint that cannot be written (a full disk, a folder gone) stops the run: the model as of
  // that step is still saved to --out, and the last checkpoint written stays whole (atomic writes).
  const checkpoints: { failure: { step: number; error: Error } | null; lastWritten: number | null } = { failure: null, lastWritten: null };
  const writeCheckpoint = async (bytes: Uint8Array, step: number): Promise<void> => {
    if (checkpoints.failure || checkpointPath === undefined) return;
    try {
      await writeFileAtomic(checkpointPath, bytes);
      checkpoints.lastWritten = step;
    } catch (err) {
      checkpoints.failure = { step, error: err as Error };
      bar.log(`--checkpoint ${checkpointPath}: writing step ${step} failed (${(err as Error).message}); stopping and saving the model`);
      abort.abort();
    }
  };
  const trainOptions: TrainOptions = {
    ...data,
    tokenizer,
    batchSize: num(values, 'batch-size', 16, positiveInt, 'a positive integer'),
    seqLen,
    steps,
    learningRate: lr,
    minLearningRate: num(values, 'min-lr', lr / 10, (x) => x >= 0, 'a non-negative number'),
    warmupSteps: num(values, 'warmup', Math.round(steps / 20), (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer'),
    weightDecay: num(values, 'weight-decay', 0.1, (x) => x >= 0, 'a non-negative number'),
    gradientAccumulationSteps: num(values, 'grad-accum', 1, positiveInt, 'a positive integer'),
    maxGradNorm: num(values, 'max-grad-norm', 1, (x) => x > 0, 'a positive number'),
    evalInterval,
    onCheckpoint: checkpointPath === undefined ? undefined : writeCheckpoint,
    checkpointInterval: values.checkpoint ? num(values, 'checkpoint-interval', evalInterval, positiveInt, 'a positive integer') : undefined,
    resumeFrom: str(values, 'resume'),
    seed,
    signal: abort.signal,
    onStep: (m) =>
      bar.update({
        step: m.step,
        totalSteps: steps,
        loss: m.trainLoss,
        learningRate: m.learningRate,
        tokensPerSecond: m.tokensPerSecond,
        elapsedMs: m.elapsedMs,
      }),
    onEval: (m) => bar.log(`step ${m.step}: val loss ${m.valLoss.toFixed(4)}, perplexity ${m.valPerplexity.toFixed(2)}`),
    onDeviceLost,
    onBackendChange: (change) => bar.log(`${change.reason}: going on on ${change.to} from step ${change.resumedFromStep}`),
  };
  await checkFilesFit(model, tokenizer, trainOptions, outPath, checkpointPath);
  const result = await train(model, trainOptions);
  bar.done();

  const out = outPath;
  await writeFileAtomic(out, await saveModel(model, { tokenizer }));
  const failed = checkpoints.failure;
  if (failed) {
    model.dispose();
    throw new Error(
      `--checkpoint ${checkpointPath}: writing the checkpoint of step ${failed.step} failed (${failed.error.message}); training stopped there. ` +
        `${checkpoints.lastWritten === null ? 'No checkpoint was written' : `The last checkpoint written (step ${checkpoints.lastWritten}) is whole and loads`}; ` +
        `the model as of step ${result.steps} is saved to ${out}`,
      { cause: failed.error },
    );
  }
  const history = result.history;
  const plotPath = str(values, 'plot');
  if (plotPath && history.length > 0) await writeFileAtomic(plotPath, new TextEncoder().encode(plotHistorySVG(history)));
  process.stdout.write(
    `\n${lossChart([
      { label: 'train loss', mark: '·', points: history.map((h) => [h.step, h.trainLoss]) },
      { label: 'val loss', mark: '●', points: history.filter((h) => h.valLoss !== undefined).map((h) => [h.step, h.valLoss!]) },
    ])}\n\n`,
  );
  process.stdout.write(
    `${result.stopped === 'aborted' ? 'stopped early' : 'done'} after ${result.steps} steps in ${formatDuration(performance.now() - started)}: ` +
      `train loss ${result.finalTrainLoss.toFixed(4)}, best val loss ${result.bestValLoss?.toFixed(4) ?? 'n/a'}; saved ${out}` +
      `${plotPath && history.length > 0 ? `, plotted ${plotPath}` : ''}\n`,
  );

  const samples = num(values, 'samples', 5, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  if (samples > 0) {
    process.stdout.write('\nsamples:\n');
    const start = eos !== undefined ? [eos] : tokenizer.encode(text.slice(0, 1));
    for (let i = 0; i < samples; i++) {
      let line = '';
      for await (const piece of generateStream(model, start, {
        tokenizer,
        maxNewTokens: values.lines ? seqLen - 1 : 200,
        doSample: true,
        temperature: 0.8,
        seed: seed + i,
        eosTokenId: eos,
      })) {
        line += piece.text ?? '';
      }
      process.stdout.write(`  ${line.trim()}\n`);
    }
  }
  model.dispose();
}

async function generateCommand(argv: string[]): Promise<void> {
  const values = parse(argv, GENERATE_OPTIONS);
  if (values.help) return void process.stdout.write(usage('generate', GENERATE_OPTIONS, 'continue a prompt with a saved model'));
  const modelPath = str(values, 'model');
  if (!modelPath) throw new UsageError('--model <file> is required (a model saved by `tinygpt train`)');
  await checkInput('model', modelPath);
  const bytes = new Uint8Array(await readFile(modelPath));
  const { model, tokenizer } = await loadModel(bytes, { backend: (str(values, 'backend') ?? 'auto') as BackendChoice });
  if (!tokenizer) throw new UsageError(`${modelPath} has no tokenizer inside; it was not saved by tinygpt with one`);
  const prompt = str(values, 'prompt') ?? '';
  // Training frames documents and lines with end-of-text, so a prompt starts after one.
  const eos = tokenizer.eosTokenId;
  const promptIds = [...(eos !== undefined && !values['no-bos'] ? [eos] : []), ...tokenizer.encode(prompt)];
  if (promptIds.length === 0) throw new UsageError('--prompt is required: this tokenizer has no end-of-text token to start from');
  const beams = num(values, 'beams', 1, positiveInt, 'a positive integer');
  const count = num(values, 'num', 1, positiveInt, 'a positive integer');
  const baseSeed = num(values, 'seed', Math.floor(Math.random() * 2 ** 31), (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  const opt = (name: string) => (values[name] === undefined ? undefined : num(values, name, 0));
  for (let i = 0; i < count; i++) {
    process.stdout.write(prompt);
    const options: GenerateOptions = {
      tokenizer,
      maxNewTokens: num(values, 'max-new-tokens', 200, positiveInt, 'a positive integer'),
      doSample: !values.greedy && beams === 1,
      // only sampling reads a temperature: greedy and beams would warn that it is ignored
      temperature: !values.greedy && beams === 1 ? num(values, 'temperature', 0.8, (x) => x >= 0, 'a non-negative number') : undefined,
      topK: opt('top-k'),
      topP: opt('top-p'),
      minP: opt('min-p'),
      repetitionPenalty: opt('repetition-penalty'),
      noRepeatNgramSize: opt('no-repeat-ngram'),
      numBeams: beams,
      stop: values.stop as string[] | undefined,
      seed: baseSeed + i,
    };
    if (beams > 1) {
      // beam search ranks whole sequences: nothing is final until it ends, so it prints at once
      const result = (await generate(model, promptIds, options)) as GenerateResult;
      process.stdout.write(result.text ?? '');
    } else {
      for await (const piece of generateStream(model, promptIds, options)) process.stdout.write(piece.text ?? '');
    }
    process.stdout.write('\n');
  }
  model.dispose();
}

async function plotCommand(argv: string[]): Promise<void> {
  const options = Object.fromEntries(Object.entries(PLOT_OPTIONS).map(([name, { help: _help, ...o }]) => [name, o]));
  const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true }) as {
    values: Values;
    positionals: string[];
  };
  if (values.help)
    return void process.stdout.write(
      usage('plot <history.json or checkpoint>', PLOT_OPTIONS, 'draw a training history as an SVG (loss and learning rate)'),
    );
  if (positionals.length !== 1) throw new UsageError('plot takes one file: a training checkpoint, or a history as JSON');
  const input = positionals[0];
  await checkInput('plot', input);
  const bytes = new Uint8Array(await readFile(input));
  const history = (() => {
    try {
      return historyFromBytes(bytes, input);
    } catch (err) {
      // a file that is not a history is a wrong input, like a wrong flag
      throw new UsageError((err as Error).message, { cause: err });
    }
  })();
  const out = str(values, 'out') ?? `${input.replace(/\.(json|safetensors)$/, '')}.svg`;
  await prepareOutput('out', out);
  await writeFileAtomic(out, new TextEncoder().encode(plotHistorySVG(history, { title: str(values, 'title') })));
  process.stdout.write(`plotted ${history.length} history entries (steps ${history[0].step} to ${history.at(-1)!.step}) to ${out}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'train':
        await trainCommand(rest);
        return 0;
      case 'generate':
        await generateCommand(rest);
        return 0;
      case 'plot':
        await plotCommand(rest);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        // no command is a usage error, like any other wrong command line
        process.stdout.write(MAIN_HELP);
        return command === undefined ? EXIT_USAGE : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}; try \`tinygpt --help\``);
    }
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`tinygpt: ${e.message}\n`);
    if (process.env.TINYGPT_DEBUG) process.stderr.write(`${e.stack}\n`);
    return exitCodeFor(err);
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
