/**
 * Matrix products on WebGPU: how C[M,N] (+)= A @ B is planned into dispatches. The tiled kernel
 * with a 4x4 or 8x8 register block, split K for few output tiles over a long K, and the few-rows
 * (GEMV-like) kernel for decoding; see wgsl/matmul.ts. Column sums (bias and LayerNorm parameter
 * gradients) are planned here too.
 */
import { COLUMN_CHUNK_ROWS, COLUMN_MAX_CHUNKS } from './wgsl/columns.js';
import {
  GEMV_COLUMNS,
  GEMV_MAX_ROWS,
  kChunkSumKernel,
  gemvPartialKernel,
  matmulKernel,
  matmulTile,
  matmulVariant,
  matmulWorkgroupBytes,
  type MatmulBlock,
  type MatmulLayout,
} from './wgsl/matmul.js';
import type { EpilogueKind } from './wgsl/epilogue.js';
import type { PieceAccess, Recorder } from './recorder.js';
import type { WebGPUTensor } from './storage.js';

/**
 * What the product does with each finished element (see wgsl/epilogue.ts), and the tensors that
 * takes: `aux` [M,N] laid out like C (null: gelu keeps no pre-activation); `layerNorm` normalises
 * A's rows on the way in (few-rows products only: the caller falls back otherwise).
 */
export interface ProductEpilogue {
  kind: EpilogueKind;
  aux: WebGPUTensor | null;
  layerNorm?: { weight: WebGPUTensor; bias: WebGPUTensor };
}

const PLAIN: ProductEpilogue = { kind: 'store', aux: null };

/**
 * Split K: products with fewer output tiles than this are cut along K, aiming for this many
 * workgroups, each chunk at least this long (see wgsl/matmul.ts)
 */
const SPLIT_K_MAX_TILES = 128;
const SPLIT_K_TARGET_WORKGROUPS = 512;
const SPLIT_K_MIN_CHUNK = 512;

/** workgroups the few-rows products aim for (fewRowsChunks), and the fewest k per chunk of the float32 one */
const GEMV_TARGET_WORKGROUPS = 512;
const GEMV_MIN_CHUNK = 32;

/**
 * 128x128 tiles of C from which the 8x8 register block pays: on an H200, GPT-2 small's training
 * products at 8 x 256 tokens (M 2048, N 768: 96 tiles) took 101 ms of GPU time per step with it
 * against 111 ms with the 4x4 block's 64x64 tiles (bench/webgpu-profile.mjs --matmul-block)
 */
const LARGE_TILE_MIN_TILES = 96;

/** strides of A and B (element step per unit of m, k and k, n) and the product's dimensions */
export interface ProductShape {
  M: number;
  N: number;
  K: number;
  sAm: number;
  sAk: number;
  sBk: number;
  sBn: number;
}

/**
 * C[M,N] (+)= A @ B (+ bias) through strides; see wgsl/matmul.ts. Where the operands exceed one
 * binding, it runs over blocks of [M, N, K]; a block past the first along K adds onto C. With an
 * epilogue other than a plain store the product cannot be cut: then it records nothing and returns
 * false (the caller composes the unfused ops instead).
 */
