// "Training and Text Generation", cell by cell, in tinygpt: GPT-2's tokenizer, a handful of
// sentences, a 4-layer GPT trained with the chapter's TrainingConfig, the loss and learning-rate
// plot, then every generation cell (temperatures, four strategies, five variations, repetition
// penalty). README.md beside this file maps the chapter's names to tinygpt's.
//
//   npm run chapter                          build, then run all of it (10 epochs, one wasm thread)
//   node examples/chapter5/chapter5.mjs      the same on an existing build
//     --epochs N       fewer epochs for a quick look (the test uses 2)
//     --seed S         the seed of every sampling cell (default 42); training always uses the model's
//     --threads N      wasm threads (default 1: the chapter's figures are for one core)
//     --out DIR        where the plot and checkpoints go (default runs/chapter5)
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createModel, generate, plotHistorySVG, train, writeFileAtomic } from '../../dist/node.js';
import { gpt2Tokenizer } from '../../dist/gpt2.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    epochs: { type: 'string', default: '10' },
    seed: { type: 'string', default: '42' },
    threads: { type: 'string', default: '1' },
    out: { type: 'string', default: join(root, 'runs', 'chapter5') },
  },
});
const epochs = Number(args.epochs);
const seed = Number(args.seed);
if (!(epochs > 0)) throw new RangeError(`--epochs must be a number > 0, got ${args.epochs}`);
if (!Number.isInteger(seed)) throw new RangeError(`--seed must be an integer, got ${args.seed}`);
mkdirSync(args.out, { recursive: true });
const started = performance.now();
const cpuStart = process.cpuUsage();
const cell = (title) => console.log(`\n=== ${title} ===`);

// ---- Tokenizer(): GPT-2's byte-level BPE -------------------------------------------------------
cell('Tokenizer');
const tokenizer = await gpt2Tokenizer();
console.log(`Vocabulary size: ${tokenizer.vocabSize}`);

// ---- the data: a handful of sentences x 20, two validation sentences, padded ------------------------
cell('Data');
const sentences = [
  'The quick brown fox jumps over the lazy dog.',
  'Machine learning is a subset of artificial intelligence.',
  'Natural language processing enables computers to understand text.',
  'Deep learning models learn representations from data.',
  'Transformers use attention to relate every token to every other.',
];
const trainTexts = Array.from({ length: 20 }, () => sentences).flat();
const valTexts = ['The lazy dog sleeps while the quick fox runs.', 'Attention lets a model focus on the relevant tokens.'];
// each text ends with <|endoftext|>; train() pads the rows to the longest with the ignore index
const encodeAll = (texts) => texts.map((text) => [...tokenizer.encode(text), tokenizer.eosTokenId]);
const trainSequences = encodeAll(trainTexts);
const valSequences = encodeAll(valTexts);
const longest = Math.max(...trainSequences.map((s) => s.length), ...valSequences.map((s) => s.length));
console.log(`Training texts: ${trainTexts.length}, validation texts: ${valTexts.length}, padded to ${longest} tokens`);

// ---- ModelConfig + GPTModel ----------------------------------------------------------------------
cell('Model');
const model = await createModel(
  { vocabSize: tokenizer.vocabSize, maxSeqLen: 64, dModel: 128, nLayers: 4, nHeads: 4, dFF: 512, dropout: 0.1, backend: 'wasm' },
  { wasmThreads: Number(args.threads) },
);
console.log(
  `Model parameters: ${model.numParameters().toLocaleString('en-US')} (${model.backendName}, ${model.backend.threads ?? 1} thread)`,
);

