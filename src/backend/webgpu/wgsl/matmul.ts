/**
 * Tiled matmul: C[M,N] (+)= A[M,K] @ B[K,N] (+ bias[N]), where A and B are read through strides so
 * that one kernel serves the forward product and both backward products (A^T, B^T) without copies:
 * A(m,k) = a[o_a + m*sAm + k*sAk], B(k,n) = b[o_b + k*sBk + n*sBn], C(m,n) = c[o_c + m*sCm + n]
 * (sCm > N when this is a block of a wider product).
 *
 * Split K: workgroup z takes k in [z * kChunk, (z + 1) * kChunk) and writes its own slice
 * c + z * splitStride (partial sums, no bias, no accumulation); kChunkSumKernel adds the slices.
 * A product with few output tiles but a long K (the LM head's input gradient) thus still fills the
 * GPU. Unsplit: kChunk = K, one slice.
 *
 * A 16x16 workgroup computes a (16 RM) x (16 RN) tile of C; each invocation an RM x RN register
 * block, with rows ty + 16i and columns tx + 16j so that neighbouring invocations touch neighbouring
 * shared-memory words. K advances in steps of 16 through shared-memory tiles of A and B.
 *
 * Each finished element goes through an epilogue (wgsl/epilogue.ts): a plain store, or GELU, the
 * residual add or GELU's backward folded in. Split K and the few-rows product apply it in their
 * summing pass (kChunkSumKernel), where the element is finished.
 */
import { LINEAR_GROUP, type KernelDef } from '../kernel.js';
import { epilogueTensors, epilogueWgsl, type EpilogueKind } from './epilogue.js';

/** register block per invocation: 4x4 (64x64 tiles) suits small products, 8x8 (128x128) large ones */
export type MatmulBlock = 4 | 8;

/**
 * Variant: which of A's and B's dims is contiguous in memory decides how the 256 invocations walk a
 * tile while loading it, so that consecutive invocations read consecutive addresses.
 */
export interface MatmulLayout {
  /** A(m,k) is contiguous along k (sAk = 1), else along m */
  aAlongK: boolean;
  /** B(k,n) is contiguous along n (sBn = 1), else along k */
  bAlongN: boolean;
  block: MatmulBlock;
  /** rows of T + 1 words for a tile filled along k (see tileStrides); false where the device's workgroup memory has no room */
  padded: boolean;
}

export function matmulTile(block: MatmulBlock): number {
  return 16 * block;
}

/**
 * Words per k-row of the shared tiles of A and B. A tile filled along k (consecutive invocations,
 * consecutive k) stores words a row apart: with rows of T words that puts 16 invocations on one
 * shared-memory bank; a padded row of T + 1 spreads them (on an H200, GPT-2 small's training step
 * 101.7 -> 92.6 ms of GPU time).
 */
function tileStrides(layout: MatmulLayout): { strideA: number; strideB: number } {
  const T = matmulTile(layout.block);
  const pad = layout.padded ? 1 : 0;
  return { strideA: layout.aAlongK ? T + pad : T, strideB: layout.bAlongN ? T : T + pad };
}

/** workgroup memory the tiled kernel takes: two tiles of 16 k-rows (padded 8x8: up to 16,512 bytes, over WebGPU's default 16,384) */
export function matmulWorkgroupBytes(layout: MatmulLayout): number {
  const { strideA, strideB } = tileStrides(layout);
  return 16 * (strideA + strideB) * 4;
}

export function matmulVariant(layout: MatmulLayout): string {
  return `${layout.aAlongK ? 'ak' : 'am'}${layout.bAlongN ? 'bn' : 'bk'}${layout.block}${layout.padded ? '' : 'u'}`;
}

