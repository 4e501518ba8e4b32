/**
 * Running examples/edge/worker.js in workerd (Cloudflare's runtime) on a loopback port, with the
 * built bundle and a model file bound as bytes: shared by the edge tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as TinyGPT from '../../src/index.js';
import { REPO_ROOT } from './static-server.js';

export type SDK = typeof TinyGPT;

const require = createRequire(import.meta.url);
export const DIST_ENTRY = join(REPO_ROOT, 'dist', 'index.js');
export const DIST_WASM = join(REPO_ROOT, 'dist', 'tinygpt.wasm');
const WORKER = join(REPO_ROOT, 'examples', 'edge', 'worker.js');

/** the workerd binary and its newest compatibility date, or why it cannot run here */
export function findWorkerd(): { bin: string; compatibilityDate: string } | { missing: string } {
  let pkg: { default: string; compatibilityDate: string };
  try {
    pkg = require('workerd') as { default: string; compatibilityDate: string };
  } catch (err) {
    return { missing: `the workerd package is not installed (${(err as Error).message})` };
  }
  const probe = spawnSync(pkg.default, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.status !== 0) return { missing: `workerd at ${pkg.default} cannot run: ${probe.error?.message ?? probe.stderr.trim()}` };
  return { bin: pkg.default, compatibilityDate: pkg.compatibilityDate };
}

/** The built bundle, which is what workerd runs: Node uses the same code to compute what the worker must answer. */
export async function importBuiltSDK(): Promise<SDK> {
  if (!existsSync(DIST_ENTRY) || !existsSync(DIST_WASM)) {
    throw new Error(`the edge tests run the built bundle, and ${DIST_ENTRY} or ${DIST_WASM} is missing: run \`npm run build\` first`);
  }
  return (await import(/* @vite-ignore */ pathToFileURL(DIST_ENTRY).href)) as SDK;
}

export const NAMES = [
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
const NAMES_MODEL = { maxSeqLen: 24, dModel: 32, nLayers: 2, nHeads: 4, seed: 11 };

/** a small character-level model of NAMES, trained a little and saved with its tokenizer */
export async function namesModelBytes(sdk: SDK): Promise<Uint8Array> {
  const text = NAMES.join('\n') + '\n';
  const tokenizer = sdk.CharTokenizer.train(text);
  const trained = await sdk.createModel({ ...NAMES_MODEL, vocabSize: tokenizer.vocabSize, backend: 'wasm' });
  try {
    await sdk.train(trained, { data: tokenizer.encode(text), steps: 10, batchSize: 4, learningRate: 1e-2, warmupSteps: 0 });
    return await sdk.saveModel(trained, { tokenizer });
  } finally {
    trained.dispose();
  }
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** the build the package's `workerd` condition selects (no Node imports), one file per source module */
const EDGE_DIR = join(REPO_ROOT, 'dist', 'browser');

/** the modules of dist/browser/ that index.js may import, as paths relative to it; not the worker scripts */
function edgeModules(dir = EDGE_DIR, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = prefix + entry.name;
    if (entry.isDirectory()) return edgeModules(join(dir, entry.name), `${path}/`);
    return entry.name.endsWith('.js') && path !== 'index.js' && !entry.name.endsWith('-worker.js') ? [path] : [];
  });
}

function capnpConfig(port: number, compatibilityDate: string, chunks: string[], adapterNames: string[]): string {
  // relative imports inside the build ('./model/gpt.js' from 'tinygpt') resolve to modules named by their path ('model/gpt.js')
  const chunkModules = chunks.map((name) => `\n    (name = "${name}", esModule = embed "${name}"),`).join('');
  // each adapter file a data binding ADAPTER_<i>, named to the worker in the ADAPTERS JSON binding
  const table = Object.fromEntries(adapterNames.map((name, i) => [name, `ADAPTER_${i}`]));
  const adapterBindings = adapterNames.length
    ? `, (name = "ADAPTERS", json = ${JSON.stringify(JSON.stringify(table))})` +
      adapterNames.map((_, i) => `, (name = "ADAPTER_${i}", data = embed "adapter-${i}.safetensors")`).join('')
    : '';
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .tinygptWorker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);

const tinygptWorker :Workerd.Worker = (
  modules = [
    (name = "edge-worker.js", esModule = embed "edge-worker.js"),
    (name = "tinygpt", esModule = embed "tinygpt.js"),${chunkModules}
    (name = "tinygpt/tinygpt.wasm", wasm = embed "tinygpt.wasm"),
  ],
  bindings = [(name = "MODEL", data = embed "model.safetensors")${adapterBindings}],
  compatibilityDate = "${compatibilityDate}",
);
`;
}

export interface RunningWorker {
  origin: string;
  child: ChildProcess;
  /** what workerd printed so far */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Serve the example worker with `modelBytes` bound as MODEL and `adapters` (name -> saveAdapter's
 * bytes) named in ADAPTERS; resolves once /info answers (the model is loaded).
 */
export async function startWorker(
  bin: string,
  compatibilityDate: string,
  modelBytes: Uint8Array,
  adapters: Record<string, Uint8Array> = {},
): Promise<RunningWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'tinygpt-workerd-'));
  cpSync(EDGE_DIR, dir, { recursive: true });
  // named apart from the build's own worker.js (the tinygpt/worker entry)
  copyFileSync(WORKER, join(dir, 'edge-worker.js'));
  copyFileSync(join(EDGE_DIR, 'index.js'), join(dir, 'tinygpt.js'));
  const chunks = edgeModules();
  copyFileSync(DIST_WASM, join(dir, 'tinygpt.wasm'));
  writeFileSync(join(dir, 'model.safetensors'), modelBytes);
  const adapterNames = Object.keys(adapters);
  adapterNames.forEach((name, i) => writeFileSync(join(dir, `adapter-${i}.safetensors`), adapters[name]));
  const port = await freeLoopbackPort();
  writeFileSync(join(dir, 'config.capnp'), capnpConfig(port, compatibilityDate, chunks, adapterNames));
  const origin = `http://127.0.0.1:${port}`;

  let output = '';
  const child = spawn(bin, ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk) => (output += String(chunk)));
  child.stderr.on('data', (chunk) => (output += String(chunk)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exit = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`workerd exited (code ${code}, signal ${signal}) before serving:\n${output}`))),
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
  try {
    await Promise.race([ready, exited]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, child, output: () => output, stop };
}
