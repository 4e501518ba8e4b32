/**
 * Tiled causal attention for head sizes up to 64 (GPT-2's), flash style: a 256-invocation workgroup
 * takes 16 query rows of one (batch, head) and walks the keys in tiles of 16 held in shared memory,
 * so each K/V row is read from global memory once per 16 queries instead of once per query (the row
 * kernels of attention.ts, which remain for larger heads and for the KV cache).
 *
 * Invocation li plays two roles: (row r = li / 16, key kk = li % 16) for one score of the 16x16
 * tile, and (row r, lane = li % 16) for head dims lane + 16 j (j < DIMS = ceil(HS / 16)) of row r's
 * output or gradient, kept in scalars (unrolled: register arrays indexed in loops were spilled by
 * NVIDIA's compiler in the matmul kernel).
 *
 * Layout as the row kernels: qkv [B,T,3C] with q, k, v at channel offsets 0, C, 2C; out/dout [B,T,C];
 * lse [B,NH,T].
 */
import type { KernelDef } from '../kernel.js';

/** query rows and keys per tile; QR * KT = 256 invocations */
export const ATTENTION_TILE = 16;
/** the largest head size the tiled kernels take (shared memory: three 16 x HS tiles in 16 KiB) */
export const ATTENTION_TILED_MAX_HEAD = 64;

const TILE = ATTENTION_TILE;

function dims(HS: number): number[] {
  return [...Array(Math.ceil(HS / TILE)).keys()];
}

/** `line(j, d)` for each owned dim d = lane + 16 j, guarded when HS is not a multiple of 16 */
function perDim(HS: number, line: (j: number, d: string) => string): string {
  return dims(HS)
    .map((j) => {
      const d = `(lane + ${TILE * j}u)`;
      const body = line(j, d);
      return (j + 1) * TILE <= HS ? `  ${body}` : `  if (${d} < P.HS) { ${body} }`;
    })
    .join('\n');
}

const SCALARS = [
  { name: 'T', type: 'u32' },
  { name: 'NH', type: 'u32' },
  { name: 'HS', type: 'u32' },
  { name: 'scale', type: 'f32' },
] as const;

/** shared helpers: row geometry inside qkv / out, for batch b, head h, position t */
const ROWS = `
fn qRow(b: u32, h: u32, t: u32) -> u32 { return (b * P.T + t) * 3u * P.NH * P.HS + h * P.HS; }
fn outRow(b: u32, h: u32, t: u32) -> u32 { return (b * P.T + t) * P.NH * P.HS + h * P.HS; }
fn lseIndex(b: u32, h: u32, t: u32) -> u32 { return (b * P.NH + h) * P.T + t; }`;

