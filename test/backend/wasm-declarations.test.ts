/**
 * loader.ts takes the kernels' types from src/backend/wasm/kernels.generated.d.ts, a copy of the
 * declarations AssemblyScript writes beside the .wasm: the copy must be what the compiler wrote for
 * the current assembly/ sources, and every export the loader requires must be one the file declares.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs build script without declarations
import { HEADER, TARGET } from '../../scripts/wasm-declarations.mjs';
import { createWasmBackend } from '../../src/backend/wasm/create.js';

const read = (url: URL) => readFileSync(url, 'utf8');

describe('kernel declarations', () => {
  it('are the compiler output of both builds, byte for byte', () => {
    const committed = read(TARGET as URL);
    expect(committed.startsWith(HEADER as string)).toBe(true);
    const body = committed.slice((HEADER as string).length);
    expect(body).toBe(read(new URL('../../build/tinygpt.d.ts', import.meta.url)));
    expect(body).toBe(read(new URL('../../build/tinygpt-threads.d.ts', import.meta.url)));
  });

  it('declare every export the instantiated module has, and the module has every one the loader requires', async () => {
    const declared = [...read(TARGET as URL).matchAll(/export (?:function|const) (\w+)/g)].map((m) => m[1]).sort();
    const bytes = readFileSync(new URL('../../build/tinygpt.wasm', import.meta.url));
    const exported = WebAssembly.Module.exports(new WebAssembly.Module(bytes))
      .map((e) => e.name)
      .filter((name) => name !== '_initialize')
      .sort();
    expect(declared).toEqual(exported);
    const backend = await createWasmBackend({ bytes, threads: 1 });
    backend.dispose();
  });
});
