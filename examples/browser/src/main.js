// The page: all model work happens in a Web Worker (createModelWorker / loadModelWorker), so the
// main thread only reads inputs, draws the chart and shows text. Training can be stopped and
// resumed from the checkpoint the worker hands back when it stops; generation streams token by token.
import { CharTokenizer } from 'tinygpt';
import { createModelWorker, loadModelWorker } from 'tinygpt/worker';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { mobyDick, names } from 'virtual:corpora';

const $ = (id) => document.getElementById(id);
const CORPORA = { names, moby: mobyDick };

const state = {
  /** the ModelWorker holding the model, once there is one */
  worker: null,
  tokenizer: null,
  /** what the current run trains on, kept so Resume continues the same run */
  run: null,
  /** the checkpoint the worker sent when training stopped: Resume continues from it */
  checkpoint: null,
  controller: null,
  history: { steps: [], train: [], val: [], lr: [] },
  lastIds: [],
  streamChunks: 0,
  notices: [],
};

// ---- inputs ----

/** a number input's value, checked: the message names the field, the value and the allowed range */
function readNumber(id, { integer = false, optional = false } = {}) {
  const input = $(id);
  const label = input.closest('label')?.firstChild?.textContent.trim() ?? id;
  if (optional && input.value.trim() === '') return undefined;
  const value = Number(input.value);
  const min = input.min === '' ? -Infinity : Number(input.min);
  const max = input.max === '' ? Infinity : Number(input.max);
  if (input.value.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${label} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(input.value)}`);
  }
  return value;
}

function readThreads() {
  const raw = $('threads').value.trim();
  if (raw === 'auto' || raw === '') return 'auto';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new RangeError(`wasm threads must be 'auto' or an integer in [1, 64], got ${JSON.stringify(raw)}`);
  return n;
}

// ---- page state ----

function setPhase(phase) {
  document.body.dataset.phase = phase;
  const busy = ['starting', 'training', 'generating', 'loading'].includes(phase);
  $('train').disabled = busy;
  $('load').disabled = busy;
  $('stop-training').disabled = phase !== 'training';
  $('resume').disabled = busy || state.checkpoint === null || state.run === null;
  $('generate').disabled = busy || state.worker === null;
  $('stop-generating').disabled = phase !== 'generating';
  $('save').disabled = busy || state.worker === null;
}

function showStatus(message, isError = false) {
  statusLine = '';
  $('status').textContent = message;
  $('status').classList.toggle('error', isError);
}

function showError(error) {
  showStatus(`${error.name && error.name !== 'Error' ? `${error.name}: ` : ''}${error.message}`, true);
}

function addNotice(message) {
  state.notices.push(message);
  const item = document.createElement('li');
  item.textContent = message;
  $('notices').append(item);
}

function showEngine(worker) {
  const threads = worker.backendName === 'wasm' ? `, ${worker.threads} thread${worker.threads === 1 ? '' : 's'}` : '';
  $('backend').textContent = `${worker.backendName}${threads}, in a Web Worker`;
}

// ---- corpus ----

function showTextInfo() {
  const text = $('text').value;
  const chars = new Set(text).size;
  $('text-info').textContent = `${text.length.toLocaleString()} characters, ${chars} distinct`;
}

function pickCorpus() {
  const choice = $('corpus').value;
  if (choice !== 'custom') $('text').value = CORPORA[choice];
  $('prompt').value = choice === 'moby' ? 'Call me ' : '';
  showTextInfo();
}

$('corpus').addEventListener('change', pickCorpus);
$('text').addEventListener('input', () => {
  $('corpus').value = 'custom';
  showTextInfo();
});
$('text').addEventListener('dragover', (event) => event.preventDefault());
$('text').addEventListener('drop', async (event) => {
  event.preventDefault();
  const file = event.dataTransfer?.files[0];
  if (!file) return;
  $('text').value = await file.text();
  $('corpus').value = 'custom';
  showTextInfo();
});

// ---- chart: training and validation loss, learning rate ----

const chart = new uPlot(
  {
    width: Math.min(900, document.body.clientWidth - 48),
    height: 280,
    scales: { x: { time: false }, lr: { auto: true } },
    series: [
      { label: 'step' },
      { label: 'train loss', stroke: '#1f77b4', width: 1.5 },
      { label: 'val loss', stroke: '#ff7f0e', width: 0, points: { show: true, size: 7, fill: '#ff7f0e' }, spanGaps: true },
      { label: 'learning rate', stroke: '#2ca02c', width: 1.5, scale: 'lr' },
    ],
    axes: [{ label: 'step' }, { label: 'loss (nats)' }, { scale: 'lr', side: 1, label: 'learning rate', size: 70, grid: { show: false } }],
  },
  [[], [], [], []],
  $('chart'),
);

/**
 * The chart and the status line are redrawn at most four times a second, in an animation frame:
 * steps arrive far more often, and the page's main thread stays free for the user.
 */
const REDRAW_EVERY_MS = 250;
let redrawPending = false;
let statusLine = '';
function redraw() {
  if (redrawPending) return;
  redrawPending = true;
  setTimeout(
    () =>
      requestAnimationFrame(() => {
        redrawPending = false;
        const h = state.history;
        chart.setData([h.steps, h.train, h.val, h.lr]);
        if (statusLine) $('status').textContent = statusLine;
        statusLine = '';
      }),
    REDRAW_EVERY_MS,
  );
}

function resetHistory() {
  state.history = { steps: [], train: [], val: [], lr: [] };
  redraw();
}

function recordStep(m) {
  const h = state.history;
  h.steps.push(m.step);
  h.train.push(m.trainLoss);
  h.val.push(null);
  h.lr.push(m.learningRate);
  statusLine = `step ${m.step} / ${state.run.steps}: loss ${m.trainLoss.toFixed(3)}, ${Math.round(m.tokensPerSecond).toLocaleString()} tokens/s`;
  redraw();
}

function recordEval(m) {
  const h = state.history;
  const at = h.steps.lastIndexOf(m.step);
  if (at >= 0) h.val[at] = m.valLoss;
  redraw();
}

// ---- the worker ----

function startWorker() {
  // Vite bundles this file as a worker entry (with tinygpt and its .wasm files)
  return new Worker(new URL('./model.worker.js', import.meta.url), { type: 'module' });
}

async function replaceWorker(next) {
  const previous = state.worker;
  state.worker = null;
  await previous?.dispose();
  state.worker = next;
  showEngine(next);
}

// ---- training ----

async function train() {
  let settings;
  try {
    const text = $('text').value;
    if (text.length < 100) throw new RangeError(`the text must have at least 100 characters, got ${text.length}`);
    const tokenizer = CharTokenizer.train(text);
    const ids = Int32Array.from(tokenizer.encode(text));
    const cut = Math.floor(ids.length * 0.9);
    const steps = readNumber('steps', { integer: true });
    settings = {
      tokenizer,
      config: {
        vocabSize: tokenizer.vocabSize,
        maxSeqLen: readNumber('context', { integer: true }),
        dModel: readNumber('width', { integer: true }),
        nLayers: readNumber('layers', { integer: true }),
        nHeads: readNumber('heads', { integer: true }),
        dropout: readNumber('dropout'),
        backend: $('backend-choice').value,
        seed: 1337,
      },
      threads: readThreads(),
      run: {
        data: ids.subarray(0, cut),
        valData: ids.subarray(cut),
        steps,
        batchSize: readNumber('batch', { integer: true }),
        learningRate: readNumber('lr'),
        warmupSteps: Math.min(50, Math.floor(steps / 10)),
        evalInterval: Math.max(10, Math.floor(steps / 20)),
        evalBatches: 8,
      },
    };
  } catch (error) {
    showError(error);
    return;
  }
  setPhase('starting');
  showStatus('starting the model worker...');
  $('notices').replaceChildren();
  state.notices = [];
  try {
    const worker = await createModelWorker(settings.config, {
      worker: startWorker(),
      tokenizer: settings.tokenizer,
      wasmThreads: settings.threads,
      onBackendNotice: addNotice,
    });
    await replaceWorker(worker);
  } catch (error) {
    showError(error);
    setPhase('idle');
    return;
  }
  state.tokenizer = settings.tokenizer;
  state.run = settings.run;
  state.checkpoint = null;
  resetHistory();
  await runTraining(undefined);
}

async function runTraining(resumeFrom) {
  const controller = (state.controller = new AbortController());
  setPhase('training');
  const started = performance.now();
  try {
    const result = await state.worker.train({
      ...state.run,
      resumeFrom,
      signal: controller.signal,
      onStep: recordStep,
      onEval: recordEval,
      // sent when training ends or stops: what Resume continues from
      onCheckpoint: (bytes) => (state.checkpoint = bytes),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const val = result.bestValLoss === null ? '' : `, best validation loss ${result.bestValLoss.toFixed(3)}`;
    if (result.stopped === 'aborted') {
      showStatus(`stopped at step ${result.steps} of ${state.run.steps} (${seconds} s)${val}: Resume goes on from there`);
      setPhase('stopped');
    } else {
      state.checkpoint = null;
      showStatus(`trained ${result.steps} steps in ${seconds} s on ${state.worker.backendName}${val}`);
      setPhase('trained');
    }
  } catch (error) {
    showError(error);
    setPhase('stopped');
  }
}

$('train').addEventListener('click', () => void train());
$('stop-training').addEventListener('click', () => state.controller?.abort());
$('resume').addEventListener('click', () => {
  // a copy goes to the worker: the one kept here survives a failed resume
  if (state.checkpoint) void runTraining(state.checkpoint.slice());
});

// ---- sampling ----

async function generateText() {
  let options;
  let prompt;
  try {
    const temperature = readNumber('temperature');
    const numBeams = readNumber('beams', { integer: true });
    options = {
      maxNewTokens: readNumber('max-new', { integer: true }),
      doSample: temperature > 0 && numBeams === 1,
      temperature: temperature > 0 ? temperature : 1,
      topK: readNumber('top-k', { integer: true, optional: true }),
      topP: readNumber('top-p', { optional: true }),
      minP: readNumber('min-p', { optional: true }),
      numBeams,
      repetitionPenalty: readNumber('rep-penalty'),
      noRepeatNgramSize: readNumber('ngram', { integer: true }),
      seed: readNumber('seed', { integer: true }),
    };
    prompt = $('prompt').value === '' ? '\n' : $('prompt').value;
    // characters the model never saw cannot be encoded: say which
    const unknown = [...new Set(prompt)].filter((ch) => state.worker.tokenizer?.tokenToId(ch) === undefined);
    if (unknown.length > 0) throw new RangeError(`the prompt has characters the model does not know: ${JSON.stringify(unknown.join(''))}`);
  } catch (error) {
    showError(error);
    return;
  }
  const controller = (state.controller = new AbortController());
  setPhase('generating');
  showStatus('generating...');
  $('output').textContent = prompt === '\n' ? '' : prompt;
  state.lastIds = [];
  state.streamChunks = 0;
  try {
    if (options.numBeams > 1) {
      // beam search keeps several sequences until the end: it is not streamed
      const result = await state.worker.generate(prompt, { ...options, signal: controller.signal });
      state.lastIds = result.ids;
      $('output').textContent += result.text;
    } else {
      for await (const token of state.worker.generateStream(prompt, { ...options, signal: controller.signal })) {
        state.lastIds.push(token.id);
        if (token.text) {
          state.streamChunks++;
          $('output').textContent += token.text;
        }
      }
    }
    showStatus(`generated ${state.lastIds.length} tokens`);
  } catch (error) {
    if (controller.signal.aborted) showStatus(`stopped after ${state.lastIds.length} tokens`);
    else showError(error);
  }
  setPhase(state.checkpoint ? 'stopped' : 'trained');
}

$('generate').addEventListener('click', () => void generateText());
$('stop-generating').addEventListener('click', () => state.controller?.abort());

// ---- model files ----

$('save').addEventListener('click', async () => {
  try {
    const bytes = await state.worker.saveModel();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    link.download = 'tinygpt.safetensors';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    showStatus(`saved ${bytes.byteLength.toLocaleString()} bytes`);
  } catch (error) {
    showError(error);
  }
});

$('load').addEventListener('change', async () => {
  const file = $('load').files?.[0];
  if (!file) return;
  setPhase('loading');
  $('notices').replaceChildren();
  state.notices = [];
  try {
    // the file's buffer moves to the worker: nothing is copied
    const worker = await loadModelWorker(new Uint8Array(await file.arrayBuffer()), {
      worker: startWorker(),
      backend: $('backend-choice').value,
      wasmThreads: readThreads(),
      onBackendNotice: addNotice,
    });
    await replaceWorker(worker);
    state.tokenizer = worker.tokenizer;
    state.run = null;
    state.checkpoint = null;
    resetHistory();
    const c = worker.config;
    showStatus(`loaded ${file.name}: width ${c.dModel}, ${c.nLayers} layers, context ${c.maxSeqLen}, vocabulary ${c.vocabSize}`);
    setPhase('trained');
  } catch (error) {
    showError(error);
    setPhase(state.worker ? 'trained' : 'idle');
  } finally {
    $('load').value = '';
  }
});

// ---- for tests and the curious: what the page shows, as data ----

window.tinygptExample = () => ({
  phase: document.body.dataset.phase,
  crossOriginIsolated: globalThis.crossOriginIsolated === true,
  backend: state.worker?.backendName ?? null,
  threads: state.worker?.threads ?? null,
  notices: [...state.notices],
  steps: [...state.history.steps],
  trainLosses: [...state.history.train],
  valLosses: state.history.val.filter((v) => v !== null),
  learningRates: [...state.history.lr],
  output: $('output').textContent,
  lastIds: [...state.lastIds],
  streamChunks: state.streamChunks,
  status: $('status').textContent,
});

pickCorpus();
setPhase('idle');
showStatus('ready: pick a corpus and press Train');
