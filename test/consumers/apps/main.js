// The page's entry: runs the scenario and leaves the outcome where the test reads it.
import { run } from './scenario.js';

run().then(
  (result) => (globalThis.consumerResult = result),
  (err) => (globalThis.consumerResult = { error: String(err?.stack ?? err) }),
);
