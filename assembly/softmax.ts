// Fused softmax + cross-entropy over rows of V logits, ignore index -1. Each kernel takes a range of
// rows [n0, n1), which threads split (rows are independent, so results equal one thread's).
import { exp4, exp1, hsum, hmax } from './math';

const IGNORE_INDEX = -1;
// lane sums are folded into an f64 every this many floats, so long rows (GPT-2's V = 50257) keep
// f32 rounding per chunk only
const SUM_CHUNK = 256;

/**
 * Rows [n0, n1) of losses[N] = -log softmax(logits)[target] (0 where target is -1) and
 * probs[N,V] = softmax(logits). Returns -1, or the first row of the range whose target is outside
 * [-1, V) (nothing after it is written).
 */
export function crossEntropyForwardRows(losses: usize, probs: usize, logits: usize, targets: usize, V: i32, n0: i32, n1: i32): i32 {
  const rowBytes = <usize>V << 2;
  for (let n = n0; n < n1; n++) {
    const target = load<i32>(targets + (<usize>n << 2));
    if (target < IGNORE_INDEX || target >= V) return n;
    const x = logits + <usize>n * rowBytes;
    const p = probs + <usize>n * rowBytes;
    let mx = f32x4.splat(-Infinity);
    let v = 0;
    for (; v + 4 <= V; v += 4) mx = f32x4.max(mx, v128.load(x + (<usize>v << 2)));
    let maxv = hmax(mx);
    for (; v < V; v++) maxv = max(maxv, load<f32>(x + (<usize>v << 2)));
    const maxSplat = f32x4.splat(maxv);
    // e = exp(x - max) into probs, summed
    let total: f64 = 0;
    v = 0;
    while (v + 4 <= V) {
      const end = min(V, v + SUM_CHUNK);
      let acc = f32x4.splat(0);
      for (; v + 4 <= end; v += 4) {
        const o = <usize>v << 2;
        const e = exp4(f32x4.sub(v128.load(x + o), maxSplat));
        v128.store(p + o, e);
        acc = f32x4.add(acc, e);
      }
      total += <f64>hsum(acc);
    }
    for (; v < V; v++) {
      const o = <usize>v << 2;
      const e = exp1(load<f32>(x + o) - maxv);
      store<f32>(p + o, e);
      total += <f64>e;
    }
    const inv = f32x4.splat(<f32>(1.0 / total));
    v = 0;
    for (; v + 4 <= V; v += 4) {
      const o = <usize>v << 2;
      v128.store(p + o, f32x4.mul(v128.load(p + o), inv));
    }
    for (; v < V; v++) {
      const o = <usize>v << 2;
      store<f32>(p + o, load<f32>(p + o) * f32x4.extract_lane(inv, 0));
    }
    // loss = logsumexp - logit[target], in f64 (no log of a tiny probability)
    const loss: f64 = target == IGNORE_INDEX ? 0 : Math.log(total) + <f64>maxv - <f64>load<f32>(x + (<usize>target << 2));
    store<f32>(losses + (<usize>n << 2), <f32>loss);
  }
  return -1;
}

/**
 * Rows [n0, n1) of dlogits[N,V] += (probs[n,:] - onehot(target)) * scale; rows with target -1
 * contribute nothing. Every target[N] is checked first: returns -1, or the first row whose target is
 * outside [-1, V), and then nothing is written (dlogits accumulates, so a half-done call would be lost).
 */
export function crossEntropyBackwardRows(dlogits: usize, probs: usize, targets: usize, scale: f32, N: i32, V: i32, n0: i32, n1: i32): i32 {
  for (let n = 0; n < N; n++) {
    const target = load<i32>(targets + (<usize>n << 2));
    if (target < IGNORE_INDEX || target >= V) return n;
  }
  const rowBytes = <usize>V << 2;
  const sv = f32x4.splat(scale);
  for (let n = n0; n < n1; n++) {
    const target = load<i32>(targets + (<usize>n << 2));
    if (target == IGNORE_INDEX) continue;
    const d = dlogits + <usize>n * rowBytes;
    const p = probs + <usize>n * rowBytes;
    const t = d + (<usize>target << 2);
    const dTargetBefore = load<f32>(t);
    let v = 0;
    for (; v + 4 <= V; v += 4) {
      const o = <usize>v << 2;
      v128.store(d + o, f32x4.add(v128.load(d + o), f32x4.mul(v128.load(p + o), sv)));
    }
    for (; v < V; v++) {
      const o = <usize>v << 2;
      store<f32>(d + o, load<f32>(d + o) + load<f32>(p + o) * scale);
    }
    // (p - 1) * scale for the target, computed as such: p*scale - scale cancels when p is near 1
    store<f32>(t, dTargetBefore + (load<f32>(p + (<usize>target << 2)) - 1.0) * scale);
  }
  return -1;
}
