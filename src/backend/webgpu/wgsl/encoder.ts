/**
 * Token + position embedding. Forward: one invocation per output element. An id outside [0, V)
 * cannot throw on the GPU, so its row becomes NaN: loud downstream, never a silent wrong row.
 *
 * When wte is larger than one binding, the backend dispatches once per slice of token ids
 * [vBase, vBase + vCount) with `wte` bound to that slice (and once per range of rows starting at
 * rowBase when the output is too); a dispatch writes only the rows whose token is in its slice.
 *
 * Backward without float atomics, deterministically: positions are first linked to the next
 * position with the same token, then one workgroup per first occurrence walks its token's chain
 * and adds dout into that row of dwte; dwpe is a sum over the batch per (t, c). Cut into pieces
 * (tensors past one binding), each range of positions links and adds on its own, in order.
 */
import { LINEAR_GROUP, QUIET_NAN, type KernelDef } from '../kernel.js';
import { ELEMENTWISE_WORKGROUP } from './elementwise.js';

export const ENCODER_BACKWARD_WORKGROUP = 64;

/**
 * The forward's body, shared by the float and the quantized embedding: `tokenValue` is WGSL that
 * defines `fn tokenValue(row: u32, c: u32) -> f32`, element c of token row `row` of this slice.
 */
export function encoderForwardBody(tokenValue: string): string {
  return `${LINEAR_GROUP}
${QUIET_NAN}
${tokenValue}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * ${ELEMENTWISE_WORKGROUP}u + li;
  if (i >= P.n) { return; }
  let bt = i / P.C;
  let c = i % P.C;
  let id = $inp[P.o_inp + bt];
  let pos = P.posOffset + (P.rowBase + bt) % P.T;
  if (id < 0 || u32(id) >= P.V) {
    if (P.vBase == 0u) { $out[P.o_out + i] = quietNan(); }
    return;
  }
  let row = u32(id) - P.vBase; // wraps past vCount when id < vBase
  if (row >= P.vCount) { return; }
  $out[P.o_out + i] = tokenValue(row, c) + $wpe[P.o_wpe + pos * P.C + c];
}`;
}

export const encoderForwardKernel: KernelDef = {
  name: 'encoderForward',
  tensors: [{ name: 'out', write: true }, { name: 'inp' }, { name: 'wte' }, { name: 'wpe' }],
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
  body: encoderForwardBody('fn tokenValue(row: u32, c: u32) -> f32 { return $wte[P.o_wte + row * P.C + c]; }'),
};

/**
 * links [2 BT] i32: links[p] = the next position after p with the same token (BT if none),
 * links[BT + p] = 1 if p is the first position of its token. One workgroup per position scans all
 * positions: O(BT^2) integer compares in all, with no per-channel work.
 */
export const encoderLinkTokensKernel: KernelDef = {
  name: 'encoderLinkTokens',
  tensors: [{ name: 'links', write: true }, { name: 'inp' }],
  scalars: [{ name: 'BT', type: 'u32' }],
  body: `${LINEAR_GROUP}
var<workgroup> seenEarlier: atomic<u32>;
var<workgroup> nextSame: atomic<u32>;
@compute @workgroup_size(${ENCODER_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let p = linearGroup(wid, nwg);
  if (p >= P.BT) { return; }
  if (li == 0u) {
    atomicStore(&seenEarlier, 0u);
    atomicStore(&nextSame, P.BT);
  }
  workgroupBarrier();
  let id = $inp[P.o_inp + p];
  for (var q = li; q < P.BT; q = q + ${ENCODER_BACKWARD_WORKGROUP}u) {
    if (q != p && $inp[P.o_inp + q] == id) {
      if (q < p) { atomicStore(&seenEarlier, 1u); } else { atomicMin(&nextSame, q); }
    }
  }
  let first = workgroupUniformLoad(&seenEarlier) == 0u;
  let next = workgroupUniformLoad(&nextSame);
  if (li == 0u) {
    $links[P.o_links + p] = i32(next);
    $links[P.o_links + P.BT + p] = select(0, 1, first);
  }
}`,
};

/**
 * dwte[id] += sum of dout over the chain of positions holding id, walked from its first position;
 * only ids in [vBase, vBase + vCount), the slice of dwte bound.
 */
export const encoderBackwardTokensKernel: KernelDef = {
  name: 'encoderBackwardTokens',
  tensors: [{ name: 'dwte', write: true }, { name: 'dout' }, { name: 'inp' }, { name: 'links' }],
  scalars: [
    { name: 'BT', type: 'u32' },
    { name: 'C', type: 'u32' },
    { name: 'vBase', type: 'u32' },
    { name: 'vCount', type: 'u32' },
  ],
  body: `${LINEAR_GROUP}
@compute @workgroup_size(${ENCODER_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let p = linearGroup(wid, nwg);
  if (p >= P.BT) { return; }
  let id = $inp[P.o_inp + p];
  if ($links[P.o_links + P.BT + p] == 0 || id < 0 || u32(id) - P.vBase >= P.vCount) { return; }
  for (var c = li; c < P.C; c = c + ${ENCODER_BACKWARD_WORKGROUP}u) {
    var sum = 0.0;
    for (var q = p; q < P.BT; q = u32($links[P.o_links + q])) { sum = sum + $dout[P.o_dout + q * P.C + c]; }
    let index = P.o_dwte + (u32(id) - P.vBase) * P.C + c;
    $dwte[index] = $dwte[index] + sum;
  }
}`,
};

export const encoderBackwardPositionsKernel: KernelDef = {
  name: 'encoderBackwardPositions',
  tensors: [{ name: 'dwpe', write: true }, { name: 'dout' }],
  scalars: [
    { name: 'n', type: 'u32' },
    { name: 'B', type: 'u32' },
    { name: 'TC', type: 'u32' },
  ],
  body: `${LINEAR_GROUP}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * ${ELEMENTWISE_WORKGROUP}u + li;
  if (i >= P.n) { return; }
  var sum = 0.0;
  for (var b = 0u; b < P.B; b = b + 1u) { sum = sum + $dout[P.o_dout + b * P.TC + i]; }
  $dwpe[P.o_dwpe + i] = $dwpe[P.o_dwpe + i] + sum;
}`,
};
