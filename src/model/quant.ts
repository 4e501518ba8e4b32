/**
 * Weight-only storage formats: ggml's block quantization Q8_0 and Q4_0, and plain float16.
 *
 * Q8_0 and Q4_0 cut a matrix [rows, cols] along each row into blocks of 32 weights, each with one
 * float16 scale d.
 *
 * - Q8_0: d = amax / 127, q = round(x / d) in [-127, 127] (one int8 each); x ~ q * d.
 * - Q4_0: d = m / -8 where m is the value of largest magnitude (sign kept), q = min(15, floor(x / d
 *   + 8.5)) in [0, 15]; x ~ (q - 8) * d. Byte j of a block holds weight j in its low nibble and
 *   weight j + 16 in its high nibble (16 bytes per block).
 *
 * Both follow ggml's reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) step for
 * step in float32, so the bytes are the ones ggml writes. Errors per block: Q8_0 at most d/2 (plus
 * what rounding d to float16 adds, |q| * |d - f16(d)|); Q4_0 at most |d| (the top code 15 also
 * takes x / d in (6.5, 8], since 16 codes cannot centre both ends), else |d| / 2.
 *
 * f16: each weight rounded to the nearest float16 (ties to even), two bytes each, row-major, with no
 * scales: a relative error of at most 2^-11 (plus 2^-25 absolute below float16's normal range); a
 * weight beyond float16's range (|x| > 65504) is refused rather than made infinite. Rows are still
 * whole blocks of 32, so every format runs through the same products and files.
 *
 * Blocks run along the reduction dimension of the products that use them, so a linear weight
 * stored [in, out] is quantized transposed, [out, in] (see quantized.ts).
 */
import { describe } from '../util/describe.js';
import type { QuantFormat } from '../backend/contract.js';
import { float16BitsToFloat32, float32ArrayToFloat16Bits, roundToFloat16Bits } from '../io/safetensors.js';

export type { QuantFormat };
export const QUANT_FORMATS: readonly QuantFormat[] = ['q8_0', 'q4_0', 'f16'];
/** weights per block */
export const QUANT_BLOCK = 32;

/** bytes of quants per block: 32 int8, 32 nibbles, or 32 halves */
export function quantBlockBytes(format: QuantFormat): number {
  return format === 'q8_0' ? 32 : format === 'q4_0' ? 16 : 64;
}

/** One quantized matrix [rows, cols]: blocks of 32 along each row. */
export interface QuantizedMatrix {
  format: QuantFormat;
  rows: number;
  cols: number;
  /** rows * cols / 32 blocks of quantBlockBytes(format) bytes, row-major (f16: the halves' little-endian bytes) */
  quants: Uint8Array;
  /** float16 bits of each block's scale, [rows, cols / 32]; empty for f16 */
  scales: Uint16Array;
}

export function checkQuantFormat(format: unknown, field: string): QuantFormat {
  if (!QUANT_FORMATS.includes(format as QuantFormat)) {
    throw new RangeError(`${field} must be one of ${QUANT_FORMATS.map((f) => `'${f}'`).join(', ')}, got ${JSON.stringify(format)}`);
  }
  return format as QuantFormat;
}

/** ggml's roundf: half away from zero */
const roundHalfAway = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));
const f32 = Math.fround;

/** Quantizes `values` [rows, cols] (cols a multiple of 32) row by row. */
export function quantizeMatrix(values: Float32Array, rows: number, cols: number, format: QuantFormat): QuantizedMatrix {
  if (!(values instanceof Float32Array)) throw new TypeError(`quantizeMatrix: values must be a Float32Array; got ${describe(values)}`);
  if (cols % QUANT_BLOCK !== 0) throw new RangeError(`quantize: the row length ${cols} is not a multiple of the block size ${QUANT_BLOCK}`);
  if (values.length !== rows * cols) throw new RangeError(`quantize: ${values.length} values, [${rows}, ${cols}] needs ${rows * cols}`);
  if (format === 'f16') return halfMatrix(values, rows, cols);
  const blocks = (rows * cols) / QUANT_BLOCK;
  const blockBytes = quantBlockBytes(format);
  const quants = new Uint8Array(blocks * blockBytes);
  const scales = new Uint16Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QUANT_BLOCK, (b + 1) * QUANT_BLOCK);
    const out = quants.subarray(b * blockBytes, (b + 1) * blockBytes);
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QUANT_BLOCK; j++) {
      if (amax < Math.abs(x[j])) {
        amax = Math.abs(x[j]);
        max = x[j];
      }
    }
    if (format === 'q8_0') {
      const d = f32(amax / 127);
      const id = d !== 0 ? f32(1 / d) : 0;
      scales[b] = roundToFloat16Bits(d);
      for (let j = 0; j < QUANT_BLOCK; j++) out[j] = roundHalfAway(f32(x[j] * id)) & 0xff;
    } else {
      const d = f32(max / -8);
      const id = d !== 0 ? f32(1 / d) : 0;
      scales[b] = roundToFloat16Bits(d);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(f32(f32(x[j] * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(f32(f32(x[j + 16] * id) + 8.5)));
        out[j] = q0 | (q1 << 4);
      }
    }
  }
  return { format, rows, cols, quants, scales };
}

/** each value rounded to float16; a finite value past float16's range is an error, not an infinity */
function halfMatrix(values: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const bits = float32ArrayToFloat16Bits(values);
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & 0x7c00) === 0x7c00 && Number.isFinite(values[i])) {
      throw new RangeError(`quantize: element ${i} (${values[i]}) is outside float16's range (|x| <= 65504); keep this model in float32`);
    }
  }
  // little-endian bytes, as the backends' i32 words and safetensors' F16 hold them
  const quants = new Uint8Array(bits.length * 2);
  for (let i = 0; i < bits.length; i++) {
    quants[2 * i] = bits[i] & 0xff;
    quants[2 * i + 1] = bits[i] >> 8;
  }
  return { format: 'f16', rows, cols, quants, scales: new Uint16Array(0) };
}

/** The float16 bits of weight i of an f16 matrix's bytes */
export function halfBits(quants: Uint8Array, i: number): number {
  return quants[2 * i] | (quants[2 * i + 1] << 8);
}

/** The integer code of weight j (0..31) of the block at byte `base`: q for Q8_0, q - 8 for Q4_0. */
export function quantCode(format: 'q8_0' | 'q4_0', quants: Uint8Array, base: number, j: number): number {
  if (format === 'q8_0') return (quants[base + j] << 24) >> 24;
  const byte = quants[base + (j & 15)];
  return (j < 16 ? byte & 15 : byte >> 4) - 8;
}

/** The float32 values a quantized matrix stands for. */
export function dequantizeMatrix(m: QuantizedMatrix): Float32Array {
  if (m === null || typeof m !== 'object' || !(m.scales instanceof Uint16Array) || !(m.quants instanceof Uint8Array)) {
    throw new TypeError(`dequantizeMatrix: expected a quantized matrix from quantizeMatrix; got ${describe(m)}`);
  }
  const out = new Float32Array(m.rows * m.cols);
  if (m.format === 'f16') {
    for (let i = 0; i < out.length; i++) out[i] = float16BitsToFloat32(halfBits(m.quants, i));
    return out;
  }
  const blockBytes = quantBlockBytes(m.format);
  for (let b = 0; b < m.scales.length; b++) {
    const d = float16BitsToFloat32(m.scales[b]);
    for (let j = 0; j < QUANT_BLOCK; j++) out[b * QUANT_BLOCK + j] = quantCode(m.format, m.quants, b * blockBytes, j) * d;
  }
  return out;
}
