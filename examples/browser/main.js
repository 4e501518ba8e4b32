// Train a character-level GPT on pasted text, watch the loss, stop at will, then sample from it
// with streamed output. Serve the repository root over http (not file://) with any static server:
//   npm run build && python3 -m http.server 8080     then open http://127.0.0.1:8080/examples/browser/
// (localhost and 127.0.0.1 are secure contexts, which WebGPU needs). tinygpt.wasm is fetched from
// next to dist/index.js; WebGPU is used when the browser offers an adapter.
import { CharTokenizer, Trainer, createModel, generateStream, loadModelFromBlob, modelToBlob } from '../../dist/index.js';

const $ = (id) => document.getElementById(id);

/** the trained (or loaded) model and its tokenizer, and the controller of whatever is running */
const state = { model: null, tokenizer: null, running: null };

// ---- inputs ----

/** a number input's value, checked: the message names the field, the value and the allowed range */
function readNumber(id, { min = -Infinity, max = Infinity, integer = false, optional = false } = {}) {
  const input = $(id);
  const label = input.closest('label')?.firstChild?.textContent.trim() ?? id;
  if (optional && input.value.trim() === '') return undefined;
  const value = Number(input.value);
  const range = `${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`;
  if (input.value.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${label} must be ${range}, got ${JSON.stringify(input.value)}`);
  }
  return value;
}

// ---- page state ----

function setPhase(phase) {
  document.body.dataset.phase = phase;
  const busy = phase === 'training' || phase === 'generating' || phase === 'loading';
  $('train').disabled = busy;
  $('load').disabled = busy;
  $('stop-training').disabled = phase !== 'training';
  $('generate').disabled = busy || !state.model;
  $('stop-generating').disabled = phase !== 'generating';
  $('save').disabled = busy || !state.model;
}

function showStatus(message, isError = false) {
  $('status').textContent = message;
  $('status').classList.toggle('error', isError);
}

function showBackend(model, notices) {
  $('backend').textContent = model.backendName;
  $('notice').textContent = notices.join(' ');
}

/**
 * WebAssembly kernels run synchronously and their results arrive as already-resolved promises, so
 * a training or sampling loop never gives the browser a turn on its own. A macrotask every ~30 ms
 * lets it paint and deliver clicks (the Stop buttons).
 */
let lastYield = performance.now();
async function letTheBrowserBreathe() {
  if (performance.now() - lastYield < 30) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
  lastYield = performance.now();
}

// ---- loss chart ----

const chart = {
  totalSteps: 1,
  train: [], // [step, loss]
  val: [], // [step, loss]
  pending: false,

  reset(totalSteps) {
    this.totalSteps = Math.max(1, totalSteps);
    this.train = [];
    this.val = [];
    this.requestDraw();
  },
  addTrain(step, loss) {
    this.train.push([step, loss]);
    this.requestDraw();
  },
  addVal(step, loss) {
    this.val.push([step, loss]);
    this.requestDraw();
  },
  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  },

  draw() {
    const canvas = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
    if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';

    const pad = { left: 42, right: 12, top: 12, bottom: 44 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const finite = [...this.train, ...this.val].map(([, l]) => l).filter(Number.isFinite);
    if (finite.length === 0) {
      ctx.fillStyle = '#8897a8';
      ctx.fillText('the loss appears here while the model trains', pad.left, pad.top + plotH / 2);
      return;
    }
    let lo = Math.min(...finite);
    let hi = Math.max(...finite);
    if (hi - lo < 1e-3) {
      lo -= 0.5;
      hi += 0.5;
    }
    const x = (step) => pad.left + (step / this.totalSteps) * plotW;
    const y = (loss) => pad.top + (1 - (loss - lo) / (hi - lo)) * plotH;

    // axes and ticks
    ctx.strokeStyle = '#dde2e8';
    ctx.fillStyle = '#52606d';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const value = lo + ((hi - lo) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.left, y(value));
      ctx.lineTo(pad.left + plotW, y(value));
      ctx.stroke();
      ctx.fillText(value.toFixed(2), 4, y(value) + 4);
    }
    const axisY = pad.top + plotH + 14;
    ctx.fillText('0', pad.left, axisY);
    const last = `step ${this.totalSteps}`;
    ctx.fillText(last, pad.left + plotW - ctx.measureText(last).width, axisY);

    const line = (points, color, widthPx) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = widthPx;
      ctx.beginPath();
      points.forEach(([s, l], i) => (i === 0 ? ctx.moveTo(x(s), y(l)) : ctx.lineTo(x(s), y(l))));
      ctx.stroke();
    };
    const trainPoints = this.train.filter(([, l]) => Number.isFinite(l));
    line(trainPoints, '#bfd3fb', 1);
    // exponential moving average: the trend through the noise of single batches
    let ema = null;
    line(
      trainPoints.map(([s, l]) => [s, (ema = ema === null ? l : 0.9 * ema + 0.1 * l)]),
      '#2563eb',
      2,
    );
    line(this.val, '#ea580c', 2);
    ctx.fillStyle = '#ea580c';
    for (const [s, l] of this.val) ctx.fillRect(x(s) - 2.5, y(l) - 2.5, 5, 5);

    // legend, under the axis
    const legend = [
      ['#2563eb', `train loss (smoothed)${ema === null ? '' : ` ${ema.toFixed(3)}`}`],
      ['#ea580c', `validation loss${this.val.length ? ` ${this.val.at(-1)[1].toFixed(3)}` : ''}`],
    ];
    let legendX = pad.left;
    for (const [color, text] of legend) {
      ctx.fillStyle = color;
      ctx.fillRect(legendX, height - 10, 12, 3);
      ctx.fillStyle = '#1d232a';
      ctx.fillText(text, legendX + 18, height - 6);
      legendX += 18 + ctx.measureText(text).width + 24;
    }
  },
};

// ---- training ----

async function trainOnText() {
  const text = $('corpus').value;
  const backend = $('backend-choice').value;
  const dModel = readNumber('d-model', { min: 8, max: 1024, integer: true });
  const nLayers = readNumber('layers', { min: 1, max: 24, integer: true });
  const nHeads = readNumber('heads', { min: 1, max: 32, integer: true });
  const seqLen = readNumber('seq-len', { min: 2, max: 1024, integer: true });
  const dropout = readNumber('dropout', { min: 0, max: 0.9 });
  const steps = readNumber('steps', { min: 1, max: 1e6, integer: true });
  const batchSize = readNumber('batch-size', { min: 1, max: 1024, integer: true });
  const learningRate = readNumber('learning-rate', { min: 1e-6, max: 1 });
  const seed = readNumber('train-seed', { min: 0, max: 2 ** 32 - 1, integer: true });
  if (dModel % nHeads !== 0) throw new RangeError(`width (dModel) must be a multiple of heads (${nHeads}), got ${dModel}`);

  const tokenizer = CharTokenizer.train(text);
  const ids = tokenizer.encode(text);
  if (ids.length < 2 * (seqLen + 1)) {
    throw new RangeError(
      `the training text must hold at least ${2 * (seqLen + 1)} characters for a context of ${seqLen}, got ${ids.length}`,
    );
  }
  // the last tenth is held out for validation when it can fill at least one window
  const valStart = Math.floor(ids.length * 0.9);
  const hasValidation = ids.length - valStart >= seqLen + 1;
  const data = Int32Array.from(hasValidation ? ids.slice(0, valStart) : ids);
  const valData = hasValidation ? Int32Array.from(ids.slice(valStart)) : undefined;

  setPhase('loading');
  state.model?.dispose();
  state.model = null;
  showStatus('Starting a backend...');
  const notices = [];
  const model = await createModel(
    { vocabSize: tokenizer.vocabSize, maxSeqLen: seqLen, dModel, nLayers, nHeads, dropout, seed, backend },
    { onBackendNotice: (message) => notices.push(message) },
  );
  state.model = model;
  state.tokenizer = tokenizer;
  showBackend(model, notices);

  const evalInterval = Math.max(1, Math.round(steps / 20));
  const trainer = await Trainer.create(model, {
    data,
    valData,
    steps,
    batchSize,
    seqLen,
    learningRate,
    seed,
    evalInterval,
    evalBatches: 8,
  });
  const controller = new AbortController();
  state.running = controller;
  chart.reset(steps);
  setPhase('training');
  const started = performance.now();
  try {
    while (trainer.stepsDone < trainer.totalSteps && !controller.signal.aborted) {
      const metrics = await trainer.step();
      chart.addTrain(metrics.step, metrics.trainLoss);
      const isLast = metrics.step === trainer.totalSteps;
      if (hasValidation && (metrics.step % evalInterval === 0 || isLast)) {
        const evaluation = await trainer.evaluate();
        chart.addVal(evaluation.step, evaluation.valLoss);
      }
      showStatus(
        `step ${metrics.step} / ${steps}: loss ${metrics.trainLoss.toFixed(3)}, ` +
          `${Math.round(metrics.tokensPerSecond).toLocaleString()} tokens/s, ${model.numParameters().toLocaleString()} parameters`,
      );
      await letTheBrowserBreathe();
    }
  } finally {
    trainer.dispose();
    state.running = null;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const how = controller.signal.aborted ? `stopped after ${trainer.stepsDone} of ${steps} steps` : `trained ${steps} steps`;
  showStatus(`${how} in ${seconds} s on ${model.backendName}; vocabulary of ${tokenizer.vocabSize} characters. Sample below.`);
  setPhase('trained');
}

// ---- sampling ----

async function sample() {
  const { model, tokenizer } = state;
  const prompt = $('prompt').value;
  const options = {
    tokenizer,
    doSample: true,
    temperature: readNumber('temperature', { min: 0, max: 10 }),
    topK: readNumber('top-k', { min: 0, max: model.config.vocabSize, integer: true }),
    topP: readNumber('top-p', { min: 0.01, max: 1 }),
    seed: readNumber('sample-seed', { min: 0, max: 2 ** 32 - 1, integer: true, optional: true }),
    maxNewTokens: readNumber('max-new-tokens', { min: 1, max: 100_000, integer: true }),
  };
  // an empty prompt starts a new line (or, without newlines in the text, its first character)
  const start = tokenizer.tokenToId('\n') ?? tokenizer.encode($('corpus').value.slice(0, 1))[0] ?? 0;
  const promptIds = prompt === '' ? [start] : tokenizer.encode(prompt);

  const controller = new AbortController();
  state.running = controller;
  setPhase('generating');
  const output = $('output');
  output.textContent = prompt;
  let count = 0;
  try {
    for await (const token of generateStream(model, promptIds, { ...options, signal: controller.signal })) {
      output.textContent += token.text ?? '';
      output.scrollTop = output.scrollHeight;
      count++;
      await letTheBrowserBreathe();
    }
    showStatus(`sampled ${count} tokens on ${model.backendName}${options.seed === undefined ? '' : ` with seed ${options.seed}`}`);
  } catch (err) {
    if (err?.name !== 'AbortError') throw err;
    showStatus(`stopped after ${count} tokens`);
  } finally {
    state.running = null;
    setPhase('trained');
  }
}

// ---- files ----

async function saveModelFile() {
  const blob = await modelToBlob(state.model, { tokenizer: state.tokenizer });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'tinygpt-model.safetensors';
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  showStatus(`saved ${(blob.size / 1024).toFixed(0)} KiB`);
}

async function loadModelFile(file) {
  setPhase('loading');
  const notices = [];
  const loaded = await loadModelFromBlob(file, { backend: $('backend-choice').value, onBackendNotice: (m) => notices.push(m) });
  if (!loaded.tokenizer) {
    loaded.model.dispose();
    throw new TypeError(`${file.name} has no tokenizer in its metadata: this page needs one to turn text into ids`);
  }
  state.model?.dispose();
  state.model = loaded.model;
  state.tokenizer = loaded.tokenizer;
  const { config } = loaded.model;
  $('d-model').value = config.dModel;
  $('layers').value = config.nLayers;
  $('heads').value = config.nHeads;
  $('seq-len').value = config.maxSeqLen;
  showBackend(loaded.model, notices);
  chart.reset(1);
  showStatus(`loaded ${file.name}: ${loaded.model.numParameters().toLocaleString()} parameters`);
  setPhase('trained');
}

// ---- wiring ----

/** run an action; errors land in the status line, and the page returns to a usable state */
function guarded(action) {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      console.error(err);
      showStatus(err?.message ?? String(err), true);
      setPhase(state.model ? 'trained' : 'idle');
    }
  };
}

$('train').addEventListener('click', guarded(trainOnText));
$('generate').addEventListener('click', guarded(sample));
$('save').addEventListener('click', guarded(saveModelFile));
$('load').addEventListener(
  'change',
  guarded(async (event) => {
    const file = event.target.files?.[0];
    if (file) await loadModelFile(file);
  }),
);
for (const id of ['stop-training', 'stop-generating']) $(id).addEventListener('click', () => state.running?.abort());
window.addEventListener('resize', () => chart.requestDraw());

/** what the page shows, for automated checks (test/browser/example.test.ts) */
window.tinygptExample = () => ({
  phase: document.body.dataset.phase,
  backend: state.model?.backendName ?? null,
  trainLosses: chart.train.map(([, loss]) => loss),
  valLosses: chart.val.map(([, loss]) => loss),
  output: $('output').textContent,
  status: $('status').textContent,
});

chart.draw();
showStatus('Ready: press Train.');
setPhase('idle');
