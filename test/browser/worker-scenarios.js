// ModelWorker scenarios, run in Node (worker_threads) and in Chromium (a module Web Worker) against
// the built bundle (`sdk` = dist/index.js and dist/worker.js, tinygpt/worker, together). Each compares the worker with the same work done in the
// calling thread, or checks what crosses the boundary (error classes, aborts, transfers, the end of
// the worker). Plain JS so the page loads it unchanged; typed in worker-scenarios.d.ts.
import { TINY_CONFIG, TRAIN_OPTIONS, SAMPLE_OPTIONS, encodeNames, namesText, toBase64 } from './scenarios.js';

const WASM = { ...TINY_CONFIG, backend: 'wasm' };
const PROMPT = 'ma';

/**
 * Train the same model the same way in the worker and here, then sample from the same bytes in
 * both: losses, saved bytes and sampled ids (plain, streamed, beam search) from each side.
 * `wasmThreads` is the worker's (threads give bit-identical results to one thread).
 */
export async function workerMatchesInThread(sdk, wasmThreads) {
  const tokenizer = sdk.CharTokenizer.train(namesText());
  const config = { ...WASM, vocabSize: tokenizer.vocabSize };
  const data = Int32Array.from(tokenizer.encode(namesText()));

  const here = await sdk.createModel(config, { wasmThreads: 1 });
  const hereLosses = [];
  await sdk.train(here, { ...TRAIN_OPTIONS, data, onStep: (m) => hereLosses.push(m.trainLoss) });
  const hereBytes = await sdk.saveModel(here, { tokenizer });
  const hereIds = (await sdk.generate(here, PROMPT, { ...SAMPLE_OPTIONS, tokenizer })).ids;
  const hereBeams = (await sdk.generate(here, PROMPT, { maxNewTokens: 6, numBeams: 3, tokenizer })).ids;
  here.dispose();

  const notices = [];
  const worker = await sdk.createModelWorker(config, { tokenizer, wasmThreads, onBackendNotice: (m) => notices.push(m) });
  try {
    const workerLosses = [];
    const result = await worker.train({ ...TRAIN_OPTIONS, data, onStep: (m) => workerLosses.push(m.trainLoss) });
    const workerBytes = await worker.saveModel();
    const sampled = await worker.generate(PROMPT, SAMPLE_OPTIONS);
    const streamed = [];
    for await (const token of worker.generateStream(PROMPT, SAMPLE_OPTIONS)) streamed.push(token);
    const beams = (await worker.generate(PROMPT, { maxNewTokens: 6, numBeams: 3 })).ids;

    // the same bytes loaded into a second worker, handed over without a copy
    const fileBytes = hereBytes.slice();
    const loaded = await sdk.loadModelWorker(fileBytes, { backend: 'wasm', wasmThreads });
    const transferredLength = fileBytes.byteLength;
    const loadedIds = (await loaded.generate(PROMPT, SAMPLE_OPTIONS)).ids;
    const loadedTokenizerVocab = loaded.tokenizer?.vocabSize;
    await loaded.dispose();
    return {
      backendName: worker.backendName,
      threads: worker.threads,
      notices,
      stopped: result.stopped,
      hereLosses,
      workerLosses,
      sameBytes: toBase64(hereBytes) === toBase64(workerBytes),
      hereIds,
      workerIds: sampled.ids,
      workerText: sampled.text,
      streamedIds: streamed.map((t) => t.id),
      streamedText: streamed.map((t) => t.text ?? '').join(''),
      lastFinishReason: streamed.at(-1)?.finishReason,
      hereBeams,
      workerBeams: beams,
      loadedIds,
      transferredLength,
      loadedTokenizerVocab,
      tokenizerVocab: tokenizer.vocabSize,
    };
  } finally {
    await worker.dispose();
  }
}

/** what a caught error looks like: its class (checked here, where the classes live), name, message and fields */
function describeError(error, expectedClass) {
  return {
    isExpectedClass: error instanceof expectedClass,
    isError: error instanceof Error,
    name: error?.name,
    message: error?.message,
    step: error?.step,
  };
}

