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
 * gemvQ8 / gemvQ4 / gemvF16, for few rows (decoding: M <= QUANT_GEMV_MAX_ROWS): the tiled kernel
 * would give a 768-wide layer 48 workgroups walking all of K. Here a 64 x 4 workgroup owns 64
 * columns and one chunk of K's blocks; invocation (x, y) reads column x's row of W a block at a
 * time (every 4th block of the chunk from y), unpacks each word once, and sums all M rows of x
 * against it; the 4 lanes meet in workgroup memory and write partials[chunk, m, n], which
 * kChunkSumKernel (wgsl/matmul.ts) adds up with the bias.
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

/** rows of x the few-rows kernel takes, and its columns and k-lanes per workgroup */
export const QUANT_GEMV_MAX_ROWS = 8;
export const QUANT_GEMV_COLUMNS = 64;
const QUANT_GEMV_LANES = 4;

/** WGSL: the weights of one i32 word of a block (word w of block b's words), as (k, value) products with x */
function gemvWordProducts(format: QuantFormat, rows: number): string {
  const ms = [...Array(rows).keys()];
  const xAt = (m: number, k: string) => `$inp[P.o_inp + ${m}u * P.K + kBase + ${k}]`;
  if (format === 'f16') {
    return `      let pair = unpack2x16float(u32(word));
${ms.map((m) => `      acc${m} += pair.x * ${xAt(m, '2u * w')} + pair.y * ${xAt(m, '2u * w + 1u')};`).join('\n')}`;
  }
  if (format === 'q8_0') {
    // extractBits on i32 sign-extends each byte: weights 4w .. 4w+3
    return `      let codes = vec4<f32>(f32(extractBits(word, 0u, 8u)), f32(extractBits(word, 8u, 8u)), f32(extractBits(word, 16u, 8u)), f32(extractBits(word, 24u, 8u))) * scale;
${ms.map((m) => `      acc${m} += dot(codes, vec4<f32>(${xAt(m, '4u * w')}, ${xAt(m, '4u * w + 1u')}, ${xAt(m, '4u * w + 2u')}, ${xAt(m, '4u * w + 3u')}));`).join('\n')}`;
  }
  // Q4_0: bytes 4w .. 4w+3 hold weights 4w .. 4w+3 (low nibbles) and 4w+16 .. 4w+19 (high), offset by 8
  return `      let bits = u32(word);
      let low = (vec4<f32>(f32(extractBits(bits, 0u, 4u)), f32(extractBits(bits, 8u, 4u)), f32(extractBits(bits, 16u, 4u)), f32(extractBits(bits, 24u, 4u))) - 8.0) * scale;
      let high = (vec4<f32>(f32(extractBits(bits, 4u, 4u)), f32(extractBits(bits, 12u, 4u)), f32(extractBits(bits, 20u, 4u)), f32(extractBits(bits, 28u, 4u))) - 8.0) * scale;
${ms
  .map(
    (m) =>
      `      acc${m} += dot(low, vec4<f32>(${xAt(m, '4u * w')}, ${xAt(m, '4u * w + 1u')}, ${xAt(m, '4u * w + 2u')}, ${xAt(m, '4u * w + 3u')})) + dot(high, vec4<f32>(${xAt(m, '4u * w + 16u')}, ${xAt(m, '4u * w + 17u')}, ${xAt(m, '4u * w + 18u')}, ${xAt(m, '4u * w + 19u')}));`,
  )
  .join('\n')}`;
}

/** partials[chunk, m, n] of out[M,N] = x[M,K] @ W^T over chunk's blocks, for M = rows (unrolled) */
export function gemvQuantKernel(format: QuantFormat, rows: number): KernelDef {
  const ms = [...Array(rows).keys()];
  const words = quantBlockWords(format);
  const lanes = QUANT_GEMV_LANES;
  const columns = QUANT_GEMV_COLUMNS;
  return {
    name: `gemv${KERNEL_SUFFIX[format]}`,
    tensors: [{ name: 'partials', write: true }, { name: 'inp' }, { name: 'quants' }, ...scaleTensors(format)],
    scalars: [
      { name: 'N', type: 'u32' },
      { name: 'K', type: 'u32' },
      { name: 'chunkBlocks', type: 'u32' },
    ],
    body: `
var<workgroup> lanes: array<f32, ${lanes * rows * columns}>; // [lane][m][column]
@compute @workgroup_size(${columns}, ${lanes})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * ${columns}u + lid.x;
  let chunk = wid.y;
  let blocks = P.K / ${QK}u;
  let blockEnd = min(blocks, (chunk + 1u) * P.chunkBlocks);
${ms.map((m) => `  var acc${m} = 0.0;`).join('\n')}
  if (col < P.N) {
    for (var blk = chunk * P.chunkBlocks + lid.y; blk < blockEnd; blk += ${lanes}u) {
      let b = col * blocks + blk;
      let kBase = blk * ${QK}u;
${format === 'f16' ? '' : '      let scale = $scales[P.o_scales + b];'}
      for (var w = 0u; w < ${words}u; w++) {
        let word = $quants[P.o_quants + b * ${words}u + w];
${gemvWordProducts(format, rows)}
      }
    }
  }
${ms.map((m) => `  lanes[(lid.y * ${rows}u + ${m}u) * ${columns}u + lid.x] = acc${m};`).join('\n')}
  workgroupBarrier();
  if (lid.y == 0u && col < P.N) {
    for (var m = 0u; m < ${rows}u; m++) {
      var total = 0.0;
      for (var lane = 0u; lane < ${lanes}u; lane++) { total += lanes[(lane * ${rows}u + m) * ${columns}u + lid.x]; }
      $partials[P.o_partials + (chunk * ${rows}u + m) * P.N + col] = total;
    }
  }
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