// ---- TrainingConfig + Trainer.train() -----------------------------------------------------------
cell('Training');
const trainingConfig = {
  epochs, // num_epochs
  batchSize: 4,
  learningRate: 3e-4,
  warmupSteps: 50,
  gradientAccumulationSteps: 2,
  maxGradNorm: 1.0,
  logInterval: 5,
  evalInterval: 20,
  checkpointInterval: 50, // save_interval
};
const result = await train(model, {
  sequences: trainSequences,
  valSequences,
  tokenizer,
  ...trainingConfig,
  checkpointPath: join(args.out, 'checkpoint.safetensors'),
  onStep: (m) => {
    if (m.step % trainingConfig.logInterval === 0) {
      console.log(`Step ${m.step}: train loss ${m.trainLoss.toFixed(4)}, lr ${m.learningRate.toExponential(2)}`);
    }
  },
  onEval: (m) => console.log(`Step ${m.step}: val loss ${m.valLoss.toFixed(4)}, perplexity ${m.valPerplexity.toFixed(2)}`),
});
console.log(`Training steps: ${result.steps}`);
console.log(`Final train loss: ${result.finalTrainLoss.toFixed(4)}`);
console.log(`Best val loss: ${result.bestValLoss.toFixed(4)}`);

// ---- plot the curves ----------------------------------------------------------------------------
cell('Plot');
const plotPath = join(args.out, 'training.svg');
await writeFileAtomic(plotPath, new TextEncoder().encode(plotHistorySVG(result.history, { title: 'Training and Text Generation' })));
console.log(`Wrote ${plotPath} (${result.history.length} history entries)`);

// ---- model.generate(ids, max_new_tokens=15, temperature=t, top_k=50) ------------------------------
const prompt = 'The quick brown';
const promptIds = tokenizer.encode(prompt);
const show = (label, out) => console.log(`${label}: ${JSON.stringify(prompt + out.text)}`);

cell('Temperature');
for (const temperature of [0.5, 1.0, 1.5]) {
  show(`Temperature ${temperature}`, await model.generate(promptIds, { maxNewTokens: 15, temperature, topK: 50, tokenizer, seed }));
}

// ---- GenerationConfig x 4, TextGenerator(model, cfg).generate(ids) --------------------------------
cell('Strategies');
const strategies = {
  greedy: { maxNewTokens: 20 },
  'top-k': { maxNewTokens: 20, doSample: true, topK: 50, temperature: 0.8 },
  'top-p': { maxNewTokens: 20, doSample: true, topP: 0.9, temperature: 0.8 },
  beam: { maxNewTokens: 20, numBeams: 3 },
};
for (const [name, config] of Object.entries(strategies)) {
  show(`Strategy ${name}`, await generate(model, promptIds, { ...config, tokenizer, seed }));
}

// ---- five sampled variations ------------------------------------------------------------------------
cell('Variations');
const variations = await generate(model, promptIds, {
  maxNewTokens: 20,
  doSample: true,
  temperature: 0.8,
  topK: 50,
  numReturnSequences: 5,
  tokenizer,
  seed,
});
variations.sequences.forEach((out, i) => show(`Variation ${i + 1}`, out));

// ---- repetition_penalty 1.0 and 1.2 ----------------------------------------------------------------
// Greedy first, where the penalty is the only difference between the two runs, then sampled with the
// same seed. Past <|endoftext|> (eosTokenId: null), so that every run makes 30 tokens and the counts
// of repeated tokens (tokens already in the prompt or the output when they came) compare.
cell('Repetition penalty');
const repeats = (ids) => {
  const seen = new Set(promptIds);
  let repeated = 0;
  for (const id of ids) {
    if (seen.has(id)) repeated++;
    seen.add(id);
  }
  return repeated;
};
for (const [mode, config] of Object.entries({ greedy: {}, sampled: { doSample: true, temperature: 0.8, topK: 50 } })) {
  for (const repetitionPenalty of [1.0, 1.2]) {
    const out = await generate(model, promptIds, { ...config, maxNewTokens: 30, eosTokenId: null, repetitionPenalty, tokenizer, seed });
    show(`Repetition penalty ${repetitionPenalty.toFixed(1)}, ${mode} (${repeats(out.ids)} repeated of ${out.ids.length} tokens)`, out);
  }
}

model.dispose();
const cpu = process.cpuUsage(cpuStart);
console.log(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s (${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of CPU)`);
