// Token + position embedding. Forward takes a range of rows (b*T+t) and backward, which scatters
// into rows of dwte that several positions may share, a range of columns [c0, c1) over every row in
// order: threads split both without changing any element's summation order.

/**
 * Rows bt in [bt0, bt1) of out[B,T,C] = wte[inp[b,t], :] + wpe[posOffset + t, :]. Returns -1, or the
 * first flat index (b*T+t) of the range whose token id is outside [0, V) (rows before it are written).
 */
export function encoderForwardRows(out: usize, inp: usize, wte: usize, wpe: usize, T: i32, C: i32, V: i32, posOffset: i32, bt0: i32, bt1: i32): i32 {
  const cBytes = <usize>C << 2;
  for (let bt = bt0; bt < bt1; bt++) {
    const id = load<i32>(inp + (<usize>bt << 2));
    if (id < 0 || id >= V) return bt;
    const t = bt % T;
    const y = out + <usize>bt * cBytes;
    const a = wte + <usize>id * cBytes;
    const p = wpe + <usize>(posOffset + t) * cBytes;
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c << 2;
      v128.store(y + o, f32x4.add(v128.load(a + o), v128.load(p + o)));
    }
    for (; c < C; c++) {
      const o = <usize>c << 2;
      store<f32>(y + o, load<f32>(a + o) + load<f32>(p + o));
    }
  }
  return -1;
}

/**
 * Columns [c0, c1) of dwte[inp[b,t]] += dout[b,t] and dwpe[t] += dout[b,t], rows in order. Every id
 * is checked first: returns -1, or the first bad id's flat index, and then nothing is written.
 */
export function encoderBackwardCols(dwte: usize, dwpe: usize, dout: usize, inp: usize, B: i32, T: i32, C: i32, V: i32, c0: i32, c1: i32): i32 {
  for (let bt = 0; bt < B * T; bt++) {
    const id = load<i32>(inp + (<usize>bt << 2));
    if (id < 0 || id >= V) return bt;
  }
  const cBytes = <usize>C << 2;
  for (let bt = 0; bt < B * T; bt++) {
    const id = load<i32>(inp + (<usize>bt << 2));
    const t = bt % T;
    const g = dout + <usize>bt * cBytes;
    const a = dwte + <usize>id * cBytes;
    const p = dwpe + <usize>t * cBytes;
    let c = c0;
    for (; c + 4 <= c1; c += 4) {
      const o = <usize>c << 2;
      const gv = v128.load(g + o);
      v128.store(a + o, f32x4.add(v128.load(a + o), gv));
      v128.store(p + o, f32x4.add(v128.load(p + o), gv));
    }
    for (; c < c1; c++) {
      const o = <usize>c << 2;
      const gs = load<f32>(g + o);
      store<f32>(a + o, load<f32>(a + o) + gs);
      store<f32>(p + o, load<f32>(p + o) + gs);
    }
  }
  return -1;
}
