/**
 * The bundle in a real edge runtime: Cloudflare's workerd runs examples/edge/worker.js, which imports
 * dist/index.js as the package 'tinygpt' and dist/tinygpt.wasm as a module import (a compiled
 * WebAssembly.Module: workerd, like Cloudflare, refuses to compile bytes), loads a model file bound
 * as bytes, and serves generate over fetch. Node trains and saves that model with the same bundle,
 * then loads the same bytes and generates with the same seed: the worker's ids and text must equal
 * Node's exactly.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type * as TinyGPT from '../../src/index.js';
import { REPO_ROOT } from '../helpers/static-server.js';

type SDK = typeof TinyGPT;

const require = createRequire(import.meta.url);
const DIST_ENTRY = join(REPO_ROOT, 'dist', 'index.js');
const DIST_WASM = join(REPO_ROOT, 'dist', 'tinygpt.wasm');
const WORKER = join(REPO_ROOT, 'examples', 'edge', 'worker.js');

/** the workerd binary and its newest compatibility date, or why it cannot run here */
function findWorkerd(): { bin: string; compatibilityDate: string } | { missing: string } {
  let pkg: { default: string; compatibilityDate: string };
  try {
    pkg = require('workerd');
  } catch (err) {
    return { missing: `the workerd package is not installed (${(err as Error).message})` };
  }
  const probe = spawnSync(pkg.default, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.status !== 0) return { missing: `workerd at ${pkg.default} cannot run: ${probe.error?.message ?? probe.stderr.trim()}` };
  return { bin: pkg.default, compatibilityDate: pkg.compatibilityDate };
}

const workerd = findWorkerd();
const workerdMissing = 'missing' in workerd ? workerd.missing : null;

const NAMES = [
  'emma',
  'olivia',
  'ava',
  'sophia',
  'mia',
  'amelia',
  'harper',
  'liam',
  'noah',
  'james',
  'oliver',
  'lucas',
  'mason',
  'ethan',
  'henry',
];
const MODEL_CONFIG = { maxSeqLen: 24, dModel: 32, nLayers: 2, nHeads: 4, seed: 11 };
/** what the test asks the worker for; the worker samples (doSample: true) */
const REQUEST = { prompt: 'ma', maxNewTokens: 16, temperature: 0.8, topK: 8, seed: 99 };
const CONCURRENT_SEEDS = [1, 2, 3, 4, 5, 6];

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * ESM chunks that dist/index.js may import, statically or dynamically (a build with code splitting
 * puts shared code and lazily loaded backends in their own files); none in a single-file build
 */
function distChunks(): string[] {
  const entries = new Set(['index.js', 'node.js', 'cli.js']);
  return readdirSync(join(REPO_ROOT, 'dist')).filter((name) => name.endsWith('.js') && !entries.has(name));
}

function capnpConfig(port: number, compatibilityDate: string, chunks: string[]): string {
  // relative imports inside the bundle ('./chunk-X.js') resolve to modules named 'chunk-X.js'
  const chunkModules = chunks.map((name) => `\n    (name = "${name}", esModule = embed "${name}"),`).join('');
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .tinygptWorker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);

const tinygptWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "tinygpt", esModule = embed "tinygpt.js"),${chunkModules}
    (name = "tinygpt/tinygpt.wasm", wasm = embed "tinygpt.wasm"),
  ],
  bindings = [(name = "MODEL", data = embed "model.safetensors")],
  compatibilityDate = "${compatibilityDate}",
);
`;
}

/** Node's side, computed once: the model file's bytes and what Node generates from them */
interface Prepared {
  bytes: Uint8Array;
  config: TinyGPT.GPTConfig;
  expected: TinyGPT.GenerateResult;
  /** ids Node samples for each of CONCURRENT_SEEDS, one after another */
  bySeed: number[][];
}
let preparing: Promise<Prepared> | undefined;

async function prepareInNode(): Promise<Prepared> {
  if (!existsSync(DIST_ENTRY) || !existsSync(DIST_WASM)) {
    throw new Error(`the edge test runs the built bundle, and ${DIST_ENTRY} or ${DIST_WASM} is missing: run \`npm run build\` first`);
  }
  const sdk = (await import(/* @vite-ignore */ pathToFileURL(DIST_ENTRY).href)) as SDK;

  // a small character-level model trained a little, saved with its tokenizer
  const text = NAMES.join('\n') + '\n';
  const tokenizer = sdk.CharTokenizer.train(text);
  const trained = await sdk.createModel({ ...MODEL_CONFIG, vocabSize: tokenizer.vocabSize, backend: 'wasm' });
  await sdk.train(trained, { data: tokenizer.encode(text), steps: 10, batchSize: 4, learningRate: 1e-2, warmupSteps: 0 });
  const bytes = await sdk.saveModel(trained, { tokenizer });
  trained.dispose();

  // Node's answer from the same bytes, loaded as the worker loads them
  const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
  try {
    const { prompt, ...sampling } = REQUEST;
    const options = { ...sampling, tokenizer: loaded.tokenizer, doSample: true };
    const expected = await sdk.generate(loaded.model, prompt, options);
    const bySeed: number[][] = [];
    for (const seed of CONCURRENT_SEEDS) bySeed.push((await sdk.generate(loaded.model, prompt, { ...options, seed })).ids);
    return { bytes, config: loaded.model.config, expected, bySeed };
  } finally {
    loaded.model.dispose();
  }
}

/**
 * A plain Worker of a year-old compatibility date has no Node.js modules at all (no nodejs_compat
 * flag): the bundle must not need them. The newest date checks that nothing newer breaks it.
 */
