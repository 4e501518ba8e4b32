// A consumer's TypeScript program that uses every property the README documents, type-checked with
// skipLibCheck false under moduleResolution bundler, node16 (ES modules and CommonJS), nodenext and
// node (node10). It is only compiled, never run. One source for every project: no top-level await
// (CommonJS).
import {
  BPETokenizer,
  BackendUnavailableError,
  CharTokenizer,
  ConfigError,
  ModelFileError,
  NonFiniteError,
  QuantizedGPT,
  SafetensorsError,
  Trainer,
  createModel,
  createWebGPUBackend,
  exportHuggingFace,
  generate,
  generateStream,
  loadHuggingFace,
  loadModel,
  loadModelFromOPFS,
  loadModelFromURL,
  modelToBlob,
  processors,
  quantizeModel,
  saveModel,
  saveModelToOPFS,
  setWasmModule,
  tokenizerFromJSON,
  train,
  type Backend,
  type BackendChange,
  type GenerateResult,
  type GPTModel,
  type HistoryEntry,
  type WasmAssets,
} from 'tinygpt';
import { gpt2Tokenizer } from 'tinygpt/gpt2';
import { createModelWorker, loadModelWorker, serveModelWorker } from 'tinygpt/worker';
import { loadHuggingFaceFolder, loadModelFile, plotHistorySVG, saveHuggingFaceFolder, saveModelFile, writeFileAtomic } from 'tinygpt/node';

declare const text: string;
declare const kernelsModule: WebAssembly.Module;

