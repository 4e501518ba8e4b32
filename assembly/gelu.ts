// GELU, tanh form. 0.5 (1 + tanh(u)) equals sigmoid(2u), so gelu(x) = x / (1 + e^(-2u)) with
// u = sqrt(2/pi) (x + 0.044715 x^3): no cancellation for very negative x, unlike 1 + tanh(u).
import { exp4 } from './math';

const GELU_SCALE: f32 = 0.7978845608028654; // sqrt(2/pi)
const GELU_CUBE: f32 = 0.044715;

/** sigmoid(2u) per lane */
// @ts-ignore: decorator
@inline function sigmoid2u(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const u = f32x4.mul(f32x4.splat(GELU_SCALE), f32x4.add(x, f32x4.mul(f32x4.splat(GELU_CUBE), x3)));
  const e = exp4(f32x4.mul(u, f32x4.splat(-2.0)));
  return f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), e));
}

/** gelu'(x) per lane: s + x * 2 s (1 - s) du/dx, s = sigmoid(2u) */
// @ts-ignore: decorator
@inline function geluGrad(x: v128): v128 {
  const s = sigmoid2u(x);
  const oneMinusS = f32x4.sub(f32x4.splat(1.0), s);
  const x2 = f32x4.mul(x, x);
  const du = f32x4.mul(f32x4.splat(GELU_SCALE), f32x4.add(f32x4.splat(1.0), f32x4.mul(f32x4.splat(3.0 * GELU_CUBE), x2)));
  return f32x4.add(s, f32x4.mul(f32x4.mul(x, f32x4.mul(f32x4.splat(2.0), f32x4.mul(s, oneMinusS))), du));
}

/** out[i] = gelu(inp[i]) for N elements; out may alias inp */
export function geluForward(out: usize, inp: usize, N: i32): void {
  let i = 0;
  for (; i + 4 <= N; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(inp + o);
    v128.store(out + o, f32x4.mul(x, sigmoid2u(x)));
  }
  for (; i < N; i++) {
    const o = <usize>i << 2;
    const x = f32x4.splat(load<f32>(inp + o));
    store<f32>(out + o, f32x4.extract_lane(f32x4.mul(x, sigmoid2u(x)), 0));
  }
}

/** dinp[i] += gelu'(inp[i]) * dout[i] */
export function geluBackward(dinp: usize, inp: usize, dout: usize, N: i32): void {
  let i = 0;
  for (; i + 4 <= N; i += 4) {
    const o = <usize>i << 2;
    const g = f32x4.mul(geluGrad(v128.load(inp + o)), v128.load(dout + o));
    v128.store(dinp + o, f32x4.add(v128.load(dinp + o), g));
  }
  for (; i < N; i++) {
    const o = <usize>i << 2;
    const g = f32x4.extract_lane(geluGrad(f32x4.splat(load<f32>(inp + o))), 0) * load<f32>(dout + o);
    store<f32>(dinp + o, load<f32>(dinp + o) + g);
  }
}
