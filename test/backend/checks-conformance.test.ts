/**
 * The contract's argument checks are written once (src/backend/checked.ts), so a bad call must fail
 * the same way on every backend: every op of every backend (js, wasm, and WebGPU where Dawn finds an
 * adapter) is called with aliased buffers and with views too short for it, and each must throw the
 * same error class with the same message as the js reference, before anything runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const gpu = await createNodeWebGPU();
const backends: Backend[] = [new JsBackend(), await createWasmBackend({ threads: 1 }), ...(gpu.backend ? [gpu.backend] : [])];
afterAll(() => backends.forEach((b) => b.dispose()));

/** What a case gets to build its arguments on one backend. */
interface Tensors {
  /** a fresh zero f32 tensor of n elements */
  f(n: number): Tensor;
  /** a fresh i32 tensor of n zeros (valid token ids and targets) */
  i(n: number): Tensor;
  /** a view of n elements at `offset` of one shared f32 buffer: two of them may overlap */
  at(offset: number, n: number): Tensor;
}

type Call = (b: Backend, x: Tensors) => void;

/** members that are not ops, and ops of one tensor (zero, scale: nothing to alias, any length fits) */
type NotChecked =
  | 'name'
  | 'limits'
  | 'memoryLimit'
  | 'setMemoryLimit'
  | 'settle'
  | 'threads'
  | 'threadsNote'
  | 'alloc'
  | 'download'
  | 'free'
  | 'bytesInUse'
  | 'dispose'
  | 'zero'
  | 'scale';
/**
 * the type lists every op of the contract: a new op without a case here does not compile (sampleTokens
 * writes i32 ids from f32 logits, and two dtypes never share storage, so it has no aliasing case)
 */
type AliasingOps = Exclude<keyof Backend, NotChecked | 'view' | 'upload' | 'sampleTokens'>;
type RangeOps = Exclude<keyof Backend, NotChecked>;

// shapes: elementwise N 4; matmul (and the fused products) M 2, K 3, N 4; LayerNorm N 2, C 4; attention B 1, T 2, C 4, NH 2;
// cross-entropy N 2, V 3; encoder B 1, T 2, C 4, V 3
const adamw = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };

