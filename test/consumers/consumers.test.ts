/**
 * `npm install tinygpt` as a new user does it: the package is packed (`npm pack`) and installed into
 * fresh projects, which build with the common toolchains and run in Debian's Chromium, in Node and
 * under TypeScript. No project copies a file of the package, adds a plugin or names where the
 * package's files are, except where a toolchain cannot emit them (esbuild, Rollup: see below).
 *
 * One install serves every project: they are the workspaces of one npm workspace (in a temporary
 * folder), with the tarball installed once into its node_modules. The toolchains are the
 * repository's dev dependencies, run from its node_modules as a globally installed tool would be.
 *
 * Every app runs the same scenario (apps/scenario.js): create a model on wasm, train 3 steps,
 * sample 12 tokens with a seed, save, load and sample again. Checked against independent facts:
 * the first loss of an untrained model is near ln(vocabSize), the reloaded model samples exactly
 * the same ids, and the losses and ids equal bit for bit those of Node running the installed
 * package (the relaxed-SIMD kernels in both, as Chromium chooses them; the plain kernels where a
 * page is given only tinygpt.wasm). The bundlers' pages load a .wasm they emitted themselves.
 *
 * - Vite: `vite build` + `vite preview`, and the dev server; a second page runs the scenario in a
 *   module Web Worker, served cross-origin isolated, on 2 wasm threads, and then again with the
 *   model in a worker through tinygpt/worker (createModelWorker, given the app's own worker module).
 * - tinygpt/worker: the package's model-worker.js (251 kB) is named only by that entry, so the apps
 *   that do not import it (every other bundler app) emit no copy of it and none of its code, while
 *   the Vite worker page, which imports it, does (Vite emits what `new URL(..., import.meta.url)`
 *   names in any module it reaches, before tree-shaking).
 * - webpack 5 in production mode (minified), with no config file (webpack's defaults).
 * - Parcel: `parcel build index.html`, with no `@parcel/resolver-default` settings, so Parcel reads no
 *   package.json `exports`: the page also imports the subpath tinygpt/gpt2, which resolves through
 *   the package's gpt2/package.json, and must give js-tiktoken's GPT-2 ids and the main entry's
 *   BPETokenizer class (its browser build, one library instance).
 * - esbuild and Rollup (+ node-resolve) leave `new URL('./tinygpt.wasm', import.meta.url)` alone and
 *   emit no file: their pages fail with the error that names the wasmAssets option, and work when
 *   given the location (esbuild: its file loader; Rollup: where the app hosts the file).
 * - Node: an ES module and a CommonJS script (tinygpt and tinygpt/node, one library instance).
 * - TypeScript with skipLibCheck false: moduleResolution bundler, node16 (ES modules and CommonJS),
 *   nodenext and node (node10, which reads no `exports`: the subpaths' types come from the package's
 *   worker/, gpt2/ and node/ folders), type-checking apps/usage.ts, which uses every property the
 *   README documents.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { REPO_ROOT, startStaticServer, type StaticServer, type StaticServerOptions } from '../helpers/static-server.js';
import { jsTiktokenGPT2 } from '../tokenizer/fixtures.js';

const APPS = join(REPO_ROOT, 'test', 'consumers', 'apps');
const MODULES = join(REPO_ROOT, 'node_modules');
/** the toolchains' command-line entry points, from the repository's dev dependencies */
const TOOLS = {
  vite: join(MODULES, 'vite', 'bin', 'vite.js'),
  webpack: join(MODULES, 'webpack', 'lib', 'index.js'),
  esbuild: join(MODULES, 'esbuild', 'bin', 'esbuild'),
  rollup: join(MODULES, 'rollup', 'dist', 'bin', 'rollup'),
  nodeResolve: join(MODULES, '@rollup', 'plugin-node-resolve', 'package.json'),
  parcel: join(MODULES, 'parcel', 'lib', 'bin.js'),
  tsc: join(MODULES, 'typescript', 'bin', 'tsc'),
  nodeTypes: join(MODULES, '@types', 'node'),
};

function missingReason(): string | null {
  const chromium = chromiumMissingReason();
  if (chromium !== null) return chromium;
  if (!existsSync(join(REPO_ROOT, 'dist', 'browser', 'index.js'))) return 'dist/ is not built (npm run build)';
  const missing = Object.entries(TOOLS).filter(([, path]) => !existsSync(path));
  return missing.length > 0 ? `dev dependencies not installed (npm ci): ${missing.map(([name]) => name).join(', ')}` : null;
}
const skipReason = missingReason();

