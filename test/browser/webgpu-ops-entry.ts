/**
 * Bundled for Chromium by test/browser/webgpu-ops.test.ts: every op of the WebGPU backend against
 * the js reference (float64), as test/backend/webgpu-ops.test.ts does in Node, on the browser's own
 * navigator.gpu. Returns one line per output so the Node side can report what failed.
 */
import { createWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { SMALL_SHAPES, compareToReference, opCases, type OpShapes } from '../helpers/conformance.js';
import { SPLIT_BINDING_BYTES, SPLIT_SHAPES, TILED_SHAPES, toleranceFor } from '../helpers/webgpu-shapes.js';

export interface OpOutcome {
  set: string;
  name: string;
  output: string;
  ok: boolean;
  message: string;
}

const SETS: { set: string; shapes: OpShapes; maxBindingBytes?: number; seed: number }[] = [
  { set: 'small odd shapes', shapes: SMALL_SHAPES, seed: 7 },
  { set: 'past tile and chunk boundaries', shapes: TILED_SHAPES, seed: 11 },
  { set: `bindings capped at ${SPLIT_BINDING_BYTES} bytes`, shapes: SPLIT_SHAPES, maxBindingBytes: SPLIT_BINDING_BYTES, seed: 19 },
];

export async function runOps(): Promise<{ adapter: string; outcomes: OpOutcome[] }> {
  const outcomes: OpOutcome[] = [];
  let adapter = '';
  for (const { set, shapes, maxBindingBytes, seed } of SETS) {
    const backend = await createWebGPUBackend(maxBindingBytes === undefined ? {} : { maxBindingBytes });
    adapter = backend.adapterName;
    try {
      for (const c of opCases) {
        for (const r of await compareToReference(backend, c, { seed, shapes, tolerance: toleranceFor(c) })) {
          outcomes.push({ set, name: c.name, output: r.output, ok: r.ok, message: r.message });
        }
      }
    } finally {
      backend.dispose();
    }
  }
  return { adapter, outcomes };
}
