/**
 * Causal attention by rows: one 64-invocation workgroup per (query row, batch*head), flash style:
 * keys are visited in chunks of 64 with a running max and sum, so T is bounded by nothing but time.
 * Used for the KV cache and for head sizes above 64; attention-tiled.ts serves training otherwise.
 * Scores are s = scale * q . k; lse = max + log(sum exp(s - max)) is saved for backward, which
 * recomputes p = exp(s - lse) instead of storing [T, T] probabilities.
 *
 * Rows are addressed through strides: q(b,t) = q[o_q + b*qBatch + t*qRow + h*HS + d] (qkv [B,T,3C]);
 * keys from posStart on are the query rows' own, read from qkv beside q (k at + C, v at + 2C); keys
 * before posStart come from a KV cache [B,cacheLen,C]: k(b,j) = k[o_k + b*kBatch + j*kRow + h*HS + d],
 * likewise v. Training has posStart = 0 (every key from qkv, the cache bindings unused). With
 * append = 1 (decoding) the kernel also writes the new rows' k and v into the cache at posStart + t,
 * so the append takes no dispatch of its own: no workgroup reads a cache row at or past posStart.
 * out is [B,T,C].
 *
 * Lanes: every invocation owns head dims d = lane + 64 * r for r < lanes = ceil(HS / 64).
 *
 * Decoding gives this kernel one query row per sequence: B*NH workgroups, each walking the whole
 * cache. The split variant cuts the keys into `splits` ranges of keysPerSplit, one workgroup each,
 * and writes each range's running max, sum and weighted values to partials [T, B*NH, splits, 2+HS];
 * attentionCombineKernel then merges the ranges (flash decoding).
 */
import type { KernelDef } from '../kernel.js';

export const ATTENTION_WORKGROUP = 64;

export function headLanes(HS: number): number {
  return Math.ceil(HS / ATTENTION_WORKGROUP);
}

const W = ATTENTION_WORKGROUP;

const REDUCE = `
var<workgroup> scratch: array<f32, ${W}>;
fn workgroupMax(li: u32, value: f32) -> f32 {
  workgroupBarrier();
  scratch[li] = value;
  workgroupBarrier();
  for (var stride = ${W / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { scratch[li] = max(scratch[li], scratch[li + stride]); }
    workgroupBarrier();
  }
  return scratch[0];
}
fn workgroupSum(li: u32, value: f32) -> f32 {
  workgroupBarrier();
  scratch[li] = value;
  workgroupBarrier();
  for (var stride = ${W / 2}u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) { scratch[li] = scratch[li] + scratch[li + stride]; }
    workgroupBarrier();
  }
  return scratch[0];
}`;

const GEOMETRY_SCALARS = [
  { name: 'T', type: 'u32' },
  { name: 'NH', type: 'u32' },
  { name: 'HS', type: 'u32' },
  { name: 'scale', type: 'f32' },
  { name: 'qBatch', type: 'u32' },
  { name: 'qRow', type: 'u32' },
  { name: 'kBatch', type: 'u32' },
  { name: 'kRow', type: 'u32' },
] as const;

const BACKWARD_SCALARS = GEOMETRY_SCALARS.slice(0, 4);

/**
 * Forward over keys 0..posStart+t for query t (workgroup x = t, or t * splits + split). With
 * hasLse = 0 the lse binding is unused (the cached path passes `out` there); without a cache (training)
 * `out` fills the k and v bindings too. Split: `out` is the partials tensor, and the first key range
 * of each (query row, head) appends its k and v.
 */
