/**
 * The WebGPU backend against the js reference (float64, rounded to float32) on seeded random inputs,
 * op by op, on Dawn in Node. Without a GPU, Dawn runs on SwiftShader (a CPU Vulkan driver; see
 * vitest.config.ts), which is slow: shapes stay small, but the larger set crosses every tile and
 * chunk boundary of the kernels (matmul tiles of 64, attention key chunks of 64 and head dims past
 * 64, row reductions over 256 lanes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropoutKeep, type Tensor } from '../../src/backend/contract.js';
import { acquireDevice, requestAdapter } from '../../src/backend/webgpu/device.js';
import { WebGPUBackend, createWebGPUBackend, segmentLayout } from '../../src/backend/webgpu/index.js';
import { grid } from '../../src/backend/webgpu/kernel.js';
import { SMALL_SHAPES, compareToReference, opCases, type OpCase, type OpShapes } from '../helpers/conformance.js';
import { CANCELLING, LOOSE, SPLIT_BINDING_BYTES, SPLIT_SHAPES, TIGHT, TILED_SHAPES, toleranceFor } from '../helpers/webgpu-shapes.js';
import { Rng, maxRelErr, normal32 } from '../helpers/random.js';
import { createNodeWebGPU } from '../helpers/webgpu-node.js';

const gpu = await createNodeWebGPU();
afterAll(() => gpu.backend?.dispose());
const suite = gpu.backend === null ? `webgpu backend (skipped: ${gpu.skipReason})` : `webgpu backend on ${gpu.backend.adapterName}`;

describe.skipIf(gpu.backend === null)(suite, () => {
  const backend = gpu.backend as WebGPUBackend;

  describe('every op equals the js reference on small odd shapes', () => {
    for (const c of opCases) {
      it(c.name, async () => {
        for (const r of await compareToReference(backend, c, { seed: 7, shapes: SMALL_SHAPES, tolerance: TIGHT })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
      });
    }
  });

  describe('every op equals the js reference past tile and chunk boundaries', () => {
    for (const c of opCases) {
      it(c.name, async () => {
        for (const r of await compareToReference(backend, c, { seed: 11, shapes: TILED_SHAPES, tolerance: toleranceFor(c) })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
      });
    }
  });

  describe('tensors sharing one buffer, as flat parameters and gradients do', () => {
    const flat: OpCase = {
      name: 'matmul with weight+bias in one buffer and dweight+dbias in another',
      op: 'matmul',
      kind: 'backward',
      run: (ctx) => {
        const { M, K, N } = ctx.s;
        const params = ctx.normal(K * N + N + 3);
        const weight = ctx.be.view(params, 3, K * N);
        const bias = ctx.be.view(params, 3 + K * N, N);
        const acts = ctx.normal(M * K + M * N);
        const inp = ctx.be.view(acts, 0, M * K);
        const out = ctx.be.view(acts, M * K, M * N);
        ctx.be.matmulForward(out, inp, weight, bias, M, K, N);
        const grads = ctx.grad(K * N + N + 3);
        const dinp = ctx.grad(M * K);
        ctx.be.matmulBackward(dinp, ctx.be.view(grads, 3, K * N), ctx.be.view(grads, 3 + K * N, N), out, inp, weight, M, K, N);
        return { acts, grads, dinp };
      },
    };
    const sameBufferCopy: OpCase = {
      name: 'copy and layerNorm with every tensor a view of one buffer',
      op: 'layerNorm',
      kind: 'forward',
      run: (ctx) => {
        const rows = ctx.s.B * ctx.s.T;
        const C = ctx.s.C;
        const arena = ctx.normal(3 * rows * C + 2 * rows + 2 * C);
        const at = (offset: number, length: number): Tensor => ctx.be.view(arena, offset, length);
        ctx.be.copy(at(rows * C, rows * C), at(0, rows * C));
        const stats = 3 * rows * C;
        ctx.be.layerNormForward(
          at(2 * rows * C, rows * C),
          at(stats, rows),
          at(stats + rows, rows),
          at(rows * C, rows * C),
          at(stats + 2 * rows, C),
          at(stats + 2 * rows + C, C),
          rows,
          C,
        );
        return { arena };
      },
    };
    for (const [c, tolerance] of [
      [flat, CANCELLING],
      [sameBufferCopy, TIGHT],
    ] as const) {
      it(c.name, async () => {
        for (const r of await compareToReference(backend, c, { seed: 3, shapes: TILED_SHAPES, tolerance })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
      });
    }
  });

  it('each fused product runs as one product, its epilogue or prologue inside it', async () => {
    const rng = new Rng(29);
    const tensor = (n: number) => {
      const t = backend.alloc(n);
      backend.upload(t, normal32(rng, n));
      return t;
    };
    // few rows (decoding): partial sums and their total; many rows: one tiled dispatch
    for (const [M, perProduct] of [
      [3, 2],
      [67, 1],
    ] as const) {
      const [K, N] = [70, 131];
      const [inp, weight, bias, out, pre, residual, lnWeight, lnBias] = [M * K, K * N, N, M * N, M * N, M * N, K, K].map(tensor);
      const count = (record: () => void): number => {
        const before = backend.dispatches;
        record();
        return backend.dispatches - before;
      };
      expect(count(() => backend.matmulGeluForward(out, pre, inp, weight, bias, M, K, N))).toBe(perProduct);
      expect(count(() => backend.matmulResidualForward(residual, inp, weight, bias, residual, M, K, N))).toBe(perProduct);
      if (M <= 8) expect(count(() => backend.layerNormMatmulForward(out, inp, lnWeight, lnBias, weight, bias, M, K, N))).toBe(perProduct);
      // the unfused sequence these replace: the product and one elementwise pass
      expect(count(() => backend.matmulForward(out, inp, weight, bias, M, K, N))).toBe(perProduct);
      await backend.download(out);
      for (const t of [inp, weight, bias, out, pre, residual, lnWeight, lnBias]) backend.free(t);
    }
  });

  it('dropout keeps exactly the elements the contract hash keeps', async () => {
    const n = 5000;
    const p = 0.37;
    const seed = 0xdeadbeef;
    const x = backend.alloc(n);
    backend.upload(x, new Float32Array(n).fill(1));
    backend.dropoutForward(x, x, n, p, seed);
    const kept = (await backend.download(x)) as Float32Array;
    let mismatches = 0;
    for (let i = 0; i < n; i++) if ((kept[i] !== 0) !== dropoutKeep(seed, i, p)) mismatches++;
    expect(mismatches).toBe(0);
    expect(kept.find((v) => v !== 0)).toBeCloseTo(1 / (1 - p), 6);
    backend.free(x);
  });

  it('a training-step-like sequence of ops is one submission, read back once', async () => {
    const rng = new Rng(5);
    const { M, K, N } = SMALL_SHAPES;
    const inp = backend.alloc(M * K);
    const weight = backend.alloc(K * N);
    const out = backend.alloc(M * N);
    const norm = backend.alloc(1);
    backend.upload(inp, normal32(rng, M * K));
    backend.upload(weight, normal32(rng, K * N));
    backend.flush();
    const before = backend.submissions;
    backend.matmulForward(out, inp, weight, null, M, K, N);
    backend.geluForward(out, out, M * N);
    const dweight = backend.alloc(K * N);
    backend.matmulBackward(null, dweight, null, out, inp, weight, M, K, N);
    backend.squaredNorm(norm, dweight);
    const [sq] = (await backend.download(norm)) as Float32Array;
    expect(backend.submissions - before).toBe(1);
    // the norm of what was recorded, against the downloaded gradient summed on the host in float64
    const dw = (await backend.download(dweight)) as Float32Array;
    const hostSq = dw.reduce((sum, x) => sum + x * x, 0);
    expect(hostSq).toBeGreaterThan(0);
    expect(Math.abs(sq - hostSq) / hostSq).toBeLessThan(1e-5);
    for (const t of [inp, weight, out, norm, dweight]) backend.free(t);
  });

  it('uploads land in call order between recorded ops', async () => {
    const a = backend.alloc(4);
    const b = backend.alloc(4);
    backend.upload(a, new Float32Array([1, 2, 3, 4]));
    backend.scale(a, 2);
    backend.copy(b, a); // b must see [2, 4, 6, 8], not the later upload
    backend.upload(a, new Float32Array([5, 6, 7, 8]));
    backend.scale(a, 3);
    expect(Array.from(await backend.download(a))).toEqual([15, 18, 21, 24]);
    expect(Array.from(await backend.download(b))).toEqual([2, 4, 6, 8]);
    backend.free(a);
    backend.free(b);
  });

  it('more dispatches than uniform slots before one download: an early submission, same results', async () => {
    // early submissions off, so that only the 4096 uniform slots running out submits early
    const own = new WebGPUBackend(backend.device, backend.adapterName, { submitEvery: 0 });
    const t = own.alloc(3);
    own.upload(t, new Float32Array([1, -2, 3]));
    own.flush();
    const before = own.submissions;
    // 5000 dispatches > the 4096 uniform slots; x2 then x0.5 is exact in float32
    for (let i = 0; i < 2500; i++) {
      own.scale(t, 2);
      own.scale(t, 0.5);
    }
    expect(Array.from(await own.download(t))).toEqual([1, -2, 3]);
    expect(own.submissions - before).toBe(2);
    own.free(t);
  });

  it('submitEvery: a submission every N dispatches without waiting for a read-back, same results', async () => {
    const own = new WebGPUBackend(backend.device, backend.adapterName, { submitEvery: 8 });
    const t = own.alloc(3);
    const u = own.alloc(3);
    own.upload(t, new Float32Array([1, -2, 3]));
    own.flush();
    const before = own.submissions;
    // 20 dispatches: submitted after the 8th and the 16th, the last 4 with the read-back; an
    // upload after the 8th (the recorder is then idle) lands after the ops submitted before it
    for (let i = 0; i < 10; i++) {
      own.scale(t, 2);
      if (i === 4) own.upload(u, new Float32Array([7, 8, 9]));
      own.scale(t, 0.5);
    }
    own.copy(u, t);
    expect(Array.from(await own.download(u))).toEqual([1, -2, 3]);
    expect(own.submissions - before).toBe(3);
    own.free(t);
    own.free(u);
  });

  it('submitEvery must be an integer >= 0', () => {
    expect(() => new WebGPUBackend(backend.device, backend.adapterName, { submitEvery: -1 })).toThrow(
      /submitEvery must be an integer >= 0/,
    );
    expect(() => new WebGPUBackend(backend.device, backend.adapterName, { submitEvery: 2.5 })).toThrow(/submitEvery/);
  });

  it('an elementwise op over more workgroups than one grid dimension holds', async () => {
    const n = 65535 * 256 + 300; // one past what a 1-D grid of 256-wide workgroups can cover
    const t = backend.alloc(n);
    backend.upload(t, new Float32Array(n).fill(1.5));
    backend.scale(t, 2);
    const tail = (await backend.download(backend.view(t, n - 1000, 1000))) as Float32Array;
    expect(tail.every((v) => v === 3)).toBe(true);
    backend.free(t);
  });

  it('a buffer freed and reused inside one recording reads as zeros to the new owner', async () => {
    const first = backend.alloc(300);
    backend.upload(first, new Float32Array(300).fill(7));
    backend.scale(first, 2); // recorded, not submitted
    backend.free(first);
    const second = backend.alloc(300);
    const zeros = backend.alloc(300);
    // in place: second += zeros, so any stale 14 left in the reused buffer would show
    backend.residualForward(second, second, zeros, 300);
    expect((await backend.download(second)).every((v) => v === 0)).toBe(true);
    backend.free(second);
    backend.free(zeros);
  });

  it('a reused buffer comes back zero-filled', async () => {
    const first = backend.alloc(300);
    backend.upload(first, new Float32Array(300).fill(7));
    backend.free(first);
    const second = backend.alloc(300);
    expect((await backend.download(second)).every((v) => v === 0)).toBe(true);
    backend.free(second);
  });

  it('bad input is refused with the field, the value and the allowed range', () => {
    expect(() => backend.alloc(0)).toThrow(/alloc: length must be an integer in \[1, \d+\].*got 0/);
    expect(() => backend.alloc(backend.limits.maxTensorLength + 1)).toThrow(/more than one buffer of this adapter holds .*pass splitAt/);
    const t = backend.alloc(8);
    expect(() => backend.view(t, 2, 7)).toThrow(/view: length must be an integer in \[0, 6\].*got 7/);
    expect(() => backend.dropoutForward(t, t, 8, 1, 1)).toThrow(/p must be in \[0, 1\), got 1/);
    expect(() => backend.matmulForward(t, t, t, null, 3, 2, 3)).toThrow(/matmulForward: out has 8 elements, needs at least 9/);
    expect(() => backend.attentionForward(t, t, t, 1, 1, 6, 4)).toThrow(/C = 6 must be divisible by NH = 4/);
    backend.free(t);
    expect(() => backend.scale(t, 2)).toThrow(/freed/);
    const other = { dtype: 'f32', offset: 0, length: 1 } as Tensor;
    expect(() => backend.zero(other)).toThrow(/not a tensor of this webgpu backend/);
  });

  it('an error the device reports outside any op rejects the next download with its message', async () => {
    const t = backend.alloc(4);
    // MAP_READ may only be combined with COPY_DST: an invalid buffer, reported as an uncaptured error
    backend.device.createBuffer({ size: 16, usage: 0x1 | 0x80 });
    await expect(backend.download(t)).rejects.toThrow(/WebGPU error: .*usage/i);
    expect(Array.from(await backend.download(t))).toEqual([0, 0, 0, 0]);
    backend.free(t);
  });
});

describe.skipIf(gpu.backend === null)('webgpu tiled attention (head sizes up to 64)', () => {
  const backend = gpu.backend as WebGPUBackend;
  // HS = 64 (GPT-2's) over T = 37: three 16-row tiles, the last one partial; HS = 40 leaves the
  // last 16-dim lane group partial
  const shapesByName: Record<string, OpShapes> = {
    'HS 64': { ...SMALL_SHAPES, B: 2, T: 37, C: 128, NH: 2 },
    'HS 40': { ...SMALL_SHAPES, B: 1, T: 33, C: 120, NH: 3 },
  };
  for (const c of opCases.filter((c) => c.op === 'attention')) {
    for (const [label, shapes] of Object.entries(shapesByName)) {
      it(`${c.name} (${label})`, async () => {
        const tolerance = c.kind === 'backward' ? LOOSE : TIGHT;
        for (const r of await compareToReference(backend, c, { seed: 17, shapes, tolerance })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
      });
    }
  }
});

describe.skipIf(gpu.backend === null)('webgpu matmul with 8x8 register blocks (128x128 tiles)', () => {
  let large: WebGPUBackend;
  beforeAll(async () => {
    large = await createWebGPUBackend({ matmulBlock: 8 });
  });
  afterAll(() => large.dispose());
  for (const c of opCases.filter((c) => c.op === 'matmul')) {
    for (const [label, shapes] of [
      ['small', SMALL_SHAPES],
      ['tiled', { ...TILED_SHAPES, M: 131, K: 37, N: 259 }],
    ] as const) {
      it(`${c.name} (${label})`, async () => {
        for (const r of await compareToReference(large, c, { seed: 13, shapes, tolerance: TIGHT })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
      });
    }
  }
});

describe.skipIf(gpu.backend === null)("webgpu matmul on a device with WebGPU's default 16 KB of workgroup memory", () => {
  it('8x8 blocks take unpadded tiles there, and match the reference', async () => {
    for (const matmulBlock of ['auto', 8] as const) {
      // no requiredLimits: the device gets the defaults, whatever the adapter offers (dispose destroys it)
      const device = await (await requestAdapter()).requestDevice();
      expect(device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      const backend = new WebGPUBackend(device, 'default limits', { matmulBlock });
      // 12 x 8 = 96 tiles of 128x128, where 'auto' takes 8x8 blocks
      const shapes = { ...TILED_SHAPES, M: 1536, K: 8, N: 1024 };
      for (const r of await compareToReference(
        backend,
        opCases.find((c) => c.op === 'matmul')!,
        { seed: 5, shapes, tolerance: TIGHT },
      )) {
        expect(r.ok, `${matmulBlock}: ${r.output}: ${r.message}`).toBe(true);
      }
      backend.dispose();
    }
  });
});

describe.skipIf(gpu.backend === null)('webgpu cached attention with the keys cut across workgroups (decoding)', () => {
  const backend = gpu.backend as WebGPUBackend;
  const cached = opCases.find((c) => c.op === 'attentionCached')!;
  // one head over a 40-token prompt: two key ranges, the second empty for the first 19 rows; then
  // GPT-2's head size over 150 keys, five ranges
  const shapesByName: Record<string, OpShapes> = {
    'HS 16, prompt 40': { ...SMALL_SHAPES, B: 1, T: 41, C: 16, NH: 1 },
    'HS 64, 150 keys': { ...SMALL_SHAPES, B: 2, T: 150, C: 128, NH: 2 },
  };
  // dispatches of the prompt call and of the one-token call: the prompt's range is one workgroup per
  // (row, head) here; each split call is the ranges and their merge, the cache append inside them
  const dispatchesByName: Record<string, number> = { 'HS 16, prompt 40': 2 + 2, 'HS 64, 150 keys': 1 + 2 };
  for (const [label, shapes] of Object.entries(shapesByName)) {
    it(`${cached.name} (${label})`, async () => {
      const before = backend.dispatches;
      for (const r of await compareToReference(backend, cached, { seed: 29, shapes, tolerance: TIGHT })) {
        expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
      }
      expect(backend.dispatches - before).toBe(dispatchesByName[label]);
    });
  }

  // a prompt of T-4 positions, then 3 more at once (new keys read beside their queries while the
  // cache holds the rest, appended by the same kernel), then one more
  const inSteps: OpCase = {
    name: 'attentionCached: a prompt, then 3 positions, then 1',
    op: 'attentionCached',
    kind: 'forward',
    run: (ctx) => {
      const { B, T, C, NH } = ctx.s;
      const cacheLen = T + 1;
      const kCache = ctx.zeros(B * cacheLen * C);
      const vCache = ctx.zeros(B * cacheLen * C);
      const outs: Record<string, Tensor> = { kCache, vCache };
      let position = 0;
      for (const Tn of [T - 4, 3, 1]) {
        const out = ctx.zeros(B * Tn * C);
        ctx.be.attentionCached(out, ctx.normal(B * Tn * 3 * C), kCache, vCache, B, Tn, C, NH, position, cacheLen);
        outs[`out${position}`] = out;
        position += Tn;
      }
      return outs;
    },
  };
  // head sizes that are no multiple of 4, one and two lanes per dim, several heads, B = 2; the first
  // prompt crosses a 64-key chunk in one range, the second takes two ranges, and the later calls
  // cut the keys into ranges (3 and 2 of them)
  const stepShapes: [string, OpShapes, number][] = [
    ['HS 5, 3 heads, 70 keys', { ...SMALL_SHAPES, B: 2, T: 70, C: 15, NH: 3 }, 1 + 2 + 2],
    ['HS 67, 2 heads, 45 keys', { ...SMALL_SHAPES, B: 2, T: 45, C: 134, NH: 2 }, 2 + 2 + 2],
  ];
  for (const [label, shapes, dispatches] of stepShapes) {
    it(`${inSteps.name} (${label})`, async () => {
      const before = backend.dispatches;
      for (const r of await compareToReference(backend, inSteps, { seed: 37, shapes, tolerance: TIGHT })) {
        expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
      }
      expect(backend.dispatches - before).toBe(dispatches);
    });
  }
});

describe.skipIf(gpu.backend === null)('webgpu products with K cut across workgroups', () => {
  const backend = gpu.backend as WebGPUBackend;
  // An output of 67 x 70 is four 64x64 tiles: a product over 1100 splits in two chunks of 560 (the
  // second partial). Forward: K = 1100; backward: N = 1100 makes dinp = dout @ weight^T such a
  // product (dweight, 70 x 1100 over 67, is not).
  const cases: [OpCase, OpShapes, number][] = [
    ...opCases
      .filter((c) => c.op === 'matmul' && c.kind === 'forward')
      .map((c): [OpCase, OpShapes, number] => [c, { ...SMALL_SHAPES, M: 67, K: 1100, N: 70 }, 2]),
    // dinp (partial sums + their total), dweight, dbias (column chunks + their total)
    [opCases.find((c) => c.name === 'matmulBackward with bias')!, { ...SMALL_SHAPES, M: 67, K: 70, N: 1100 }, 5],
  ];
  for (const [c, shapes, dispatches] of cases) {
    it(c.name, async () => {
      const before = backend.dispatches;
      for (const r of await compareToReference(backend, c, { seed: 31, shapes, tolerance: CANCELLING })) {
        expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
      }
      expect(backend.dispatches - before).toBe(dispatches);
    });
  }
});

describe.skipIf(gpu.backend === null)('webgpu products of few rows (decoding)', () => {
  const backend = gpu.backend as WebGPUBackend;
  // K = 300 over 70 columns: ten chunks of 30 along K, two column groups, the second partial
  for (const c of opCases.filter((c) => c.op === 'matmul' && c.kind === 'forward')) {
    for (const M of [1, 5, 8]) {
      it(`${c.name}, M = ${M}`, async () => {
        const before = backend.dispatches;
        for (const r of await compareToReference(backend, c, {
          seed: 23,
          shapes: { ...SMALL_SHAPES, M, K: 300, N: 70 },
          tolerance: TIGHT,
        })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
        // the chunked partial sums and their total, not the tiled kernel
        expect(backend.dispatches - before).toBe(2);
      });
    }
  }
});

describe.skipIf(gpu.backend === null)('webgpu ops on tensors larger than one binding', () => {
  const uncapped = gpu.backend as WebGPUBackend;
  let capped: WebGPUBackend;
  beforeAll(async () => {
    capped = await createWebGPUBackend({ maxBindingBytes: SPLIT_BINDING_BYTES });
  });
  afterAll(() => capped.dispose());

  for (const c of opCases) {
    it(c.name, async () => {
      const dispatchesOf = async (be: WebGPUBackend) => {
        const before = be.dispatches;
        for (const r of await compareToReference(be, c, { seed: 19, shapes: SPLIT_SHAPES, tolerance: toleranceFor(c) })) {
          expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
        }
        return be.dispatches - before;
      };
      // the capped run really was cut into pieces
      expect(await dispatchesOf(capped)).toBeGreaterThan(await dispatchesOf(uncapped));
    });
  }

  it('an item that cannot be cut and exceeds the binding is refused, naming the op', () => {
    const qkv = capped.alloc(2 * 3 * 400);
    const out = capped.alloc(2 * 400);
    const lse = capped.alloc(2 * 4);
    // one sequence of qkv is 1 x 3 x 400 floats, 4.7 KiB: more than the 4 KiB binding
    expect(() => capped.attentionForward(out, lse, qkv, 2, 1, 400, 4)).toThrow(/attentionForward: needs \d+ bytes in one binding/);
    for (const t of [qkv, out, lse]) capped.free(t);
  });

  it('maxBindingBytes outside the device range is refused with the range', async () => {
    await expect(createWebGPUBackend({ maxBindingBytes: 100 })).rejects.toThrow(
      /maxBindingBytes must be an integer in \[4096, \d+\].*got 100/,
    );
  });
});

describe('segmentLayout: how a tensor larger than one buffer is cut', () => {
  it('keeps a tensor that fits whole, and cuts at the last allowed point that fits', () => {
    expect(segmentLayout(100, 100)).toEqual([{ start: 0, length: 100 }]);
    // offsets: the last allowed point within 100 of each start
    expect(segmentLayout(250, 100, [30, 90, 120, 180, 240])).toEqual([
      { start: 0, length: 90 },
      { start: 90, length: 90 },
      { start: 180, length: 70 },
    ]);
    // a period: rows of 30 in buffers of 100 take 3 rows each
    expect(segmentLayout(250, 100, 30)).toEqual([
      { start: 0, length: 90 },
      { start: 90, length: 90 },
      { start: 180, length: 70 },
    ]);
  });

  it('refuses without split points, or with none in reach', () => {
    expect(() => segmentLayout(101, 100)).toThrow(/101 elements is more than one buffer of this adapter holds \(100\); pass splitAt/);
    expect(() => segmentLayout(300, 100, [50, 200])).toThrow(/no allowed split point \(splitAt\) within 100 elements after element 50/);
    expect(() => segmentLayout(300, 100, 150)).toThrow(/within 100 elements after element 0/);
  });
});

describe.skipIf(gpu.backend === null)('webgpu tensors larger than one buffer', () => {
  // buffers of 1024 floats, bindings of 1024 floats: a tensor of 3000 is three buffers
  let small: WebGPUBackend;
  beforeAll(async () => {
    small = await createWebGPUBackend({ maxBufferBytes: 4096, maxBindingBytes: 4096 });
  });
  afterAll(() => small.dispose());
  const rng = new Rng(43);
  const starts = [0, 700, 1400, 1900, 2600];

  it('store, read back, clear and copy across buffer boundaries', async () => {
    const data = normal32(rng, 3000);
    const t = small.alloc(3000, 'f32', starts);
    small.upload(t, data);
    expect(await small.download(t)).toEqual(data);
    // a view across the boundary at 1400
    expect(await small.download(small.view(t, 1300, 300))).toEqual(data.subarray(1300, 1600));
    small.zero(small.view(t, 1350, 100));
    const cleared = Float32Array.from(data);
    cleared.fill(0, 1350, 1450);
    expect(await small.download(t)).toEqual(cleared);
    // into a tensor cut elsewhere (rows of 300)
    const other = small.alloc(3000, 'f32', 300);
    small.copy(other, t);
    expect(await small.download(other)).toEqual(cleared);
    small.free(t);
    small.free(other);
  });

  it('elementwise ops and the norm run across the boundaries and equal the host', async () => {
    const x = normal32(rng, 3000);
    const y = normal32(rng, 3000);
    const tx = small.alloc(3000, 'f32', starts);
    const ty = small.alloc(3000, 'f32', 500);
    small.upload(tx, x);
    small.upload(ty, y);
    small.accumulate(tx, ty, 3000);
    small.scale(tx, 0.5);
    const expected = x.map((v, i) => Math.fround(Math.fround(v + y[i]) * 0.5));
    expect(await small.download(tx)).toEqual(expected);
    const norm = small.alloc(1);
    small.squaredNorm(norm, tx);
    const hostNorm = expected.reduce((sum, v) => sum + v * v, 0);
    expect(Math.abs((await small.download(norm))[0] - hostNorm)).toBeLessThan(1e-5 * hostNorm);
    for (const t of [tx, ty, norm]) small.free(t);
  });

  it('LayerNorm backward with dweight and dbias on either side of a buffer boundary', async () => {
    // like the flat gradients: [other 600 | weight C | bias C], cut between weight and bias (at 900)
    const C = 300;
    const N = 3;
    const inputs = { dout: normal32(rng, N * C), inp: normal32(rng, N * C), weight: normal32(rng, C), grads: normal32(rng, 600 + 2 * C) };
    const results: Float32Array[] = [];
    for (const be of [small, gpu.backend as WebGPUBackend]) {
      const grads = be.alloc(600 + 2 * C, 'f32', [600, 600 + C]);
      be.upload(grads, inputs.grads);
      const rows = () => be.alloc(N * C, 'f32', C);
      const [dinp, out, mean, rstd] = [rows(), rows(), be.alloc(N), be.alloc(N)];
      const [dout, inp, weight] = [rows(), rows(), be.alloc(C)];
      be.upload(dout, inputs.dout);
      be.upload(inp, inputs.inp);
      be.upload(weight, inputs.weight);
      be.layerNormForward(out, mean, rstd, inp, weight, weight, N, C);
      be.layerNormBackward(dinp, be.view(grads, 600, C), be.view(grads, 600 + C, C), dout, inp, weight, mean, rstd, N, C);
      results.push((await be.download(grads)) as Float32Array);
      for (const t of [grads, dinp, out, mean, rstd, dout, inp, weight]) be.free(t);
    }
    expect(maxRelErr(results[0], results[1])).toBeLessThan(1e-6);
  });

  it('an allocation past one buffer without split points, or an op on an item that spans two, is refused', () => {
    expect(() => small.alloc(3000)).toThrow(/more than one buffer of this adapter holds \(1024\); pass splitAt/);
    // rows of 10 in a tensor cut every 7 elements: some rows span two buffers
    const t = small.alloc(2100, 'f32', 7);
    const out = small.alloc(2100, 'f32', 10);
    const mean = small.alloc(210);
    const rstd = small.alloc(210);
    const weight = small.alloc(10);
    expect(() => small.layerNormForward(out, mean, rstd, t, weight, weight, 210, 10)).toThrow(
      /layerNormForward: a single item spans two of the buffers/,
    );
    for (const x of [t, out, mean, rstd, weight]) small.free(x);
  });
});

describe.skipIf(gpu.backend === null)('webgpu device loss', () => {
  it('a pending download and every later one reject with the loss reason; lost resolves', async () => {
    const lossy = await createWebGPUBackend();
    const x = lossy.alloc(1 << 16);
    lossy.upload(x, new Float32Array(1 << 16).fill(1));
    for (let i = 0; i < 20; i++) lossy.geluForward(x, x, 1 << 16);
    const pending = lossy.download(x);
    lossy.device.destroy();
    await expect(pending).rejects.toThrow(/WebGPU device lost \(reason: destroyed\)/);
    await expect(lossy.download(x)).rejects.toThrow(/WebGPU device lost \(reason: destroyed\)/);
    expect((await lossy.lost).reason).toBe('destroyed');
    lossy.dispose();
  });
});

describe.skipIf(gpu.backend === null)('webgpu out of memory', () => {
  /**
   * A device whose next out-of-memory error scope reports an error, as a real one does when an
   * allocation does not fit (a real one would take the machine's memory with it; SwiftShader's
   * "GPU memory" is this machine's RAM).
   */
  async function deviceRunningOutOfMemory(): Promise<{ device: GPUDevice; failNextAllocation: () => void }> {
    const { device } = await acquireDevice();
    const scopes: boolean[] = [];
    let armed = false;
    const proxy = new Proxy(device, {
      get(target, prop) {
        if (prop === 'pushErrorScope') {
          return (filter: GPUErrorFilter) => {
            scopes.push(armed && filter === 'out-of-memory');
            if (filter === 'out-of-memory') armed = false;
            target.pushErrorScope(filter);
          };
        }
        if (prop === 'popErrorScope') {
          return async () => {
            const failing = scopes.pop(); // before awaiting: scopes pushed meanwhile are not this one
            const error = await target.popErrorScope();
            return failing ? { message: 'Out of memory (simulated)' } : error;
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { device: proxy, failNextAllocation: () => (armed = true) };
  }

  it('an allocation that runs out of GPU memory rejects the next download, naming it; the backend goes on', async () => {
    const { device, failNextAllocation } = await deviceRunningOutOfMemory();
    const backend = new WebGPUBackend(device, 'proxied');
    failNextAllocation();
    const big = backend.alloc(1000);
    await expect(backend.download(big)).rejects.toThrow(/alloc of 1000 f32 elements ran out of GPU memory: Out of memory \(simulated\)/);
    backend.free(big);
    const ok = backend.alloc(4);
    backend.upload(ok, new Float32Array([1, 2, 3, 4]));
    expect(Array.from(await backend.download(ok))).toEqual([1, 2, 3, 4]);
    backend.dispose();
  });
});

describe('webgpu backend without a GPU', () => {
  it('createWebGPUBackend says why when there is no adapter', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    await expect(createWebGPUBackend({ gpu: noAdapter })).rejects.toThrow(/requestAdapter\(\) found no adapter/);
  });

  it('createWebGPUBackend says why when the adapter refuses a device', async () => {
    const limits = {
      maxStorageBufferBindingSize: 1 << 27,
      maxBufferSize: 1 << 28,
      maxComputeWorkgroupStorageSize: 16384,
      maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupSizeX: 256,
      maxComputeWorkgroupSizeY: 256,
      maxComputeWorkgroupsPerDimension: 65535,
      maxStorageBuffersPerShaderStage: 8,
    };
    const refusing = {
      limits,
      requestDevice: async () => Promise.reject(new Error('device lost before it was made')),
    } as unknown as GPUAdapter;
    await expect(createWebGPUBackend({ adapter: refusing })).rejects.toThrow(
      /WebGPU: requestDevice failed: device lost before it was made/,
    );
    const weak = {
      limits: { ...limits, maxStorageBuffersPerShaderStage: 4 },
      requestDevice: async () => Promise.reject(new Error('unreached')),
    } as unknown as GPUAdapter;
    await expect(createWebGPUBackend({ adapter: weak })).rejects.toThrow(
      /adapter limit maxStorageBuffersPerShaderStage is 4, the kernels need at least 8/,
    );
  });

  it('grid folds workgroup counts past the per-dimension limit into y', () => {
    expect(grid(10, 65535)).toEqual([10, 1]);
    const [x, y] = grid(70000, 65535);
    expect(x * y).toBeGreaterThanOrEqual(70000);
    expect(x).toBeLessThanOrEqual(65535);
    expect(() => grid(65535 * 65535 + 1, 65535)).toThrow(/exceeds/);
  });
});