export function attentionForwardTiledKernel(HS: number): KernelDef {
  const tileFloats = TILE * (HS + 1);
  return {
    name: 'attentionForwardTiled',
    tensors: [{ name: 'out', write: true }, { name: 'lse', write: true }, { name: 'qkv' }],
    scalars: SCALARS,
    body: `${ROWS}
const HSP = ${HS + 1}u; // padded row stride of the shared tiles: rows land in different banks
var<workgroup> qTile: array<f32, ${tileFloats}>;
var<workgroup> kTile: array<f32, ${tileFloats}>;
var<workgroup> vTile: array<f32, ${tileFloats}>;
var<workgroup> pTile: array<f32, 256>;
var<workgroup> rowMax: array<f32, ${TILE}>;
var<workgroup> rowSum: array<f32, ${TILE}>;
var<workgroup> rowCorrection: array<f32, ${TILE}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let t0 = wid.x * ${TILE}u;
  let C = P.NH * P.HS;
  let r = li / ${TILE}u;
  let lane = li % ${TILE}u;
  let t = t0 + r;
  for (var e = li; e < ${TILE}u * P.HS; e = e + 256u) {
    let tq = t0 + e / P.HS;
    qTile[(e / P.HS) * HSP + e % P.HS] = select(0.0, $qkv[P.o_qkv + qRow(b, h, min(tq, P.T - 1u)) + e % P.HS], tq < P.T);
  }
  if (li < ${TILE}u) {
    rowMax[li] = -3.0e38;
    rowSum[li] = 0.0;
  }
${dims(HS)
  .map((j) => `  var o${j} = 0.0;`)
  .join('\n')}
  let keyEnd = min(t0 + ${TILE}u, P.T);
  for (var k0 = 0u; k0 < keyEnd; k0 = k0 + ${TILE}u) {
    workgroupBarrier();
    for (var e = li; e < ${TILE}u * P.HS; e = e + 256u) {
      let j = k0 + e / P.HS;
      let row = P.o_qkv + qRow(b, h, min(j, P.T - 1u)) + C + e % P.HS;
      let padded = (e / P.HS) * HSP + e % P.HS;
      kTile[padded] = select(0.0, $qkv[row], j < P.T);
      vTile[padded] = select(0.0, $qkv[row + C], j < P.T);
    }
    workgroupBarrier();
    let key = k0 + lane;
    var score = -3.0e38;
    if (t < P.T && key <= t) {
      var dot = 0.0;
      for (var d = 0u; d < P.HS; d = d + 1u) { dot = fma(qTile[r * HSP + d], kTile[lane * HSP + d], dot); }
      score = dot * P.scale;
    }
    pTile[li] = score;
    workgroupBarrier();
    if (li < ${TILE}u) {
      let oldMax = rowMax[li];
      var newMax = oldMax;
      for (var kk = 0u; kk < ${TILE}u; kk = kk + 1u) { newMax = max(newMax, pTile[li * ${TILE}u + kk]); }
      rowMax[li] = newMax;
      rowCorrection[li] = exp(oldMax - newMax);
    }
    workgroupBarrier();
    pTile[li] = select(0.0, exp(score - rowMax[r]), score > -1.0e38);
    workgroupBarrier();
    if (li < ${TILE}u) {
      var sum = 0.0;
      for (var kk = 0u; kk < ${TILE}u; kk = kk + 1u) { sum = sum + pTile[li * ${TILE}u + kk]; }
      rowSum[li] = rowSum[li] * rowCorrection[li] + sum;
    }
    let correction = rowCorrection[r];
${perDim(HS, (j) => `o${j} = o${j} * correction;`)}
    for (var kk = 0u; kk < ${TILE}u; kk = kk + 1u) {
      let p = pTile[r * ${TILE}u + kk];
${perDim(HS, (j, d) => `  o${j} = fma(p, vTile[kk * HSP + ${d}], o${j});`)}
    }
  }
  workgroupBarrier();
  if (t < P.T) {
    let inverseSum = 1.0 / rowSum[r];
    let o = P.o_out + outRow(b, h, t);
${perDim(HS, (j, d) => `$out[o + ${d}] = o${j} * inverseSum;`)}
    if (lane == 0u) { $lse[P.o_lse + lseIndex(b, h, t)] = rowMax[r] + log(rowSum[r]); }
  }
}`,
  };
}

/**
 * D[r] = dout[t] . out[t] for the 16 query rows of a tile (= sum_j p_j dp_j), into rowD, through
 * `scratch`. Needs (li, b, h, tq = the row's position, tc = it clamped to T - 1) in scope.
 */
const ROW_DOT = (HS: number): string => `
  var partial = 0.0;
${perDim(HS, (_, d) => `partial = fma($dout[P.o_dout + outRow(b, h, tc) + ${d}], $out[P.o_out + outRow(b, h, tc) + ${d}], partial);`)}
  scratch[li] = select(0.0, partial, tq < P.T);
  workgroupBarrier();
  if (li < ${TILE}u) {
    var sum = 0.0;
    for (var l = 0u; l < ${TILE}u; l = l + 1u) { sum = sum + scratch[li * ${TILE}u + l]; }
    rowD[li] = sum;
  }`;