export function attentionForwardKernel(lanes: number, split = false): KernelDef {
  const epilogue = split
    ? `  let partialBase = P.o_out + ((t * P.BNH + wid.y) * P.splits + s) * (P.HS + 2u);
  if (li == 0u) {
    $out[partialBase] = runningMax;
    $out[partialBase + 1u] = runningSum;
  }
  for (var r = 0u; r < LANES; r = r + 1u) {
    let d = li + r * ${W}u;
    if (d < P.HS) { $out[partialBase + 2u + d] = acc[r]; }
  }`
    : `  let outBase = P.o_out + (b * P.T + t) * P.NH * P.HS + h * P.HS;
  for (var r = 0u; r < LANES; r = r + 1u) {
    let d = li + r * ${W}u;
    if (d < P.HS) { $out[outBase + d] = acc[r] / runningSum; }
  }
  if (P.hasLse == 1u && li == 0u) { $lse[P.o_lse + (b * P.NH + h) * P.T + t] = runningMax + log(runningSum); }`;
  return {
    name: split ? 'attentionForwardSplit' : 'attentionForward',
    tensors: [
      { name: 'out', write: true },
      { name: 'lse', write: true },
      { name: 'q' },
      { name: 'k', write: true },
      { name: 'v', write: true },
    ],
    scalars: [
      ...GEOMETRY_SCALARS,
      { name: 'posStart', type: 'u32' },
      { name: 'append', type: 'u32' },
      { name: 'hasLse', type: 'u32' },
      { name: 'BNH', type: 'u32' },
      { name: 'splits', type: 'u32' },
      { name: 'keysPerSplit', type: 'u32' },
    ],
    body: `${REDUCE}
const LANES = ${lanes}u;
var<workgroup> qShared: array<f32, ${lanes * W}>;
var<workgroup> weights: array<f32, ${W}>;
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wid.x / P.splits;
  let s = wid.x % P.splits;
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let qBase = P.o_q + b * P.qBatch + t * P.qRow + h * P.HS;
  let kBase = P.o_k + b * P.kBatch + h * P.HS;
  let vBase = P.o_v + b * P.kBatch + h * P.HS;
  // key posStart + i is query row i's: its k, v sit in qkv beside its q
  let C = P.NH * P.HS;
  let newKeyBase = P.o_q + b * P.qBatch + C + h * P.HS;
  let newValueBase = newKeyBase + C;
  for (var d = li; d < P.HS; d = d + ${W}u) { qShared[d] = $q[qBase + d]; }
  if (P.append == 1u && s == 0u) {
    let row = (P.posStart + t) * P.kRow;
    for (var d = li; d < P.HS; d = d + ${W}u) {
      $k[kBase + row + d] = $q[newKeyBase + t * P.qRow + d];
      $v[vBase + row + d] = $q[newValueBase + t * P.qRow + d];
    }
  }
  workgroupBarrier();
  let keyStart = s * P.keysPerSplit;
  let keyEnd = min(P.posStart + t + 1u, keyStart + P.keysPerSplit);
  var runningMax = -3.0e38;
  var runningSum = 0.0;
  var acc: array<f32, LANES>;
  for (var j0 = keyStart; j0 < keyEnd; j0 = j0 + ${W}u) {
    let j = j0 + li;
    var score = -3.0e38;
    if (j < keyEnd) {
      var dot = 0.0;
      if (j < P.posStart) {
        let kRow = kBase + j * P.kRow;
        for (var d = 0u; d < P.HS; d = d + 1u) { dot = fma(qShared[d], $k[kRow + d], dot); }
      } else {
        let kRow = newKeyBase + (j - P.posStart) * P.qRow;
        for (var d = 0u; d < P.HS; d = d + 1u) { dot = fma(qShared[d], $q[kRow + d], dot); }
      }
      score = dot * P.scale;
    }
    let newMax = max(runningMax, workgroupMax(li, score));
    let weight = select(0.0, exp(score - newMax), j < keyEnd);
    let correction = exp(runningMax - newMax);
    runningSum = runningSum * correction + workgroupSum(li, weight);
    weights[li] = weight;
    workgroupBarrier();
    let chunk = min(${W}u, keyEnd - j0);
    for (var r = 0u; r < LANES; r = r + 1u) {
      let d = li + r * ${W}u;
      if (d < P.HS) {
        var sum = acc[r] * correction;
        for (var jj = 0u; jj < chunk; jj = jj + 1u) {
          let key = j0 + jj;
          var value: f32;
          if (key < P.posStart) {
            value = $v[vBase + key * P.kRow + d];
          } else {
            value = $q[newValueBase + (key - P.posStart) * P.qRow + d];
          }
          sum = fma(weights[jj], value, sum);
        }
        acc[r] = sum;
      }
    }
    runningMax = newMax;
  }
${epilogue}
}`,
  };
}