function matmulBody(layout: MatmulLayout, epilogue: EpilogueKind): string {
  const R = layout.block;
  const T = matmulTile(R);
  // e runs over the 16*T elements of a T x 16 (A) or 16 x T (B) tile
  const aIndex = layout.aAlongK ? 'let m = e / 16u; let k = e % 16u;' : `let m = e % ${T}u; let k = e / ${T}u;`;
  const bIndex = layout.bAlongN ? `let kb = e / ${T}u; let n = e % ${T}u;` : 'let kb = e % 16u; let n = e / 16u;';
  const { strideA, strideB } = tileStrides(layout);
  const rows = [...Array(R).keys()];
  // Unrolled into scalars: with a loop over a register array, NVIDIA's Vulkan driver (measured)
  // kept the 8x8 accumulators in local memory and ran 10x slower.
  const unrolledProduct = [
    ...rows.map((i) => `      let a${i} = tileA[k * SA + lid.y + ${16 * i}u];`),
    ...rows.map((j) => `      let b${j} = tileB[k * SB + lid.x + ${16 * j}u];`),
    ...rows.flatMap((i) => rows.map((j) => `      acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`)),
  ].join('\n');
  const unrolledStore = rows
    .flatMap((i) => rows.map((j) => `  store(row0 + lid.y + ${16 * i}u, col0 + lid.x + ${16 * j}u, acc${i}_${j});`))
    .join('\n');
  return `
const R = ${R}u;
const T = ${T}u;
const SA = ${strideA}u;
const SB = ${strideB}u;
var<workgroup> tileA: array<f32, ${16 * strideA}>; // [16 k][SA: T m, then padding]
var<workgroup> tileB: array<f32, ${16 * strideB}>; // [16 k][SB: T n, then padding]
var<private> kSlice: u32;
${epilogueWgsl(epilogue)}
fn store(gm: u32, gn: u32, product: f32) {
  if (gm >= P.M || gn >= P.N) { return; }
  var value = product;
  if (P.hasBias == 1u) { value = value + $bias[P.o_bias + gn]; }
  finish(P.o_c + kSlice * P.splitStride + gm * P.sCm + gn, gm * P.sCm + gn, value);
}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * T;
  let col0 = wid.x * T;
  kSlice = wid.z;
  let kEnd = min(P.K, (wid.z + 1u) * P.kChunk);
${rows.flatMap((i) => rows.map((j) => `  var acc${i}_${j} = 0.0;`)).join('\n')}
  for (var k0 = wid.z * P.kChunk; k0 < kEnd; k0 = k0 + 16u) {
    for (var r = 0u; r < R; r = r + 1u) {
      let e = li + r * 256u;
      {
        ${aIndex}
        let gm = row0 + m;
        let gk = k0 + k;
        var a = 0.0;
        if (gm < P.M && gk < kEnd) { a = $a[P.o_a + gm * P.sAm + gk * P.sAk]; }
        tileA[k * SA + m] = a;
      }
      {
        ${bIndex}
        let gk = k0 + kb;
        let gn = col0 + n;
        var b = 0.0;
        if (gk < kEnd && gn < P.N) { b = $b[P.o_b + gk * P.sBk + gn * P.sBn]; }
        tileB[kb * SB + n] = b;
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k = k + 1u) {
${unrolledProduct}
    }
    workgroupBarrier();
  }
${unrolledStore}
}`;
}

/** the kernel's name: `matmul`, or `matmul+gelu` and so on with an epilogue folded in */
function named(base: string, epilogue: EpilogueKind): string {
  return epilogue === 'store' ? base : `${base}+${epilogue}`;
}

/** the scalars of every epilogue: accumulate (store) and hasAux (gelu) */
const EPILOGUE_SCALARS: KernelDef['scalars'] = [
  { name: 'accumulate', type: 'u32' },
  { name: 'hasAux', type: 'u32' },
];

