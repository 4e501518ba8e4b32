/**
 * The wasm backend against the float64 reference (JsBackend with f64 storage) on fresh random
 * inputs, through the shared conformance cases, on shapes that are not multiples of the SIMD width
 * (4) or of the matmul's blocking (micro-tile 4x8, panels MC=128, KC=256, NC=1024). Then the arena,
 * the loader and bad input.
 *
 * Tolerance: |wasm - ref| <= 1e-5 |ref| + 2e-6 max|ref| per output tensor. The relative part is the
 * brief's 1e-5; the absolute part, 2e-6 of the tensor's largest magnitude, is there because sums of
 * products (matmul with K up to 1030, attention, layerNorm backward) carry float32 rounding in
 * proportion to their terms, not to their result, so an element that cancels to near zero cannot
 * meet a purely relative bound. Measured worst cases were ~1e-6 of max|ref| (gelu backward, matmul
 * with K=300).
 *
 * Requires build/tinygpt.wasm (npm run build:wasm; `npm test` builds first).
 */
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { dropoutKeep, type Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { Arena, ArenaLimitError, WASM32_MAX_BYTES, WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { hasRelaxedSimd, loadKernels } from '../../src/backend/wasm/loader.js';
import { SMALL_SHAPES, opCases, runCase, type OpCase, type OpShapes } from '../helpers/conformance.js';
import { compareClose } from '../helpers/random.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const RTOL = 1e-5;
const ATOL_OF_MAX = 2e-6;

/** a fresh seed per run, named in every failure message so a failure can be replayed */
const SEED = Math.floor(Math.random() * 2 ** 31);

let be: WasmBackend;
beforeAll(async () => {
  be = await createWasmBackend({ url: WASM_URL });
});

async function expectMatchesReference(c: OpCase, shapes: OpShapes): Promise<void> {
  const reference = new JsBackend({ precision: 'f64' });
  const expected = await runCase(reference, c, SEED, shapes);
  reference.dispose();
  const actual = await runCase(be, c, SEED, shapes);
  const outputs = Object.keys(expected);
  expect(outputs.length).toBeGreaterThan(0);
  for (const name of outputs) {
    let scale = 0;
    for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
    const report = compareClose(actual[name], expected[name], { rtol: RTOL, atol: ATOL_OF_MAX * scale });
    expect(report.ok, `${c.name} / ${name} (seed ${SEED}, shapes ${JSON.stringify(shapes)}): ${report.message}`).toBe(true);
  }
  expect(be.bytesInUse(), 'the case freed what it allocated').toBe(0);
}

// B, T, C, NH shape every op; M, K, N the matmul cases; V the vocab; HS = C / NH
const OP_SHAPES: [string, OpShapes][] = [
  ['small (HS 2)', SMALL_SHAPES],
  ['M=1 (row path), K=3, N=5', { B: 1, T: 9, C: 8, NH: 2, V: 11, M: 1, K: 3, N: 5 }],
  ['T=33, HS 8, M=7 K=17 N=24', { B: 2, T: 33, C: 24, NH: 3, V: 129, M: 7, K: 17, N: 24 }],
  ['HS 5 (odd), V=257, M=33 K=64 N=129', { B: 3, T: 17, C: 20, NH: 4, V: 257, M: 33, K: 64, N: 129 }],
  // attention: T past two 64-row query blocks and key tiles (and the matmul's MC=128), then HS past KC=256
  ['T=130, HS 8', { B: 1, T: 130, C: 16, NH: 2, V: 9, M: 5, K: 6, N: 7 }],
  ['HS 260', { B: 2, T: 6, C: 520, NH: 2, V: 5, M: 5, K: 6, N: 7 }],
];

describe.each(OP_SHAPES)('wasm ops against the f64 reference, %s', (_label, shapes) => {
  for (const c of opCases) {
    it(c.name, async () => {
      await expectMatchesReference(c, shapes);
    });
  }
});

// Training attention keeps no T x T matrix (64 x 64 tiles with an online softmax, the row's
// log-sum-exp saved, backward recomputing the tiles): at T 2048 on a fresh backend, forward and
// backward grow the memory by less than a quarter of one T x T float matrix (inputs included).
describe('wasm training attention at T 2048', () => {
  it('matches the f64 reference in bounded memory', async () => {
    const T = 2048;
    const shapes: OpShapes = { B: 1, T, C: 8, NH: 2, V: 5, M: 1, K: 1, N: 1 };
    const fresh = await createWasmBackend({ url: WASM_URL });
    const before = fresh.memoryBytes;
    const reference = new JsBackend({ precision: 'f64' });
    const backward = opCases.find((c) => c.name === 'attentionBackward')!;
    const expected = await runCase(reference, backward, SEED, shapes);
    reference.dispose();
    const actual = await runCase(fresh, backward, SEED, shapes);
    expect(fresh.memoryBytes - before).toBeLessThan(T * T);
    for (const name of Object.keys(expected)) {
      let scale = 0;
      for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
      const report = compareClose(actual[name], expected[name], { rtol: RTOL, atol: ATOL_OF_MAX * scale });
      expect(report.ok, `attention T ${T} / ${name} (seed ${SEED}): ${report.message}`).toBe(true);
    }
    fresh.dispose();
  });
});

// shapes that cross the matmul's blocks: M past MC=128, K past KC=256, N past NC=1024, edges of the
// 4x8 micro-tile everywhere, and M < 4 (forward takes the unpacked row path: one row of each of W's
// six bands per pass, then the K % 6 rows left over, columns eight, four and one at a time; K < 6
// has no bands)
const MATMUL_SHAPES: [number, number, number][] = [
  [1, 300, 1030],
  [1, 13, 1031],
  [1, 7, 9],
  [2, 64, 129],
  [2, 5, 13],
  [2, 301, 43],
  [3, 17, 24],
  [3, 9, 6],
  [4, 257, 9],
  [65, 3, 5],
  [33, 64, 129],
  [130, 300, 1030],
];

describe.each(MATMUL_SHAPES)('wasm matmul against the f64 reference, M=%i K=%i N=%i', (M, K, N) => {
  const shapes: OpShapes = { ...SMALL_SHAPES, M, K, N };
  for (const c of opCases.filter((o) => o.op === 'matmul')) {
    it(c.name, async () => {
      await expectMatchesReference(c, shapes);
    });
  }
});

// the conformance cases feed the cache a prompt from position 0 and then one position; here chunks
// of 5 (matmul path), 2 (row path) and 6 (matmul path, from a non-zero start) follow one another,
// and then 3, 131 (three blocks of query rows, the first starting at position 3) and 1
function chunkedCache(chunks: number[]): OpCase {
  return {
    name: `attentionCached fed chunks of ${chunks.join(', ')} positions`,
    op: 'attentionCached',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const cacheLen = chunks.reduce((a, b) => a + b, 0) + 2;
      const kCache = ctx.zeros(s.B * cacheLen * s.C);
      const vCache = ctx.zeros(s.B * cacheLen * s.C);
      const outputs: Record<string, Tensor> = { kCache, vCache };
      let start = 0;
      for (const Tn of chunks) {
        const out = ctx.zeros(s.B * Tn * s.C);
        ctx.be.attentionCached(out, ctx.normal(s.B * Tn * 3 * s.C), kCache, vCache, s.B, Tn, s.C, s.NH, start, cacheLen);
        outputs[`out${start}`] = out;
        start += Tn;
      }
      return outputs;
    },
  };
}

describe('wasm KV-cache attention in chunks', () => {
  it.each(OP_SHAPES)('%s', async (_label, shapes) => {
    await expectMatchesReference(chunkedCache([5, 2, 6]), shapes);
  });
  it('a prompt of 131 positions after 3, then one', async () => {
    await expectMatchesReference(chunkedCache([3, 131, 1]), { B: 2, T: 9, C: 24, NH: 3, V: 11, M: 1, K: 3, N: 5 });
  });
  // the row path's scores four keys at a time (70 + 1 keys, then 73: a tail of one) and its output
  // 32 columns at a time (HS 64 and 68: two blocks, then one of four columns)
  it.each([
    ['HS 64', 128, 2],
    ['HS 68', 136, 2],
  ])('decoding rows after a prompt of 70, %s', async (_label, C, NH) => {
    await expectMatchesReference(chunkedCache([70, 1, 2]), { B: 2, T: 9, C, NH, V: 11, M: 1, K: 3, N: 5 });
  });
});

describe('wasm transpose across tiles', () => {
  it.each([
    [37, 70],
    [4, 4],
    [1, 9],
    [65, 33],
  ])('%i x %i equals the reference', async (rows, cols) => {
    const data = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.5 - 3);
    const inp = be.alloc(rows * cols);
    const out = be.alloc(rows * cols);
    be.upload(inp, data);
    be.transpose(out, inp, rows, cols);
    const got = await be.download(out);
    const want = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c * rows + r] = data[r * cols + c];
    expect(got).toEqual(want);
    be.free(inp);
    be.free(out);
  });
});

