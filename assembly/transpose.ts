// out[cols,rows] = inp[rows,cols]^T, in 32x32 tiles (both sides stay in cache) of 4x4 register
// transposes.

const TILE = 32;

/** transposes the 4x4 block at inp (row stride ldi bytes) into out (row stride ldo bytes) */
// @ts-ignore: decorator
@inline function transpose4x4(out: usize, ldo: usize, inp: usize, ldi: usize): void {
  const r0 = v128.load(inp);
  const r1 = v128.load(inp + ldi);
  const r2 = v128.load(inp + 2 * ldi);
  const r3 = v128.load(inp + 3 * ldi);
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(out, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(out + ldo, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(out + 2 * ldo, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(out + 3 * ldo, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

/** out[c*rows + r] = inp[r*cols + c]; out and inp must not overlap */
export function transpose(out: usize, inp: usize, rows: i32, cols: i32): void {
  const ldi = <usize>cols << 2;
  const ldo = <usize>rows << 2;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = min(cols, c0 + TILE);
      let r = r0;
      for (; r + 4 <= r1; r += 4) {
        let c = c0;
        for (; c + 4 <= c1; c += 4) {
          transpose4x4(out + <usize>c * ldo + (<usize>r << 2), ldo, inp + <usize>r * ldi + (<usize>c << 2), ldi);
        }
        for (; c < c1; c++) {
          for (let i = r; i < r + 4; i++) store<f32>(out + <usize>c * ldo + (<usize>i << 2), load<f32>(inp + <usize>i * ldi + (<usize>c << 2)));
        }
      }
      for (; r < r1; r++) {
        for (let c = c0; c < c1; c++) store<f32>(out + <usize>c * ldo + (<usize>r << 2), load<f32>(inp + <usize>r * ldi + (<usize>c << 2)));
      }
    }
  }
}