export function product(
  rec: Recorder,
  matmulBlock: 'auto' | MatmulBlock,
  c: WebGPUTensor,
  a: WebGPUTensor,
  b: WebGPUTensor,
  bias: WebGPUTensor | null,
  accumulate: boolean,
  shape: ProductShape,
  epilogue: ProductEpilogue = PLAIN,
): boolean {
  const { M, N, K, sAm, sAk, sBk, sBn } = shape;
  const kind = epilogue.kind;
  const access: Record<'c' | 'a' | 'b' | 'bias' | 'aux', PieceAccess> = {
    c: { tensor: c, strides: [N, 1, 0], extent: 1, write: true },
    a: { tensor: a, strides: [sAm, 0, sAk], extent: 1 },
    b: { tensor: b, strides: [0, sBn, sBk], extent: 1 },
    bias: { tensor: bias ?? c, strides: bias ? [0, 1, 0] : [N, 1, 0], extent: 1, write: bias === null },
    // without an aux tensor the output fills its binding; hasAux = 0 leaves it alone
    aux: { tensor: epilogue.aux ?? c, strides: [N, 1, 0], extent: 1, write: kind === 'gelu' || epilogue.aux === null },
  };
  return rec.inPieces(
    'matmul',
    [M, N, K],
    access,
    (piece, views) => {
      const [pieceM, pieceN, pieceK] = piece.size;
      const firstAlongK = piece.start[2] === 0;
      const fewRows = pieceM <= GEMV_MAX_ROWS && sAk === 1 && sBn === 1;
      if (epilogue.layerNorm && !(fewRows && pieceK === K))
        throw new Error('internal: a LayerNorm prologue needs the few-rows product over all of K');
      if (fewRows) {
        fewRowsProduct(rec, views, bias !== null && firstAlongK, accumulate || !firstAlongK, epilogue, {
          M: pieceM,
          N: pieceN,
          K: pieceK,
          sCm: N,
          sAm,
          sBk,
        });
        return;
      }
      const largeTiles = Math.ceil(pieceM / matmulTile(8)) * Math.ceil(pieceN / matmulTile(8));
      const block = matmulBlock === 'auto' ? (largeTiles >= LARGE_TILE_MIN_TILES ? 8 : 4) : matmulBlock;
      const padded: MatmulLayout = { aAlongK: sAk === 1, bAlongN: sBn === 1, block, padded: true };
      // a device with WebGPU's default 16 KB of workgroup memory has no room for the padded 8x8 tiles
      const layout = matmulWorkgroupBytes(padded) <= rec.maxWorkgroupBytes ? padded : { ...padded, padded: false };
      const tile = matmulTile(block);
      const rowTiles = Math.ceil(pieceM / tile);
      if (rowTiles > rec.maxWorkgroupsPerDim) {
        throw new RangeError(
          `matmul: M = ${pieceM} needs ${rowTiles} row tiles, more than the adapter's ${rec.maxWorkgroupsPerDim} workgroups per dimension`,
        );
      }
      const hasBias = bias !== null && firstAlongK;
      const addOnto = accumulate || !firstAlongK;
      const columnTiles = Math.ceil(pieceN / tile);
      const shape = { M: pieceM, N: pieceN, K: pieceK, sAm, sAk, sBk, sBn };
      // few output tiles over a long K: cut K across workgroups (z) into partial sums, then add them
      const tiles = columnTiles * rowTiles;
      const splits =
        tiles >= SPLIT_K_MAX_TILES
          ? 1
          : Math.min(
              Math.ceil(SPLIT_K_TARGET_WORKGROUPS / tiles),
              Math.floor(pieceK / SPLIT_K_MIN_CHUNK),
              Math.floor(rec.maxBindingElems / (pieceM * pieceN)),
            );
      if (splits > 1) {
        const kChunk = Math.ceil(pieceK / splits / 16) * 16;
        const slices = Math.ceil(pieceK / kChunk);
        const partials = rec.scratch(slices * pieceM * pieceN);
        rec.dispatch(matmulKernel(layout), {
          tensors: { c: partials, a: views.a, b: views.b, bias: partials },
          scalars: { ...shape, sCm: pieceN, hasBias: 0, accumulate: 0, hasAux: 0, kChunk, splitStride: pieceM * pieceN },
          groups: [columnTiles, rowTiles, slices],
          variant: matmulVariant(layout),
        });
        rec.dispatchElementwise(
          kChunkSumKernel(kind),
          pieceM * pieceN,
          { ...finishingTensors(epilogue, views, hasBias), partials },
          {
            N: pieceN,
            sCm: N,
            chunks: slices,
            hasBias: hasBias ? 1 : 0,
            accumulate: addOnto ? 1 : 0,
            hasAux: epilogue.aux === null ? 0 : 1,
          },
        );
        rec.release(partials);
        return;
      }
      rec.dispatch(matmulKernel(layout, kind), {
        tensors: { ...finishingTensors(epilogue, views, hasBias), a: views.a, b: views.b },
        scalars: {
          ...shape,
          sCm: N,
          hasBias: hasBias ? 1 : 0,
          accumulate: addOnto ? 1 : 0,
          hasAux: epilogue.aux === null ? 0 : 1,
          kChunk: pieceK,
          splitStride: 0,
        },
        groups: [columnTiles, rowTiles],
        variant: matmulVariant(layout),
      });
    },
    kind !== 'store' || epilogue.layerNorm !== undefined,
  );
}

