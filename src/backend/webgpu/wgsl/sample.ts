/**
 * sampleTokens: one workgroup per row of logits [B,V] writes one token id into ids [B].
 *
 * Every pass streams the row from memory (nothing of size V is kept) and ends in a workgroup
 * reduction:
 * 1. argmax of v = logit / temperature over the allowed ids (lowest id among ties), and whether a
 *    NaN or +Infinity makes the row unusable. Greedy rows stop here.
 * 2. top-k: the k-th highest v, found by bisection on its 32-bit order key (32 counting passes: a
 *    radix select that never sorts). Kept: key(v) >= that key, so ties of the k-th are kept.
 * 3. top-p: the same bisection over the weights w = exp(v - max) of the kept tokens: the highest key
 *    whose tokens at or above it weigh at least topP of the total (ties kept together).
 * 4. min-p: w >= minP.
 * 5. the draw: each lane owns a contiguous chunk of ids and sums its kept weights; a scan over the
 *    lanes gives each chunk's start; the lane whose chunk holds u * total walks it in id order to
 *    the first id whose running sum passes u * total (the CPU's inverse CDF, in float32).
 * -Infinity logits and ids >= allowed are banned. A row with no token left or a bad logit gets -1.
 */
import { LINEAR_GROUP, type KernelDef } from '../kernel.js';

export const SAMPLE_WORKGROUP = 256;