/** errors thrown in the worker, as the caller sees them */
export async function workerErrors(sdk) {
  const out = {};
  try {
    await sdk.createModelWorker({ ...WASM, nHeads: 5 });
  } catch (error) {
    out.config = describeError(error, sdk.ConfigError);
  }
  try {
    await sdk.loadModelWorker(new TextEncoder().encode('this is not a safetensors file at all'));
  } catch (error) {
    out.file = describeError(error, sdk.ModelFileError);
  }
  const worker = await sdk.createModelWorker(WASM, { wasmThreads: 1 });
  try {
    await worker.train({ ...TRAIN_OPTIONS, batchSize: 0, data: encodeNames() });
  } catch (error) {
    out.range = describeError(error, RangeError);
  }
  // the worker lives on after an error
  out.afterErrors = (await worker.generate([0, 1], { maxNewTokens: 3 })).ids.length;
  try {
    // a learning rate this large makes the parameters infinite after the first update
    await worker.train({ ...TRAIN_OPTIONS, learningRate: 1e38, data: encodeNames() });
  } catch (error) {
    out.nonFinite = describeError(error, sdk.NonFiniteError);
  }
  await worker.dispose();
  return out;
}

/**
 * Aborts across the boundary: training stopped from its first onStep, a streamed generation
 * stopped after its first token, a long generation stopped by a timer. The worker stays usable.
 */
export async function workerAborts(sdk) {
  const worker = await sdk.createModelWorker({ ...WASM, maxSeqLen: 32 }, { wasmThreads: 1 });
  try {
    const training = new AbortController();
    let stepsSeen = 0;
    const trained = await worker.train({
      ...TRAIN_OPTIONS,
      steps: 100000,
      data: encodeNames(),
      signal: training.signal,
      onStep: () => {
        stepsSeen++;
        training.abort();
      },
    });

    const streaming = new AbortController();
    const reason = new Error('stop streaming');
    const streamed = [];
    let streamError = null;
    try {
      for await (const token of worker.generateStream([0], { maxNewTokens: 100000, signal: streaming.signal })) {
        streamed.push(token.id);
        streaming.abort(reason);
      }
    } catch (error) {
      streamError = error;
    }

    const generating = new AbortController();
    const generateReason = new Error('stop generating');
    setTimeout(() => generating.abort(generateReason), 50);
    let generateError = null;
    try {
      await worker.generate([0], { maxNewTokens: 100000, signal: generating.signal });
    } catch (error) {
      generateError = error;
    }

    // leaving a stream early stops it too, and the next call is answered
    let taken = 0;
    for await (const token of worker.generateStream([0], { maxNewTokens: 100000 })) {
      void token;
      if (++taken === 3) break;
    }
    const after = await worker.generate([0], { maxNewTokens: 4 });
    return {
      trainStopped: trained.stopped,
      trainSteps: trained.steps,
      stepsSeen,
      streamedCount: streamed.length,
      streamErrorIsReason: streamError === reason,
      generateErrorIsReason: generateError === generateReason,
      takenBeforeBreak: taken,
      afterIds: after.ids.length,
    };
  } finally {
    await worker.dispose();
  }
}

/** dispose: calls under way reject, later calls reject with DisposedError naming the call */
export async function workerDispose(sdk) {
  const worker = await sdk.createModelWorker(WASM, { wasmThreads: 1 });
  const long = worker.train({ ...TRAIN_OPTIONS, steps: 100000, data: encodeNames() });
  const longFailure = long.then(
    () => null,
    (error) => error.message,
  );
  await worker.dispose();
  const later = await worker.generate([0], { maxNewTokens: 2 }).then(
    () => null,
    (error) => `${error.name}: ${error.message}`,
  );
  return { running: worker.running, longFailure: await longFailure, later };
}

