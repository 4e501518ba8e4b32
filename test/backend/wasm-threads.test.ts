/**
 * The threaded wasm backend (tinygpt-threads.wasm over a shared memory, Node worker_threads):
 * - every conformance case against the float64 reference (JsBackend) with 2 and 3 threads, splitting
 *   every call (minMacsPerShare 0), on shapes whose column counts are not multiples of the 8-column
 *   split and whose (batch, head) pairs do not divide evenly among threads;
 * - bit-for-bit equality with the single-threaded backend on the same inputs, for every case and for
 *   a whole GPT training step (loss and every gradient), since threads split only output columns
 *   or (batch, head) pairs and each output element keeps its summation order;
 * - options: bad thread counts are refused naming the field; a worker file that cannot load falls
 *   back to one thread and says why; dispose stops the workers;
 * - a Node process that used threads exits by itself, with and without dispose, and backends
 *   collected without dispose stop their workers (child processes);
 * - in Chromium (the built bundle, dist/, on a cross-origin isolated page): a module Web Worker runs
 *   3 threads with results equal to 1 thread's bit for bit, and the page's main thread, which may not
 *   block, runs one thread and says why; a page that is not isolated runs one thread and says how.
 *
 * Tolerance against the reference is wasm-ops.test.ts's: |got - ref| <= 1e-5 |ref| + 2e-6 max|ref|.
 * Requires build/tinygpt.wasm and build/tinygpt-threads.wasm (npm run build:wasm).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsBackend } from '../../src/backend/js/index.js';
import { type WasmBackend } from '../../src/backend/wasm/index.js';
import { createWasmBackend } from '../../src/backend/wasm/create.js';
import { compileThreadedModule, createSharedMemory, instantiateThreaded } from '../../src/backend/wasm/loader.js';
import { ThreadPool } from '../../src/backend/wasm/thread-pool.js';
import type { Tensor } from '../../src/backend/contract.js';
import { createModel } from '../../src/model/create.js';
import type { GPTConfigInput } from '../../src/model/types.js';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { opCases, runCase, type OpShapes } from '../helpers/conformance.js';
import { Rng, compareClose, ints } from '../helpers/random.js';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../helpers/static-server.js';

const WASM_URL = new URL('../../build/tinygpt.wasm', import.meta.url);
const THREADS_URL = new URL('../../build/tinygpt-threads.wasm', import.meta.url);
const WORKER_URL = new URL('../../src/backend/wasm/wasm-worker.js', import.meta.url);
const RTOL = 1e-5;
const ATOL_OF_MAX = 2e-6;
const SEED = Math.floor(Math.random() * 2 ** 31);

// every call splits: (B*NH) pairs 6 and 10 over 2 or 3 threads; N, K and V not multiples of 8
const SHAPES: [string, OpShapes][] = [
  ['B 2, NH 3, M=33 K=64 N=129', { B: 2, T: 17, C: 24, NH: 3, V: 257, M: 33, K: 64, N: 129 }],
  ['B 5, NH 2, HS 5, M=2 (row path) K=40 N=45', { B: 5, T: 9, C: 10, NH: 2, V: 70, M: 2, K: 40, N: 45 }],
  ['T 130 (past MC), HS 8', { B: 1, T: 130, C: 16, NH: 2, V: 9, M: 5, K: 6, N: 17 }],
];
// matmul alone on shapes past the blocking (MC 128, KC 256, NC 1024), and the row path (M < 4)
const MATMUL_SHAPES: [string, OpShapes][] = [
  ['M=130 K=300 N=1030', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 130, K: 300, N: 1030 }],
  ['M=3 K=300 N=1030', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 3, K: 300, N: 1030 }],
  ['M=1 K=301 N=1027', { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 1, K: 301, N: 1027 }],
];

const backends = new Map<number, WasmBackend>();
beforeAll(async () => {
  for (const threads of [1, 2, 3, 4]) {
    const be = await createWasmBackend({
      url: WASM_URL,
      threadsSource: { url: THREADS_URL },
      workerUrl: WORKER_URL,
      threads,
      minMacsPerShare: 0,
    });
    backends.set(threads, be);
  }
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
});

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// decoding's row path sums W's two halves of rows on a thread each, and with 4 threads splits each
// half's columns too: 4 threads run only the matmul cases
describe.each([2, 3, 4])('%i threads', (threads) => {
  it('the backend runs on that many threads', () => {
    const be = backends.get(threads)!;
    expect(be.threads).toBe(threads);
    expect(be.threadsNote).toBe('');
  });

  const cases = [
    ...(threads === 4 ? [] : SHAPES.flatMap(([label, shapes]) => opCases.map((c) => ({ label, shapes, c })))),
    ...MATMUL_SHAPES.flatMap(([label, shapes]) => opCases.filter((c) => c.op === 'matmul').map((c) => ({ label, shapes, c }))),
  ];
  describe.each(cases)('$label', ({ shapes, c }) => {
    {
      it(`${c.name}: matches the f64 reference and equals one thread bit for bit`, async () => {
        const be = backends.get(threads)!;
        const reference = new JsBackend({ precision: 'f64' });
        const expected = await runCase(reference, c, SEED, shapes);
        reference.dispose();
        const single = await runCase(backends.get(1)!, c, SEED, shapes);
        const actual = await runCase(be, c, SEED, shapes);
        const outputs = Object.keys(expected);
        expect(outputs.length).toBeGreaterThan(0);
        for (const name of outputs) {
          let scale = 0;
          for (const x of expected[name]) scale = Math.max(scale, Math.abs(x));
          const report = compareClose(actual[name], expected[name], { rtol: RTOL, atol: ATOL_OF_MAX * scale });
          expect(report.ok, `${c.name} / ${name} (seed ${SEED}): ${report.message}`).toBe(true);
          expect(bytesOf(actual[name]), `${c.name} / ${name} equals one thread's (seed ${SEED})`).toEqual(bytesOf(single[name]));
        }
        expect(be.bytesInUse(), 'the case freed what it allocated').toBe(0);
      });
    }
  });
});

describe('a whole GPT training step', () => {
  // HS 12 over 3 heads, dFF 100 and V 61: column counts that do not split evenly
  const config: GPTConfigInput = { vocabSize: 61, maxSeqLen: 24, dModel: 36, nLayers: 2, nHeads: 3, dFF: 100, dropout: 0.1, seed: 7 };

  it('gives the same loss and gradients bit for bit with 1, 2 and 3 threads (default split threshold too)', async () => {
    const rng = new Rng(SEED);
    const B = 5;
    const T = 24;
    const inputs = ints(rng, B * T, 0, 61);
    const targets = ints(rng, B * T, 0, 61);
    targets[7] = -1;
    const results: { loss: number; grads: Record<string, Float32Array>; threads: number }[] = [];
    for (const [threads, minMacsPerShare] of [
      [1, 0],
      [2, 0],
      [3, 0],
      [3, undefined],
    ] as const) {
      const be = await createWasmBackend({
        url: WASM_URL,
        threadsSource: { url: THREADS_URL },
        workerUrl: WORKER_URL,
        threads,
        minMacsPerShare,
      });
      const model = await createModel(config, { backendInstance: be });
      model.setRngState({ dropoutStep: 2 });
      const { loss } = await model.forward(inputs, targets, B, { training: true });
      await model.backward();
      results.push({ loss: loss!, grads: await model.getGradients(), threads: be.threads });
      model.dispose();
    }
    expect(results.map((r) => r.threads)).toEqual([1, 2, 3, 3]);
    const [one, ...others] = results;
    expect(Number.isFinite(one.loss)).toBe(true);
    const names = Object.keys(one.grads);
    expect(names.length).toBeGreaterThan(10);
    for (const other of others) {
      expect(other.loss, `loss with ${other.threads} threads (seed ${SEED})`).toBe(one.loss);
      for (const name of names) {
        expect(bytesOf(other.grads[name]), `${name} with ${other.threads} threads (seed ${SEED})`).toEqual(bytesOf(one.grads[name]));
      }
    }
  });
});

describe("bad ids and targets in a worker's share", () => {
  // 3 threads over 9 rows: rows 6-8 are worker 1's share, so the error comes back from a worker
  it('are named as on one thread, and the accumulating backward ops leave their gradients untouched', async () => {
    const be = backends.get(3)!;
    const made: Tensor[] = [];
    const alloc = (n: number, dtype: 'f32' | 'i32' = 'f32') => {
      made.push(be.alloc(n, dtype));
      return made[made.length - 1];
    };
    const C = 8;
    const V = 5;
    const ids = alloc(9, 'i32');
    be.upload(ids, Int32Array.of(0, 1, 2, 3, 4, 0, 1, 7, 2));
    const f32 = (n: number, fill = 0) => {
      const x = alloc(n);
      be.upload(x, new Float32Array(n).fill(fill));
      return x;
    };
    expect(() => be.encoderForward(f32(9 * C), ids, f32(V * C), f32(9 * C), 1, 9, C)).toThrow(
      'encoderForward: inp[7] = 7 is outside [0, 5) (rows of wte)',
    );
    const dwte = f32(V * C, 0.5);
    const dwpe = f32(9 * C, 0.25);
    expect(() => be.encoderBackward(dwte, dwpe, f32(9 * C, 1), ids, 1, 9, C)).toThrow('encoderBackward: inp[7] = 7 is outside [0, 5)');
    expect(Array.from(await be.download(dwte))).toEqual(new Array<number>(V * C).fill(0.5));
    expect(Array.from(await be.download(dwpe))).toEqual(new Array<number>(9 * C).fill(0.25));
    const targets = alloc(9, 'i32');
    be.upload(targets, Int32Array.of(0, 1, -1, 3, 4, 0, 1, 2, -3));
    expect(() => be.crossEntropyForward(f32(9), f32(9 * V), f32(9 * V), targets, 9, V)).toThrow(
      'crossEntropyForward: targets[8] = -3 is outside [0, 5) and is not the ignore index -1',
    );
    const dlogits = f32(9 * V, 0.125);
    expect(() => be.crossEntropyBackward(dlogits, f32(9 * V, 0.2), targets, 1, 9, V)).toThrow('crossEntropyBackward: targets[8] = -3');
    expect(Array.from(await be.download(dlogits))).toEqual(new Array<number>(9 * V).fill(0.125));
    for (const x of made) be.free(x);
    expect(be.bytesInUse()).toBe(0);
  });
});

describe('options', () => {
  it.each([0, -1, 1.5, 65, Number.NaN, 'many'])('refuses threads = %s, naming the field and the allowed values', async (threads) => {
    await expect(createWasmBackend({ url: WASM_URL, threads: threads as number })).rejects.toThrow(
      new RegExp(`threads must be 'auto' or an integer in \\[1, 64\\], got ${String(threads)}`),
    );
  });

  it('refuses a negative minMacsPerShare', async () => {
    await expect(createWasmBackend({ url: WASM_URL, threads: 2, minMacsPerShare: -1 })).rejects.toThrow(
      /minMacsPerShare must be an integer >= 0, got -1/,
    );
  });

  it('falls back to one thread, and says why, when the worker cannot load', async () => {
    const notices: string[] = [];
    const be = await createWasmBackend({
      url: WASM_URL,
      threadsSource: { url: THREADS_URL },
      workerUrl: new URL('./no-such-worker.js', WORKER_URL),
      threads: 2,
      onNotice: (m) => notices.push(m),
    });
    expect(be.threads).toBe(1);
    expect(be.threadsNote).toMatch(/one thread: the threaded kernels could not start/);
    expect(notices).toEqual([be.threadsNote]);
    // and it computes: a 2x2 matmul worked by hand
    const x = be.alloc(4);
    const w = be.alloc(4);
    const out = be.alloc(4);
    be.upload(x, Float32Array.of(1, 2, 3, 4));
    be.upload(w, Float32Array.of(5, 6, 7, 8));
    be.matmulForward(out, x, w, null, 2, 2, 2);
    expect(Array.from(await be.download(out))).toEqual([19, 22, 43, 50]);
    be.dispose();
  });

  it('runs one thread (silently under auto) when tinygpt.wasm is handed over as a module, as edge runtimes must, unless threadsSource is given too', async () => {
    const module = await WebAssembly.compile(await readFile(WASM_URL));
    const notices: string[] = [];
    const single = await createWasmBackend({ module, onNotice: (m) => notices.push(m) });
    expect(single.threads).toBe(1);
    expect(single.threadsNote).toMatch(/tinygpt.wasm was given without the threaded kernels \(wasmAssets.threadedKernels\)/);
    expect(notices).toEqual([]);
    single.dispose();
    const threadsModule = await WebAssembly.compile(await readFile(THREADS_URL));
    const threaded = await createWasmBackend({ module, threadsSource: { module: threadsModule }, workerUrl: WORKER_URL, threads: 2 });
    expect(threaded.threads).toBe(2);
    threaded.dispose();
  });

  it("'auto' takes min(hardware threads, 8) in Node, and dispose leaves one thread", async () => {
    const { availableParallelism } = await import('node:os');
    const be = await createWasmBackend({ url: WASM_URL, threadsSource: { url: THREADS_URL }, workerUrl: WORKER_URL });
    expect(be.threads).toBe(Math.min(availableParallelism(), 8));
    be.dispose();
    expect(be.threads).toBe(1);
  });
});

describe('worker failures', () => {
  it('a worker that has ended makes the next split call throw instead of hanging; the backend goes on with one thread', async () => {
    // a stand-in worker: says it is ready, then ends without ever taking work, marking its slot's
    // gone word as the real worker does however it ends
    const dir = await mkdtemp(join(tmpdir(), 'tinygpt-dead-worker-'));
    const workerFile = join(dir, 'worker.mjs');
    await writeFile(
      workerFile,
      [
        "import { parentPort } from 'node:worker_threads';",
        'parentPort.once("message", (init) => {',
        '  const ctrl = new Int32Array(init.control);',
        '  Atomics.store(ctrl, init.slot * init.wordsPerSlot + init.words.gone, 1);',
        '  parentPort.postMessage({ ready: true });',
        '  parentPort.close();',
        '});',
      ].join('\n'),
    );
    try {
      const be = await createWasmBackend({
        url: WASM_URL,
        threadsSource: { url: THREADS_URL },
        workerUrl: pathToFileURL(workerFile),
        threads: 2,
        minMacsPerShare: 0,
      });
      expect(be.threads).toBe(2);
      const x = be.alloc(4 * 16);
      const w = be.alloc(16 * 16);
      const out = be.alloc(4 * 16);
      be.upload(
        x,
        Float32Array.from({ length: 64 }, (_, i) => i % 3),
      );
      be.upload(
        w,
        Float32Array.from({ length: 256 }, (_, i) => (i % 5) - 2),
      );
      expect(() => be.matmulForward(out, x, w, null, 4, 16, 16)).toThrow(
        /worker 0 stopped while running matmulForwardCols; the backend now runs on one thread/,
      );
      expect(be.threads).toBe(1);
      be.matmulForward(out, x, w, null, 4, 16, 16);
      const got = await be.download(out);
      const xs = await be.download(x);
      const ws = await be.download(w);
      const want = new Float32Array(64);
      for (let m = 0; m < 4; m++)
        for (let n = 0; n < 16; n++) for (let k = 0; k < 16; k++) want[m * 16 + n] += xs[m * 16 + k] * ws[k * 16 + n];
      expect(got).toEqual(want);
      be.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a share that traps in a worker makes the call throw naming the worker, and the pool keeps working', async () => {
    const module = await compileThreadedModule({ url: THREADS_URL });
    const memory = createSharedMemory();
    memory.grow(128); // 10 MiB: scratch at 4 MiB, data at 6 MiB
    const local = await instantiateThreaded(module, memory);
    const pool = await ThreadPool.start({ module, memory, local, scratch: [4 << 20], workerUrl: WORKER_URL });
    try {
      const [M, K, N] = [4, 8, 16];
      const [x, w, out] = [6 << 20, (6 << 20) + 4096, (6 << 20) + 8192];
      const f32 = new Float32Array(memory.buffer);
      for (let i = 0; i < M * K; i++) f32[x / 4 + i] = i - 7;
      for (let i = 0; i < K * N; i++) f32[w / 4 + i] = (i % 3) - 1;
      // share 1 reads past the end of memory (4 GiB - 64 is beyond the 10 MiB there are)
      const beyond = 2 ** 32 - 64;
      expect(() =>
        pool.run('matmulForwardCols', [
          [out, x, w, 0, M, K, N, 0, 8],
          [out, beyond, w, 0, M, K, N, 8, 16],
        ]),
      ).toThrow(/matmulForwardCols failed on worker\(s\) 0/);
      pool.run('matmulForwardCols', [
        [out, x, w, 0, M, K, N, 0, 8],
        [out, x, w, 0, M, K, N, 8, 16],
      ]);
      const got = new Float32Array(memory.buffer, out, M * N);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let want = 0;
          for (let k = 0; k < K; k++) want += f32[x / 4 + m * K + k] * f32[w / 4 + k * N + n];
          expect(got[m * N + n], `out[${m},${n}]`).toBe(want);
        }
      }
    } finally {
      pool.dispose();
    }
  });
});

describe('process exit', () => {
  let dir: string;
  let script: string;

  beforeAll(async () => {
    // the child runs the sources bundled by esbuild (Node 20 cannot run .ts), with explicit file locations
    const { build } = await import('esbuild');
    dir = await mkdtemp(join(tmpdir(), 'tinygpt-threads-'));
    script = join(dir, 'child.mjs');
    const entry = `
      import { readdirSync } from 'node:fs';
      import { readFile } from 'node:fs/promises';
      import { createWasmBackend } from './src/backend/wasm/create.ts';
      import { createModel } from './src/model/create.ts';
      const options = {
        url: ${JSON.stringify(fileURLToPath(WASM_URL))},
        threadsSource: { url: ${JSON.stringify(fileURLToPath(THREADS_URL))} },
        workerUrl: ${JSON.stringify(WORKER_URL.href)},
        threads: 2,
        minMacsPerShare: 0,
      };
      if (process.argv.includes('--forget')) {
        // backends dropped without dispose: once collected, their workers (OS threads) are stopped
        const osThreads = () => readdirSync('/proc/self/task').length;
        // libuv starts its thread pool (4 threads) at the first file read, which loading the kernels
        // makes: started first, it is counted in before (Node 20 had started it by then already)
        await readFile(options.url);
        const before = osThreads();
        for (let i = 0; i < 4; i++) await createWasmBackend(options);
        const made = osThreads();
        for (let i = 0; i < 20 && osThreads() > before; i++) {
          globalThis.gc();
          await new Promise((r) => setTimeout(r, 100));
        }
        console.log('made', made - before, 'left', osThreads() - before);
        process.exit(0);
      }
      const be = await createWasmBackend(options);
      const model = await createModel({ vocabSize: 17, maxSeqLen: 8, dModel: 16, nLayers: 1, nHeads: 2, dFF: 32, seed: 1 }, { backendInstance: be });
      const ids = Int32Array.from({ length: 16 }, (_, i) => i % 17);
      const { loss } = await model.forward(ids, ids, 2);
      await model.backward();
      const threads = be.threads;
      if (process.argv.includes('--dispose')) model.dispose();
      console.log('threads', threads, 'loss', Number.isFinite(loss));
    `;
    await build({
      stdin: { contents: entry, resolveDir: fileURLToPath(new URL('../../', import.meta.url)), loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: script,
      logLevel: 'silent',
    });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** runs the child and resolves with its exit code and output; kills it after a generous bound */
  function runChild(
    args: string[],
    nodeArgs: string[] = [],
  ): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (code, signal) => {
        clearTimeout(killer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  it.each([
    ['after dispose', ['--dispose']],
    ['without dispose (workers do not hold the process)', []],
  ])('exits by itself %s', async (_label, args) => {
    const result = await runChild(args);
    expect(result.signal, `the child was killed: it did not exit by itself (stderr: ${result.stderr})`).toBeNull();
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('threads 2 loss true');
  });

  it.skipIf(!existsSync('/proc/self/task'))('stops the workers of backends collected without dispose', async () => {
    const result = await runChild(['--forget'], ['--expose-gc']);
    expect(result.code, result.stderr).toBe(0);
    // four backends of 2 threads: one worker (one OS thread at least) each, all stopped again
    const [, made, left] = /made (\d+) left (-?\d+)/.exec(result.stdout)!.map(Number);
    expect(made).toBeGreaterThanOrEqual(4);
    expect(left, result.stdout).toBeLessThanOrEqual(0);
  });
});