/**
 * The tensors of the pass that finishes elements: c, bias (the output fills the bias binding
 * without one; hasBias = 0 leaves it unread) and the epilogue's aux (the output fills it when there
 * is none)
 */
function finishingTensors(
  epilogue: ProductEpilogue,
  views: { c: WebGPUTensor; bias: WebGPUTensor; aux: WebGPUTensor },
  hasBias: boolean,
): Record<string, WebGPUTensor> {
  const tensors: Record<string, WebGPUTensor> = { c: views.c, bias: hasBias ? views.bias : views.c };
  if (epilogue.kind !== 'store') tensors.aux = epilogue.aux === null ? views.c : views.aux;
  return tensors;
}

/** the few-rows product of wgsl/matmul.ts: partial sums over chunks of K, then their sum into C */
function fewRowsProduct(
  rec: Recorder,
  views: { c: WebGPUTensor; a: WebGPUTensor; b: WebGPUTensor; bias: WebGPUTensor; aux: WebGPUTensor },
  hasBias: boolean,
  accumulate: boolean,
  epilogue: ProductEpilogue,
  shape: { M: number; N: number; K: number; sCm: number; sAm: number; sBk: number },
): void {
  const { M, N, K } = shape;
  const columnGroups = Math.ceil(N / GEMV_COLUMNS);
  const { chunk: kChunk, chunks } = fewRowsChunks(K, columnGroups, GEMV_MIN_CHUNK);
  const partials = rec.scratch(chunks * M * N);
  const layerNorm = epilogue.layerNorm;
  rec.dispatch(gemvPartialKernel(M, layerNorm !== undefined), {
    tensors: { partials, a: views.a, b: views.b, ...(layerNorm ? { lnWeight: layerNorm.weight, lnBias: layerNorm.bias } : {}) },
    scalars: { N, K, sAm: shape.sAm, sBk: shape.sBk, kChunk },
    groups: [columnGroups, chunks],
    variant: `rows${M}`,
  });
  rec.dispatchElementwise(
    kChunkSumKernel(epilogue.kind),
    M * N,
    { ...finishingTensors(epilogue, views, hasBias), partials },
    {
      N,
      sCm: shape.sCm,
      chunks,
      hasBias: hasBias ? 1 : 0,
      accumulate: accumulate ? 1 : 0,
      hasAux: epilogue.aux === null ? 0 : 1,
    },
  );
  rec.release(partials);
}

/**
 * How a few-rows product cuts its `length` steps of K (elements, or blocks of a quantized row)
 * into chunks: enough workgroups to fill a large GPU with `columnGroups` of them per chunk, each
 * chunk at least `minChunk` long, still worth a loop
 */
export function fewRowsChunks(length: number, columnGroups: number, minChunk: number): { chunk: number; chunks: number } {
  const wanted = Math.min(Math.ceil(GEMV_TARGET_WORKGROUPS / columnGroups), Math.ceil(length / minChunk));
  const chunk = Math.ceil(length / Math.max(1, wanted));
  return { chunk, chunks: Math.ceil(length / chunk) };
}

/** how column sums over `rows` rows split into chunks (see wgsl/columns.ts) */
export function columnChunks(rows: number): { chunks: number; rowsPerChunk: number } {
  const chunks = Math.min(COLUMN_MAX_CHUNKS, Math.ceil(rows / COLUMN_CHUNK_ROWS));
  return { chunks, rowsPerChunk: Math.ceil(rows / chunks) };
}
