import { allOrNothing, type Allocator } from '../backend/all-or-nothing.js';
import type { Backend, Tensor } from '../backend/contract.js';
import type { BlockActivations, BlockBuffers } from './block.js';
import type { GPTConfig } from './types.js';

/** Per-layer activations kept from forward for backward. */
export interface LayerActs {
  residual: Tensor; // [B,T,C] input of the block
  ln1: Tensor; // [B,T,C]
  ln1Mean: Tensor; // [B,T]
  ln1Rstd: Tensor; // [B,T]
  qkv: Tensor; // [B,T,3C]
  atty: Tensor; // [B,T,C]
  lse: Tensor; // [B,NH,T]
  residual2: Tensor; // [B,T,C]
  ln2: Tensor; // [B,T,C]
  ln2Mean: Tensor; // [B,T]
  ln2Rstd: Tensor; // [B,T]
  fch: Tensor; // [B,T,F]
  fchGelu: Tensor; // [B,T,F]
}

/** Activations and gradient scratch of training for one B*T capacity. */
export interface Workspace {
  capacity: number; // B*T rows
  /** T: attention's tensors are cut only between sequences where a backend stores them in several buffers */
  seqLen: number;
  layers: LayerActs[];
  residualOut: Tensor; // [B,T,C] output of the last block
  proj: Tensor; // [B,T,C] scratch: attention / MLP output projection before the residual add
  lnf: Tensor; // [B,T,C]
  lnfMean: Tensor;
  lnfRstd: Tensor;
  logits: Tensor; // [B,T,V]; reused as dlogits in backward
  probs: Tensor; // [B,T,V]
  losses: Tensor; // [B,T]
  targets: Tensor; // i32 [B,T]
  inputs: Tensor; // i32 [B,T]
  // backward scratch
  dres: Tensor; // [B,T,C]
  dC: Tensor; // [B,T,C]
  dC2: Tensor; // [B,T,C]
  dqkv: Tensor; // [B,T,3C]
  dF: Tensor; // [B,T,F]
}

/** Scratch for cached inference of B rows x Tn new positions. */
export interface InferenceWorkspace {
  capacity: number; // B*Tn rows
  lastRows: number; // B rows
  x: Tensor; // [B,Tn,C] residual stream
  ln: Tensor; // [B,Tn,C]
  mean: Tensor;
  rstd: Tensor;
  qkv: Tensor; // [B,Tn,3C]
  atty: Tensor; // [B,Tn,C]
  proj: Tensor; // [B,Tn,C]
  fch: Tensor; // [B,Tn,F]
  ids: Tensor; // i32 [B,Tn]
  lastLn: Tensor; // [B,C]
  lastMean: Tensor;
  lastRstd: Tensor;
  logits: Tensor; // [B,V]
}

/** [rows, width] activations; a backend that must store one in several buffers cuts between rows */
function rowAllocator(b: Allocator): (rowCount: number, width: number) => Tensor {
  return (rowCount, width) => b.alloc(rowCount * width, 'f32', width);
}

export function allocWorkspace(b: Allocator, config: GPTConfig, rows: number, seqLen: number): Workspace {
  const { dModel: C, dFF: F, nHeads: NH, vocabSize: V, nLayers: L } = config;
  const a = rowAllocator(b);
  // attention reads a whole sequence: its tensors are cut only between sequences
  const bySequence = (width: number) => b.alloc(rows * width, 'f32', seqLen * width);
  const layers: LayerActs[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      residual: a(rows, C),
      ln1: a(rows, C),
      ln1Mean: a(rows, 1),
      ln1Rstd: a(rows, 1),
      qkv: bySequence(3 * C),
      atty: bySequence(C),
      lse: bySequence(NH),
      residual2: a(rows, C),
      ln2: a(rows, C),
      ln2Mean: a(rows, 1),
      ln2Rstd: a(rows, 1),
      fch: a(rows, F),
      fchGelu: a(rows, F),
    });
  }
  return {
    capacity: rows,
    seqLen,
    layers,
    residualOut: a(rows, C),
    proj: a(rows, C),
    lnf: a(rows, C),
    lnfMean: a(rows, 1),
    lnfRstd: a(rows, 1),
    logits: a(rows, V),
    probs: a(rows, V),
    losses: a(rows, 1),
    targets: b.alloc(rows, 'i32'),
    inputs: b.alloc(rows, 'i32'),
    dres: a(rows, C),
    dC: bySequence(C),
    dC2: a(rows, C),
    dqkv: bySequence(3 * C),
    dF: a(rows, F),
  };
}