/**
 * In the page's worker and on its main thread: a matmul and an attention forward big enough to be
 * split by the default threshold, on the asked number of threads and on one, compared byte for byte.
 */
const BROWSER_SCRIPT = `
async function compareThreads(threads) {
  const sdk = await import('/dist/index.js');
  const notices = [];
  const runs = [];
  for (const wasmThreads of [threads, 1]) {
    const be = await sdk.createBackend('wasm', { wasmThreads, onNotice: (m) => notices.push(m) });
    const t = (n, f) => { const x = be.alloc(n); be.upload(x, Float32Array.from({ length: n }, (_, i) => f(i))); return x; };
    const [M, K, N] = [64, 256, 301];
    const x = t(M * K, (i) => Math.sin(i)), w = t(K * N, (i) => Math.cos(i * 0.7)), bias = t(N, (i) => i / N), out = t(M * N, () => 0);
    be.matmulForward(out, x, w, bias, M, K, N);
    const [B, T, C, NH] = [2, 128, 192, 3];
    const qkv = t(B * T * 3 * C, (i) => Math.sin(i * 0.37)), att = t(B * T * C, () => 0), lse = t(B * NH * T, () => 0);
    be.attentionForward(att, lse, qkv, B, T, C, NH);
    const bytes = [await be.download(out), await be.download(att), await be.download(lse)].map((a) => Array.from(new Uint8Array(a.buffer)));
    runs.push({ threads: be.threads, note: be.threadsNote, bytes });
    be.dispose();
  }
  const equal = runs[0].bytes.every((b, i) => b.length > 0 && b.length === runs[1].bytes[i].length && b.every((v, j) => v === runs[1].bytes[i][j]));
  return { threads: runs[0].threads, note: runs[0].note, notices, equal, crossOriginIsolated: globalThis.crossOriginIsolated };
}
`;
// (an empty icon: no favicon request to answer 404)
const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module">
${BROWSER_SCRIPT}
window.inWorker = (threads) => new Promise((resolve, reject) => {
  const worker = new Worker('/threads-worker.js', { type: 'module' });
  worker.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data));
  worker.onerror = (e) => reject(new Error(e.message));
  worker.postMessage(threads);
});
window.onMainThread = compareThreads;
window.ready = true;
</script>`;
const WORKER = `${BROWSER_SCRIPT}
self.onmessage = async (e) => {
  try { self.postMessage(await compareThreads(e.data)); } catch (err) { self.postMessage({ error: String(err && err.stack || err) }); }
};`;

const distMissing = ['index.js', 'tinygpt.wasm', 'tinygpt-threads.wasm', 'wasm-worker.js'].find(
  (f) => !existsSync(join(REPO_ROOT, 'dist', f)),
);
const browserSkip = chromiumMissingReason() ?? (distMissing ? `dist/${distMissing} is missing: run npm run build` : null);

describe.skipIf(browserSkip !== null)(`in Chromium${browserSkip ? ` (skipped: ${browserSkip})` : ''}`, () => {
  let server: StaticServer;
  let plainServer: StaticServer;
  let browser: Browser;
  const routes = {
    '/threads.html': { body: PAGE, type: 'text/html; charset=utf-8' },
    '/threads-worker.js': { body: WORKER, type: 'text/javascript; charset=utf-8' },
  };

  beforeAll(async () => {
    server = await startStaticServer({ crossOriginIsolated: true, routes });
    plainServer = await startStaticServer({ crossOriginIsolated: false, routes });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await plainServer?.close();
  });

  type Result = { threads: number; note: string; notices: string[]; equal: boolean; crossOriginIsolated: boolean };

  it('a module Web Worker runs 3 threads, equal to 1 thread bit for bit; the main thread runs one and says why', async () => {
    const { page, errors } = await openPage(browser, `${server.origin}/threads.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const inWorker = (await page.evaluate(() => (window as unknown as { inWorker(n: number): Promise<unknown> }).inWorker(3))) as Result;
    expect(inWorker, errors.join('\n')).toMatchObject({ threads: 3, note: '', notices: [], equal: true, crossOriginIsolated: true });
    const onMain = (await page.evaluate(() =>
      (window as unknown as { onMainThread(n: number): Promise<unknown> }).onMainThread(2),
    )) as Result;
    expect(onMain.crossOriginIsolated).toBe(true);
    expect(onMain.threads).toBe(1);
    expect(onMain.note).toMatch(/main thread may not block/);
    expect(onMain.notices).toEqual([onMain.note]);
    expect(onMain.equal).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a page that is not cross-origin isolated runs one thread, in a worker too, and says how to isolate it', async () => {
    const { page, errors } = await openPage(browser, `${plainServer.origin}/threads.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const inWorker = (await page.evaluate(() => (window as unknown as { inWorker(n: number): Promise<unknown> }).inWorker(3))) as Result;
    expect(inWorker.crossOriginIsolated).toBe(false);
    expect(inWorker.threads).toBe(1);
    expect(inWorker.note).toMatch(
      /not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/,
    );
    expect(inWorker.equal).toBe(true);
    expect(errors).toEqual([]);
  });
});
