/**
 * Column sums over many rows (bias and LayerNorm parameter gradients), in two deterministic passes
 * so that tall inputs still spread over many workgroups: pass 1 sums chunks of rows into
 * partials [chunks, stride] (64 columns x 4 row lanes per workgroup, one workgroup row per chunk);
 * pass 2 adds each column's chunk sums in order into the gradient (+=).
 */
import type { KernelDef } from '../kernel.js';

export const COLUMN_GROUP = 64;
const ROW_LANES = 4;
/** rows per chunk at least; chunks are capped so the partials stay small */
export const COLUMN_CHUNK_ROWS = 64;
export const COLUMN_MAX_CHUNKS = 256;

/** `value(m, col)` is WGSL for the summand of row m; `valueType` is f32 or vec2<f32> */
function chunkSum(valueType: string, value: string, store: string): string {
  return `
var<workgroup> lanes: array<${valueType}, ${COLUMN_GROUP * ROW_LANES}>;
@compute @workgroup_size(${COLUMN_GROUP}, ${ROW_LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = wid.x * ${COLUMN_GROUP}u + lid.x;
  let chunk = wid.y;
  let rowEnd = min(P.M, (chunk + 1u) * P.rowsPerChunk);
  var sum = ${valueType}(0.0);
  if (col < P.N) {
    for (var m = chunk * P.rowsPerChunk + lid.y; m < rowEnd; m = m + ${ROW_LANES}u) { sum = sum + ${value}; }
  }
  lanes[lid.y * ${COLUMN_GROUP}u + lid.x] = sum;
  workgroupBarrier();
  if (lid.y == 0u && col < P.N) {
    var total = ${valueType}(0.0);
    for (var r = 0u; r < ${ROW_LANES}u; r = r + 1u) { total = total + lanes[r * ${COLUMN_GROUP}u + lid.x]; }
    ${store}
  }
}`;
}

const CHUNK_SCALARS = [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32' },
  { name: 'rowsPerChunk', type: 'u32' },
] as const;

/** partials[chunk, col] = sum over the chunk's rows of x[m, col], x [M, N] */
export const columnPartialKernel: KernelDef = {
  name: 'columnPartial',
  tensors: [{ name: 'partials', write: true }, { name: 'x' }],
  scalars: CHUNK_SCALARS,
  body: chunkSum('f32', '$x[P.o_x + m * P.N + col]', '$partials[P.o_partials + chunk * P.N + col] = total;'),
};

/**
 * LayerNorm parameter gradients per chunk: partials[chunk, col] = sum norm * dout (dweight) and
 * partials[chunk, N + col] = sum dout (dbias), norm = (inp - mean) * rstd; inp, dout [M, N].
 */
export const layerNormParamsPartialKernel: KernelDef = {
  name: 'layerNormParamsPartial',
  tensors: [{ name: 'partials', write: true }, { name: 'dout' }, { name: 'inp' }, { name: 'mean' }, { name: 'rstd' }],
  scalars: CHUNK_SCALARS,
  body: chunkSum(
    'vec2<f32>',
    'vec2<f32>(($inp[P.o_inp + m * P.N + col] - $mean[P.o_mean + m]) * $rstd[P.o_rstd + m], 1.0) * $dout[P.o_dout + m * P.N + col]',
    `$partials[P.o_partials + chunk * 2u * P.N + col] = total.x;
    $partials[P.o_partials + chunk * 2u * P.N + P.N + col] = total.y;`,
  ),
};

/** sums[col] += sum over chunks, in order, of partials[chunk * stride + col]; one invocation per column */
export const columnFinalKernel: KernelDef = {
  name: 'columnFinal',
  tensors: [{ name: 'sums', write: true }, { name: 'partials' }],
  scalars: [
    { name: 'N', type: 'u32' },
    { name: 'chunks', type: 'u32' },
    { name: 'stride', type: 'u32' },
  ],
  body: `
@compute @workgroup_size(${COLUMN_GROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col = gid.x;
  if (col >= P.N) { return; }
  var total = 0.0;
  for (var chunk = 0u; chunk < P.chunks; chunk = chunk + 1u) { total = total + $partials[P.o_partials + chunk * P.stride + col]; }
  $sums[P.o_sums + col] = $sums[P.o_sums + col] + total;
}`,
};