describe('wasm dropout mask', () => {
  it('keeps exactly the elements that dropoutKeep of the contract keeps, SIMD lanes and tail alike', async () => {
    const n = 1003;
    const p = 0.5;
    const seed = 0xdeadbeef; // high bit set: the u32 path in wasm must match >>> 0 in JS
    const x = be.alloc(n);
    be.upload(x, new Float32Array(n).fill(1));
    be.dropoutForward(x, x, n, p, seed);
    const got = (await be.download(x)) as Float32Array;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const keep = dropoutKeep(seed, i, p);
      if (keep) kept++;
      expect(got[i], `element ${i}`).toBe(keep ? 2 : 0);
    }
    expect(kept).toBeGreaterThan(400);
    expect(kept).toBeLessThan(600);
    be.free(x);
  });
});

describe('Arena', () => {
  const fresh = (pages = 1) => new Arena(new WebAssembly.Memory({ initial: pages }), 100);

  it('hands out 16-byte aligned, disjoint blocks above the base', () => {
    const arena = fresh();
    const sizes = [1, 16, 17, 100, 4];
    const blocks = sizes.map((s) => ({ ptr: arena.allocate(s), size: s }));
    for (const b of blocks) {
      expect(b.ptr % 16).toBe(0);
      expect(b.ptr).toBeGreaterThanOrEqual(100);
    }
    const sorted = [...blocks].sort((a, b) => a.ptr - b.ptr);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i].ptr).toBeGreaterThanOrEqual(sorted[i - 1].ptr + sorted[i - 1].size);
    expect(arena.bytesInUse()).toBe(16 + 16 + 32 + 112 + 16);
  });

  it('reuses a freed block, merges free neighbours, and gives the top back', () => {
    const arena = fresh();
    const a = arena.allocate(64);
    const b = arena.allocate(64);
    const c = arena.allocate(64);
    const d = arena.allocate(64);
    arena.release(b);
    expect(arena.allocate(48)).toBe(b); // first fit inside the hole
    arena.release(b);
    arena.release(c); // b and c merge into one 128-byte hole
    expect(arena.allocate(128)).toBe(b);
    arena.release(d); // the top block: its space returns to the top
    expect(arena.allocate(64)).toBe(d);
    expect(arena.bytesInUse()).toBe(64 + 128 + 64);
    expect(a).toBeLessThan(b);
    expect(() => arena.release(a + 16)).toThrow(/no live block at address/);
    arena.release(a);
    expect(() => arena.release(a)).toThrow(/already freed/);
  });

  it('grows the memory when the top passes its end', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const arena = new Arena(memory, 0);
    const ptr = arena.allocate(3 * 65536 + 5);
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(ptr + 3 * 65536 + 5);
  });

  it('refuses a request past 4 GiB before growing anything, naming the bytes needed and the limit', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const arena = new Arena(memory, 0);
    arena.allocate(1000);
    const before = memory.buffer.byteLength;
    let error: unknown;
    try {
      arena.allocate(WASM32_MAX_BYTES);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ArenaLimitError);
    const message = (error as Error).message;
    expect(message).toContain(`${WASM32_MAX_BYTES} bytes`); // the request
    expect(message).toContain(`${WASM32_MAX_BYTES + 1008} bytes`); // the memory it would need
    expect(message).toMatch(/limit of 4294967296 bytes \(4 GiB\)/);
    expect(memory.buffer.byteLength).toBe(before);
    expect(arena.bytesInUse()).toBe(1008);
  });
});

