/**
 * squaredNorm as two passes: each of up to SQNORM_PARTIALS workgroups sums squares over a
 * grid-stride range into partials[g]; one workgroup then adds the partials into out[0]. Both sums
 * are trees over per-thread sums, so no single f32 accumulator sees more than N / 65536 terms.
 * A tensor larger than one binding is summed in pieces, each final pass adding onto out (accumulate).
 */
import type { KernelDef } from '../kernel.js';

export const SQNORM_WORKGROUP = 256;
export const SQNORM_PARTIALS = 256;

const TREE_SUM = `
var<workgroup> partial: array<f32, ${SQNORM_WORKGROUP}>;
fn treeSum(li: u32, value: f32) -> f32 {
  partial[li] = value;
  workgroupBarrier();
  for (var stride = ${SQNORM_WORKGROUP / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { partial[li] = partial[li] + partial[li + stride]; }
    workgroupBarrier();
  }
  return partial[0];
}`;

export const squaredNormPartialKernel: KernelDef = {
  name: 'squaredNormPartial',
  tensors: [{ name: 'partials', write: true }, { name: 't' }],
  scalars: [{ name: 'n', type: 'u32' }],
  body: `${TREE_SUM}
@compute @workgroup_size(${SQNORM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let stride = nwg.x * ${SQNORM_WORKGROUP}u;
  var sum = 0.0;
  for (var i = wid.x * ${SQNORM_WORKGROUP}u + li; i < P.n; i = i + stride) {
    let x = $t[P.o_t + i];
    sum = fma(x, x, sum);
  }
  let total = treeSum(li, sum);
  if (li == 0u) { $partials[P.o_partials + wid.x] = total; }
}`,
};

export const squaredNormFinalKernel: KernelDef = {
  name: 'squaredNormFinal',
  tensors: [{ name: 'out', write: true }, { name: 'partials' }],
  scalars: [
    { name: 'count', type: 'u32' },
    { name: 'accumulate', type: 'u32' },
  ],
  body: `${TREE_SUM}
@compute @workgroup_size(${SQNORM_WORKGROUP})
fn main(@builtin(local_invocation_index) li: u32) {
  var sum = 0.0;
  for (var i = li; i < P.count; i = i + ${SQNORM_WORKGROUP}u) { sum = sum + $partials[P.o_partials + i]; }
  let total = treeSum(li, sum);
  if (li == 0u) { $out[P.o_out] = select(total, $out[P.o_out] + total, P.accumulate == 1u); }
}`,
};
