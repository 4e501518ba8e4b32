import type { AdamWParams, TokenSampling } from './contract.js';

/**
 * Argument checks shared by every backend, so a bad call gets the same message whichever backend
 * runs it: the op, the argument, the value and what is allowed.
 */

/** each named dimension must be a positive integer that fits in a u32 (kernels index with u32) */
export function dims(op: string, named: Record<string, number>): void {
  // for-in, not Object.entries: every op of a decoded token comes here, and the pairs were garbage
  for (const name in named) {
    const value = named[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${value}`);
    if (value > 0xffffffff) throw new RangeError(`${op}: ${name} must be below 2^32, got ${value}`);
  }
}

/**
 * Checks a quantized operand's format and row length, and returns the i32 words of its quants:
 * rows * K bytes (Q8_0), half that (Q4_0) or twice that (f16, two bytes a weight), four to a word.
 */
export function quantWords(op: string, format: string, rows: number, K: number): number {
  if (format !== 'q8_0' && format !== 'q4_0' && format !== 'f16') {
    throw new RangeError(`${op}: format must be 'q8_0', 'q4_0' or 'f16', got ${JSON.stringify(format)}`);
  }
  if (K % 32 !== 0) throw new RangeError(`${op}: K = ${K} must be a multiple of the block size 32`);
  return (rows * K) / (format === 'q8_0' ? 4 : format === 'q4_0' ? 8 : 2);
}

/** f16 operands have no scales, block formats one per block: names what is wrong otherwise */
export function quantScales(op: string, format: string, scales: unknown): void {
  if (format === 'f16' && scales !== null) throw new TypeError(`${op}: scales must be null for the 'f16' format (it has no scales)`);
  if (format !== 'f16' && scales === null) throw new TypeError(`${op}: scales must be a tensor for the '${format}' format`);
}

export function nonNegativeInteger(op: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${op}: ${name} must be an integer >= 0, got ${value}`);
}

export function finite(op: string, name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${op}: ${name} must be a finite number, got ${value}`);
}

/** lo <= value < hi */
export function inRange(op: string, name: string, value: number, lo: number, hi: number, shown: string): void {
  if (!Number.isFinite(value) || value < lo || value >= hi) throw new RangeError(`${op}: ${name} must be in ${shown}, got ${value}`);
}

/** checks B, T, C, NH and returns the head size C / NH */
export function headSize(op: string, B: number, T: number, C: number, NH: number): number {
  dims(op, { B, T, C, NH });
  if (C % NH !== 0) throw new RangeError(`${op}: C = ${C} must be divisible by NH = ${NH}`);
  return C / NH;
}

export function dropoutArgs(op: string, p: number, seed: number): void {
  inRange(op, 'p', p, 0, 1, '[0, 1)');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
}

/** a view of `length` elements at `offset` must lie inside its parent of `parentLength` elements */
export function viewRange(parentLength: number, offset: number, length: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset > parentLength) {
    throw new RangeError(`view: offset must be an integer in [0, ${parentLength}], got ${offset}`);
  }
  if (!Number.isInteger(length) || length < 0 || offset + length > parentLength) {
    throw new RangeError(
      `view: length must be an integer in [0, ${parentLength - offset}] (view of ${parentLength} elements at offset ${offset}), got ${length}`,
    );
  }
}

export function adamwArgs(op: string, { learningRate, beta1, beta2, eps, weightDecay, step }: AdamWParams): void {
  inRange(op, 'learningRate', learningRate, 0, Infinity, '[0, Infinity)');
  inRange(op, 'beta1', beta1, 0, 1, '[0, 1)');
  inRange(op, 'beta2', beta2, 0, 1, '[0, 1)');
  inRange(op, 'eps', eps, 0, Infinity, '[0, Infinity)');
  inRange(op, 'weightDecay', weightDecay, 0, Infinity, '[0, Infinity)');
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`${op}: step must be an integer >= 1 (1-based), got ${step}`);
}

/** sampleTokens' plan, and its B uniforms when it samples */
export function samplingArgs(op: string, sampling: TokenSampling, uniforms: ArrayLike<number>, B: number, V: number): void {
  if (sampling === null || typeof sampling !== 'object') throw new TypeError(`${op}: sampling must be a TokenSampling object`);
  const { greedy, temperature, topK, topP, minP, allowed } = sampling;
  if (typeof greedy !== 'boolean') throw new TypeError(`${op}: sampling.greedy must be a boolean, got ${String(greedy)}`);
  if (!Number.isFinite(temperature) || temperature <= 0)
    throw new RangeError(`${op}: sampling.temperature must be a finite number > 0, got ${temperature}`);
  nonNegativeInteger(op, 'sampling.topK', topK);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`${op}: sampling.topP must be in (0, 1], got ${topP}`);
  if (!(minP >= 0 && minP <= 1)) throw new RangeError(`${op}: sampling.minP must be in [0, 1], got ${minP}`);
  if (!Number.isInteger(allowed) || allowed < 1 || allowed > V)
    throw new RangeError(`${op}: sampling.allowed must be an integer in [1, V = ${V}], got ${allowed}`);
  if (greedy) return;
  if (uniforms === null || typeof uniforms !== 'object' || !(uniforms.length >= B)) {
    throw new RangeError(
      `${op}: uniforms must hold at least B = ${B} numbers, got ${uniforms === null ? 'null' : typeof uniforms === 'object' ? uniforms.length : typeof uniforms}`,
    );
  }
  for (let b = 0; b < B; b++) inRange(op, `uniforms[${b}]`, uniforms[b], 0, 1, '[0, 1)');
}