describe('WasmBackend storage', () => {
  it('keeps data and works on fresh views after the memory grows', async () => {
    const kernels = await loadKernels({ url: WASM_URL });
    const local = new WasmBackend(kernels);
    const small = local.alloc(5);
    local.upload(small, Float32Array.of(1, 2, 3, 4, 5));
    const bytesBefore = kernels.memory.buffer.byteLength;
    const big = local.alloc(8 * 1024 * 1024); // 32 MiB, past the initial 2 MiB
    expect(bytesBefore).toBeLessThan(32 * 1024 * 1024);
    expect(kernels.memory.buffer.byteLength).toBeGreaterThan(32 * 1024 * 1024);
    expect(await local.download(small)).toEqual(Float32Array.of(1, 2, 3, 4, 5));
    local.upload(local.view(big, 8 * 1024 * 1024 - 3, 3), Float32Array.of(7, 8, 9));
    expect(await local.download(local.view(big, 8 * 1024 * 1024 - 4, 4))).toEqual(Float32Array.of(0, 7, 8, 9));
    local.dispose();
  });

  it('zero-fills reused blocks, returns copies from download, and counts bytes in use', async () => {
    const local = await createWasmBackend({ url: WASM_URL });
    const a = local.alloc(10);
    local.upload(a, new Float32Array(10).fill(3));
    const copy = (await local.download(a)) as Float32Array;
    copy[0] = 99;
    expect((await local.download(a))[0]).toBe(3);
    expect(local.bytesInUse()).toBe(48);
    local.free(a);
    expect(local.bytesInUse()).toBe(0);
    local.free(a); // a second free is a no-op, as on the reference backend
    const b = local.alloc(10);
    expect(await local.download(b)).toEqual(new Float32Array(10));
    const ids = local.alloc(3, 'i32');
    local.upload(ids, Int32Array.of(-1, 2 ** 31 - 1, 5));
    expect(await local.download(ids)).toEqual(Int32Array.of(-1, 2 ** 31 - 1, 5));
    local.dispose();
    expect(local.bytesInUse()).toBe(0);
  });

  it('refuses a tensor past wasm32 4 GiB with the bytes needed and the limit, allocating nothing', async () => {
    const local = await createWasmBackend({ url: WASM_URL });
    const before = local.bytesInUse();
    expect(() => local.alloc(2 ** 30 + 1)).toThrow(
      /cannot allocate 4294967300 bytes: linear memory would need \d+ bytes, over wasm32's limit of 4294967296 bytes/,
    );
    expect(local.bytesInUse()).toBe(before);
    local.dispose();
  });
});