interface Run {
  code: number | null;
  output: string;
  ms: number;
}

/** runs a command to its end, collecting stdout and stderr together */
function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output, ms: performance.now() - started }));
  });
}

const node = (args: string[], cwd: string) => run(process.execPath, args, cwd, { NO_COLOR: '1', FORCE_COLOR: '0' });

/**
 * What Node needs to run relaxed SIMD, as Chromium does: Node 20 the flag; Node 21 and later have it
 * on by default and refuse the flag as an unknown option.
 */
const RELAXED_SIMD_FLAGS =
  spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '-e', '']).status === 0 ? ['--experimental-wasm-relaxed-simd'] : [];

/** a server (vite preview, vite dev) left running: resolves with its origin once it listens */
function serve(args: string[], cwd: string, port: number): Promise<{ origin: string; child: ChildProcess }> {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const origin = `http://127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(`${origin}/`)) resolve({ origin, child });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => reject(new Error(`${args.join(' ')} ended (${code}) before listening:\n${output}`)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** runs the tasks, at most `limit` at a time (2 cores: builds in parallel beyond that only wait) */
function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T>[] {
  let active = 0;
  const queue: (() => void)[] = [];
  return tasks.map(
    (task) =>
      new Promise<T>((resolve, reject) => {
        const start = () => {
          active++;
          task()
            .then(resolve, reject)
            .finally(() => {
              active--;
              queue.shift()?.();
            });
        };
        if (active < limit) start();
        else queue.push(start);
      }),
  );
}

const html = (script: string, type = 'module') =>
  `<!doctype html>\n<html><body><script type="${type}" src="${script}"></script></body></html>\n`;

/** each project: its package.json fields and its files (copied from apps/ or written here) */
const PROJECTS: Record<string, { type?: 'module' | 'commonjs'; files: Record<string, string>; tsconfig?: object }> = {
  vite: { type: 'module', files: { 'index.html': html('/src/main.js'), 'src/main.js': '@main.js', 'src/scenario.js': '@scenario.js' } },
  'vite-worker': {
    type: 'module',
    files: {
      'index.html': html('/src/worker-main.js'),
      'src/worker-main.js': '@worker-main.js',
      'src/worker.js': '@worker.js',
      'src/model.worker.js': '@model.worker.js',
      'src/model-worker-scenario.js': '@model-worker-scenario.js',
      'src/scenario.js': '@scenario.js',
    },
  },
  webpack: { files: { 'src/index.js': '@main.js', 'src/scenario.js': '@scenario.js' } },
  parcel: { files: { 'index.html': html('./src/main.js'), 'src/main.js': '@parcel-main.js', 'src/scenario.js': '@scenario.js' } },
  esbuild: {
    type: 'module',
    files: { 'src/main.js': '@main.js', 'src/assets.js': '@esbuild-assets.js', 'src/scenario.js': '@scenario.js' },
  },
  rollup: { type: 'module', files: { 'src/main.js': '@main.js', 'src/assets.js': '@with-assets.js', 'src/scenario.js': '@scenario.js' } },
  'node-esm': { type: 'module', files: { 'esm.mjs': '@node-esm.mjs', 'scenario.js': '@scenario.js' } },
  'node-cjs': { type: 'commonjs', files: { 'cjs.cjs': '@node-cjs.cjs' } },
  'ts-bundler': { type: 'module', files: { 'src/usage.ts': '@usage.ts' }, tsconfig: { module: 'ESNext', moduleResolution: 'Bundler' } },
  'ts-node16-esm': { type: 'module', files: { 'src/usage.ts': '@usage.ts' }, tsconfig: { module: 'Node16', moduleResolution: 'Node16' } },
  'ts-node16-cjs': { type: 'commonjs', files: { 'src/usage.ts': '@usage.ts' }, tsconfig: { module: 'Node16', moduleResolution: 'Node16' } },
  'ts-nodenext': { type: 'module', files: { 'src/usage.ts': '@usage.ts' }, tsconfig: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  // an older web app's settings (moduleResolution "node" is node10)
  'ts-node10': { type: 'module', files: { 'src/usage.ts': '@usage.ts' }, tsconfig: { module: 'ESNext', moduleResolution: 'Node' } },
};

/** a web app's lib (DOM); a Node project's (no DOM: what the package declares must not need it) */
const WEB_LIB = ['ES2022', 'ESNext.Disposable', 'DOM', 'DOM.Iterable'];
const TS_LIBS = { 'ts-bundler': WEB_LIB, 'ts-node10': WEB_LIB };

function writeProjects(workspace: string): void {
  for (const [name, project] of Object.entries(PROJECTS)) {
    const dir = join(workspace, name);
    const pkg = { name, private: true, version: '1.0.0', ...(project.type ? { type: project.type } : {}) };
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    for (const [file, source] of Object.entries(project.files)) {
      writeFileSync(join(dir, file), source.startsWith('@') ? readFileSync(join(APPS, source.slice(1))) : source);
    }
    if (project.tsconfig) {
      const lib = TS_LIBS[name as keyof typeof TS_LIBS] ?? ['ES2022', 'ESNext.Disposable'];
      const compilerOptions = {
        target: 'ES2022',
        lib,
        types: ['node'],
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        ...project.tsconfig,
      };
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src'] }, null, 2));
    }
  }
}

interface ScenarioResult {
  error?: string;
  backend: string;
  threads: number;
  vocabSize: number;
  losses: number[];
  ids: number[];
  text: string;
  reloadedIds: number[];
  savedBytes: number;
  /** the Q8_0 model's file, loaded back: its format, its size and the ids it generated */
  quantizedFormat?: string;
  quantizedBytes?: number;
  quantizedIds?: number[];
  sameInstance?: boolean;
  crossOriginIsolated?: boolean;
  /** the Vite worker page: the same scenario with the model in a worker (tinygpt/worker) */
  modelWorker?: ScenarioResult;
  /** the Parcel page: a text and its ids from tinygpt/gpt2's gpt2Tokenizer(), an instance of the main entry's BPETokenizer? */
  gpt2?: { text: string; ids: number[]; sameInstance: boolean };
}

interface PageRun {
  result: ScenarioResult;
  /** the .wasm files the page fetched: URL and status */
  wasm: { url: string; status: number }[];
  errors: string[];
}

// a test waits for its build, which waits its turn in the pool: on a loaded 2-core machine the last
// builds finish minutes after the first, so each test gets the whole matrix's time
const MATRIX_TIMEOUT = 900_000;

describe.skipIf(skipReason !== null)(
  `the packed package in fresh projects${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  { timeout: MATRIX_TIMEOUT },
  () => {
    let workspace: string;
    let browser: Browser;
    let kernelsBytes: Buffer;
    /** the package's model worker, as installed (dist/browser/backend/wasm/model-worker.js) */
    let modelWorkerBytes: Buffer;
    const servers: StaticServer[] = [];
    const children: ChildProcess[] = [];
    /** the build (or type check) of each project, started in beforeAll */
    const builds: Record<string, Promise<Run>> = {};
    /**
     * Node's answers: ESM with the relaxed-SIMD kernels (as Chromium picks them), CommonJS with the
     * plain ones named through wasmAssets (as the esbuild and Rollup pages are given them; Node 21 and
     * later would otherwise pick the relaxed build)
     */
    let nodeEsm: Promise<Run>;
    let nodeCjs: Promise<Run>;
    const timings: string[] = [];

    beforeAll(async () => {
      const started = performance.now();
      workspace = mkdtempSync(join(tmpdir(), 'tinygpt-consumers-'));
      const pack = await run('npm', ['pack', '--pack-destination', workspace, '--silent'], REPO_ROOT);
      expect(pack.code, pack.output).toBe(0);
      const tarball = pack.output.trim().split('\n').pop()!;
      writeProjects(workspace);
      writeFileSync(
        join(workspace, 'package.json'),
        JSON.stringify(
          { name: 'consumers', private: true, workspaces: Object.keys(PROJECTS), dependencies: { tinygpt: `file:./${tarball}` } },
          null,
          2,
        ),
      );
      const install = await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], workspace);
      expect(install.code, install.output).toBe(0);
      // what `npm install -D @types/node` gives a Node TypeScript project (offline: the repository's copy)
      mkdirSync(join(workspace, 'node_modules', '@types'), { recursive: true });
      symlinkSync(TOOLS.nodeTypes, join(workspace, 'node_modules', '@types', 'node'));
      const installedWasm = join(workspace, 'node_modules', 'tinygpt', 'dist', 'browser', 'backend', 'wasm');
      kernelsBytes = readFileSync(join(installedWasm, 'tinygpt.wasm'));
      modelWorkerBytes = readFileSync(join(installedWasm, 'model-worker.js'));
      timings.push(`pack + install: ${((performance.now() - started) / 1000).toFixed(1)} s`);

      const at = (name: string) => join(workspace, name);
      const tasks: [string, () => Promise<Run>][] = [
        ['vite', () => node([TOOLS.vite, 'build'], at('vite'))],
        ['vite-worker', () => node([TOOLS.vite, 'build'], at('vite-worker'))],
        // what `webpack --mode production` does without a config file: ./src/index.js -> ./dist/main.js
        [
          'webpack',
          () =>
            node(
              [
                '-e',
                `require(${JSON.stringify(TOOLS.webpack)})({ mode: 'production' }, (e, s) => { console.log(e ?? s.toString({ assets: true, modules: false })); process.exit(e || s.hasErrors() ? 1 : 0); })`,
              ],
              at('webpack'),
            ),
        ],
        ['parcel', () => node([TOOLS.parcel, 'build', 'index.html', '--no-autoinstall'], at('parcel'))],
        [
          'esbuild',
          () =>
            run(
              TOOLS.esbuild,
              [
                'src/main.js',
                'src/assets.js',
                '--bundle',
                '--minify',
                '--format=esm',
                '--splitting',
                '--outdir=dist',
                '--loader:.wasm=file',
              ],
              at('esbuild'),
            ),
        ],
        [
          'rollup',
          () =>
            node(
              [TOOLS.rollup, 'src/main.js', 'src/assets.js', '-p', 'node-resolve={browser:true}', '-f', 'es', '-d', 'dist'],
              at('rollup'),
            ),
        ],
        ['ts-bundler', () => node([TOOLS.tsc, '-p', '.'], at('ts-bundler'))],
        ['ts-node16-esm', () => node([TOOLS.tsc, '-p', '.'], at('ts-node16-esm'))],
        ['ts-node16-cjs', () => node([TOOLS.tsc, '-p', '.'], at('ts-node16-cjs'))],
        ['ts-nodenext', () => node([TOOLS.tsc, '-p', '.'], at('ts-nodenext'))],
        ['ts-node10', () => node([TOOLS.tsc, '-p', '.'], at('ts-node10'))],
      ];
      const started2 = performance.now();
      nodeEsm = node([...RELAXED_SIMD_FLAGS, 'esm.mjs'], at('node-esm'));
      nodeCjs = node(['cjs.cjs', '--plain-kernels'], at('node-cjs'));
      const runs = pool(
        tasks.map(([, task]) => task),
        2,
      );
      tasks.forEach(([name], i) => {
        builds[name] = runs[i].then((r) => {
          timings.push(`${name}: ${(r.ms / 1000).toFixed(1)} s`);
          return r;
        });
      });
      void Promise.allSettled(runs).then(() =>
        timings.push(`all builds and type checks: ${((performance.now() - started2) / 1000).toFixed(1)} s`),
      );
      browser = await launchChromium();
    }, 300_000);

    afterAll(async () => {
      for (const child of children) child.kill();
      await Promise.all(servers.map((s) => s.close()));
      await browser?.close();
      // let the builds still under way (a failed test) end before their folder goes
      await Promise.allSettled(Object.values(builds));
      console.info(`[consumers] ${timings.join('; ')}`);
      if (workspace) rmSync(workspace, { recursive: true, force: true });
    }, 300_000);

    async function built(name: string): Promise<string> {
      const r = await builds[name];
      expect(r.code, `${name} failed:\n${r.output}`).toBe(0);
      return r.output;
    }

    async function nodeResult(which: Promise<Run>): Promise<ScenarioResult> {
      const r = await which;
      expect(r.code, r.output).toBe(0);
      return JSON.parse(r.output.trim().split('\n').pop()!) as ScenarioResult;
    }

    async function staticServer(root: string, options: Omit<StaticServerOptions, 'root'> = {}) {
      const server = await startStaticServer({ root, ...options });
      servers.push(server);
      return server;
    }

    async function runPage(url: string): Promise<PageRun> {
      const wasm: PageRun['wasm'] = [];
      // the listener goes on before navigation: a page can fetch its .wasm before its load event
      const { page, errors } = await openPage(browser, url, (opened) =>
        opened.on('response', (response) => {
          if (response.url().split('?')[0].endsWith('.wasm')) wasm.push({ url: response.url(), status: response.status() });
        }),
      );
      try {
        const handle = await page.waitForFunction(() => (globalThis as { consumerResult?: unknown }).consumerResult, null, {
          timeout: 180_000,
        });
        return { result: (await handle.jsonValue()) as ScenarioResult, wasm, errors };
      } finally {
        await page.close();
      }
    }

    /**
     * what every working page must show; `reference` is Node's run with the same kernels. `quantizedFile`:
     * the run also saved a Q8_0 model and loaded it back (the scenario does; the model worker's does not)
     */
    function expectScenario(run: PageRun, reference: ScenarioResult, origin: string, threads = 1, quantizedFile = true): void {
      const { result } = run;
      expect(result.error, `${result.error}\n${run.errors.join('\n')}`).toBeUndefined();
      expect(result.backend).toBe('wasm');
      expect(result.threads).toBe(threads);
      expect(Math.abs(result.losses[0] - Math.log(result.vocabSize))).toBeLessThan(0.25);
      expect(result.reloadedIds).toEqual(result.ids);
      expect(result.losses).toEqual(reference.losses);
      expect(result.ids).toEqual(reference.ids);
      if (quantizedFile) {
        // loadModel imported the quantized file's chunk, which the bundler emitted and the page found
        expect(result.quantizedFormat).toBe('q8_0');
        expect(result.quantizedIds).toEqual(reference.quantizedIds);
        expect(result.quantizedBytes).toBeLessThan(result.savedBytes / 2);
      }
      expect(run.wasm.length).toBeGreaterThan(0);
      for (const file of run.wasm) {
        expect(file.status, file.url).toBe(200);
        expect(file.url.startsWith(`${origin}/`), file.url).toBe(true);
      }
    }

    /** the .wasm files a build emitted: at least tinygpt.wasm itself, under whatever name */
    function expectEmittedKernels(dist: string): void {
      const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.wasm'));
      expect(
        files.some((f) => readFileSync(join(dist, f)).equals(kernelsBytes)),
        `no copy of tinygpt.wasm among ${files.join(', ')}`,
      ).toBe(true);
    }

    /**
     * the files of a build that hold the package's model worker: a copy of model-worker.js as it is,
     * or any file with the worker's serving code in it (its error messages survive minifiers)
     */
    function modelWorkerFiles(dist: string): string[] {
      return readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => {
        if (!statSync(join(dist, f)).isFile()) return false;
        const bytes = readFileSync(join(dist, f));
        return bytes.equals(modelWorkerBytes) || bytes.includes('serveModelWorker: not inside a Web Worker');
      });
    }

    test('Node: an ES module and a CommonJS script run it, and tinygpt/node shares the main entry (one library instance)', async () => {
      for (const result of [await nodeResult(nodeEsm), await nodeResult(nodeCjs)]) {
        expect(result.backend).toBe('wasm');
        expect(Math.abs(result.losses[0] - Math.log(result.vocabSize))).toBeLessThan(0.25);
        expect(result.losses[2]).toBeLessThan(result.losses[0]);
        expect(result.reloadedIds).toEqual(result.ids);
        expect(result.sameInstance).toBe(true);
        expect(result.quantizedFormat).toBe('q8_0');
        expect(result.quantizedIds).toHaveLength(result.ids.length);
      }
    });

    test('Vite: vite build emits the kernels and vite preview serves a page that runs it', async () => {
      await built('vite');
      expectEmittedKernels(join(workspace, 'vite', 'dist'));
      expect(modelWorkerFiles(join(workspace, 'vite', 'dist'))).toEqual([]);
      const port = await freePort();
      const preview = await serve(
        [TOOLS.vite, 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
        join(workspace, 'vite'),
        port,
      );
      children.push(preview.child);
      expectScenario(await runPage(`${preview.origin}/`), await nodeResult(nodeEsm), preview.origin);
    });

    test("Vite's dev server serves the package's kernels from node_modules", async () => {
      const port = await freePort();
      const dev = await serve([TOOLS.vite, '--host', '127.0.0.1', '--port', String(port), '--strictPort'], join(workspace, 'vite'), port);
      children.push(dev.child);
      const page = await runPage(`${dev.origin}/`);
      expectScenario(page, await nodeResult(nodeEsm), dev.origin);
    });

    test('Vite: in a module Web Worker on a cross-origin isolated page, the wasm backend runs on 2 threads; so it does in createModelWorker (tinygpt/worker)', async () => {
      await built('vite-worker');
      const dist = join(workspace, 'vite-worker', 'dist');
      // the app imports tinygpt/worker: the package's model worker is emitted (the check the other apps pass can fail)
      const emitted = modelWorkerFiles(dist);
      expect(
        emitted.some((f) => readFileSync(join(dist, f)).equals(modelWorkerBytes)),
        emitted.join(', '),
      ).toBe(true);
      const server = await staticServer(dist, { crossOriginIsolated: true });
      const page = await runPage(`${server.origin}/`);
      expect(page.result.crossOriginIsolated).toBe(true);
      const reference = await nodeResult(nodeEsm);
      expectScenario(page, reference, server.origin, 2);
      expect(page.result.modelWorker, 'no result from the model worker').toBeDefined();
      expectScenario({ ...page, result: page.result.modelWorker! }, reference, server.origin, 2, false);
    });

    test('webpack 5, production mode (minified), no config file', async () => {
      await built('webpack');
      const dist = join(workspace, 'webpack', 'dist');
      expectEmittedKernels(dist);
      expect(modelWorkerFiles(dist)).toEqual([]);
      writeFileSync(join(dist, 'index.html'), html('main.js', 'text/javascript'));
      const server = await staticServer(dist);
      expectScenario(await runPage(`${server.origin}/`), await nodeResult(nodeEsm), server.origin);
    });

    test('Parcel: parcel build index.html, reading no `exports`: tinygpt and the subpath tinygpt/gpt2 resolve and run', async () => {
      await built('parcel');
      const dist = join(workspace, 'parcel', 'dist');
      expectEmittedKernels(dist);
      expect(modelWorkerFiles(dist)).toEqual([]);
      const server = await staticServer(dist);
      const page = await runPage(`${server.origin}/`);
      expectScenario(page, await nodeResult(nodeEsm), server.origin);
      const { gpt2 } = page.result;
      expect(gpt2, 'no result from tinygpt/gpt2').toBeDefined();
      expect(gpt2!.ids).toEqual(jsTiktokenGPT2().encode(gpt2!.text));
      // the subpath's browser build, which shares the main entry's modules (the Node build has its own copy)
      expect(gpt2!.sameInstance).toBe(true);
    });

    test('esbuild emits no kernels by itself: the page says to pass wasmAssets, and runs with the file loader', async () => {
      await built('esbuild');
      const dist = join(workspace, 'esbuild', 'dist');
      writeFileSync(join(dist, 'index.html'), html('./main.js'));
      writeFileSync(join(dist, 'assets.html'), html('./assets.js'));
      const server = await staticServer(dist);
      const plain = await runPage(`${server.origin}/`);
      expect(plain.result.error).toMatch(/could not load tinygpt\.wasm.*wasmAssets: \{ kernels: url \}/s);
      // --loader:.wasm=file emitted tinygpt.wasm (the plain build: only that file is named)
      expectEmittedKernels(dist);
      expect(modelWorkerFiles(dist)).toEqual([]);
      expectScenario(await runPage(`${server.origin}/assets.html`), await nodeResult(nodeCjs), server.origin);
    });

    test('Rollup + node-resolve emits no kernels: the page says to pass wasmAssets, and runs where the app hosts the file', async () => {
      await built('rollup');
      const dist = join(workspace, 'rollup', 'dist');
      writeFileSync(join(dist, 'index.html'), html('./main.js'));
      writeFileSync(join(dist, 'assets.html'), html('./assets.js'));
      expect(readdirSync(dist).filter((f) => f.endsWith('.wasm'))).toEqual([]);
      expect(modelWorkerFiles(dist)).toEqual([]);
      const server = await staticServer(dist, { routes: { '/hosted/tinygpt.wasm': { body: kernelsBytes, type: 'application/wasm' } } });
      const plain = await runPage(`${server.origin}/`);
      expect(plain.result.error).toMatch(/could not load tinygpt\.wasm.*wasmAssets: \{ kernels: url \}/s);
      expectScenario(await runPage(`${server.origin}/assets.html?kernels=/hosted/tinygpt.wasm`), await nodeResult(nodeCjs), server.origin);
    });

    test.each(['ts-bundler', 'ts-node16-esm', 'ts-node16-cjs', 'ts-nodenext', 'ts-node10'])(
      'TypeScript (%s, skipLibCheck false) type-checks a program that uses every documented property',
      async (name) => {
        const output = await built(name);
        expect(output.trim()).toBe('');
      },
    );
  },
);
