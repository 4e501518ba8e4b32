// Scenarios run twice, once in Node and once in Chromium, each against the built bundle it is handed
// (`sdk` = the module namespace of dist/index.js). Both sides run this same file, so any difference
// in their answers comes from the runtime, not from the procedure. Plain JS: the browser loads it
// as-is. Typed for the Node test in scenarios.d.ts.

/** A tiny GPT: fast enough for SwiftShader's WebGPU (well under 1 GFLOP/s) and for a busy machine. */
export const TINY_CONFIG = Object.freeze({ vocabSize: 32, maxSeqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, seed: 42 });

const NAMES = [
  'emma',
  'olivia',
  'ava',
  'isabella',
  'sophia',
  'mia',
  'charlotte',
  'amelia',
  'harper',
  'evelyn',
  'abigail',
  'emily',
  'elizabeth',
  'sofia',
  'avery',
  'ella',
  'scarlett',
  'grace',
  'chloe',
  'victoria',
  'liam',
  'noah',
  'william',
  'james',
  'oliver',
  'benjamin',
  'elijah',
  'lucas',
  'mason',
  'logan',
  'alexander',
  'ethan',
  'jacob',
  'michael',
  'daniel',
  'henry',
  'jackson',
  'sebastian',
  'aiden',
  'matthew',
];

/** forty names, one per line */
export function namesText() {
  return NAMES.join('\n') + '\n';
}

/** '\n' is id 0 and 'a'..'z' are 1..26: a character vocabulary that fits TINY_CONFIG.vocabSize. */
export function encodeNames() {
  return Int32Array.from(namesText(), (ch) => (ch === '\n' ? 0 : ch.charCodeAt(0) - 96));
}

/** first `batchSize` windows of seqLen + 1 tokens: inputs and next-token targets, [B, T] each */
export function fixedBatch(batchSize, seqLen) {
  const ids = encodeNames();
  const inputs = new Int32Array(batchSize * seqLen);
  const targets = new Int32Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const start = b * (seqLen + 3);
    for (let t = 0; t < seqLen; t++) {
      inputs[b * seqLen + t] = ids[start + t];
      targets[b * seqLen + t] = ids[start + t + 1];
    }
  }
  return { inputs, targets };
}

/** bytes -> base64, so results cross the page boundary as plain strings */
export function toBase64(bytes) {
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let binary = '';
  for (let i = 0; i < u8.length; i += 0x8000) binary += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(binary);
}

export const TRAIN_OPTIONS = Object.freeze({ steps: 6, batchSize: 4, seqLen: 16, learningRate: 1e-2, warmupSteps: 0, seed: 7 });
export const SAMPLE_OPTIONS = Object.freeze({ maxNewTokens: 12, doSample: true, temperature: 0.9, topK: 12, topP: 0.95, seed: 2024 });
const PROMPT = [0, 13, 1]; // "\nma"

/**
 * Create the tiny model on `backend`, train it a few steps, sample with a seed and save it.
 * Returns the per-step losses, the sampled ids and the saved file as base64.
 */
export async function trainSampleSave(sdk, backend) {
  const model = await sdk.createModel({ ...TINY_CONFIG, backend });
  try {
    const losses = [];
    const result = await sdk.train(model, { ...TRAIN_OPTIONS, data: encodeNames(), onStep: (m) => losses.push(m.trainLoss) });
    const generated = await sdk.generate(model, PROMPT, SAMPLE_OPTIONS);
    const bytes = await sdk.saveModel(model);
    return { backendName: model.backendName, losses, steps: result.steps, ids: generated.ids, modelBase64: toBase64(bytes) };
  } finally {
    model.dispose();
  }
}

/**
 * One forward + backward of the same initial model and batch on `backend`: the loss and every
 * parameter's gradient (base64 float32, keyed by GPT-2 name).
 */
export async function lossAndGradients(sdk, backend) {
  const model = await sdk.createModel({ ...TINY_CONFIG, backend });
  try {
    const B = 3;
    const { inputs, targets } = fixedBatch(B, TINY_CONFIG.maxSeqLen);
    await model.zeroGrad();
    const { loss } = await model.forward(inputs, targets, B);
    await model.backward();
    const gradients = {};
    for (const [name, values] of Object.entries(await model.getGradients())) gradients[name] = toBase64(values);
    return { backendName: model.backendName, loss, gradients };
  } finally {
    model.dispose();
  }
}

/** which backend 'auto' picks here, and what it said about the ones it passed over */
export async function autoBackend(sdk) {
  const notices = [];
  const model = await sdk.createModel({ ...TINY_CONFIG, backend: 'auto' }, { onBackendNotice: (m) => notices.push(m) });
  const backendName = model.backendName;
  model.dispose();
  return { backendName, notices };
}

/**
 * A Stop button, as a page has one: a timer aborts the signal while `train` runs a long job. The
 * abort can only land if training gives the event loop a turn now and then.
 */
export async function trainStoppedByTimer(sdk, backend, totalSteps, stopAfterMs) {
  const model = await sdk.createModel({ ...TINY_CONFIG, backend });
  try {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), stopAfterMs);
    const result = await sdk.train(model, { ...TRAIN_OPTIONS, steps: totalSteps, data: encodeNames(), signal: controller.signal });
    return { stopped: result.stopped, steps: result.steps, totalSteps };
  } finally {
    model.dispose();
  }
}

/**
 * The browser's ways in and out of model files: fetch a model by URL, sample from it, save it into
 * the Origin Private File System and load it back, and turn it into a Blob (a download). Returns the
 * ids sampled from each load, the Blob's bytes as base64, and the error a missing URL gives.
 */
export async function browserFiles(sdk, modelUrl, missingUrl, prompt, sampleOptions) {
  const fetched = await sdk.loadModelFromURL(modelUrl, { backend: 'wasm' });
  const fromUrl = await sdk.generate(fetched.model, prompt, { ...sampleOptions, tokenizer: fetched.tokenizer });
  const blob = await sdk.modelToBlob(fetched.model, { tokenizer: fetched.tokenizer });
  const opfsPath = 'tinygpt-test/models/names.safetensors';
  await sdk.saveModelToOPFS(opfsPath, fetched.model, { tokenizer: fetched.tokenizer });
  fetched.model.dispose();

  const stored = await sdk.loadModelFromOPFS(opfsPath, { backend: 'wasm' });
  const fromOpfs = await sdk.generate(stored.model, prompt, { ...sampleOptions, tokenizer: stored.tokenizer });
  stored.model.dispose();
  await (await navigator.storage.getDirectory()).removeEntry('tinygpt-test', { recursive: true });

  let missingError = null;
  try {
    await sdk.loadModelFromURL(missingUrl, { backend: 'wasm' });
  } catch (err) {
    missingError = err.message;
  }
  return {
    opfsAvailable: sdk.opfsAvailable(),
    fromUrl: { ids: fromUrl.ids, text: fromUrl.text },
    fromOpfs: { ids: fromOpfs.ids, text: fromOpfs.text },
    blobType: blob.type,
    blobBase64: toBase64(new Uint8Array(await blob.arrayBuffer())),
    missingError,
  };
}