const COMPATIBILITY_DATES = [
  { label: 'a plain Worker (compatibility date 2025-09-01, no Node.js modules)', date: '2025-09-01' },
  {
    label: `the newest compatibility date (${'missing' in workerd ? '?' : workerd.compatibilityDate})`,
    date: 'missing' in workerd ? '' : workerd.compatibilityDate,
  },
];

describe.skipIf(workerdMissing !== null).each(COMPATIBILITY_DATES)(
  `the bundle in workerd${workerdMissing ? ` (skipped: ${workerdMissing})` : ''}: $label`,
  ({ date }) => {
    let dir: string;
    let child: ChildProcess | undefined;
    let origin: string;
    let output = '';
    let expected: TinyGPT.GenerateResult;
    let expectedConfig: TinyGPT.GPTConfig;
    let expectedBySeed: number[][];

    beforeAll(async () => {
      const prepared = await (preparing ??= prepareInNode());
      expected = prepared.expected;
      expectedBySeed = prepared.bySeed;
      expectedConfig = prepared.config;

      dir = mkdtempSync(join(tmpdir(), 'tinygpt-workerd-'));
      copyFileSync(WORKER, join(dir, 'worker.js'));
      copyFileSync(DIST_ENTRY, join(dir, 'tinygpt.js'));
      const chunks = distChunks();
      for (const chunk of chunks) copyFileSync(join(REPO_ROOT, 'dist', chunk), join(dir, chunk));
      copyFileSync(DIST_WASM, join(dir, 'tinygpt.wasm'));
      writeFileSync(join(dir, 'model.safetensors'), prepared.bytes);
      const port = await freeLoopbackPort();
      writeFileSync(join(dir, 'config.capnp'), capnpConfig(port, date, chunks));
      origin = `http://127.0.0.1:${port}`;

      const proc = spawn((workerd as { bin: string }).bin, ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      proc.stdout.on('data', (chunk) => (output += chunk));
      proc.stderr.on('data', (chunk) => (output += chunk));
      const exited = new Promise<never>((_, reject) =>
        proc.once('exit', (code, signal) =>
          reject(new Error(`workerd exited (code ${code}, signal ${signal}) before serving:\n${output}`)),
        ),
      );
      // poll until the socket answers; /info also makes the worker load the model once
      const ready = (async () => {
        for (;;) {
          try {
            const response = await fetch(`${origin}/info`);
            if (response.ok) return;
            throw new Error(`workerd answered /info with HTTP ${response.status}: ${await response.text()}\n${output}`);
          } catch (err) {
            if (!(err instanceof TypeError)) throw err; // TypeError: connection refused, not up yet
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })();
      await Promise.race([ready, exited]);
    });

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const exit = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGTERM');
        await exit;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function post(body: unknown): Promise<Response> {
      return fetch(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    }

    test('the worker loads the model with the wasm kernels handed in as a module', async () => {
      const info = await (await fetch(`${origin}/info`)).json();
      expect(info).toMatchObject({ backend: 'wasm', tokenizer: 'char', config: expectedConfig });
    });

    test('POST /generate samples the same ids and text as Node for the same model bytes and seed', async () => {
      const response = await post(REQUEST);
      const body = await response.json();
      expect(response.status, JSON.stringify(body)).toBe(200);
      expect(body.ids).toHaveLength(REQUEST.maxNewTokens);
      expect(body.ids).toEqual(expected.ids);
      expect(body.text).toBe(expected.text);
      expect(body.backend).toBe('wasm');
    });

    test('GET /generate with query parameters gives the same answer', async () => {
      const query = new URLSearchParams(Object.entries(REQUEST).map(([k, v]) => [k, String(v)]));
      const response = await fetch(`${origin}/generate?${query}`);
      const body = await response.json();
      expect(response.status, JSON.stringify(body)).toBe(200);
      expect(body.ids).toEqual(expected.ids);
    });

    test('concurrent requests with different seeds each get what Node samples for their seed', async () => {
      const responses = await Promise.all(CONCURRENT_SEEDS.map((seed, i) => post({ ...REQUEST, seed, stream: i % 2 === 1 })));
      const ids = await Promise.all(
        responses.map(async (response, i) => {
          if (i % 2 === 0) return (await response.json()).ids as number[];
          const events = (await response.text()).trim().split('\n\n').slice(0, -1);
          return events.map((e) => (JSON.parse(e.replace(/^data: /, '')) as { id: number }).id);
        }),
      );
      expect(ids).toEqual(expectedBySeed);
      expect(new Set(ids.map((row) => row.join(','))).size).toBeGreaterThan(1);
    });

    test('streaming: server-sent events carry the same tokens one by one', async () => {
      const response = await post({ ...REQUEST, stream: true });
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = (await response.text()).trim().split('\n\n');
      expect(events.at(-1)).toBe('event: done\ndata: {}');
      const tokens = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')) as { id: number; text: string });
      expect(tokens.map((t) => t.id)).toEqual(expected.ids);
      expect(tokens.map((t) => t.text).join('')).toBe(expected.text);
    });

    test('bad input is refused with 400 and a message naming the field, the value and the range', async () => {
      const badTemperature = await post({ ...REQUEST, temperature: -1 });
      expect(badTemperature.status).toBe(400);
      expect((await badTemperature.json()).error).toMatch(/temperature must be .*-1/);

      const badId = await post({ ids: [0, 9999], maxNewTokens: 2 });
      expect(badId.status).toBe(400);
      expect((await badId.json()).error).toMatch(/prompt\[1\].*9999/);

      const unknownField = await post({ ...REQUEST, temprature: 1 });
      expect(unknownField.status).toBe(400);
      expect((await unknownField.json()).error).toMatch(/unknown field "temprature"/);
    });
  },
);
