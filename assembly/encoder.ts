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
 * Columns [c0, c1) of dwte[inp[b,t]] += dout[b,t] and dwpe[t] += dout[b,t], rows in order; either
 * table may be 0 (null: frozen, no gradient work). With dwte every id is checked first: returns -1,
 * or the first bad id's flat index, and then nothing is written.
 */
export function encoderBackwardCols(dwte: usize, dwpe: usize, dout: usize, inp: usize, B: i32, T: i32, C: i32, V: i32, c0: i32, c1: i32): i32 {
  if (dwte) {
    for (let bt = 0; bt < B * T; bt++) {
      const id = load<i32>(inp + (<usize>bt << 2));
      if (id < 0 || id >= V) return bt;
    }
  }
  const cBytes = <usize>C << 2;
  for (let bt = 0; bt < B * T; bt++) {
    const g = dout + <usize>bt * cBytes;
    if (dwte) addRow(dwte + <usize>load<i32>(inp + (<usize>bt << 2)) * cBytes, g, c0, c1);
    if (dwpe) addRow(dwpe + <usize>(bt % T) * cBytes, g, c0, c1);
  }
  return -1;
}

/** columns [c0, c1) of row dst += row src */
// @ts-ignore: decorator
@inline function addRow(dst: usize, src: usize, c0: i32, c1: i32): void {
  let c = c0;
  for (; c + 4 <= c1; c += 4) {
    const o = <usize>c << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; c < c1; c++) {
    const o = <usize>c << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}
