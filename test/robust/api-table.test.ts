/**
 * Every exported function and class of tinygpt/node (so of the main entry too) and of tinygpt/worker,
 * called with a wrong type, an out-of-range value and, for models, after dispose: each must fail
 * with a documented error class (TypeError, RangeError, or the library's own: ConfigError,
 * ModelFileError, SafetensorsError, BackendUnavailableError, DisposedError) whose message names the
 * argument. A new export without a row here (or a stated reason in NOT_CALLED) fails the coverage check.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as nodeApi from '../../src/node.js';
import * as workerApi from '../../src/worker.js';

const api = { ...nodeApi, ...workerApi };

const {
  BPETokenizer,
  CharTokenizer,
  ConfigError,
  createBackend,
  createModel,
  DisposedError,
  ModelFileError,
  processors,
  Rng,
  SafetensorsError,
  Trainer,
} = api;

type ErrorClass = abstract new (...args: never[]) => Error;

interface Row {
  /** the export (or Class.method) called */
  name: string;
  /** what is wrong */
  input: string;
  call: () => unknown;
  error: ErrorClass;
  message: RegExp;
}

/** exports that are not called, and why */
const NOT_CALLED: Record<string, string> = {
  DeviceLostError: 'an error class',
  MemoryLimitError: 'an error class',
  NoSpaceError: 'an error class',
  ConfigError: 'an error class',
  BackendUnavailableError: 'an error class',
  NonFiniteError: 'an error class',
  ModelBusyError: 'an error class',
  SafetensorsError: 'an error class',
  ModelFileError: 'an error class',
  DisposedError: 'an error class',
  QUANT_BLOCK: 'a constant',
  PARAMETER_GROUPS: 'a constant',
  MODEL_MIME_TYPE: 'a constant',
  GPT: 'constructed by createModel and loadModel; its methods are rows below',
  QuantizedGPT: 'constructed by quantizeModel; its methods are rows below',
  createWebGPUBackend: 'needs a WebGPU adapter (test/backend covers its options)',
  serveModelWorker: 'runs inside a worker (test/worker covers its messages)',
  opfsAvailable: 'takes no argument',
  LoRAAdapter: 'constructed by addLoRA and loadAdapter',
  LORA_TARGETS: 'a constant',
};

const tokenizer = CharTokenizer.train('abcdefgh\n', { specialTokens: ['<|endoftext|>'] });
const config = { vocabSize: tokenizer.vocabSize, maxSeqLen: 8, dModel: 32, nLayers: 1, nHeads: 2, seed: 3 };

async function setUp() {
  const model = await createModel(config, { backend: 'js' });
  const disposed = await createModel(config, { backend: 'js' });
  const parameters = await model.getParameters();
  disposed.dispose();
  const quantized = await api.quantizeModel(model, { format: 'q8_0' });
  const disposedQuantized = await api.quantizeModel(model, { format: 'q8_0' });
  disposedQuantized.dispose();
  const cache = model.createKVCache(1);
  const modelBytes = await api.saveModel(model, { tokenizer });
  // model workers run the built worker bundle (npm test builds before vitest)
  const workerOptions = { worker: pathToFileURL(join(__dirname, '..', '..', 'dist', 'model-worker.js')), wasmThreads: 1, tokenizer };
  const worker = await api.createModelWorker(config, workerOptions);
  const disposedWorker = await api.createModelWorker(config, workerOptions);
  await disposedWorker.dispose();
  return { model, disposed, parameters, quantized, disposedQuantized, cache, modelBytes, worker, disposedWorker };
}

const data = Int32Array.from({ length: 64 }, (_, i) => i % config.vocabSize);

