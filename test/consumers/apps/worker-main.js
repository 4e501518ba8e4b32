// A page that runs the scenario in a module Web Worker, where the wasm backend may start threads
// (the page is served cross-origin isolated).
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
worker.onmessage = (event) => (globalThis.consumerResult = event.data);
worker.onerror = (event) => (globalThis.consumerResult = { error: `worker error: ${event.message}` });