export const sampleTokensKernel: KernelDef = {
  name: 'sampleTokens',
  tensors: [{ name: 'ids', write: true }, { name: 'logits' }, { name: 'uniforms' }],
  scalars: [
    { name: 'B', type: 'u32' },
    { name: 'V', type: 'u32' },
    { name: 'allowed', type: 'u32' },
    { name: 'greedy', type: 'u32' },
    { name: 'topK', type: 'u32' },
    { name: 'temperature', type: 'f32' },
    { name: 'topP', type: 'f32' },
    { name: 'minP', type: 'f32' },
  ],
  body: `${LINEAR_GROUP}
const WG = ${SAMPLE_WORKGROUP}u;
const NONE = 0xffffffffu;
const NEG_INF_BITS = 0xff800000u;
var<workgroup> floats: array<f32, ${SAMPLE_WORKGROUP}>;
var<workgroup> words: array<u32, ${SAMPLE_WORKGROUP}>;

// each reduction reads its result, then waits, so the next one may reuse the scratch
fn sumF(li: u32, value: f32) -> f32 {
  floats[li] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (li < s) { floats[li] = floats[li] + floats[li + s]; }
    workgroupBarrier();
  }
  let total = floats[0];
  workgroupBarrier();
  return total;
}

fn sumU(li: u32, value: u32) -> u32 {
  words[li] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (li < s) { words[li] = words[li] + words[li + s]; }
    workgroupBarrier();
  }
  let total = words[0];
  workgroupBarrier();
  return total;
}

fn maxU(li: u32, value: u32) -> u32 {
  words[li] = value;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (li < s) { words[li] = max(words[li], words[li + s]); }
    workgroupBarrier();
  }
  let total = words[0];
  workgroupBarrier();
  return total;
}

// the (value, id) of the highest value, lowest id among ties; id NONE: no value
fn argmax(li: u32, value: f32, id: u32) -> u32 {
  floats[li] = value;
  words[li] = id;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (li < s) {
      let otherId = words[li + s];
      let otherValue = floats[li + s];
      let mine = words[li];
      if (otherId != NONE && (mine == NONE || otherValue > floats[li] || (otherValue == floats[li] && otherId < mine))) {
        floats[li] = otherValue;
        words[li] = otherId;
      }
    }
    workgroupBarrier();
  }
  let best = words[0];
  workgroupBarrier();
  return best;
}

// a u32 whose unsigned order is the float order (-0 taken as +0)
fn orderKey(x: f32) -> u32 {
  var bits = bitcast<u32>(x);
  if (bits == 0x80000000u) { bits = 0u; }
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// NaN or +Infinity: no token can be chosen from the row
fn unusable(bits: u32) -> bool {
  return (bits & 0x7fffffffu) > 0x7f800000u || bits == 0x7f800000u;
}

fn logitBits(base: u32, i: u32) -> u32 {
  return bitcast<u32>($logits[base + i]);
}

// logit / temperature (the CPU's temperature warper leaves t = 1 alone)
fn scaled(base: u32, i: u32) -> f32 {
  let x = $logits[base + i];
  return select(x / P.temperature, x, P.temperature == 1.0);
}

// weight exp(v - top) of id i when it survives the key cuts and the weight floor, else 0
fn kept(base: u32, i: u32, top: f32, fromKey: u32, minWeight: f32) -> f32 {
  if (logitBits(base, i) == NEG_INF_BITS) { return 0.0; }
  let v = scaled(base, i);
  if (orderKey(v) < fromKey) { return 0.0; }
  let w = exp(v - top);
  return select(0.0, w, w >= minWeight);
}

@compute @workgroup_size(${SAMPLE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = linearGroup(wid, nwg);
  if (row >= P.B) { return; }
  let base = P.o_logits + row * P.V;
  let n = P.allowed;

  // 1. argmax and unusable logits
  var bad = 0u;
  var bestValue = 0.0;
  var bestId = NONE;
  for (var i = li; i < n; i = i + WG) {
    let bits = logitBits(base, i);
    if (unusable(bits)) { bad = 1u; }
    else if (bits != NEG_INF_BITS) {
      let v = scaled(base, i);
      if (bestId == NONE || v > bestValue) { bestValue = v; bestId = i; }
    }
  }
  let rowBad = maxU(li, bad);
  let best = argmax(li, bestValue, bestId);
  let top = floats[0];
  workgroupBarrier();
  var chosen = best;

  if (P.greedy == 0u) {
    // 2. top-k: the highest key with at least topK allowed tokens at or above it
    var kKey = 0u;
    if (P.topK > 0u) {
      for (var bit = 31i; bit >= 0i; bit = bit - 1i) {
        let candidate = kKey | (1u << u32(bit));
        var count = 0u;
        for (var i = li; i < n; i = i + WG) {
          if (logitBits(base, i) != NEG_INF_BITS && orderKey(scaled(base, i)) >= candidate) { count = count + 1u; }
        }
        if (sumU(li, count) >= P.topK) { kKey = candidate; }
      }
    }

    // 3. top-p: the highest key whose tokens at or above it weigh at least topP of the top-k total
    var pKey = 0u;
    if (P.topP < 1.0) {
      var part = 0.0;
      for (var i = li; i < n; i = i + WG) { part = part + kept(base, i, top, kKey, 0.0); }
      let need = P.topP * sumF(li, part);
      for (var bit = 31i; bit >= 0i; bit = bit - 1i) {
        let candidate = pKey | (1u << u32(bit));
        var mass = 0.0;
        for (var i = li; i < n; i = i + WG) { mass = mass + kept(base, i, top, max(kKey, candidate), 0.0); }
        if (sumF(li, mass) >= need) { pKey = candidate; }
      }
    }

    // 5. the draw over contiguous chunks (4. min-p is inside kept)
    let chunk = (n + WG - 1u) / WG;
    let start = min(li * chunk, n);
    let end = min(start + chunk, n);
    var own = 0.0;
    var lastKept = 0u;
    for (var i = start; i < end; i = i + 1u) {
      let w = kept(base, i, top, max(kKey, pKey), P.minP);
      own = own + w;
      if (w > 0.0) { lastKept = i + 1u; }
    }
    // inclusive scan of the chunk sums over the lanes
    floats[li] = own;
    workgroupBarrier();
    for (var s = 1u; s < WG; s = s << 1u) {
      let add = select(0.0, floats[max(li, s) - s], li >= s);
      workgroupBarrier();
      floats[li] = floats[li] + add;
      workgroupBarrier();
    }
    let before = select(0.0, floats[max(li, 1u) - 1u], li > 0u);
    let through = floats[li];
    let total = floats[WG - 1u];
    workgroupBarrier();
    let goal = $uniforms[P.o_uniforms + row] * total;
    var pick = 0u;
    if (before <= goal && goal < through) {
      var running = before;
      for (var i = start; i < end; i = i + 1u) {
        let w = kept(base, i, top, max(kKey, pKey), P.minP);
        running = running + w;
        if (w > 0.0) { pick = i + 1u; }
        if (goal < running) { break; }
      }
    }
    let picked = maxU(li, pick);
    // goal at or past the total (rounding): the last possible token, as on the CPU
    let last = maxU(li, lastKept);
    chosen = select(last, picked, picked > 0u) - 1u;
    if (last == 0u) { chosen = NONE; }
  }

  if (li == 0u) { $ids[P.o_ids + row] = select(i32(chosen), -1i, rowBad != 0u || best == NONE || chosen == NONE); }
}`,
};
