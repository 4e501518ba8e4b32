// Optimizer ops: AdamW update, squared norm (for global-norm clipping), scale.
import { hsum } from './math';

// lane sums are folded into an f64 every this many floats
const SUM_CHUNK = 1024;

/**
 * PyTorch-form AdamW over n elements. bc1 = 1 - beta1^step and bc2 = 1 - beta2^step come from the
 * caller (computed in f64 there).
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/bc1 / (sqrt(v/bc2) + eps) + wd p)
 */
export function adamwUpdate(params: usize, grads: usize, m: usize, v: usize, n: i32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32): void {
  const b1 = f32x4.splat(beta1), ob1 = f32x4.splat(1.0 - beta1);
  const b2 = f32x4.splat(beta2), ob2 = f32x4.splat(1.0 - beta2);
  const lrv = f32x4.splat(lr), epsv = f32x4.splat(eps), wdv = f32x4.splat(weightDecay);
  const bc1v = f32x4.splat(bc1), bc2v = f32x4.splat(bc2);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const g = v128.load(grads + o);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(ob1, g));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(ob2, f32x4.mul(g, g)));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const p = v128.load(params + o);
    const mhat = f32x4.div(mi, bc1v);
    const vhat = f32x4.div(vi, bc2v);
    const upd = f32x4.add(f32x4.div(mhat, f32x4.add(f32x4.sqrt(vhat), epsv)), f32x4.mul(wdv, p));
    v128.store(params + o, f32x4.sub(p, f32x4.mul(lrv, upd)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(grads + o);
    const mi = beta1 * load<f32>(m + o) + (1.0 - beta1) * g;
    const vi = beta2 * load<f32>(v + o) + (1.0 - beta2) * g * g;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const p = load<f32>(params + o);
    store<f32>(params + o, p - lr * ((mi / bc1) / (Mathf.sqrt(vi / bc2) + eps) + weightDecay * p));
  }
}

/** sum of t[i]^2 over n elements: f32x4 lanes per chunk, chunks summed in f64 */
export function squaredNorm(t: usize, n: i32): f64 {
  let total: f64 = 0;
  let i = 0;
  while (i + 4 <= n) {
    const end = min(n, i + SUM_CHUNK);
    let acc = f32x4.splat(0);
    for (; i + 4 <= end; i += 4) {
      const x = v128.load(t + (<usize>i << 2));
      acc = f32x4.add(acc, f32x4.mul(x, x));
    }
    total += <f64>hsum(acc);
  }
  for (; i < n; i++) {
    const x = <f64>load<f32>(t + (<usize>i << 2));
    total += x * x;
  }
  return total;
}

/** t[i] *= s for n elements */
export function scale(t: usize, s: f32, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(t + o, f32x4.mul(v128.load(t + o), sv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(t + o, load<f32>(t + o) * s);
  }
}
