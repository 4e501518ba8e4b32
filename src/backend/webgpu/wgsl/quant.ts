/**
 * Quantized inference products (src/model/quant.ts has the formats): W [N,K] in ggml's Q8_0 or Q4_0
 * blocks of 32 along K, as i32 words of the block bytes (little-endian: byte j of a row's blocks is
 * bits 8*(j%4) of word j/4), with an f32 scale per block [N, K/32]; or W's float16 bits, two to a
 * word (element 2i in the low half), with no scales. Weights are dequantized on the fly (code *
 * scale is exact in f32, and so is widening a half with unpack2x16float) and never stored widened.
 *
 * f16 uses WGSL's core pack/unpack built-ins, not the `shader-f16` extension: the weights stream at
 * half the bytes on every adapter (SwiftShader and Chromium without the extension included), and the
 * arithmetic stays f32 as the contract asks.
 *
 * matmulQ8 / matmulQ4: out[M,N] = x[M,K] @ W^T (+ bias[N]). A workgroup of 16x16 invocations owns a
 * 16x16 tile of out; per block of K it stages x [16 rows, 32] and W dequantized [16 columns, 32] in
 * workgroup memory, each invocation fetching two of each, then each invocation adds its 32 products.
 * matmulF16 is the same with halves for codes.
 * encoderQ8 / encoderQ4 / encoderF16: out[B,T,C] = dequant(W)[id, :] + wpe[pos, :] as encoderForward (wgsl/encoder.ts),
 * with its pieces by token-id slice and its NaN rows for ids outside [0, V).
 */
import type { QuantFormat } from '../../contract.js';
import type { KernelDef } from '../kernel.js';
import { encoderForwardBody } from './encoder.js';

/** rows of x and columns of out per workgroup */
export const QUANT_TILE = 16;
const QK = 32;

/** i32 words per 32-weight block */
export function quantBlockWords(format: QuantFormat): number {
  return format === 'q8_0' ? 8 : format === 'q4_0' ? 4 : 16;
}

const KERNEL_SUFFIX: Record<QuantFormat, string> = { q8_0: 'Q8', q4_0: 'Q4', f16: 'F16' };

/** the tensors a format's scales add: none for f16 */
const scaleTensors = (format: QuantFormat) => (format === 'f16' ? [] : [{ name: 'scales' }]);

/** WGSL: weight k (0..31) of block b (counted from $quants's offset), dequantized */
function dequantFn(format: QuantFormat): string {
  const words = quantBlockWords(format);
  if (format === 'f16') {
    return `fn dequant(b: u32, k: u32) -> f32 {
  return unpack2x16float(u32($quants[P.o_quants + b * ${words}u + k / 2u]))[k % 2u];
}`;
  }
  if (format === 'q8_0') {
    // extractBits on i32 sign-extends the byte
    return `fn dequant(b: u32, k: u32) -> f32 {
  return f32(extractBits($quants[P.o_quants + b * ${words}u + k / 4u], (k % 4u) * 8u, 8u)) * $scales[P.o_scales + b];
}`;
  }
  // byte j (0..15) holds weight j in its low nibble and weight j + 16 in its high one, both offset by 8
  return `fn dequant(b: u32, k: u32) -> f32 {
  let j = k % 16u;
  let nibble = extractBits(u32($quants[P.o_quants + b * ${words}u + j / 4u]), (j % 4u) * 8u + (k / 16u) * 4u, 4u);
  return f32(i32(nibble) - 8) * $scales[P.o_scales + b];
}`;
}

function matmulQuantKernel(format: QuantFormat): KernelDef {
  const T = QUANT_TILE;
  return {
    name: `matmul${KERNEL_SUFFIX[format]}`,
    tensors: [{ name: 'out', write: true }, { name: 'inp' }, { name: 'quants' }, ...scaleTensors(format), { name: 'bias' }],
    scalars: [
      { name: 'M', type: 'u32' },
      { name: 'N', type: 'u32' },
      { name: 'K', type: 'u32' },
      { name: 'sOm', type: 'u32' },
      { name: 'hasBias', type: 'u32' },
    ],
    body: `
var<workgroup> xTile: array<f32, ${T * QK}>;
var<workgroup> wTile: array<f32, ${T * QK}>;
${dequantFn(format)}
@compute @workgroup_size(${T}, ${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * ${T}u;
  let n0 = wid.x * ${T}u;
  let blocks = P.K / ${QK}u;
  var acc = 0.0;
  for (var blk = 0u; blk < blocks; blk++) {
    for (var e = li; e < ${T * QK}u; e += ${T * T}u) {
      let r = e / ${QK}u;
      let k = e % ${QK}u;
      let m = m0 + r;
      var xv = 0.0;
      if (m < P.M) { xv = $inp[P.o_inp + m * P.K + blk * ${QK}u + k]; }
      xTile[e] = xv;
      let n = n0 + r;
      var wv = 0.0;
      if (n < P.N) { wv = dequant(n * blocks + blk, k); }
      wTile[e] = wv;
    }
    workgroupBarrier();
    for (var k = 0u; k < ${QK}u; k++) { acc += xTile[lid.y * ${QK}u + k] * wTile[lid.x * ${QK}u + k]; }
    workgroupBarrier();
  }
  let m = m0 + lid.y;
  let n = n0 + lid.x;
  if (m >= P.M || n >= P.N) { return; }
  if (P.hasBias != 0u) { acc += $bias[P.o_bias + n]; }
  $out[P.o_out + m * P.sOm + n] = acc;
}`,
  };
}

function encoderQuantKernel(format: QuantFormat): KernelDef {
  return {
    name: `encoder${KERNEL_SUFFIX[format]}`,
    tensors: [{ name: 'out', write: true }, { name: 'inp' }, { name: 'quants' }, ...scaleTensors(format), { name: 'wpe' }],
    scalars: [
      { name: 'n', type: 'u32' },
      { name: 'T', type: 'u32' },
      { name: 'C', type: 'u32' },
      { name: 'V', type: 'u32' },
      { name: 'posOffset', type: 'u32' },
      { name: 'rowBase', type: 'u32' },
      { name: 'vBase', type: 'u32' },
      { name: 'vCount', type: 'u32' },
    ],
    body: encoderForwardBody(`${dequantFn(format)}
fn tokenValue(row: u32, c: u32) -> f32 { return dequant(row * (P.C / ${QK}u) + c / ${QK}u, c % ${QK}u); }`),
  };
}

const FORMATS: readonly QuantFormat[] = ['q8_0', 'q4_0', 'f16'];
export const matmulQuantKernels = Object.fromEntries(FORMATS.map((f) => [f, matmulQuantKernel(f)])) as Record<QuantFormat, KernelDef>;
export const encoderQuantKernels = Object.fromEntries(FORMATS.map((f) => [f, encoderQuantKernel(f)])) as Record<QuantFormat, KernelDef>;