/** each op with an output that shares storage with another argument (partly, where it may run in place) */
const aliased: Record<AliasingOps, Call> = {
  copy: (b, x) => b.copy(x.at(0, 4), x.at(2, 4)),
  transpose: (b, x) => b.transpose(x.at(0, 6), x.at(3, 6), 2, 3),
  squaredNorm: (b, x) => b.squaredNorm(x.at(0, 1), x.at(0, 4)),
  encoderForward: (b, x) => b.encoderForward(x.at(0, 8), x.i(2), x.at(4, 12), x.f(8), 1, 2, 4),
  encoderBackward: (b, x) => b.encoderBackward(x.at(0, 12), x.f(8), x.at(4, 8), x.i(2), 1, 2, 4),
  layerNormForward: (b, x) => b.layerNormForward(x.f(8), x.at(0, 2), x.at(1, 2), x.f(8), x.f(4), x.f(4), 2, 4),
  layerNormBackward: (b, x) => b.layerNormBackward(x.f(8), x.f(4), x.at(0, 4), x.f(8), x.f(8), x.f(4), x.at(2, 2), x.f(2), 2, 4),
  matmulForward: (b, x) => b.matmulForward(x.at(0, 8), x.at(0, 6), x.f(12), null, 2, 3, 4),
  matmulBackward: (b, x) => b.matmulBackward(x.f(6), x.at(0, 12), null, x.f(8), x.f(6), x.at(0, 12), 2, 3, 4),
  matmulGeluForward: (b, x) => b.matmulGeluForward(x.at(0, 8), x.at(4, 8), x.f(6), x.f(12), null, 2, 3, 4),
  matmulResidualForward: (b, x) => b.matmulResidualForward(x.at(0, 8), x.f(6), x.f(12), null, x.at(1, 8), 2, 3, 4),
  matmulGeluBackward: (b, x) => b.matmulGeluBackward(x.at(0, 6), x.f(12), null, x.f(8), x.f(6), x.f(12), x.at(2, 6), 2, 3, 4),
  layerNormMatmulForward: (b, x) => b.layerNormMatmulForward(x.at(0, 8), x.at(4, 6), x.f(3), x.f(3), x.f(12), null, 2, 3, 4),
  attentionForward: (b, x) => b.attentionForward(x.at(0, 8), x.f(4), x.at(0, 24), 1, 2, 4, 2),
  attentionBackward: (b, x) => b.attentionBackward(x.at(0, 24), x.f(8), x.f(24), x.f(8), x.at(20, 4), 1, 2, 4, 2),
  attentionCached: (b, x) => b.attentionCached(x.f(8), x.f(24), x.at(0, 8), x.at(4, 8), 1, 2, 4, 2, 0, 2),
  geluForward: (b, x) => b.geluForward(x.at(1, 4), x.at(0, 4), 4),
  geluBackward: (b, x) => b.geluBackward(x.at(0, 4), x.f(4), x.at(3, 4), 4),
  residualForward: (b, x) => b.residualForward(x.at(0, 4), x.f(4), x.at(0, 4), 4),
  accumulate: (b, x) => b.accumulate(x.at(0, 4), x.at(0, 4), 4),
  dropoutForward: (b, x) => b.dropoutForward(x.at(2, 4), x.at(0, 4), 4, 0.5, 1),
  dropoutBackward: (b, x) => b.dropoutBackward(x.at(0, 4), x.at(1, 4), 4, 0.5, 1),
  crossEntropyForward: (b, x) => b.crossEntropyForward(x.at(0, 2), x.at(1, 6), x.f(6), x.i(2), 2, 3),
  crossEntropyBackward: (b, x) => b.crossEntropyBackward(x.at(0, 6), x.at(5, 6), x.i(2), 1, 2, 3),
  adamwUpdate: (b, x) => b.adamwUpdate(x.f(4), x.at(0, 4), x.at(3, 4), x.f(4), adamw),
  // quantized (optional ops): M 1, K 32, N 2 in Q8_0 (16 words of quants, 2 scales); encoder B 1, T 1, C 32, V 2
  matmulQuantForward: (b, x) => b.matmulQuantForward?.(x.at(0, 2), x.at(0, 32), x.i(16), x.f(2), null, 1, 32, 2, 'q8_0'),
  encoderQuantForward: (b, x) => b.encoderQuantForward?.(x.at(0, 32), x.i(1), x.i(16), x.f(2), x.at(16, 32), 1, 1, 32, 0, 'q8_0'),
};