describe('loader', () => {
  it('instantiates from a compiled module, from bytes, from a file URL and from a path', async () => {
    const bytes = await readFile(WASM_URL);
    const fromModule = await createWasmBackend({ module: new WebAssembly.Module(bytes) });
    const fromBytes = await createWasmBackend({ bytes });
    const fromPath = await createWasmBackend({ url: WASM_URL.pathname });
    const fromDefault = await createWasmBackend();
    for (const backend of [fromModule, fromBytes, fromPath, fromDefault]) {
      const t = backend.alloc(4);
      backend.upload(t, Float32Array.of(1, 2, 3, 4));
      backend.scale(t, 2);
      expect(await backend.download(t)).toEqual(Float32Array.of(2, 4, 6, 8));
    }
    // the default build follows the runtime: plain SIMD without relaxed SIMD (Node 20 without its
    // flag), the fused multiply-add build with it (Node 22 and later; wasm-relaxed.test.ts turns
    // Node 20's flag on and checks that build's kernels)
    expect(fromDefault.fusedMultiplyAdd).toBe(hasRelaxedSimd());
  });

  it('rejects a module that is not tinygpt.wasm, and a missing file, saying what it tried', async () => {
    const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]); // a valid, empty module
    await expect(createWasmBackend({ bytes: empty })).rejects.toThrow(/lacks the exports memory, heapBase, matmulForward/);
    await expect(createWasmBackend({ url: '/nonexistent/tinygpt.wasm' })).rejects.toThrow(/ENOENT/);
  });
});