/**
 * out(b, t, h) = the key ranges of the split forward merged: with m the largest range max,
 * sum_s acc_s exp(m_s - m) / sum_s sum_s exp(m_s - m). One workgroup per (query row, batch*head).
 */
export function attentionCombineKernel(lanes: number): KernelDef {
  return {
    name: 'attentionCombine',
    tensors: [{ name: 'out', write: true }, { name: 'partials' }],
    scalars: [
      { name: 'T', type: 'u32' },
      { name: 'NH', type: 'u32' },
      { name: 'HS', type: 'u32' },
      { name: 'BNH', type: 'u32' },
      { name: 'splits', type: 'u32' },
    ],
    body: `
const LANES = ${lanes}u;
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wid.x;
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let rowBase = P.o_partials + (t * P.BNH + wid.y) * P.splits * (P.HS + 2u);
  var m = -3.0e38;
  for (var s = 0u; s < P.splits; s = s + 1u) { m = max(m, $partials[rowBase + s * (P.HS + 2u)]); }
  var total = 0.0;
  var acc: array<f32, LANES>;
  for (var s = 0u; s < P.splits; s = s + 1u) {
    let base = rowBase + s * (P.HS + 2u);
    let factor = exp($partials[base] - m);
    total = fma($partials[base + 1u], factor, total);
    for (var r = 0u; r < LANES; r = r + 1u) {
      let d = li + r * ${W}u;
      if (d < P.HS) { acc[r] = fma($partials[base + 2u + d], factor, acc[r]); }
    }
  }
  let outBase = P.o_out + (b * P.T + t) * P.NH * P.HS + h * P.HS;
  for (var r = 0u; r < LANES; r = r + 1u) {
    let d = li + r * ${W}u;
    if (d < P.HS) { $out[outBase + d] = acc[r] / total; }
  }
}`,
  };
}

/**
 * Backward, dq part: one workgroup per query row t.
 * dq += scale * sum_j ds_j k_j, ds_j = p_j (dout . v_j - D), D = dout . out (= sum_j p_j dp_j).
 */
export function attentionBackwardQueryKernel(lanes: number): KernelDef {
  return {
    name: 'attentionBackwardQuery',
    tensors: [{ name: 'dqkv', write: true }, { name: 'dout' }, { name: 'qkv' }, { name: 'out' }, { name: 'lse' }],
    scalars: BACKWARD_SCALARS,
    body: `${REDUCE}
const LANES = ${lanes}u;
var<workgroup> qShared: array<f32, ${lanes * W}>;
var<workgroup> doutShared: array<f32, ${lanes * W}>;
var<workgroup> dscores: array<f32, ${W}>;
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t = wid.x;
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let C = P.NH * P.HS;
  let rowBase = P.o_qkv + (b * P.T + t) * 3u * C + h * P.HS;
  let doutBase = P.o_dout + (b * P.T + t) * C + h * P.HS;
  let outBase = P.o_out + (b * P.T + t) * C + h * P.HS;
  var dPartial = 0.0;
  for (var d = li; d < P.HS; d = d + ${W}u) {
    qShared[d] = $qkv[rowBase + d];
    let g = $dout[doutBase + d];
    doutShared[d] = g;
    dPartial = fma(g, $out[outBase + d], dPartial);
  }
  let D = workgroupSum(li, dPartial);
  let rowLse = $lse[P.o_lse + (b * P.NH + h) * P.T + t];
  let keyBase = P.o_qkv + b * P.T * 3u * C + C + h * P.HS;
  var acc: array<f32, LANES>;
  for (var j0 = 0u; j0 <= t; j0 = j0 + ${W}u) {
    let j = j0 + li;
    var ds = 0.0;
    if (j <= t) {
      let kRow = keyBase + j * 3u * C;
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < P.HS; d = d + 1u) {
        dot = fma(qShared[d], $qkv[kRow + d], dot);
        dp = fma(doutShared[d], $qkv[kRow + C + d], dp);
      }
      ds = exp(dot * P.scale - rowLse) * (dp - D);
    }
    workgroupBarrier();
    dscores[li] = ds;
    workgroupBarrier();
    let chunk = min(${W}u, t + 1u - j0);
    for (var r = 0u; r < LANES; r = r + 1u) {
      let d = li + r * ${W}u;
      if (d < P.HS) {
        var sum = acc[r];
        for (var jj = 0u; jj < chunk; jj = jj + 1u) { sum = fma(dscores[jj], $qkv[keyBase + (j0 + jj) * 3u * C + d], sum); }
        acc[r] = sum;
      }
    }
  }
  let dqBase = P.o_dqkv + (b * P.T + t) * 3u * C + h * P.HS;
  for (var r = 0u; r < LANES; r = r + 1u) {
    let d = li + r * ${W}u;
    if (d < P.HS) { $dqkv[dqBase + d] = $dqkv[dqBase + d] + P.scale * acc[r]; }
  }
}`,
  };
}