/** splitStride must be 0 with an epilogue other than store (split K finishes in kChunkSumKernel) */
export const matmulKernel = (layout: MatmulLayout, epilogue: EpilogueKind = 'store'): KernelDef => ({
  name: named('matmul', epilogue),
  tensors: [{ name: 'c', write: true }, { name: 'a' }, { name: 'b' }, { name: 'bias' }, ...epilogueTensors(epilogue)],
  scalars: [
    { name: 'M', type: 'u32' },
    { name: 'N', type: 'u32' },
    { name: 'K', type: 'u32' },
    { name: 'sCm', type: 'u32' },
    { name: 'sAm', type: 'u32' },
    { name: 'sAk', type: 'u32' },
    { name: 'sBk', type: 'u32' },
    { name: 'sBn', type: 'u32' },
    { name: 'hasBias', type: 'u32' },
    ...EPILOGUE_SCALARS,
    { name: 'kChunk', type: 'u32' },
    { name: 'splitStride', type: 'u32' },
  ],
  body: matmulBody(layout, epilogue),
});

/**
 * Few rows (decoding one token per sequence): C[M,N] (+)= A[M,K] @ B[K,N] (+ bias) for M <= 8, A
 * contiguous along k and B along n. The tiled kernel would give each 64-column tile one workgroup
 * walking all of K, a dozen workgroups for a 768-wide layer; here K is also cut into chunks, one
 * workgroup per (64 columns, chunk), and a second pass adds the chunks in order.
 *
 * Pass 1: a 64 x 4 workgroup; invocation (x, y) takes column col0 + x and every 4th k of the chunk
 * from y, for all M rows (unrolled: M is the variant), then the 4 k-lanes are added in shared memory
 * into partials[chunk, m, n]. Pass 2 (kChunkSumKernel) adds the chunks, then bias and C.
 */
export const GEMV_MAX_ROWS = 8;
export const GEMV_COLUMNS = 64;
const GEMV_LANES = 4;

export function gemvPartialKernel(rows: number, layerNorm = false): KernelDef {
  const ms = [...Array(rows).keys()];
  const aAt = (m: number) => `$a[P.o_a + ${m}u * P.sAm + k]`;
  const aLoad = layerNorm ? (m: number) => `((${aAt(m)} - rowMean[${m}]) * rowRstd[${m}] * g + beta)` : aAt;
  return {
    name: layerNorm ? 'gemvPartial+layerNorm' : 'gemvPartial',
    tensors: [
      { name: 'partials', write: true },
      { name: 'a' },
      { name: 'b' },
      ...(layerNorm ? [{ name: 'lnWeight' }, { name: 'lnBias' }] : []),
    ],
    scalars: [
      { name: 'N', type: 'u32' },
      { name: 'K', type: 'u32' },
      { name: 'sAm', type: 'u32' },
      { name: 'sBk', type: 'u32' },
      { name: 'kChunk', type: 'u32' },
    ],
    body: `
var<workgroup> lanes: array<f32, ${GEMV_LANES * rows * GEMV_COLUMNS}>; // [lane][m][column]
${layerNorm ? gemvLayerNormStats(rows) : ''}
@compute @workgroup_size(${GEMV_COLUMNS}, ${GEMV_LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * ${GEMV_COLUMNS}u + lid.x;
  let chunk = wid.y;
  let kEnd = min(P.K, (chunk + 1u) * P.kChunk);
${layerNorm ? '  rowStats(lid.y * ' + GEMV_COLUMNS + 'u + lid.x);' : ''}
${ms.map((m) => `  var acc${m} = 0.0;`).join('\n')}
  if (col < P.N) {
    for (var k = chunk * P.kChunk + lid.y; k < kEnd; k = k + ${GEMV_LANES}u) {
      let b = $b[P.o_b + k * P.sBk + col];
${layerNorm ? '      let g = $lnWeight[P.o_lnWeight + k];\n      let beta = $lnBias[P.o_lnBias + k];' : ''}
${ms.map((m) => `      acc${m} = fma(${aLoad(m)}, b, acc${m});`).join('\n')}
    }
  }
${ms.map((m) => `  lanes[(lid.y * ${rows}u + ${m}u) * ${GEMV_COLUMNS}u + lid.x] = acc${m};`).join('\n')}
  workgroupBarrier();
  if (lid.y == 0u && col < P.N) {
    for (var m = 0u; m < ${rows}u; m = m + 1u) {
      var total = 0.0;
      for (var lane = 0u; lane < ${GEMV_LANES}u; lane = lane + 1u) { total = total + lanes[(lane * ${rows}u + m) * ${GEMV_COLUMNS}u + lid.x]; }
      $partials[P.o_partials + (chunk * ${rows}u + m) * P.N + col] = total;
    }
  }
}`,
  };
}

