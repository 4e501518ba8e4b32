/**
 * Fused softmax + cross-entropy, one 256-invocation workgroup per row. The loss is lse - logit[target]
 * (exact even when the probability underflows); 0 for the ignore index -1. A target outside [0, V)
 * that is not -1 cannot throw on the GPU, so its loss is NaN.
 */
import { LINEAR_GROUP, QUIET_NAN, type KernelDef } from '../kernel.js';
import { ELEMENTWISE_WORKGROUP } from './elementwise.js';

export const CROSS_ENTROPY_WORKGROUP = 256;
const W = CROSS_ENTROPY_WORKGROUP;

export const crossEntropyForwardKernel: KernelDef = {
  name: 'crossEntropyForward',
  tensors: [{ name: 'losses', write: true }, { name: 'probs', write: true }, { name: 'logits' }, { name: 'targets' }],
  scalars: [{ name: 'N', type: 'u32' }, { name: 'V', type: 'u32' }],
  body: `${LINEAR_GROUP}
${QUIET_NAN}
var<workgroup> scratch: array<f32, ${W}>;
fn reduceMax(li: u32, value: f32) -> f32 {
  workgroupBarrier();
  scratch[li] = value;
  workgroupBarrier();
  for (var stride = ${W / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { scratch[li] = max(scratch[li], scratch[li + stride]); }
    workgroupBarrier();
  }
  return scratch[0];
}
fn reduceSum(li: u32, value: f32) -> f32 {
  workgroupBarrier();
  scratch[li] = value;
  workgroupBarrier();
  for (var stride = ${W / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { scratch[li] = scratch[li] + scratch[li + stride]; }
    workgroupBarrier();
  }
  return scratch[0];
}
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = linearGroup(wid, nwg);
  if (row >= P.N) { return; }
  let z0 = P.o_logits + row * P.V;
  var localMax = -3.0e38;
  for (var v = li; v < P.V; v = v + ${W}u) { localMax = max(localMax, $logits[z0 + v]); }
  let rowMax = reduceMax(li, localMax);
  var localSum = 0.0;
  for (var v = li; v < P.V; v = v + ${W}u) { localSum = localSum + exp($logits[z0 + v] - rowMax); }
  let rowLse = rowMax + log(reduceSum(li, localSum));
  let p0 = P.o_probs + row * P.V;
  for (var v = li; v < P.V; v = v + ${W}u) { $probs[p0 + v] = exp($logits[z0 + v] - rowLse); }
  if (li == 0u) {
    let targetId = $targets[P.o_targets + row];
    var loss = 0.0;
    if (targetId >= 0 && u32(targetId) < P.V) {
      loss = rowLse - $logits[z0 + u32(targetId)];
    } else if (targetId != -1) {
      loss = quietNan();
    }
    $losses[P.o_losses + row] = loss;
  }
}`,
};

/** dlogits[n, v] += (probs[n, v] - [v == target]) * dlossScale; one invocation per element */
export const crossEntropyBackwardKernel: KernelDef = {
  name: 'crossEntropyBackward',
  tensors: [{ name: 'dlogits', write: true }, { name: 'probs' }, { name: 'targets' }],
  scalars: [{ name: 'n', type: 'u32' }, { name: 'V', type: 'u32' }, { name: 'dlossScale', type: 'f32' }],
  body: `${LINEAR_GROUP}
${QUIET_NAN}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * ${ELEMENTWISE_WORKGROUP}u + li;
  if (i >= P.n) { return; }
  let row = i / P.V;
  let v = i % P.V;
  let targetId = $targets[P.o_targets + row];
  if (targetId == -1) { return; }
  var grad = $probs[P.o_probs + i];
  if (targetId < 0 || u32(targetId) >= P.V) {
    grad = quietNan();
  } else if (u32(targetId) == v) {
    grad = grad - 1.0;
  }
  $dlogits[P.o_dlogits + i] = $dlogits[P.o_dlogits + i] + grad * P.dlossScale;
}`,
};
