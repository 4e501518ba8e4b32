// LayerNorm over the last dim C (eps given by the caller, biased variance), llm.c's formulation.
// Forward and the input gradient take a range of rows [n0, n1), the weight and bias gradients a
// range of columns [c0, c1) over every row in order, so threads split them without changing any
// element's summation order (results equal one thread's bit for bit).
import { hsum } from './math';

/** rows [n0, n1) of out[N,C] = (inp - mean) * rstd * weight + bias; saves mean[N], rstd[N] */
export function layerNormForwardRows(
  out: usize, mean: usize, rstd: usize, inp: usize, weight: usize, bias: usize, C: i32, eps: f32, n0: i32, n1: i32,
): void {
  const rowBytes = <usize>C << 2;
  for (let n = n0; n < n1; n++) {
    const x = inp + <usize>n * rowBytes;
    const y = out + <usize>n * rowBytes;
    let acc = f32x4.splat(0);
    let c = 0;
    for (; c + 4 <= C; c += 4) acc = f32x4.add(acc, v128.load(x + (<usize>c << 2)));
    let s = hsum(acc);
    for (; c < C; c++) s += load<f32>(x + (<usize>c << 2));
    const m = s / <f32>C;
    const mv = f32x4.splat(m);
    acc = f32x4.splat(0);
    c = 0;
    for (; c + 4 <= C; c += 4) {
      const d = f32x4.sub(v128.load(x + (<usize>c << 2)), mv);
      acc = f32x4.add(acc, f32x4.mul(d, d));
    }
    let ss = hsum(acc);
    for (; c < C; c++) {
      const d = load<f32>(x + (<usize>c << 2)) - m;
      ss += d * d;
    }
    const r: f32 = 1.0 / Mathf.sqrt(ss / <f32>C + eps);
    const rv = f32x4.splat(r);
    c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c << 2;
      const norm = f32x4.mul(f32x4.sub(v128.load(x + o), mv), rv);
      v128.store(y + o, f32x4.add(f32x4.mul(norm, v128.load(weight + o)), v128.load(bias + o)));
    }
    for (; c < C; c++) {
      const o = <usize>c << 2;
      store<f32>(y + o, (load<f32>(x + o) - m) * r * load<f32>(weight + o) + load<f32>(bias + o));
    }
    store<f32>(mean + (<usize>n << 2), m);
    store<f32>(rstd + (<usize>n << 2), r);
  }
}

/**
 * Rows [n0, n1) of dinp[N,C] += rstd * (w*dout - mean(w*dout) - norm * mean(w*dout*norm)),
 * norm = (inp - mean) * rstd.
 */
export function layerNormBackwardInputRows(
  dinp: usize, dout: usize, inp: usize, weight: usize, mean: usize, rstd: usize, C: i32, n0: i32, n1: i32,
): void {
  const rowBytes = <usize>C << 2;
  for (let n = n0; n < n1; n++) {
    const x = inp + <usize>n * rowBytes;
    const dy = dout + <usize>n * rowBytes;
    const dx = dinp + <usize>n * rowBytes;
    const m = load<f32>(mean + (<usize>n << 2));
    const r = load<f32>(rstd + (<usize>n << 2));
    const mv = f32x4.splat(m);
    const rv = f32x4.splat(r);
    // two row reductions: mean(w*dout) and mean(w*dout*norm)
    let accA = f32x4.splat(0);
    let accB = f32x4.splat(0);
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c << 2;
      const norm = f32x4.mul(f32x4.sub(v128.load(x + o), mv), rv);
      const wd = f32x4.mul(v128.load(weight + o), v128.load(dy + o));
      accA = f32x4.add(accA, wd);
      accB = f32x4.add(accB, f32x4.mul(wd, norm));
    }
    let sA = hsum(accA);
    let sB = hsum(accB);
    for (; c < C; c++) {
      const o = <usize>c << 2;
      const norm = (load<f32>(x + o) - m) * r;
      const wd = load<f32>(weight + o) * load<f32>(dy + o);
      sA += wd;
      sB += wd * norm;
    }
    const meanA = sA / <f32>C;
    const meanB = sB / <f32>C;
    const meanAv = f32x4.splat(meanA);
    const meanBv = f32x4.splat(meanB);
    c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c << 2;
      const norm = f32x4.mul(f32x4.sub(v128.load(x + o), mv), rv);
      const wd = f32x4.mul(v128.load(weight + o), v128.load(dy + o));
      const t = f32x4.sub(f32x4.sub(wd, meanAv), f32x4.mul(norm, meanBv));
      v128.store(dx + o, f32x4.add(v128.load(dx + o), f32x4.mul(t, rv)));
    }
    for (; c < C; c++) {
      const o = <usize>c << 2;
      const norm = (load<f32>(x + o) - m) * r;
      const wd = load<f32>(weight + o) * load<f32>(dy + o);
      store<f32>(dx + o, load<f32>(dx + o) + (wd - meanA - norm * meanB) * r);
    }
  }
}

/** Columns [c0, c1) of dweight[C] += sum_n norm[n,:] * dout[n,:] and dbias[C] += sum_n dout[n,:], rows in order */
export function layerNormBackwardParamsCols(
  dweight: usize, dbias: usize, dout: usize, inp: usize, mean: usize, rstd: usize, N: i32, C: i32, c0: i32, c1: i32,
): void {
  const rowBytes = <usize>C << 2;
  for (let n = 0; n < N; n++) {
    const x = inp + <usize>n * rowBytes;
    const dy = dout + <usize>n * rowBytes;
    const m = load<f32>(mean + (<usize>n << 2));
    const r = load<f32>(rstd + (<usize>n << 2));
    const mv = f32x4.splat(m);
    const rv = f32x4.splat(r);
    let c = c0;
    for (; c + 4 <= c1; c += 4) {
      const o = <usize>c << 2;
      const g = v128.load(dy + o);
      if (dbias) v128.store(dbias + o, f32x4.add(v128.load(dbias + o), g));
      if (dweight) v128.store(dweight + o, f32x4.add(v128.load(dweight + o), f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + o), mv), rv), g)));
    }
    for (; c < c1; c++) {
      const o = <usize>c << 2;
      const g = load<f32>(dy + o);
      if (dbias) store<f32>(dbias + o, load<f32>(dbias + o) + g);
      if (dweight) store<f32>(dweight + o, load<f32>(dweight + o) + (load<f32>(x + o) - m) * r * g);
    }
  }
}