/**
 * The LayerNorm prologue of the few-rows product (layerNormMatmulForward while decoding): every
 * workgroup first takes the mean and 1/std of the M <= 8 rows of A over all of K (as
 * layerNormForwardKernel does: mean, then the sum of squared deviations), then normalises A as it
 * reads it. Re-reading the rows in each workgroup costs far less than the LayerNorm dispatch and
 * the normalised copy it replaces.
 */
function gemvLayerNormStats(rows: number): string {
  const size = GEMV_COLUMNS * GEMV_LANES;
  return `var<workgroup> statPartial: array<f32, ${size}>;
var<workgroup> rowMean: array<f32, ${rows}>;
var<workgroup> rowRstd: array<f32, ${rows}>;
fn statSum(li: u32, value: f32) -> f32 {
  workgroupBarrier();
  statPartial[li] = value;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { statPartial[li] = statPartial[li] + statPartial[li + stride]; }
    workgroupBarrier();
  }
  return statPartial[0];
}
fn rowStats(li: u32) {
  for (var m = 0u; m < ${rows}u; m = m + 1u) {
    let x0 = P.o_a + m * P.sAm;
    var sum = 0.0;
    for (var k = li; k < P.K; k = k + ${size}u) { sum = sum + $a[x0 + k]; }
    let mu = statSum(li, sum) / f32(P.K);
    var squares = 0.0;
    for (var k = li; k < P.K; k = k + ${size}u) {
      let d = $a[x0 + k] - mu;
      squares = fma(d, d, squares);
    }
    let invStd = 1.0 / sqrt(statSum(li, squares) / f32(P.K) + 1e-5);
    if (li == 0u) {
      rowMean[m] = mu;
      rowRstd[m] = invStd;
    }
  }
  workgroupBarrier();
}`;
}

/**
 * c[m, n] (+)= sum over chunks of partials[chunk, m, n] (+ bias[n]), the chunks of K added in order,
 * then the epilogue; one invocation per (m, n), n = M * N. Second pass of the few-rows and the
 * split-K products.
 */
export function kChunkSumKernel(epilogue: EpilogueKind = 'store'): KernelDef {
  return {
    name: named('kChunkSum', epilogue),
    tensors: [{ name: 'c', write: true }, { name: 'partials' }, { name: 'bias' }, ...epilogueTensors(epilogue)],
    scalars: [
      { name: 'n', type: 'u32' },
      { name: 'N', type: 'u32' },
      { name: 'sCm', type: 'u32' },
      { name: 'chunks', type: 'u32' },
      { name: 'hasBias', type: 'u32' },
      ...EPILOGUE_SCALARS,
    ],
    body: `${LINEAR_GROUP}${epilogueWgsl(epilogue)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * 256u + li;
  if (i >= P.n) { return; }
  let m = i / P.N;
  let col = i % P.N;
  var total = 0.0;
  for (var chunk = 0u; chunk < P.chunks; chunk = chunk + 1u) { total = total + $partials[P.o_partials + chunk * P.n + i]; }
  if (P.hasBias == 1u) { total = total + $bias[P.o_bias + col]; }
  finish(P.o_c + m * P.sCm + col, m * P.sCm + col, total);
}`,
  };
}
