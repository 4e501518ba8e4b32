/**
 * Quantized inference ops on WebGPU (kernels in wgsl/quant.ts): how matmulQuantForward and
 * encoderQuantForward are recorded, in pieces where a tensor exceeds one binding (a token table
 * larger than a binding runs once per slice of token ids, as encoderForward). The tensors come
 * checked and trimmed to what the op reads.
 */
import type { QuantFormat } from '../contract.js';
import { fewRowsChunks } from './products.js';
import type { PieceAccess, Recorder } from './recorder.js';
import type { WebGPUTensor } from './storage.js';
import { kChunkSumKernel } from './wgsl/matmul.js';
import {
  encoderQuantKernels,
  gemvQuantKernel,
  matmulQuantKernels,
  QUANT_GEMV_COLUMNS,
  QUANT_GEMV_MAX_ROWS,
  QUANT_TILE,
  quantBlockWords,
} from './wgsl/quant.js';

/** the fewest blocks of 32 per chunk of K in the few-rows product */
const GEMV_MIN_CHUNK_BLOCKS = 4;

/** the scales' binding: one scale per block of 32 along a row of `blocks` blocks; f16 has none */
function scalesBinding(scales: WebGPUTensor | null, blocks: number): Record<string, PieceAccess> {
  return scales === null ? {} : { scales: { tensor: scales, strides: [0, blocks], extent: blocks } };
}

/** out[M,N] = inp[M,K] @ W^T (+ bias), W [N,K] quantized (quants, and scales unless f16) */
export function recordMatmulQuant(
  rec: Recorder,
  t: { out: WebGPUTensor; inp: WebGPUTensor; quants: WebGPUTensor; scales: WebGPUTensor | null; bias: WebGPUTensor | null },
  { M, K, N, format }: { M: number; K: number; N: number; format: QuantFormat },
): void {
  const blocks = K / 32;
  const rowWords = blocks * quantBlockWords(format);
  const { out, inp, quants, scales, bias } = t;
  // [M rows, N columns]; without a bias the output fills the bias binding and hasBias = 0 leaves it unread
  rec.inPieces(
    'matmulQuantForward',
    [M, N],
    {
      out: { tensor: out, strides: [N, 1], extent: 1, write: true },
      inp: { tensor: inp, strides: [K, 0], extent: K },
      quants: { tensor: quants, strides: [0, rowWords], extent: rowWords },
      ...scalesBinding(scales, blocks),
      bias: { tensor: bias ?? out, strides: bias ? [0, 1] : [N, 1], extent: 1, write: bias === null },
    },
    (piece, views) => {
      const [pieceM, pieceN] = piece.size;
      if (pieceM <= QUANT_GEMV_MAX_ROWS) {
        fewRowsQuant(rec, views, bias !== null, { M: pieceM, N: pieceN, K, sOm: N, format });
        return;
      }
      const rowTiles = Math.ceil(pieceM / QUANT_TILE);
      if (rowTiles > rec.maxWorkgroupsPerDim) {
        throw new RangeError(
          `matmulQuantForward: M = ${pieceM} needs ${rowTiles} row tiles, more than the adapter's ${rec.maxWorkgroupsPerDim}`,
        );
      }
      rec.dispatch(matmulQuantKernels[format], {
        tensors: views,
        scalars: { M: pieceM, N: pieceN, K, sOm: N, hasBias: bias ? 1 : 0 },
        groups: [Math.ceil(pieceN / QUANT_TILE), rowTiles],
      });
    },
  );
}

/** decoding's product: partial sums over chunks of K's blocks, then their total with the bias */
function fewRowsQuant(
  rec: Recorder,
  views: Record<string, WebGPUTensor>,
  hasBias: boolean,
  { M, N, K, sOm, format }: { M: number; N: number; K: number; sOm: number; format: QuantFormat },
): void {
  const blocks = K / 32;
  const columnGroups = Math.ceil(N / QUANT_GEMV_COLUMNS);
  const { chunk: chunkBlocks, chunks } = fewRowsChunks(blocks, columnGroups, GEMV_MIN_CHUNK_BLOCKS);
  const partials = rec.scratch(chunks * M * N);
  const { out, bias, ...weights } = views;
  rec.dispatch(gemvQuantKernel(format, M), {
    tensors: { partials, ...weights },
    scalars: { N, K, chunkBlocks },
    groups: [columnGroups, chunks],
    variant: `rows${M}`,
  });
  rec.dispatchElementwise(
    kChunkSumKernel(),
    M * N,
    { c: out, partials, bias: hasBias ? bias : out },
    { N, sCm: sOm, chunks, hasBias: hasBias ? 1 : 0, accumulate: 0, hasAux: 0 },
  );
  rec.release(partials);
}

/** out[B,T,C] = dequant(W)[inp[b,t], :] + wpe[posOffset + t, :], W [V,C] quantized */
export function recordEncoderQuant(
  rec: Recorder,
  t: { out: WebGPUTensor; inp: WebGPUTensor; quants: WebGPUTensor; scales: WebGPUTensor | null; wpe: WebGPUTensor },
  { B, T, C, V, posOffset, format }: { B: number; T: number; C: number; V: number; posOffset: number; format: QuantFormat },
): void {
  const blocks = C / 32;
  const rowWords = blocks * quantBlockWords(format);
  // [BT rows, V token ids]: a piece writes the rows whose token falls in its slice of W
  rec.inPieces(
    'encoderQuantForward',
    [B * T, V],
    {
      out: { tensor: t.out, strides: [C, 0], extent: C, write: true },
      inp: { tensor: t.inp, strides: [1, 0], extent: 1 },
      quants: { tensor: t.quants, strides: [0, rowWords], extent: rowWords },
      ...scalesBinding(t.scales, blocks),
      wpe: { tensor: t.wpe, strides: [0, 0], extent: (posOffset + T) * C },
    },
    (piece, views) => {
      rec.dispatchElementwise(encoderQuantKernels[format], piece.size[0] * C, views, {
        T,
        C,
        V,
        posOffset,
        rowBase: piece.start[0],
        vBase: piece.start[1],
        vCount: piece.size[1],
      });
    },
  );
}
