// @ts-check
/**
 * One worker of the threaded wasm backend (Node worker_threads or a Web Worker). Plain JavaScript
 * with no imports at all (in Node, the starting side hands it its parentPort), so the same file runs
 * from the sources (under vitest) and from dist/ (copied there by tsup), and bundlers that meet
 * `new URL('./wasm-worker.js', import.meta.url)` (assets.ts) can copy it as a file.
 *
 * The first message carries the compiled tinygpt-threads.wasm, the shared memory, this worker's
 * packing-buffer region and its slot of the control block (layout in threads.ts, sent along so it is
 * written down once). The worker instantiates its own instance over the shared memory, answers
 * 'ready', then blocks on its slot: each time the generation word changes it runs one kernel call
 * with the arguments in the slot, stores its return value in the result word and publishes the
 * generation in the done word.
 */

/** @typedef {{ generation: number, done: number, fn: number, argc: number, status: number, quit: number, gone: number, result: number }} SlotWords */
/**
 * @typedef {object} InitMessage
 * @property {WebAssembly.Module} module
 * @property {WebAssembly.Memory} memory
 * @property {SharedArrayBuffer} control
 * @property {number} slot this worker's slot index
 * @property {number} wordsPerSlot Int32 words per slot
 * @property {number} argsPerSlot Float64 arguments per slot
 * @property {number} argsByteOffset where the Float64 argument area starts in `control`
 * @property {SlotWords} words word index of each field inside a slot
 * @property {string[]} fns kernel export names, indexed by the slot's fn word
 * @property {number} scratch byte address of this worker's packing buffers
 * @property {number} spins checks of the generation word before sleeping in Atomics.wait
 */

/** @param {InitMessage} init @param {(message: unknown) => void} post */
async function start(init, post) {
  const instance = await WebAssembly.instantiate(init.module, {
    env: {
      memory: init.memory,
      abort() {
        throw new Error('tinygpt-threads.wasm aborted');
      },
    },
  });
  const exports = /** @type {Record<string, Function>} */ (instance.exports);
  if (typeof exports._initialize === 'function') exports._initialize();
  exports.setScratch(init.scratch);
  const fns = init.fns.map((name) => {
    const fn = exports[name];
    if (typeof fn !== 'function') throw new Error(`tinygpt-threads.wasm has no export ${name}`);
    return fn;
  });
  const ctrl = new Int32Array(init.control);
  const args = new Float64Array(init.control, init.argsByteOffset + init.slot * init.argsPerSlot * 8, init.argsPerSlot);
  const base = init.slot * init.wordsPerSlot;
  const w = init.words;
  // however this worker ends, say so: a caller blocked on the done word wakes up and stops waiting
  const markGone = () => {
    Atomics.store(ctrl, base + w.gone, 1);
    Atomics.notify(ctrl, base + w.done);
  };
  const nodeProcess = /** @type {{ on?(event: string, listener: () => void): void } | undefined} */ (globalThis.process);
  nodeProcess?.on?.('exit', markGone);
  // Read the generation before saying ready: the caller may post its first call the moment it hears
  // 'ready', and a worker that read the word after that would take the call as already served.
  const firstSeen = Atomics.load(ctrl, base + w.generation);
  post({ ready: true });
  try {
    serve(init, fns, ctrl, args, base, w, firstSeen);
  } finally {
    markGone();
  }
}

/**
 * The worker's loop: wait for a new generation, run the call in the slot, publish it as done.
 * @param {InitMessage} init @param {Function[]} fns @param {Int32Array} ctrl @param {Float64Array} args
 * @param {number} base @param {SlotWords} w @param {number} seen the generation already served
 */
function serve(init, fns, ctrl, args, base, w, seen) {
  for (;;) {
    // spin a little before sleeping: a call that comes soon then starts without a wake-up
    for (let i = 0; i < init.spins && Atomics.load(ctrl, base + w.generation) === seen; i++);
    Atomics.wait(ctrl, base + w.generation, seen);
    const generation = Atomics.load(ctrl, base + w.generation);
    if (Atomics.load(ctrl, base + w.quit) !== 0) return;
    if (generation === seen) continue;
    seen = generation;
    let status = 0;
    let result = 0;
    try {
      const argc = ctrl[base + w.argc];
      // kernels that return (the first bad row or id of their share) return an i32; the others undefined
      result = fns[ctrl[base + w.fn]](...args.subarray(0, argc)) ?? 0;
    } catch (err) {
      status = 1;
      console.error(`tinygpt wasm worker ${init.slot}: ${init.fns[ctrl[base + w.fn]]} failed:`, err);
    }
    ctrl[base + w.status] = status;
    ctrl[base + w.result] = result;
    Atomics.store(ctrl, base + w.done, generation);
    Atomics.notify(ctrl, base + w.done);
  }
}

/** set by the Node side's prelude (host/node.ts startWorkerThread): this worker's worker_threads parentPort */
const nodePort =
  /** @type {{ tinygptParentPort?: { once(event: 'message', listener: (init: InitMessage) => void): void, postMessage(m: unknown): void, close(): void } }} */ (
    globalThis
  ).tinygptParentPort;
if (nodePort !== undefined) {
  nodePort.once('message', (init) => {
    start(init, (m) => nodePort.postMessage(m)).then(
      () => nodePort.close(),
      (err) => nodePort.postMessage({ error: String(err?.stack ?? err) }),
    );
  });
} else {
  const scope = /** @type {{ onmessage: ((e: MessageEvent) => void) | null, postMessage(m: unknown): void, close(): void }} */ (
    /** @type {unknown} */ (globalThis)
  );
  scope.onmessage = (event) => {
    scope.onmessage = null;
    start(event.data, (m) => scope.postMessage(m)).then(
      () => scope.close(),
      (err) => scope.postMessage({ error: String(err?.stack ?? err) }),
    );
  };
}