/** WebGPU inside the worker: greedy ids equal the same model's on WebGPU in the calling thread */
export async function workerWebGPU(sdk) {
  const config = { ...TINY_CONFIG, backend: 'webgpu' };
  const here = await sdk.createModel(config);
  const hereIds = (await sdk.generate(here, [0, 13, 1], { maxNewTokens: 4 })).ids;
  here.dispose();
  const worker = await sdk.createModelWorker(config);
  try {
    return { backendName: worker.backendName, hereIds, workerIds: (await worker.generate([0, 13, 1], { maxNewTokens: 4 })).ids };
  } finally {
    await worker.dispose();
  }
}

/** an adapter for `model` with every A and B entry drawn from a small LCG: far from a no-op, the same on every run */
async function randomAdapterBytes(sdk, model, seed) {
  const adapter = sdk.addLoRA(model, { rank: 2, targets: ['attn.c_attn', 'mlp.c_fc'], seed });
  let state = seed;
  const next = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 1.5;
  const record = {};
  for (const entry of adapter.entries) record[entry.name] = Float32Array.from({ length: entry.length }, next);
  adapter.setParameters(record);
  const bytes = await sdk.saveAdapter(adapter);
  model.setAdapter(null);
  adapter.dispose();
  return bytes;
}

/**
 * One base model and two adapters in a worker: sampled, streamed and beam ids with each adapter
 * attached, and with none, against the same base model and adapter files here; plus what
 * listAdapters says and the errors for unknown and repeated names.
 */
export async function workerAdapters(sdk) {
  const here = await sdk.createModel(TINY_CONFIG, { backend: 'wasm', wasmThreads: 1 });
  const modelBytes = await sdk.saveModel(here);
  const files = { moby: await randomAdapterBytes(sdk, here, 5), names: await randomAdapterBytes(sdk, here, 9) };
  const prompt = [0, 13, 1];
  const beamOptions = { maxNewTokens: 6, numBeams: 3 };
  const hereRuns = {};
  for (const name of ['moby', 'names', null]) {
    const adapter = name === null ? null : sdk.loadAdapter(here, files[name].slice());
    hereRuns[String(name)] = {
      ids: (await sdk.generate(here, prompt, SAMPLE_OPTIONS)).ids,
      beams: (await sdk.generate(here, prompt, beamOptions)).ids,
    };
    if (adapter !== null) {
      here.setAdapter(null);
      adapter.dispose();
    }
  }
  here.dispose();

  const worker = await sdk.loadModelWorker(modelBytes, { backend: 'wasm', wasmThreads: 1 });
  try {
    const mobyFile = files.moby.slice();
    const loadedInfo = await worker.loadAdapter('moby', mobyFile);
    const transferredLength = mobyFile.byteLength;
    await worker.loadAdapter('names', files.names.slice());
    const listedBefore = await worker.listAdapters();
    const workerRuns = {};
    for (const name of ['moby', 'names', null]) {
      await worker.setAdapter(name);
      const streamed = [];
      for await (const token of worker.generateStream(prompt, SAMPLE_OPTIONS)) streamed.push(token.id);
      workerRuns[String(name)] = {
        ids: (await worker.generate(prompt, SAMPLE_OPTIONS)).ids,
        streamed,
        beams: (await worker.generate(prompt, beamOptions)).ids,
      };
    }
    const caught = async (call) => {
      try {
        await call();
        return null;
      } catch (error) {
        return describeError(error, RangeError);
      }
    };
    const unknown = await caught(() => worker.setAdapter('shakespeare'));
    const repeated = await caught(() => worker.loadAdapter('moby', files.moby.slice()));
    await worker.setAdapter('moby');
    await worker.removeAdapter('moby');
    const listedAfter = await worker.listAdapters();
    const afterRemoveIds = (await worker.generate(prompt, SAMPLE_OPTIONS)).ids;
    return { hereRuns, workerRuns, loadedInfo, transferredLength, listedBefore, listedAfter, unknown, repeated, afterRemoveIds };
  } finally {
    await worker.dispose();
  }
}