function rows(s: Awaited<ReturnType<typeof setUp>>): Row[] {
  const { model, disposed, parameters, quantized, disposedQuantized, cache } = s;
  const ids = Int32Array.from([1, 2, 3, 4]);
  return [
    // ---- models
    {
      name: 'createModel',
      input: 'config null',
      call: () => createModel(null as never),
      error: ConfigError,
      message: /config must be an object/,
    },
    {
      name: 'createModel',
      input: 'vocabSize -1',
      call: () => createModel({ ...config, vocabSize: -1 }),
      error: ConfigError,
      message: /vocabSize/,
    },
    {
      name: 'createModel',
      input: "backend 'tpu'",
      call: () => createModel(config, { backend: 'tpu' as never }),
      error: RangeError,
      message: /backend/,
    },
    {
      name: 'createModel',
      input: "memoryLimit '1e6'",
      call: () => createModel(config, { backend: 'js', memoryLimit: '1e6' as never }),
      error: TypeError,
      message: /options\.memoryLimit must be a positive integer number of bytes/,
    },
    {
      name: 'createModel',
      input: 'memoryLimit below what the model needs',
      call: () => createModel(config, { backend: 'js', memoryLimit: 1000 }),
      error: api.MemoryLimitError,
      message: /options\.memoryLimit = 1000 bytes .* it must be at least \d+/,
    },
    {
      name: 'createModel',
      input: "option 'wasmThread' (misspelt)",
      call: () => createModel(config, { wasmThread: 1 } as never),
      error: RangeError,
      message:
        /^createModel: unknown option "wasmThread"; known options: backend, backendInstance, onBackendNotice, wasmThreads, wasmAssets, memoryLimit$/,
    },
    {
      name: 'createModel',
      input: "config field 'dff' (misspelt)",
      call: () => createModel({ ...config, dff: 64 } as never, { backend: 'js' }),
      error: ConfigError,
      message:
        /^config\.dff is not a config field; the fields are vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF, dropout, seed, backend$/,
    },
    {
      name: 'validateConfig',
      input: 'a string',
      call: () => api.validateConfig('x' as never),
      error: ConfigError,
      message: /config must be an object/,
    },
    {
      name: 'validateConfig',
      input: 'nHeads 3 of dModel 32',
      call: () => api.validateConfig({ ...config, nHeads: 3 }),
      error: ConfigError,
      message: /nHeads/,
    },
    {
      name: 'GPT.forward',
      input: 'inputs a string',
      call: () => model.forward('ab' as never, null, 1),
      error: TypeError,
      message: /inputs/,
    },
    { name: 'GPT.forward', input: 'batchSize 0', call: () => model.forward(ids, null, 0), error: RangeError, message: /batchSize/ },
    {
      name: 'GPT.forward',
      input: 'an id past the vocabulary',
      call: () => model.forward(Int32Array.from([99]), null, 1),
      error: RangeError,
      message: /inputs\[0\] = 99/,
    },
    {
      name: 'GPT.forward',
      input: 'options null',
      call: () => model.forward(ids, null, 1, null as never),
      error: TypeError,
      message: /forward: options/,
    },
    {
      name: 'GPT.backward',
      input: 'no forward first',
      call: () => model.backward(),
      error: Error,
      message: /backward: call forward with targets first/,
    },
    {
      name: 'GPT.setParameters',
      input: 'null',
      call: () => model.setParameters(null as never),
      error: TypeError,
      message: /setParameters/,
    },
    {
      name: 'GPT.setParameters',
      input: 'NaN',
      call: () => model.setParameters({ ...parameters, 'ln_f.bias': new Float32Array(32).fill(NaN) }),
      error: RangeError,
      message: /ln_f\.bias\[0\]/,
    },
    {
      name: 'GPT.setRngState',
      input: 'dropoutStep -1',
      call: () => model.setRngState({ dropoutStep: -1 }),
      error: RangeError,
      message: /dropoutStep/,
    },
    { name: 'GPT.createKVCache', input: 'batchSize 0', call: () => model.createKVCache(0), error: RangeError, message: /batchSize/ },
    {
      name: 'GPT.createKVCache',
      input: "batchSize '2'",
      call: () => model.createKVCache('2' as never),
      error: RangeError,
      message: /batchSize/,
    },
    ...[0, 2.5, 9].map((capacity): Row => ({
      name: 'GPT.createKVCache',
      input: `capacity ${capacity}`,
      call: () => model.createKVCache(1, capacity),
      error: RangeError,
      message: new RegExp(`createKVCache: capacity must be an integer in \\[1, config\\.maxSeqLen = 8\\], got ${capacity}`),
    })),
    {
      name: 'GPT.forwardCached',
      input: 'past the cache capacity',
      call: () => model.forwardCached(model.createKVCache(1, 2), Int32Array.of(1, 2, 3), 3),
      error: RangeError,
      message: /forwardCached: cache\.length \(0\) \+ Tn \(3\) exceeds cache\.capacity \(2, createKVCache's second argument\)/,
    },
    { name: 'GPT.forwardCached', input: 'Tn 0', call: () => model.forwardCached(cache, ids, 0), error: RangeError, message: /Tn/ },
    {
      name: 'GPT.forwardCached',
      input: 'cache {}',
      call: () => model.forwardCached({} as never, ids, 1),
      error: TypeError,
      message: /forwardCached: cache/,
    },
    {
      name: 'GPT.reorderKVCache',
      input: 'source row 5',
      call: () => model.reorderKVCache(cache, [5]),
      error: RangeError,
      message: /source row 5/,
    },
    {
      name: 'GPT.freeKVCache',
      input: 'null',
      call: () => model.freeKVCache(null as never),
      error: TypeError,
      message: /freeKVCache: cache/,
    },
    {
      name: 'GPT.moveToBackend',
      input: "target 'tpu'",
      call: () => model.moveToBackend('tpu' as never, parameters),
      error: RangeError,
      message: /target|backend/,
    },
    { name: 'GPT.generate', input: 'text without a tokenizer', call: () => model.generate('ab'), error: TypeError, message: /tokenizer/ },
    {
      name: 'GPT.backward',
      input: 'into without entries',
      call: () => model.backward({ params: model.params } as never),
      error: TypeError,
      message: /backward: into must be a parameter group/,
    },
    {
      name: 'GPT.backward',
      input: "into another model's parameters",
      call: () => model.backward({ params: model.grads, grads: model.grads, entries: [] }),
      error: RangeError,
      message: /backward: into\.params must be this model's parameter buffer/,
    },
    ...[
      'forward',
      'backward',
      'setParameters',
      'getParameters',
      'getGradients',
      'zeroGrad',
      'createKVCache',
      'forwardCached',
      'generate',
      'moveToBackend',
    ].map((method): Row => ({
      name: `GPT.${method}`,
      input: 'after dispose',
      call: () => (disposed as unknown as Record<string, (...a: unknown[]) => unknown>)[method](ids, null, 1),
      error: DisposedError,
      message: new RegExp(`${method}: this model was disposed`),
    })),
    // ---- quantized models
    { name: 'quantizeModel', input: 'model null', call: () => api.quantizeModel(null as never), error: TypeError, message: /model/ },
    {
      name: 'quantizeModel',
      input: "format 'q3'",
      call: () => api.quantizeModel(model, { format: 'q3' as never }),
      error: RangeError,
      message: /format/,
    },
    {
      name: 'quantizeModel',
      input: "option 'type'",
      call: () => api.quantizeModel(model, { type: 'q4_0' } as never),
      error: RangeError,
      message:
        /^quantizeModel: unknown option "type"; known options: format, backend, wasmThreads, wasmAssets, onBackendNotice, memoryLimit$/,
    },
    {
      name: 'QuantizedGPT.generate',
      input: 'maxNewTokens -1',
      call: () => quantized.generate([1], { maxNewTokens: -1 }),
      error: RangeError,
      message: /maxNewTokens/,
    },
    {
      name: 'QuantizedGPT.createKVCache',
      input: 'batchSize 0',
      call: () => quantized.createKVCache(0),
      error: RangeError,
      message: /batchSize/,
    },
    {
      name: 'QuantizedGPT.createKVCache',
      input: 'capacity past maxSeqLen',
      call: () => quantized.createKVCache(1, 1e6),
      error: RangeError,
      message: /createKVCache: capacity must be an integer in \[1, config\.maxSeqLen = \d+\], got 1000000/,
    },
    ...['generate', 'createKVCache', 'forwardCached'].map((method): Row => ({
      name: `QuantizedGPT.${method}`,
      input: 'after dispose',
      call: () => (disposedQuantized as unknown as Record<string, (...a: unknown[]) => unknown>)[method]([1], {}),
      error: DisposedError,
      message: new RegExp(`${method}: this model was disposed`),
    })),
    {
      name: 'quantizeMatrix',
      input: 'a string',
      call: () => api.quantizeMatrix('x' as never, 1, 32, 'q8_0'),
      error: TypeError,
      message: /quantizeMatrix/,
    },
    {
      name: 'dequantizeMatrix',
      input: 'null',
      call: () => api.dequantizeMatrix(null as never),
      error: TypeError,
      message: /dequantizeMatrix/,
    },
    // ---- LoRA adapters
    { name: 'addLoRA', input: 'model null', call: () => api.addLoRA(null as never), error: TypeError, message: /addLoRA: model/ },
    { name: 'addLoRA', input: 'rank 0', call: () => api.addLoRA(model, { rank: 0 }), error: RangeError, message: /rank/ },
    {
      name: 'mergeAdapter',
      input: 'a quantized model',
      call: () => api.mergeAdapter(quantized as never),
      error: TypeError,
      message: /mergeAdapter: model/,
    },
    {
      name: 'saveAdapter',
      input: 'null',
      call: () => api.saveAdapter(null as never),
      error: TypeError,
      message: /saveAdapter: expected a LoRAAdapter/,
    },
    {
      name: 'loadAdapter',
      input: 'bytes a string',
      call: () => api.loadAdapter(model, 'x' as never),
      error: TypeError,
      message: /loadAdapter: bytes/,
    },
    {
      name: 'withAdapter',
      input: 'adapter a string',
      call: () => api.withAdapter(model, 'moby' as never),
      error: TypeError,
      message: /withAdapter: adapter must be a LoRAAdapter or null, got "moby"/,
    },
    // ---- backends
    {
      name: 'createBackend',
      input: "'tpu'",
      call: () => createBackend('tpu' as never),
      error: RangeError,
      message: /createBackend: request/,
    },
    { name: 'setWasmModule', input: 'a string', call: () => api.setWasmModule('x' as never), error: TypeError, message: /setWasmModule/ },
    // ---- training
    { name: 'train', input: 'options null', call: () => api.train(model, null as never), error: TypeError, message: /options/ },
    { name: 'train', input: 'model null', call: () => api.train(null as never, { data }), error: TypeError, message: /model/ },
    { name: 'train', input: 'onStep 5', call: () => api.train(model, { data, onStep: 5 as never }), error: TypeError, message: /onStep/ },
    {
      name: 'train',
      input: "batchSize '8'",
      call: () => api.train(model, { data, batchSize: '8' as never }),
      error: RangeError,
      message: /batchSize/,
    },
    {
      name: 'train',
      input: 'after dispose',
      call: () => api.train(disposed, { data }),
      error: DisposedError,
      message: /train: this model was disposed/,
    },
    {
      name: 'Trainer.create',
      input: 'steps -1',
      call: () => Trainer.create(model, { data, steps: -1 }),
      error: RangeError,
      message: /steps/,
    },
    {
      name: 'learningRateAt',
      input: 'step NaN',
      call: () => api.learningRateAt(NaN, { learningRate: 1, minLearningRate: 0, warmupSteps: 0, totalSteps: 5 } as never),
      error: RangeError,
      message: /step/,
    },
    {
      name: 'sftDataset',
      input: 'null',
      call: () => api.sftDataset(null as never, []),
      error: TypeError,
      message: /sftDataset: tokenizer/,
    },
    // ---- generation
    {
      name: 'generate',
      input: 'stop 5',
      call: () => api.generate(model, 'ab', { tokenizer, stop: 5 as never }),
      error: RangeError,
      message: /stop/,
    },
    { name: 'generate', input: 'an id past the vocabulary', call: () => api.generate(model, [99]), error: RangeError, message: /prompt/ },
    { name: 'generate', input: 'options null', call: () => api.generate(model, [1], null as never), error: TypeError, message: /options/ },
    {
      name: 'generate',
      input: "seed 'x'",
      call: () => api.generate(model, [1], { seed: 'x' as never }),
      error: RangeError,
      message: /seed/,
    },
    {
      name: 'generateStream',
      input: 'numBeams 2',
      call: () => api.generateStream(model, [1], { numBeams: 2 }),
      error: RangeError,
      message: /numBeams/,
    },
    {
      name: 'generateStream',
      input: 'after dispose',
      call: () => api.generateStream(disposed, [1]),
      error: DisposedError,
      message: /generateStream: this model was disposed/,
    },
    { name: 'processors.temperature', input: '-1', call: () => processors.temperature(-1), error: RangeError, message: /temperature/ },
    { name: 'processors.topK', input: '1.5', call: () => processors.topK(1.5), error: RangeError, message: /topK/ },
    { name: 'processors.topP', input: '2', call: () => processors.topP(2), error: RangeError, message: /topP/ },
    { name: 'processors.minP', input: "'x'", call: () => processors.minP('x' as never), error: RangeError, message: /minP/ },
    {
      name: 'processors.repetitionPenalty',
      input: '0',
      call: () => processors.repetitionPenalty(0),
      error: RangeError,
      message: /repetitionPenalty/,
    },
    {
      name: 'processors.noRepeatNgram',
      input: '-2',
      call: () => processors.noRepeatNgram(-2),
      error: RangeError,
      message: /noRepeatNgram/,
    },
    {
      name: 'processors.minNewTokens',
      input: 'eosTokenId -1',
      call: () => processors.minNewTokens(1, -1, 0),
      error: RangeError,
      message: /eosTokenId/,
    },
    {
      name: 'processors.composeProcessors',
      input: 'a string',
      call: () => processors.composeProcessors('x' as never),
      error: TypeError,
      message: /composeProcessors/,
    },
    // ---- tokenizers
    {
      name: 'BPETokenizer.train',
      input: 'text 5',
      call: () => BPETokenizer.train(5 as never, { vocabSize: 300 }),
      error: TypeError,
      message: /train: expected a string/,
    },
    {
      name: 'BPETokenizer.train',
      input: 'vocabSize 10',
      call: () => BPETokenizer.train('abc', { vocabSize: 10 }),
      error: RangeError,
      message: /vocabSize/,
    },
    {
      name: 'BPETokenizer.fromGPT2',
      input: 'vocab 5',
      call: () => BPETokenizer.fromGPT2(5 as never, ''),
      error: TypeError,
      message: /vocab/,
    },
    {
      name: 'BPETokenizer.fromTiktoken',
      input: 'null',
      call: () => BPETokenizer.fromTiktoken(null as never),
      error: TypeError,
      message: /tiktoken/,
    },
    {
      name: 'CharTokenizer.train',
      input: 'text 5',
      call: () => CharTokenizer.train(5 as never),
      error: TypeError,
      message: /train: expected a string/,
    },
    { name: 'Tokenizer.encode', input: 'text 5', call: () => tokenizer.encode(5 as never), error: TypeError, message: /encode: text/ },
    {
      name: 'Tokenizer.decode',
      input: "ids ['a']",
      call: () => tokenizer.decode(['a'] as never),
      error: RangeError,
      message: /decode: id .* at index 0/,
    },
    {
      name: 'Tokenizer.decode',
      input: 'id 1e9',
      call: () => tokenizer.decode([1e9]),
      error: RangeError,
      message: /decode: id 1000000000 at index 0/,
    },
    { name: 'tokenizerFromJSON', input: 'null', call: () => api.tokenizerFromJSON(null as never), error: TypeError, message: /tokenizer/ },
    // ---- files
    {
      name: 'encodeSafetensors',
      input: 'null',
      call: () => api.encodeSafetensors(null as never),
      error: SafetensorsError,
      message: /tensors must be an object/,
    },
    {
      name: 'decodeSafetensors',
      input: 'a string',
      call: () => api.decodeSafetensors('x' as never),
      error: SafetensorsError,
      message: /bytes/,
    },
    { name: 'saveModel', input: 'model null', call: () => api.saveModel(null as never), error: TypeError, message: /model/ },
    {
      name: 'saveModel',
      input: 'tokenizer 5',
      call: () => api.saveModel(model, { tokenizer: 5 as never }),
      error: TypeError,
      message: /tokenizer/,
    },
    {
      name: 'saveModel',
      input: 'after dispose',
      call: () => api.saveModel(disposed),
      error: DisposedError,
      message: /saveModel: this model was disposed/,
    },
    {
      name: 'saveModel',
      input: "option 'dType' (misspelt)",
      call: () => api.saveModel(model, { dType: 'float16' } as never),
      error: RangeError,
      message: /^saveModel: unknown option "dType"; known options: tokenizer, dtype$/,
    },
    { name: 'loadModel', input: 'a string', call: () => api.loadModel('x' as never), error: ModelFileError, message: /bytes/ },
    {
      name: 'loadModel',
      input: "backend 'tpu'",
      call: () => api.loadModel(s.modelBytes, { backend: 'tpu' as never }),
      error: RangeError,
      message: /backend/,
    },
    {
      name: 'loadModel',
      input: 'memoryLimit -1',
      call: () => api.loadModel(s.modelBytes, { backend: 'js', memoryLimit: -1 }),
      error: RangeError,
      message: /options\.memoryLimit must be a positive integer number of bytes/,
    },
    {
      name: 'loadModel',
      input: "option 'threads'",
      call: () => api.loadModel(s.modelBytes, { threads: 1 } as never),
      error: RangeError,
      message:
        /^loadModel: unknown option "threads"; known options: backend, config, onBackendNotice, wasmThreads, wasmAssets, memoryLimit$/,
    },
    {
      name: 'loadModel',
      input: "config field 'n_layer'",
      call: () => api.loadModel(s.modelBytes, { backend: 'js', config: { n_layer: 2 } as never }),
      error: ModelFileError,
      message: /config\.n_layer is not a config field/,
    },
    {
      name: 'loadHuggingFace',
      input: "option 'fetchFn'",
      call: () => api.loadHuggingFace(new Map(), { fetchFn: fetch } as never),
      error: RangeError,
      message: /^loadHuggingFace: unknown option "fetchFn"; known options: .*, fetch, init$/,
    },
    {
      name: 'exportHuggingFace',
      input: "option 'shardBytes'",
      call: () => api.exportHuggingFace(model, { shardBytes: 1e6 } as never),
      error: RangeError,
      message: /^exportHuggingFace: unknown option "shardBytes"; known options: tokenizer, dtype, maxShardBytes$/,
    },
    {
      name: 'loadHuggingFace',
      input: 'null',
      call: () => api.loadHuggingFace(null as never),
      error: TypeError,
      message: /loadHuggingFace/,
    },
    {
      name: 'exportHuggingFace',
      input: 'model null',
      call: () => api.exportHuggingFace(null as never),
      error: TypeError,
      message: /model/,
    },
    {
      name: 'configFromHuggingFace',
      input: 'null',
      call: () => api.configFromHuggingFace(null as never),
      error: TypeError,
      message: /config/,
    },
    {
      name: 'configToHuggingFace',
      input: 'model null',
      call: () => api.configToHuggingFace(null as never, undefined, 'F32'),
      error: TypeError,
      message: /model/,
    },
    {
      name: 'configToHuggingFace',
      input: "dtype 'F8'",
      call: () => api.configToHuggingFace(model, undefined, 'F8' as never),
      error: RangeError,
      message: /dtype/,
    },
    { name: 'modelToBlob', input: 'null', call: () => api.modelToBlob(null as never), error: TypeError, message: /model/ },
    { name: 'loadModelFromBlob', input: 'a string', call: () => api.loadModelFromBlob('x' as never), error: TypeError, message: /blob/i },
    {
      name: 'loadModelFromResponse',
      input: 'null',
      call: () => api.loadModelFromResponse(null as never),
      error: TypeError,
      message: /response/i,
    },
    { name: 'loadModelFromURL', input: '5', call: () => api.loadModelFromURL(5 as never), error: TypeError, message: /url/i },
    {
      name: 'loadModelFromURL',
      input: "option 'headers'",
      call: () => api.loadModelFromURL('https://example.com/m', { headers: {} } as never),
      error: RangeError,
      message: /^loadModelFromURL: unknown option "headers"; known options: .*, fetch, init$/,
    },
    {
      name: 'saveModelToOPFS',
      input: 'model null',
      call: () => api.saveModelToOPFS('m', null as never),
      error: TypeError,
      message: /model/,
    },
    { name: 'loadModelFromOPFS', input: 'name 5', call: () => api.loadModelFromOPFS(5 as never), error: TypeError, message: /name/ },
    {
      name: 'writeFileAtomic',
      input: "path ''",
      call: () => api.writeFileAtomic('', new Uint8Array(1)),
      error: TypeError,
      message: /path/,
    },
    {
      name: 'writeFileAtomic',
      input: 'bytes a string',
      call: () => api.writeFileAtomic('x', 'y' as never),
      error: TypeError,
      message: /bytes/,
    },
    { name: 'saveModelFile', input: 'path 5', call: () => api.saveModelFile(5 as never, model), error: TypeError, message: /path/ },
    {
      name: 'saveModelFile',
      input: "option 'tmp'",
      call: () => api.saveModelFile('x', model, { tmp: true } as never),
      error: RangeError,
      message: /^saveModelFile: unknown option "tmp"; known options: tokenizer, dtype, fs$/,
    },
    { name: 'loadModelFile', input: 'path 5', call: () => api.loadModelFile(5 as never), error: TypeError, message: /path/ },
    {
      name: 'plotHistorySVG',
      input: 'null',
      call: () => api.plotHistorySVG(null as never),
      error: RangeError,
      message: /plotHistorySVG: history/,
    },
    {
      name: 'historyFromBytes',
      input: 'a string',
      call: () => api.historyFromBytes('x' as never, 'run.json'),
      error: TypeError,
      message: /bytes/,
    },
    {
      name: 'loadHuggingFaceFolder',
      input: 'path 5',
      call: () => api.loadHuggingFaceFolder(5 as never),
      error: TypeError,
      message: /folder|path/,
    },
    {
      name: 'saveHuggingFaceFolder',
      input: 'model null',
      call: () => api.saveHuggingFaceFolder('x', null as never),
      error: TypeError,
      message: /model/,
    },
    // ---- model workers: checked before a worker starts or a message is sent, or by the worker, whose errors keep their class
    {
      name: 'createModelWorker',
      input: 'config null',
      call: () => api.createModelWorker(null as never),
      error: ConfigError,
      message: /config must be an object/,
    },
    {
      name: 'createModelWorker',
      input: 'wasmThreads 0',
      call: () => api.createModelWorker(config, { wasmThreads: 0 }),
      error: RangeError,
      message: /createModelWorker: options\.wasmThreads must be 'auto' or an integer >= 1, got 0/,
    },
    {
      name: 'createModelWorker',
      input: "tokenizer 'abc'",
      call: () => api.createModelWorker(config, { tokenizer: 'abc' as never }),
      error: TypeError,
      message: /createModelWorker: options\.tokenizer must be a Tokenizer/,
    },
    {
      name: 'loadModelWorker',
      input: 'a string',
      call: () => api.loadModelWorker('x' as never),
      error: TypeError,
      message: /loadModelWorker: bytes must be a Uint8Array/,
    },
    {
      name: 'loadModelWorker',
      input: "backend 'tpu'",
      call: () => api.loadModelWorker(s.modelBytes.slice(), { backend: 'tpu' as never }),
      error: RangeError,
      message: /loadModelWorker: options\.backend must be one of/,
    },
    {
      name: 'ModelWorker.train',
      input: 'null',
      call: () => s.worker.train(null as never),
      error: TypeError,
      message: /ModelWorker\.train: options must be an object/,
    },
    {
      name: 'ModelWorker.train',
      input: 'batchSize -1',
      call: () => s.worker.train({ data, batchSize: -1, steps: 1 }),
      error: RangeError,
      message: /batchSize/,
    },
    {
      name: 'ModelWorker.generate',
      input: 'options null',
      call: () => s.worker.generate([1], null as never),
      error: TypeError,
      message: /ModelWorker\.generate: options must be an object/,
    },
    {
      name: 'ModelWorker.generate',
      input: 'maxNewTokens -1',
      call: () => s.worker.generate([1], { maxNewTokens: -1 }),
      error: RangeError,
      message: /maxNewTokens/,
    },
    {
      name: 'ModelWorker.generateStream',
      input: 'options 5',
      call: () => s.worker.generateStream([1], 5 as never),
      error: TypeError,
      message: /ModelWorker\.generateStream: options must be an object/,
    },
    {
      name: 'ModelWorker.saveModel',
      input: 'null',
      call: () => s.worker.saveModel(null as never),
      error: TypeError,
      message: /ModelWorker\.saveModel: options must be an object/,
    },
    {
      name: 'ModelWorker.loadAdapter',
      input: 'name 5',
      call: () => s.worker.loadAdapter(5 as never, new Uint8Array(8)),
      error: TypeError,
      message: /ModelWorker\.loadAdapter: name must be a non-empty string/,
    },
    {
      name: 'ModelWorker.setAdapter',
      input: 'name 5',
      call: () => s.worker.setAdapter(5 as never),
      error: TypeError,
      message: /ModelWorker\.setAdapter: name must be a non-empty string or null/,
    },
    {
      name: 'ModelWorker.removeAdapter',
      input: "name ''",
      call: () => s.worker.removeAdapter(''),
      error: TypeError,
      message: /ModelWorker\.removeAdapter: name must be a non-empty string/,
    },
    ...(
      [
        ['train', () => s.disposedWorker.train({ data, steps: 1 })],
        ['generate', () => s.disposedWorker.generate([1])],
        ['generateStream', () => s.disposedWorker.generateStream([1])],
        ['saveModel', () => s.disposedWorker.saveModel()],
        ['loadAdapter', () => s.disposedWorker.loadAdapter('a', new Uint8Array(8))],
        ['setAdapter', () => s.disposedWorker.setAdapter(null)],
        ['listAdapters', () => s.disposedWorker.listAdapters()],
        ['removeAdapter', () => s.disposedWorker.removeAdapter('a')],
      ] as const
    ).map(([method, call]) => ({
      name: `ModelWorker.${method}`,
      input: 'after dispose',
      call,
      error: DisposedError,
      message: new RegExp(`^ModelWorker\\.${method}: this model worker was disposed$`),
    })),
    // ---- workers and utilities
    { name: 'Rng', input: "seed 'x'", call: () => new Rng('x' as never), error: RangeError, message: /seed/ },
    { name: 'Rng.nextInt', input: '0', call: () => new Rng(1).nextInt(0), error: RangeError, message: /nextInt/ },
  ];
}

/** the error `call` throws or rejects with, or null */
async function failure(call: () => unknown): Promise<unknown> {
  try {
    const result = call();
    if (result instanceof Promise) await result;
    else if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      await (result as AsyncIterable<unknown>)[Symbol.asyncIterator]().next();
    }
    return null;
  } catch (err) {
    return err;
  }
}

describe('every export, called wrongly', async () => {
  const state = await setUp();
  const table = rows(state);
  afterAll(() => state.worker.dispose());

  it('covers every runtime export of tinygpt/node and tinygpt/worker', () => {
    const called = new Set(table.map((row) => row.name.split('.')[0]));
    const missing = Object.keys(api).filter((name) => !called.has(name) && !(name in NOT_CALLED));
    expect(missing).toEqual([]);
  });

  it.each(table.map((row) => [`${row.name}: ${row.input}`, row] as const))('%s', async (_label, row) => {
    const err = await failure(row.call);
    expect(err, 'no error').not.toBeNull();
    expect(err, String(err)).toBeInstanceOf(row.error);
    expect((err as Error).message).toMatch(row.message);
  });
});
