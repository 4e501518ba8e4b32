/**
 * Epilogues of the matrix products (wgsl/matmul.ts): what becomes of a finished element of
 * C[M,N], value = (A @ B)(m, n) + bias[n], on its way to memory. Folding GELU, the residual add and
 * GELU's backward in here saves the elementwise pass (a dispatch, and a read and write of C) that
 * would follow the product. `aux` [M,N] is laid out like C (row stride sCm).
 *
 * - store: C = value, or C += value with `accumulate` (the plain product)
 * - gelu: aux = value when hasAux (the pre-activation, kept for backward); C = gelu(value)
 * - residual: C = aux + value (aux may be C itself: the residual stream in place)
 * - geluBackward: C += gelu'(aux) * value (aux the pre-activation; C the gradient it accumulates into)
 */
import type { KernelDef } from '../kernel.js';
import { GELU_HELPERS } from './elementwise.js';

export type EpilogueKind = 'store' | 'gelu' | 'residual' | 'geluBackward';

/** the aux tensor an epilogue binds (none for a plain store) */
export function epilogueTensors(kind: EpilogueKind): KernelDef['tensors'] {
  if (kind === 'store') return [];
  return [{ name: 'aux', write: kind === 'gelu' }];
}

/** WGSL: `finish(index, at, value)` stores value into $c[index]; `at` is the element's offset in aux */
export function epilogueWgsl(kind: EpilogueKind): string {
  const finish = (body: string) => `
fn finish(index: u32, at: u32, value: f32) {
${body}
}`;
  switch (kind) {
    case 'store':
      return finish(`  var total = value;
  if (P.accumulate == 1u) { total = total + $c[index]; }
  $c[index] = total;`);
    case 'gelu':
      return `${GELU_HELPERS}${finish(`  if (P.hasAux == 1u) { $aux[P.o_aux + at] = value; }
  $c[index] = gelu(value);`)}`;
    case 'residual':
      return finish(`  $c[index] = $aux[P.o_aux + at] + value;`);
    case 'geluBackward':
      return `${GELU_HELPERS}${finish(`  $c[index] = $c[index] + geluGrad($aux[P.o_aux + at]) * value;`)}`;
  }
}