/**
 * dq for 16 query rows: dq[t] += scale * sum_j ds[t,j] k[j], ds = p (dout[t] . v[j] - D[t]),
 * p = exp(scale q[t] . k[j] - lse[t]); keys j <= t in tiles of 16. Also stores D into rowDots
 * [B,NH,T] for the dk/dv kernel that runs next.
 */
export function attentionBackwardQueryTiledKernel(HS: number): KernelDef {
  const tileFloats = TILE * (HS + 1);
  return {
    name: 'attentionBackwardQueryTiled',
    tensors: [
      { name: 'dqkv', write: true },
      { name: 'rowDots', write: true },
      { name: 'dout' },
      { name: 'qkv' },
      { name: 'out' },
      { name: 'lse' },
    ],
    scalars: SCALARS,
    body: `${ROWS}
const HSP = ${HS + 1}u;
var<workgroup> kTile: array<f32, ${tileFloats}>;
var<workgroup> vTile: array<f32, ${tileFloats}>;
var<workgroup> doutTile: array<f32, ${tileFloats}>;
var<workgroup> scratch: array<f32, 256>;
var<workgroup> rowD: array<f32, ${TILE}>;
var<workgroup> rowLse: array<f32, ${TILE}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let t0 = wid.x * ${TILE}u;
  let C = P.NH * P.HS;
  let r = li / ${TILE}u;
  let lane = li % ${TILE}u;
  let t = t0 + r;
  let tq = t;
  let tc = min(t, P.T - 1u);
  for (var e = li; e < ${TILE}u * P.HS; e = e + 256u) {
    let tr = t0 + e / P.HS;
    doutTile[(e / P.HS) * HSP + e % P.HS] = select(0.0, $dout[P.o_dout + outRow(b, h, min(tr, P.T - 1u)) + e % P.HS], tr < P.T);
  }
  if (li < ${TILE}u) { rowLse[li] = $lse[P.o_lse + lseIndex(b, h, min(t0 + li, P.T - 1u))]; }
${ROW_DOT(HS)}
  workgroupBarrier();
  if (li < ${TILE}u && t0 + li < P.T) { $rowDots[P.o_rowDots + lseIndex(b, h, t0 + li)] = rowD[li]; }
${dims(HS)
  .map((j) => `  var dq${j} = 0.0;`)
  .join('\n')}
  let qOffset = qRow(b, h, tc);
  let qBase = P.o_qkv + qOffset;
  let keyEnd = min(t0 + ${TILE}u, P.T);
  for (var k0 = 0u; k0 < keyEnd; k0 = k0 + ${TILE}u) {
    workgroupBarrier();
    for (var e = li; e < ${TILE}u * P.HS; e = e + 256u) {
      let j = k0 + e / P.HS;
      let row = P.o_qkv + qRow(b, h, min(j, P.T - 1u)) + C + e % P.HS;
      let padded = (e / P.HS) * HSP + e % P.HS;
      kTile[padded] = select(0.0, $qkv[row], j < P.T);
      vTile[padded] = select(0.0, $qkv[row + C], j < P.T);
    }
    workgroupBarrier();
    let key = k0 + lane;
    var ds = 0.0;
    if (t < P.T && key <= t) {
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < P.HS; d = d + 1u) {
        dot = fma($qkv[qBase + d], kTile[lane * HSP + d], dot);
        dp = fma(doutTile[r * HSP + d], vTile[lane * HSP + d], dp);
      }
      ds = exp(dot * P.scale - rowLse[r]) * (dp - rowD[r]);
    }
    scratch[li] = ds;
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE}u; kk = kk + 1u) {
      let g = scratch[r * ${TILE}u + kk];
${perDim(HS, (j, d) => `  dq${j} = fma(g, kTile[kk * HSP + ${d}], dq${j});`)}
    }
  }
  if (t < P.T) {
${perDim(HS, (j, d) => `  $dqkv[P.o_dqkv + qOffset + ${d}] = $dqkv[P.o_dqkv + qOffset + ${d}] + P.scale * dq${j};`)}
  }
}`,
  };
}