/**
 * Backward, dk and dv part: one workgroup per key row j, over the queries t >= j.
 * dk += scale * sum_t ds_t q_t; dv += sum_t p_t dout_t.
 */
export function attentionBackwardKeyValueKernel(lanes: number): KernelDef {
  return {
    name: 'attentionBackwardKeyValue',
    tensors: [{ name: 'dqkv', write: true }, { name: 'dout' }, { name: 'qkv' }, { name: 'out' }, { name: 'lse' }],
    scalars: BACKWARD_SCALARS,
    body: `
const LANES = ${lanes}u;
var<workgroup> kShared: array<f32, ${lanes * W}>;
var<workgroup> vShared: array<f32, ${lanes * W}>;
var<workgroup> probs: array<f32, ${W}>;
var<workgroup> dscores: array<f32, ${W}>;
@compute @workgroup_size(${W})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let j = wid.x;
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let C = P.NH * P.HS;
  let keyRow = P.o_qkv + (b * P.T + j) * 3u * C + C + h * P.HS;
  for (var d = li; d < P.HS; d = d + ${W}u) {
    kShared[d] = $qkv[keyRow + d];
    vShared[d] = $qkv[keyRow + C + d];
  }
  workgroupBarrier();
  var dk: array<f32, LANES>;
  var dv: array<f32, LANES>;
  for (var t0 = j; t0 < P.T; t0 = t0 + ${W}u) {
    let t = t0 + li;
    var p = 0.0;
    var ds = 0.0;
    if (t < P.T) {
      let qRow = P.o_qkv + (b * P.T + t) * 3u * C + h * P.HS;
      let doutRow = P.o_dout + (b * P.T + t) * C + h * P.HS;
      let outRow = P.o_out + (b * P.T + t) * C + h * P.HS;
      var dot = 0.0;
      var dp = 0.0;
      var D = 0.0;
      for (var d = 0u; d < P.HS; d = d + 1u) {
        let g = $dout[doutRow + d];
        dot = fma($qkv[qRow + d], kShared[d], dot);
        dp = fma(g, vShared[d], dp);
        D = fma(g, $out[outRow + d], D);
      }
      p = exp(dot * P.scale - $lse[P.o_lse + (b * P.NH + h) * P.T + t]);
      ds = p * (dp - D);
    }
    workgroupBarrier();
    probs[li] = p;
    dscores[li] = ds;
    workgroupBarrier();
    let chunk = min(${W}u, P.T - t0);
    for (var r = 0u; r < LANES; r = r + 1u) {
      let d = li + r * ${W}u;
      if (d < P.HS) {
        var sumK = dk[r];
        var sumV = dv[r];
        for (var ii = 0u; ii < chunk; ii = ii + 1u) {
          let row = (b * P.T + t0 + ii);
          sumK = fma(dscores[ii], $qkv[P.o_qkv + row * 3u * C + h * P.HS + d], sumK);
          sumV = fma(probs[ii], $dout[P.o_dout + row * C + h * P.HS + d], sumV);
        }
        dk[r] = sumK;
        dv[r] = sumV;
      }
    }
  }
  let dkBase = P.o_dqkv + (b * P.T + j) * 3u * C + C + h * P.HS;
  for (var r = 0u; r < LANES; r = r + 1u) {
    let d = li + r * ${W}u;
    if (d < P.HS) {
      $dqkv[dkBase + d] = $dqkv[dkBase + d] + P.scale * dk[r];
      $dqkv[dkBase + C + d] = $dqkv[dkBase + C + d] + dv[r];
    }
  }
}`,
  };
}
