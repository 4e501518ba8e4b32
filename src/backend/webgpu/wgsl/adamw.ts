/**
 * AdamW in PyTorch's form, one invocation per parameter. The bias corrections 1 - beta^step are
 * computed on the host in float64 and passed in.
 */
import { LINEAR_GROUP, type KernelDef } from '../kernel.js';
import { ELEMENTWISE_WORKGROUP } from './elementwise.js';

export const adamwKernel: KernelDef = {
  name: 'adamw',
  tensors: [{ name: 'params', write: true }, { name: 'grads' }, { name: 'm', write: true }, { name: 'v', write: true }],
  scalars: [
    { name: 'n', type: 'u32' },
    { name: 'learningRate', type: 'f32' },
    { name: 'beta1', type: 'f32' },
    { name: 'beta2', type: 'f32' },
    { name: 'eps', type: 'f32' },
    { name: 'weightDecay', type: 'f32' },
    { name: 'biasCorrection1', type: 'f32' },
    { name: 'biasCorrection2', type: 'f32' },
  ],
  body: `${LINEAR_GROUP}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * ${ELEMENTWISE_WORKGROUP}u + li;
  if (i >= P.n) { return; }
  let g = $grads[P.o_grads + i];
  let m = P.beta1 * $m[P.o_m + i] + (1.0 - P.beta1) * g;
  let v = P.beta2 * $v[P.o_v + i] + (1.0 - P.beta2) * g * g;
  $m[P.o_m + i] = m;
  $v[P.o_v + i] = v;
  let mHat = m / P.biasCorrection1;
  let vHat = v / P.biasCorrection2;
  let p = $params[P.o_params + i];
  $params[P.o_params + i] = p - P.learningRate * (mHat / (sqrt(vHat) + P.eps) + P.weightDecay * p);
}`,
};