/** each op with one view a single element short of what it reads or writes, and storage calls out of range */
const outOfRange: Record<RangeOps, Call> = {
  view: (b, x) => b.view(x.f(4), 2, 3),
  upload: (b, x) => b.upload(x.f(4), new Float32Array(5)),
  copy: (b, x) => b.copy(x.f(3), x.f(4)),
  transpose: (b, x) => b.transpose(x.f(6), x.f(5), 2, 3),
  squaredNorm: (b, x) => b.squaredNorm(b.view(x.f(1), 0, 0), x.f(4)),
  encoderForward: (b, x) => b.encoderForward(x.f(8), x.i(2), x.f(12), x.f(7), 1, 2, 4),
  encoderBackward: (b, x) => b.encoderBackward(x.f(12), x.f(8), x.f(7), x.i(2), 1, 2, 4),
  layerNormForward: (b, x) => b.layerNormForward(x.f(8), x.f(2), x.f(2), x.f(8), x.f(4), x.f(3), 2, 4),
  layerNormBackward: (b, x) => b.layerNormBackward(x.f(8), x.f(4), x.f(4), x.f(8), x.f(8), x.f(4), x.f(2), x.f(1), 2, 4),
  matmulForward: (b, x) => b.matmulForward(x.f(8), x.f(6), x.f(12), x.f(3), 2, 3, 4),
  matmulBackward: (b, x) => b.matmulBackward(x.f(5), x.f(12), null, x.f(8), x.f(6), x.f(12), 2, 3, 4),
  matmulGeluForward: (b, x) => b.matmulGeluForward(x.f(8), x.f(7), x.f(6), x.f(12), null, 2, 3, 4),
  matmulResidualForward: (b, x) => b.matmulResidualForward(x.f(8), x.f(6), x.f(12), null, x.f(7), 2, 3, 4),
  matmulGeluBackward: (b, x) => b.matmulGeluBackward(x.f(6), x.f(12), null, x.f(8), x.f(6), x.f(12), x.f(5), 2, 3, 4),
  layerNormMatmulForward: (b, x) => b.layerNormMatmulForward(x.f(8), x.f(6), x.f(3), x.f(2), x.f(12), null, 2, 3, 4),
  attentionForward: (b, x) => b.attentionForward(x.f(8), x.f(3), x.f(24), 1, 2, 4, 2),
  attentionBackward: (b, x) => b.attentionBackward(x.f(24), x.f(8), x.f(23), x.f(8), x.f(4), 1, 2, 4, 2),
  attentionCached: (b, x) => b.attentionCached(x.f(8), x.f(24), x.f(8), x.f(8), 1, 2, 4, 2, 1, 2),
  geluForward: (b, x) => b.geluForward(x.f(4), x.f(3), 4),
  geluBackward: (b, x) => b.geluBackward(x.f(4), x.f(4), x.f(3), 4),
  residualForward: (b, x) => b.residualForward(x.f(3), x.f(4), x.f(4), 4),
  accumulate: (b, x) => b.accumulate(x.f(4), x.f(3), 4),
  dropoutForward: (b, x) => b.dropoutForward(x.f(4), x.f(3), 4, 0.5, 1),
  dropoutBackward: (b, x) => b.dropoutBackward(x.f(3), x.f(4), 4, 0.5, 1),
  crossEntropyForward: (b, x) => b.crossEntropyForward(x.f(2), x.f(6), x.f(6), x.i(1), 2, 3),
  crossEntropyBackward: (b, x) => b.crossEntropyBackward(x.f(6), x.f(5), x.i(2), 1, 2, 3),
  adamwUpdate: (b, x) => b.adamwUpdate(x.f(4), x.f(3), x.f(4), x.f(4), adamw),
  sampleTokens: (b, x) =>
    b.sampleTokens(x.i(1), x.f(6), [0.5, 0.5], 2, 3, { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0, allowed: 3 }),
  matmulQuantForward: (b, x) => b.matmulQuantForward?.(x.f(2), x.f(32), x.i(16), x.f(1), null, 1, 32, 2, 'q8_0'),
  encoderQuantForward: (b, x) => b.encoderQuantForward?.(x.f(32), x.i(1), x.i(15), x.f(2), x.f(32), 1, 1, 32, 0, 'q8_0'),
};

/** the error a call throws on `backend`, as class name and message (null if it did not throw) */
function failure(backend: Backend, call: Call): { kind: string; message: string } | null {
  const shared = backend.alloc(64);
  const tensors: Tensors = {
    f: (n) => backend.alloc(n),
    i: (n) => backend.alloc(n, 'i32'),
    at: (offset, n) => backend.view(shared, offset, n),
  };
  try {
    call(backend, tensors);
    return null;
  } catch (error) {
    return { kind: (error as Error).constructor.name, message: (error as Error).message };
  }
}

describe(`argument checks agree across backends (${backends.map((b) => b.name).join(', ')}${gpu.backend ? '' : `; webgpu skipped: ${gpu.skipReason}`})`, () => {
  for (const [label, cases, pattern] of [
    ['aliased buffers', aliased, /^\w+: \w+ (partly )?overlaps \w+; /],
    ['out-of-range views', outOfRange, /^\w+: (\w+ has \d+ elements, needs at least|offset|length|data has|dst has|startPos \+ Tn)/],
  ] as const) {
    describe(label, () => {
      for (const [op, call] of Object.entries(cases)) {
        it(op, () => {
          const reference = failure(backends[0], call);
          expect(reference, `${op} on js did not throw`).not.toBeNull();
          expect(reference!.message.startsWith(`${op}: `), reference!.message).toBe(true);
          expect(reference!.message).toMatch(pattern);
          expect(reference!.kind).toBe('RangeError');
          // the quantized ops are optional: compared where a backend has them
          const others = backends.slice(1).filter((b) => typeof (b as unknown as Record<string, unknown>)[op] === 'function');
          for (const backend of others) expect(failure(backend, call), backend.name).toEqual(reference);
        });
      }
    });
  }
});
