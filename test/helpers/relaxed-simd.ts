import { setFlagsFromString } from 'node:v8';
import { hasRelaxedSimd } from '../../src/backend/wasm/loader.js';

/**
 * Turns relaxed SIMD on in this test process, as Chromium has it: Node 20 runs it behind a V8 flag,
 * set here for this process only (vitest runs each test file in its own process); Node 21 and later
 * run it by default and no longer know the flag (V8 would print that it is unrecognized).
 */
export function enableRelaxedSimd(): void {
  if (!hasRelaxedSimd()) setFlagsFromString('--experimental-wasm-relaxed-simd');
}