/**
 * dk, dv for 16 key rows: over query tiles t >= the first key, dv[j] += sum_t p[t,j] dout[t] and
 * dk[j] += scale * sum_t ds[t,j] q[t]. Invocation (row r, key kk) computes one (query, key) pair;
 * (key r, lane) owns the dims of key row r.
 */
export function attentionBackwardKeyValueTiledKernel(HS: number): KernelDef {
  const tileFloats = TILE * (HS + 1);
  return {
    name: 'attentionBackwardKeyValueTiled',
    tensors: [{ name: 'dqkv', write: true }, { name: 'dout' }, { name: 'qkv' }, { name: 'rowDots' }, { name: 'lse' }],
    scalars: SCALARS,
    body: `${ROWS}
const HSP = ${HS + 1}u;
var<workgroup> kTile: array<f32, ${tileFloats}>;
var<workgroup> vTile: array<f32, ${tileFloats}>;
var<workgroup> pTile: array<f32, 256>;
var<workgroup> dsTile: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.y / P.NH;
  let h = wid.y % P.NH;
  let j0 = wid.x * ${TILE}u;
  let C = P.NH * P.HS;
  let r = li / ${TILE}u;
  let lane = li % ${TILE}u;
  for (var e = li; e < ${TILE}u * P.HS; e = e + 256u) {
    let j = j0 + e / P.HS;
    let row = P.o_qkv + qRow(b, h, min(j, P.T - 1u)) + C + e % P.HS;
    let padded = (e / P.HS) * HSP + e % P.HS;
    kTile[padded] = select(0.0, $qkv[row], j < P.T);
    vTile[padded] = select(0.0, $qkv[row + C], j < P.T);
  }
${dims(HS)
  .map((j) => `  var dk${j} = 0.0;\n  var dv${j} = 0.0;`)
  .join('\n')}
  for (var q0 = j0; q0 < P.T; q0 = q0 + ${TILE}u) {
    // invocation (query row r of this tile, key lane)
    let tq = q0 + r;
    let tc = min(tq, P.T - 1u);
    workgroupBarrier();
    let key = j0 + lane;
    var p = 0.0;
    var ds = 0.0;
    if (tq < P.T && key <= tq) {
      let qBase = P.o_qkv + qRow(b, h, tc);
      let doutBase = P.o_dout + outRow(b, h, tc);
      var dot = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < P.HS; d = d + 1u) {
        dot = fma($qkv[qBase + d], kTile[lane * HSP + d], dot);
        dp = fma($dout[doutBase + d], vTile[lane * HSP + d], dp);
      }
      p = exp(dot * P.scale - $lse[P.o_lse + lseIndex(b, h, tc)]);
      ds = p * (dp - $rowDots[P.o_rowDots + lseIndex(b, h, tc)]);
    }
    pTile[li] = p;
    dsTile[li] = ds;
    workgroupBarrier();
    // invocation (key row r of this tile, lane): sum over the tile's 16 queries
    for (var qq = 0u; qq < ${TILE}u; qq = qq + 1u) {
      let tRow = min(q0 + qq, P.T - 1u);
      let pv = pTile[qq * ${TILE}u + r];
      let g = dsTile[qq * ${TILE}u + r];
      let qBase = P.o_qkv + qRow(b, h, tRow);
      let doutBase = P.o_dout + outRow(b, h, tRow);
${perDim(HS, (j, d) => `  dv${j} = fma(pv, $dout[doutBase + ${d}], dv${j});\n        dk${j} = fma(g, $qkv[qBase + ${d}], dk${j});`)}
    }
  }
  let keyRow = j0 + r;
  if (keyRow < P.T) {
    let kIndex = P.o_dqkv + qRow(b, h, keyRow) + C;
${perDim(HS, (j, d) => `  $dqkv[kIndex + ${d}] = $dqkv[kIndex + ${d}] + P.scale * dk${j};\n      $dqkv[kIndex + C + ${d}] = $dqkv[kIndex + C + ${d}] + dv${j};`)}
  }
}`,
  };
}