export function freeWorkspace(b: Backend, ws: Workspace): void {
  for (const layer of ws.layers) freeTensors(b, layer);
  freeTensors(b, ws, 'layers');
}

/** layer l's activations over the first N rows of a training workspace; its output is the next layer's input (or residualOut) */
export function trainingBlockActivations(b: Backend, config: GPTConfig, ws: Workspace, l: number, N: number): BlockActivations {
  const { dModel: C, dFF: F, nHeads: NH, nLayers: L } = config;
  const rows = (t: Tensor, width: number) => b.view(t, 0, N * width);
  const acts = ws.layers[l];
  return {
    input: rows(acts.residual, C),
    ln1: rows(acts.ln1, C),
    ln1Mean: rows(acts.ln1Mean, 1),
    ln1Rstd: rows(acts.ln1Rstd, 1),
    qkv: rows(acts.qkv, 3 * C),
    atty: rows(acts.atty, C),
    lse: rows(acts.lse, NH),
    proj: rows(ws.proj, C),
    residual2: rows(acts.residual2, C),
    ln2: rows(acts.ln2, C),
    ln2Mean: rows(acts.ln2Mean, 1),
    ln2Rstd: rows(acts.ln2Rstd, 1),
    fch: rows(acts.fch, F),
    fchGelu: rows(acts.fchGelu, F),
    output: l + 1 < L ? rows(ws.layers[l + 1].residual, C) : rows(ws.residualOut, C),
  };
}

export function allocInference(b: Allocator, config: GPTConfig, capacity: number, lastRows: number): InferenceWorkspace {
  const { dModel: C, dFF: F, vocabSize: V } = config;
  const a = rowAllocator(b);
  return {
    capacity,
    lastRows,
    x: a(capacity, C),
    ln: a(capacity, C),
    mean: a(capacity, 1),
    rstd: a(capacity, 1),
    qkv: a(capacity, 3 * C),
    atty: a(capacity, C),
    proj: a(capacity, C),
    fch: a(capacity, F),
    ids: b.alloc(capacity, 'i32'),
    lastLn: a(lastRows, C),
    lastMean: a(lastRows, 1),
    lastRstd: a(lastRows, 1),
    logits: a(lastRows, V),
  };
}

export function freeInference(b: Backend, ws: InferenceWorkspace): void {
  freeTensors(b, ws);
}

/**
 * `current` when it holds `rows` new positions and `lastRows` rows of logits, else a new workspace
 * at least as large as both (`current` is freed first; the allocation is all or nothing). The
 * caller drops its reference to `current` before calling: on failure it has been freed.
 */
export function inferenceFor(
  b: Backend,
  config: GPTConfig,
  current: InferenceWorkspace | null,
  rows: number,
  lastRows: number,
): InferenceWorkspace {
  if (current && current.capacity >= rows && current.lastRows >= lastRows) return current;
  if (current) freeInference(b, current);
  const capacity = Math.max(rows, current?.capacity ?? 0);
  const last = Math.max(lastRows, current?.lastRows ?? 0);
  return allOrNothing(b, (allocator) => allocInference(allocator, config, capacity, last));
}

/**
 * The block buffers of cached inference over N rows: the residual stream x is each block's input,
 * middle and output (residualForward may write over its first input), and fch holds its GELU in place.
 */
export function inferenceBlockBuffers(b: Backend, config: GPTConfig, ws: InferenceWorkspace, N: number): BlockBuffers {
  const { dModel: C, dFF: F } = config;
  const rows = (t: Tensor, width: number) => b.view(t, 0, N * width);
  const x = rows(ws.x, C);
  const ln = rows(ws.ln, C);
  const mean = rows(ws.mean, 1);
  const rstd = rows(ws.rstd, 1);
  const fch = rows(ws.fch, F);
  return {
    input: x,
    ln1: ln,
    ln1Mean: mean,
    ln1Rstd: rstd,
    qkv: rows(ws.qkv, 3 * C),
    atty: rows(ws.atty, C),
    proj: rows(ws.proj, C),
    residual2: x,
    ln2: ln,
    ln2Mean: mean,
    ln2Rstd: rstd,
    fch,
    fchGelu: fch,
    output: x,
  };
}

/** free every tensor field of `record` but `skip` (its number fields are sizes) */
function freeTensors(b: Backend, record: object, skip?: string): void {
  for (const [key, value] of Object.entries(record) as [string, unknown][])
    if (key !== skip && typeof value === 'object') b.free(value as Tensor);
}
