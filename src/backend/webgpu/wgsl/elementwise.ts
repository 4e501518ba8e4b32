/** Elementwise kernels: one invocation per element, 256 per workgroup, on a folded 2-D grid. */
import { LINEAR_GROUP, type KernelDef } from '../kernel.js';

export const ELEMENTWISE_WORKGROUP = 256;

/** `body` runs with `i` (element index < P.n) in scope. */
function elementwise(name: string, tensors: KernelDef['tensors'], scalars: KernelDef['scalars'], body: string, helpers = ''): KernelDef {
  return {
    name,
    tensors,
    scalars: [{ name: 'n', type: 'u32' }, ...scalars],
    body: `${LINEAR_GROUP}${helpers}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = linearGroup(wid, nwg) * ${ELEMENTWISE_WORKGROUP}u + li;
  if (i >= P.n) { return; }
${body}
}`,
  };
}

/** dst[i] = src[i] when both views live in one buffer (copyBufferToBuffer cannot do that) */
export const copyKernel = elementwise(
  'copy',
  [{ name: 'dst', write: true }, { name: 'src' }],
  [],
  `
  $dst[P.o_dst + i] = $src[P.o_src + i];`,
);

export const scaleKernel = elementwise(
  'scale',
  [{ name: 't', write: true }],
  [{ name: 's', type: 'f32' }],
  `
  $t[P.o_t + i] = $t[P.o_t + i] * P.s;`,
);

/**
 * out[c, r] = inp[r, c] over a block of `rows` rows of inp (i runs over the block, n = rows * its
 * columns); the full matrices' row lengths are outStride (out) and inpStride (inp).
 */
export const transposeKernel = elementwise(
  'transpose',
  [{ name: 'out', write: true }, { name: 'inp' }],
  [
    { name: 'rows', type: 'u32' },
    { name: 'outStride', type: 'u32' },
    { name: 'inpStride', type: 'u32' },
  ],
  `
  let c = i / P.rows;
  let r = i % P.rows;
  $out[P.o_out + c * P.outStride + r] = $inp[P.o_inp + r * P.inpStride + c];`,
);

export const residualKernel = elementwise(
  'residual',
  [{ name: 'out', write: true }, { name: 'a' }, { name: 'b' }],
  [],
  `
  $out[P.o_out + i] = $a[P.o_a + i] + $b[P.o_b + i];`,
);

export const accumulateKernel = elementwise(
  'accumulate',
  [{ name: 'dst', write: true }, { name: 'src' }],
  [],
  `
  $dst[P.o_dst + i] = $dst[P.o_dst + i] + $src[P.o_src + i];`,
);

/** GELU and its derivative (the contract's tanh form), for this file's kernels and the products' epilogues */
export const GELU_HELPERS = `
const GELU_SCALE: f32 = 0.7978845608028654;
const GELU_CUBIC: f32 = 0.044715;
// tanh of a clamped argument: some drivers build tanh from exp and return NaN for large |x|;
// tanh(15) is 1 in f32 anyway.
fn geluTanh(x: f32) -> f32 { return tanh(clamp(GELU_SCALE * (x + GELU_CUBIC * x * x * x), -15.0, 15.0)); }
fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + geluTanh(x)); }
fn geluGrad(x: f32) -> f32 {
  let th = geluTanh(x);
  let dInner = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * dInner;
}`;

export const geluForwardKernel = elementwise(
  'geluForward',
  [{ name: 'out', write: true }, { name: 'inp' }],
  [],
  `
  $out[P.o_out + i] = gelu($inp[P.o_inp + i]);`,
  GELU_HELPERS,
);

export const geluBackwardKernel = elementwise(
  'geluBackward',
  [{ name: 'dinp', write: true }, { name: 'inp' }, { name: 'dout' }],
  [],
  `
  $dinp[P.o_dinp + i] = $dinp[P.o_dinp + i] + geluGrad($inp[P.o_inp + i]) * $dout[P.o_dout + i];`,
  GELU_HELPERS,
);

/** the contract's dropoutHash, in u32 arithmetic (u32 multiplication wraps like Math.imul) */
const DROPOUT_HASH = `
fn dropoutHash(seed: u32, i: u32) -> u32 {
  var x = i ^ (seed * 0x9e3779b9u);
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}`;

/** `base`: the index of the piece's first element, so the mask does not depend on how an op is cut */
const DROPOUT_SCALARS = [
  { name: 'base', type: 'u32' },
  { name: 'seed', type: 'u32' },
  { name: 'threshold', type: 'u32' },
  { name: 'keptScale', type: 'f32' },
] as const;

export const dropoutForwardKernel = elementwise(
  'dropoutForward',
  [{ name: 'out', write: true }, { name: 'inp' }],
  DROPOUT_SCALARS,
  `
  let kept = dropoutHash(P.seed, P.base + i) >= P.threshold;
  $out[P.o_out + i] = select(0.0, $inp[P.o_inp + i] * P.keptScale, kept);`,
  DROPOUT_HASH,
);

export const dropoutBackwardKernel = elementwise(
  'dropoutBackward',
  [{ name: 'dinp', write: true }, { name: 'dout' }],
  DROPOUT_SCALARS,
  `
  if (dropoutHash(P.seed, P.base + i) >= P.threshold) {
    $dinp[P.o_dinp + i] = $dinp[P.o_dinp + i] + $dout[P.o_dout + i] * P.keptScale;
  }`,
  DROPOUT_HASH,
);
