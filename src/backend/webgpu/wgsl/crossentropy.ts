/**
 * Fused softmax + cross-entropy, one 256-invocation workgroup per row: one pass over the logits for
 * their log-sum-exp (running max and rescaled sum), one to write probabilities. The loss is
 * lse - logit[target] (exact even when the probability underflows); 0 for the ignore index -1.
 * A target outside [0, V) that is not -1 cannot throw on the GPU, so its loss is NaN.
 */
import { LINEAR_GROUP, QUIET_NAN, type KernelDef } from '../kernel.js';
import { ELEMENTWISE_WORKGROUP } from './elementwise.js';

export const CROSS_ENTROPY_WORKGROUP = 256;
const W = CROSS_ENTROPY_WORKGROUP;

export const crossEntropyForwardKernel: KernelDef = {
  name: 'crossEntropyForward',
  tensors: [{ name: 'losses', write: true }, { name: 'probs', write: true }, { name: 'logits' }, { name: 'targets' }],
  scalars: [
    { name: 'N', type: 'u32' },
    { name: 'V', type: 'u32' },
  ],
  body: `${LINEAR_GROUP}
${QUIET_NAN}
// (max, sum of exp(x - max)) pairs, merged so that no exp overflows: a one-pass log-sum-exp
var<workgroup> partials: array<vec2<f32>, ${W}>;
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = linearGroup(wid, nwg);
  if (row >= P.N) { return; }
  let z0 = P.o_logits + row * P.V;
  var running = vec2<f32>(-3.0e38, 0.0);
  for (var v = li; v < P.V; v = v + ${W}u) {
    let x = $logits[z0 + v];
    if (x > running.x) {
      running = vec2<f32>(x, running.y * exp(running.x - x) + 1.0);
    } else {
      running.y = running.y + exp(x - running.x);
    }
  }
  partials[li] = running;
  workgroupBarrier();
  for (var stride = ${W / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { partials[li] = merge(partials[li], partials[li + stride]); }
    workgroupBarrier();
  }
  let total = partials[0];
  let rowLse = total.x + log(total.y);
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
  scalars: [
    { name: 'n', type: 'u32' },
    { name: 'V', type: 'u32' },
    { name: 'dlossScale', type: 'f32' },
  ],
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