describe('bad input', () => {
  let be: WasmBackend;
  let t: (n: number, dtype?: 'f32' | 'i32') => Tensor;
  beforeAll(async () => {
    be = await createWasmBackend({ url: WASM_URL });
    t = (n, dtype = 'f32') => be.alloc(n, dtype);
  });

  it('names an out-of-range token id, its position and the range', () => {
    const ids = t(4, 'i32');
    be.upload(ids, Int32Array.of(0, 1, 2, 11));
    expect(() => be.encoderForward(t(4 * 8), ids, t(11 * 8), t(4 * 8), 1, 4, 8)).toThrow(
      'encoderForward: inp[3] = 11 is outside [0, 11) (rows of wte)',
    );
    be.upload(ids, Int32Array.of(0, -2, 2, 3));
    expect(() => be.encoderBackward(t(11 * 8), t(4 * 8), t(4 * 8), ids, 1, 4, 8)).toThrow(
      'encoderBackward: inp[1] = -2 is outside [0, 11)',
    );
  });

  it('names a target outside [0, V) that is not the ignore index', () => {
    const targets = t(3, 'i32');
    be.upload(targets, Int32Array.of(-1, 6, 7));
    expect(() => be.crossEntropyForward(t(3), t(21), t(21), targets, 3, 7)).toThrow(
      'crossEntropyForward: targets[2] = 7 is outside [0, 7)',
    );
    expect(() => be.crossEntropyBackward(t(21), t(21), targets, 1, 3, 7)).toThrow('crossEntropyBackward: targets[2] = 7');
  });

  it('names short tensors, bad dimensions, cache overflow and foreign tensors', () => {
    expect(() => be.matmulForward(t(5), t(6), t(9), null, 2, 3, 3)).toThrow('matmulForward: out has 5 elements, needs at least 6');
    expect(() => be.matmulForward(t(6), t(6), t(8), null, 2, 3, 3)).toThrow('matmulForward: weight has 8 elements, needs at least 9');
    expect(() => be.matmulForward(t(6), t(6), t(9), null, 2, 0, 3)).toThrow('matmulForward: K must be a positive integer, got 0');
    expect(() => be.attentionForward(t(40), t(40), t(120), 1, 5, 8, 3)).toThrow('attentionForward: C = 8 must be divisible by NH = 3');
    expect(() => be.attentionCached(t(8), t(24), t(32), t(32), 1, 1, 8, 2, 4, 4)).toThrow(
      'attentionCached: startPos + Tn = 4 + 1 exceeds cacheLen 4',
    );
    expect(() => be.dropoutForward(t(4), t(4), 4, 1, 0)).toThrow('dropoutForward: p must be in [0, 1), got 1');
    const foreign = new JsBackend().alloc(4);
    expect(() => be.scale(foreign, 2)).toThrow('scale: t is not a tensor of this wasm backend');
    const freed = t(4);
    be.free(freed);
    expect(() => be.zero(freed)).toThrow('zero: t belongs to a buffer that was freed');
    expect(() => be.alloc(0)).toThrow(/^alloc: length must be an integer in \[1, \d+\], got 0$/);
  });
});
