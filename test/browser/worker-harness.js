// A dedicated module Worker that runs the shared scenarios on the bundle, for pages that keep the
// model off the main thread. Messages: { name, args } in; { result } or { error } out.
import * as tinygpt from '/dist/browser/index.js';
import * as scenarios from './scenarios.js';

self.onmessage = async (event) => {
  const { name, args } = event.data;
  try {
    self.postMessage({ result: await scenarios[name](tinygpt, ...args) });
  } catch (err) {
    self.postMessage({ error: String((err && err.stack) || err) });
  }
};
self.postMessage({ ready: true });
