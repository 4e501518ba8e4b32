/**
 * Tiled matmul: C[M,N] (+)= A[M,K] @ B[K,N] (+ bias[N]), where A and B are read through strides so
 * that one kernel serves the forward product and both backward products (A^T, B^T) without copies:
 * A(m,k) = a[o_a + m*sAm + k*sAk], B(k,n) = b[o_b + k*sBk + n*sBn].
 *
 * Each 16x16 workgroup computes a 64x64 tile of C; each invocation a 4x4 register block, with rows
 * ty + 16i and columns tx + 16j so that neighbouring invocations touch neighbouring shared-memory
 * words. K advances in steps of 16 through shared-memory tiles of A and B.
 */
import type { KernelDef } from '../kernel.js';

export const MATMUL_TILE = 64;

/**
 * Variant: which of A's and B's dims is contiguous in memory decides how the 256 invocations walk a
 * tile while loading it, so that consecutive invocations read consecutive addresses.
 */
export interface MatmulLayout {
  /** A(m,k) is contiguous along k (sAk = 1), else along m */
  aAlongK: boolean;
  /** B(k,n) is contiguous along n (sBn = 1), else along k */
  bAlongN: boolean;
}

export function matmulVariant(layout: MatmulLayout): string {
  return `${layout.aAlongK ? 'ak' : 'am'}${layout.bAlongN ? 'bn' : 'bk'}`;
}

export function matmulBody(layout: MatmulLayout): string {
  // e runs over the 1024 elements of a 64x16 (A) or 16x64 (B) tile
  const aIndex = layout.aAlongK ? 'let m = e / 16u; let k = e % 16u;' : 'let m = e % 64u; let k = e / 64u;';
  const bIndex = layout.bAlongN ? 'let kb = e / 64u; let n = e % 64u;' : 'let kb = e % 16u; let n = e / 16u;';
  return `
var<workgroup> tileA: array<f32, 1024>; // [16 k][64 m]
var<workgroup> tileB: array<f32, 1024>; // [16 k][64 n]
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < P.K; k0 = k0 + 16u) {
    for (var r = 0u; r < 4u; r = r + 1u) {
      let e = li + r * 256u;
      {
        ${aIndex}
        let gm = row0 + m;
        let gk = k0 + k;
        var a = 0.0;
        if (gm < P.M && gk < P.K) { a = $a[P.o_a + gm * P.sAm + gk * P.sAk]; }
        tileA[k * 64u + m] = a;
      }
      {
        ${bIndex}
        let gk = k0 + kb;
        let gn = col0 + n;
        var b = 0.0;
        if (gk < P.K && gn < P.N) { b = $b[P.o_b + gk * P.sBk + gn * P.sBn]; }
        tileB[kb * 64u + n] = b;
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k = k + 1u) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i = i + 1u) {
        av[i] = tileA[k * 64u + lid.y + 16u * i];
        bv[i] = tileB[k * 64u + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
          acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i = i + 1u) {
    let gm = row0 + lid.y + 16u * i;
    if (gm >= P.M) { continue; }
    for (var j = 0u; j < 4u; j = j + 1u) {
      let gn = col0 + lid.x + 16u * j;
      if (gn >= P.N) { continue; }
      let index = P.o_c + gm * P.N + gn;
      var value = acc[i * 4u + j];
      if (P.hasBias == 1u) { value = value + $bias[P.o_bias + gn]; }
      if (P.accumulate == 1u) { value = value + $c[index]; }
      $c[index] = value;
    }
  }
}`;
}

export const matmulKernel = (layout: MatmulLayout): KernelDef => ({
  name: 'matmul',
  tensors: [{ name: 'c', write: true }, { name: 'a' }, { name: 'b' }, { name: 'bias' }],
  scalars: [
    { name: 'M', type: 'u32' },
    { name: 'N', type: 'u32' },
    { name: 'K', type: 'u32' },
    { name: 'sAm', type: 'u32' },
    { name: 'sAk', type: 'u32' },
    { name: 'sBk', type: 'u32' },
    { name: 'sBn', type: 'u32' },
    { name: 'hasBias', type: 'u32' },
    { name: 'accumulate', type: 'u32' },
  ],
  body: matmulBody(layout),
});

export const COLUMN_SUM_COLUMNS = 64;
const COLUMN_SUM_ROW_LANES = 4;

/**
 * sums[c] += sum_m x[m, c] for x [M, N] (the bias gradient). 64 columns x 4 row lanes per
 * workgroup: reads along a row are contiguous, the 4 lanes are added in a fixed order.
 */
export const columnSumKernel: KernelDef = {
  name: 'columnSum',
  tensors: [{ name: 'sums', write: true }, { name: 'x' }],
  scalars: [{ name: 'M', type: 'u32' }, { name: 'N', type: 'u32' }],
  body: `
var<workgroup> lanes: array<f32, ${COLUMN_SUM_COLUMNS * COLUMN_SUM_ROW_LANES}>;
@compute @workgroup_size(${COLUMN_SUM_COLUMNS}, ${COLUMN_SUM_ROW_LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * ${COLUMN_SUM_COLUMNS}u + lid.x;
  var sum = 0.0;
  if (col < P.N) {
    for (var m = lid.y; m < P.M; m = m + ${COLUMN_SUM_ROW_LANES}u) { sum = sum + $x[P.o_x + m * P.N + col]; }
  }
  lanes[lid.y * ${COLUMN_SUM_COLUMNS}u + lid.x] = sum;
  workgroupBarrier();
  if (lid.y == 0u && col < P.N) {
    var total = 0.0;
    for (var r = 0u; r < ${COLUMN_SUM_ROW_LANES}u; r = r + 1u) { total = total + lanes[r * ${COLUMN_SUM_COLUMNS}u + lid.x]; }
    $sums[P.o_sums + col] = $sums[P.o_sums + col] + total;
  }
}`,
};
