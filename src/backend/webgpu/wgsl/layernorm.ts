/**
 * LayerNorm over the last dim (eps 1e-5, biased variance). Forward and the dinp part of backward
 * use one 256-invocation workgroup per row with tree reductions; dweight/dbias are column sums
 * (see columns.ts).
 */
import { LINEAR_GROUP, type KernelDef } from '../kernel.js';

export const LAYER_NORM_WORKGROUP = 256;

/** tree-sums a vec2 over the workgroup; every invocation gets the total */
const ROW_SUM = `
var<workgroup> rowPartial: array<vec2<f32>, ${LAYER_NORM_WORKGROUP}>;
fn rowSum(li: u32, value: vec2<f32>) -> vec2<f32> {
  workgroupBarrier();
  rowPartial[li] = value;
  workgroupBarrier();
  for (var stride = ${LAYER_NORM_WORKGROUP / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { rowPartial[li] = rowPartial[li] + rowPartial[li + stride]; }
    workgroupBarrier();
  }
  return rowPartial[0];
}`;

const EPS = '1e-5';

export const layerNormForwardKernel: KernelDef = {
  name: 'layerNormForward',
  tensors: [
    { name: 'out', write: true },
    { name: 'mean', write: true },
    { name: 'rstd', write: true },
    { name: 'inp' },
    { name: 'weight' },
    { name: 'bias' },
  ],
  scalars: [
    { name: 'N', type: 'u32' },
    { name: 'C', type: 'u32' },
  ],
  body: `${LINEAR_GROUP}${ROW_SUM}
@compute @workgroup_size(${LAYER_NORM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = linearGroup(wid, nwg);
  if (row >= P.N) { return; }
  let x0 = P.o_inp + row * P.C;
  var sum = 0.0;
  for (var c = li; c < P.C; c = c + ${LAYER_NORM_WORKGROUP}u) { sum = sum + $inp[x0 + c]; }
  let mu = rowSum(li, vec2<f32>(sum, 0.0)).x / f32(P.C);
  var squares = 0.0;
  for (var c = li; c < P.C; c = c + ${LAYER_NORM_WORKGROUP}u) {
    let d = $inp[x0 + c] - mu;
    squares = fma(d, d, squares);
  }
  let invStd = 1.0 / sqrt(rowSum(li, vec2<f32>(squares, 0.0)).x / f32(P.C) + ${EPS});
  let o0 = P.o_out + row * P.C;
  for (var c = li; c < P.C; c = c + ${LAYER_NORM_WORKGROUP}u) {
    $out[o0 + c] = ($inp[x0 + c] - mu) * invStd * $weight[P.o_weight + c] + $bias[P.o_bias + c];
  }
  if (li == 0u) {
    $mean[P.o_mean + row] = mu;
    $rstd[P.o_rstd + row] = invStd;
  }
}`,
};

/** dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight */
export const layerNormBackwardInputKernel: KernelDef = {
  name: 'layerNormBackwardInput',
  tensors: [{ name: 'dinp', write: true }, { name: 'dout' }, { name: 'inp' }, { name: 'weight' }, { name: 'mean' }, { name: 'rstd' }],
  scalars: [
    { name: 'N', type: 'u32' },
    { name: 'C', type: 'u32' },
  ],
  body: `${LINEAR_GROUP}${ROW_SUM}
@compute @workgroup_size(${LAYER_NORM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = linearGroup(wid, nwg);
  if (row >= P.N) { return; }
  let mu = $mean[P.o_mean + row];
  let invStd = $rstd[P.o_rstd + row];
  let r0 = row * P.C;
  var sums = vec2<f32>(0.0, 0.0);
  for (var c = li; c < P.C; c = c + ${LAYER_NORM_WORKGROUP}u) {
    let norm = ($inp[P.o_inp + r0 + c] - mu) * invStd;
    let dnorm = $dout[P.o_dout + r0 + c] * $weight[P.o_weight + c];
    sums = sums + vec2<f32>(dnorm, dnorm * norm);
  }
  let means = rowSum(li, sums) / f32(P.C);
  for (var c = li; c < P.C; c = c + ${LAYER_NORM_WORKGROUP}u) {
    let norm = ($inp[P.o_inp + r0 + c] - mu) * invStd;
    let dnorm = $dout[P.o_dout + r0 + c] * $weight[P.o_weight + c];
    let index = P.o_dinp + r0 + c;
    $dinp[index] = $dinp[index] + (dnorm - means.x - norm * means.y) * invStd;
  }
}`,
};