export async function usage(): Promise<string> {
  // ---- tokenizers ----
  const bpe = BPETokenizer.train(text, { vocabSize: 512, specialTokens: ['<|endoftext|>'], minFrequency: 2 });
  const fromGPT2 = BPETokenizer.fromGPT2('{}', '#version: 0.2\n');
  const fromTiktoken = BPETokenizer.fromTiktoken('');
  const fromHF = BPETokenizer.fromHuggingFace(bpe.toHuggingFaceJSON());
  const roundTrip = tokenizerFromJSON(bpe.toJSON());
  const ids: number[] = bpe.encode(text, { allowedSpecial: ['<|endoftext|>'] });
  const decoder = roundTrip.createStreamDecoder();
  const piece: string = decoder.push(ids[0]) + decoder.flush();
  const chars = CharTokenizer.train(text);
  const gpt2 = await gpt2Tokenizer();
  const sizes: number[] = [fromGPT2.vocabSize, fromTiktoken.vocabSize, fromHF.vocabSize, chars.vocabSize, gpt2.vocabSize];

  // ---- models and backends ----
  const notices: string[] = [];
  const assets: WasmAssets = { kernels: kernelsModule, threadedKernels: new URL('https://example.com/t.wasm'), worker: '/wasm-worker.js' };
  setWasmModule(kernelsModule);
  const model = await createModel(
    { vocabSize: bpe.vocabSize, maxSeqLen: 128, dModel: 192, nLayers: 4, nHeads: 6, dFF: 768, dropout: 0.1, seed: 1337 },
    { backend: 'auto', wasmThreads: 'auto', onBackendNotice: (m) => notices.push(m), wasmAssets: assets },
  );
  const backend: Backend = model.backend;
  const threads: number | undefined = backend.threads;
  const threadsNote: string | undefined = model.backend.threadsNote;
  const name: 'webgpu' | 'wasm' | 'js' = model.backendName;
  const gpu = await createWebGPUBackend({ maxBindingBytes: 1 << 20, maxBufferBytes: 1 << 22 });
  const onGpu = await createModel({ vocabSize: 256, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 }, { backendInstance: gpu });
  {
    using scoped = await createModel({ vocabSize: 256, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 }, { backend: 'wasm' });
    const { ids: greedy } = await scoped.generate([72, 105], { maxNewTokens: 8 });
    sizes.push(greedy.length);
  }
  const low: GPTModel = model;
  const forward = await low.forward(new Int32Array(8), new Int32Array(8), 1, { returnLogits: true, training: false });
  await low.backward();
  await low.zeroGrad();
  const parameters = await low.getParameters();
  await low.getGradients();
  await low.setParameters(parameters);
  const cache = low.createKVCache(2);
  await low.forwardCached(cache, new Int32Array(2), 1);
  const short = low.createKVCache(1, 4);
  const room: number = short.capacity - short.length;
  short.dispose();
  void room;
  low.reorderKVCache(cache, [1, 0]);
  await low.moveToBackend('wasm', parameters);

  // ---- training ----
  const data = Int32Array.from(bpe.encode(text));
  const history: HistoryEntry[] = [];
  const result = await train(model, {
    data: data.subarray(0, 1000),
    valData: data.subarray(1000),
    tokenizer: bpe,
    batchSize: 16,
    steps: 3000,
    learningRate: 2e-3,
    minLearningRate: 1e-4,
    warmupSteps: 100,
    schedule: 'cosine',
    gradientAccumulationSteps: 2,
    maxGradNorm: 1,
    weightDecay: 0.1,
    evalInterval: 250,
    checkpointInterval: 500,
    onCheckpoint: (bytes) => void bytes.length,
    resumeFrom: new Uint8Array(0),
    nonFinite: 'skip',
    onDeviceLost: 'wasm',
    deviceLossSnapshotInterval: 100,
    onBackendChange: (change: BackendChange) =>
      notices.push(`${change.from} -> ${change.to}: ${change.reason} at ${change.resumedFromStep}`),
    onStep: (m) => void [m.step, m.trainLoss, m.learningRate, m.gradNorm, m.tokensPerSecond, m.elapsedMs],
    onEval: (m) => void [m.valLoss, m.valPerplexity],
    signal: AbortSignal.timeout(60_000),
  });
  for (const h of result.history) history.push(h);
  const first = result.history[0];
  sizes.push(
    first.step,
    first.trainLoss,
    first.valLoss ?? 0,
    first.valPerplexity ?? 0,
    first.learningRate,
    first.gradNorm,
    first.tokensPerSecond,
    first.elapsedMs,
  );
  const trainer = await Trainer.create(model, { sequences: [[1, 2, 3]], batchSize: 1, steps: 1, checkpointPath: 'ckpt.safetensors' });
  await trainer.step();

  // ---- generation ----
  const out: GenerateResult = await generate(model, 'Call me Ishmael.', {
    tokenizer: bpe,
    maxNewTokens: 80,
    minNewTokens: 2,
    doSample: true,
    temperature: 0.8,
    topK: 40,
    topP: 0.9,
    minP: 0.05,
    repetitionPenalty: 1.1,
    noRepeatNgramSize: 3,
    eosTokenId: 0,
    stop: ['\n\n'],
    seed: 1,
    signal: AbortSignal.timeout(1000),
    returnLogprobs: true,
  });
  const beams = await generate(model, [1, 2], { numBeams: 4, lengthPenalty: 1, earlyStopping: true, numReturnSequences: 2 });
  const best: number[] = 'sequences' in beams ? beams.sequences[0].ids : beams.ids;
  for await (const token of generateStream(model, 'Call', { tokenizer: bpe, maxNewTokens: 4 })) sizes.push(token.id);
  const viaMethod = await model.generate('Call', { tokenizer: bpe, maxNewTokens: 4 });
  const processorCount = Object.keys(processors).length;

  // ---- files ----
  const bytes = await saveModel(model, { tokenizer: bpe, dtype: 'float16' });
  const { model: again, tokenizer: tok } = await loadModel(bytes, {
    config: { nHeads: 12 },
    backend: 'wasm',
    wasmThreads: 1,
    wasmAssets: assets,
  });
  const blob: Blob = await modelToBlob(again);
  await loadModelFromURL('/model.safetensors', { backend: 'wasm' });
  await saveModelToOPFS('m.safetensors', again);
  await loadModelFromOPFS('m.safetensors');
  await saveModelFile('model.safetensors', again, { tokenizer: tok });
  await loadModelFile('model.safetensors');
  await writeFileAtomic('raw.bin', bytes);

  // ---- Hugging Face ----
  const hf = await loadHuggingFace(new Map<string, Uint8Array>(), { fetch });
  const hfGenerated = await generate(hf.model, 'x', { ...hf.generation, tokenizer: hf.tokenizer });
  const exported: Map<string, Uint8Array> = await exportHuggingFace(model, { tokenizer: bpe, dtype: 'float16', maxShardBytes: 1 << 20 });
  await saveHuggingFaceFolder('out', model, { tokenizer: bpe });
  await loadHuggingFaceFolder('out');

  // ---- quantized models ----
  const q8: QuantizedGPT = await quantizeModel(model, { format: 'q8_0' });
  const q4 = await quantizeModel(model, { format: 'q4_0', backend: 'wasm', wasmThreads: 1, wasmAssets: assets, memoryLimit: 1 << 30 });
  const qBytes = await saveModel(q8);
  const qLoaded = await loadModel(qBytes);
  const isQuantized = qLoaded.model instanceof QuantizedGPT;
  await q4.getParameters();

  // ---- a model in a worker ----
  const worker = await createModelWorker(
    { vocabSize: chars.vocabSize, maxSeqLen: 64, dModel: 64, nLayers: 2, nHeads: 4 },
    { tokenizer: chars, wasmThreads: 2 },
  );
  const stop = new AbortController();
  await worker.train({ data: Int32Array.from(chars.encode(text)), steps: 20, onStep: (m) => void m.trainLoss, signal: stop.signal });
  for await (const token of worker.generateStream('Ishmael', { maxNewTokens: 8, doSample: true, topP: 0.9, seed: 1 })) sizes.push(token.id);
  const workerOut = await worker.generate('Ishmael', { maxNewTokens: 8 });
  const workerBytes = await worker.saveModel();
  await worker.dispose();
  await using loaded = await loadModelWorker(workerBytes, { worker: new URL('./my-worker.js', 'https://example.com/') });
  serveModelWorker();

  // ---- errors ----
  const errors = [ConfigError, ModelFileError, NonFiniteError, SafetensorsError, BackendUnavailableError].map((e) => e.name);

  const svg: string = plotHistorySVG(history, { title: 'run' });
  model.dispose();
  onGpu.dispose();
  return [
    piece,
    threads,
    threadsNote,
    name,
    notices,
    forward.loss,
    out.text,
    out.logprobs,
    best,
    viaMethod.ids,
    processorCount,
    blob.size,
    exported.size,
    'sequences' in hfGenerated ? hfGenerated.sequences.length : hfGenerated.ids,
    isQuantized,
    'sequences' in workerOut ? workerOut.sequences[0].text : workerOut.text,
    loaded,
    errors,
    svg,
    sizes,
  ].join();
}
