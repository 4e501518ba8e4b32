/**
 * The token and position embedding on WebGPU: how encoderForward and encoderBackward are recorded
 * into dispatches (wgsl/encoder.ts). The tensors come checked and trimmed to what the op reads.
 */
import type { Recorder } from './recorder.js';
import type { WebGPUTensor } from './storage.js';
import {
  encoderBackwardPositionsKernel,
  encoderBackwardTokensKernel,
  encoderForwardKernel,
  encoderLinkTokensKernel,
} from './wgsl/encoder.js';

/** out [B,T,C] = wte[inp] + wpe[posOffset + t] (see contract.ts encoderForward) */
export function recordEncoderForward(
  rec: Recorder,
  { out: o, inp: ids, wte: tokenTable, wpe: positionTable }: { out: WebGPUTensor; inp: WebGPUTensor; wte: WebGPUTensor; wpe: WebGPUTensor },
  { B, T, C, posOffset }: { B: number; T: number; C: number; posOffset: number },
): void {
  const op = 'encoderForward';
  const V = tokenTable.length / C;
  // [BT rows, V token ids]: a piece writes the rows whose token falls in its slice of wte
  rec.inPieces(
    op,
    [B * T, V],
    {
      out: { tensor: o, strides: [C, 0], extent: C, write: true },
      inp: { tensor: ids, strides: [1, 0], extent: 1 },
      wte: { tensor: tokenTable, strides: [0, C], extent: C },
      wpe: { tensor: positionTable, strides: [0, 0], extent: (posOffset + T) * C },
    },
    (piece, views) => {
      rec.dispatchElementwise(encoderForwardKernel, piece.size[0] * C, views, {
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

/** dwte[inp] += dout, dwpe[t] += dout summed over the batch (see contract.ts encoderBackward) */
export function recordEncoderBackward(
  rec: Recorder,
  {
    dwte: dTokenTable,
    dwpe: dPositionTable,
    dout: d,
    inp: ids,
  }: { dwte: WebGPUTensor | null; dwpe: WebGPUTensor | null; dout: WebGPUTensor; inp: WebGPUTensor },
  { B, T, C }: { B: number; T: number; C: number },
): void {
  const op = 'encoderBackward';
  // a null table is frozen: it gets no gradient work
  if (dTokenTable !== null) recordTokenTableBackward(rec, dTokenTable, d, ids, { B, T, C });
  if (dPositionTable === null) return;
  // [T*C, B]: dwpe[i] += sum over b of dout[b*T*C + i]
  rec.inPieces(
    op,
    [T * C, B],
    { dwpe: { tensor: dPositionTable, strides: [1, 0], extent: 1, write: true }, dout: { tensor: d, strides: [1, T * C], extent: 1 } },
    (piece, views) => rec.dispatchElementwise(encoderBackwardPositionsKernel, piece.size[0], views, { B: piece.size[1], TC: T * C }),
  );
}

/** dwte[inp] += dout */
function recordTokenTableBackward(
  rec: Recorder,
  dTokenTable: WebGPUTensor,
  d: WebGPUTensor,
  ids: WebGPUTensor,
  { B, T, C }: { B: number; T: number; C: number },
): void {
  const op = 'encoderBackward';
  const V = dTokenTable.length / C;
  // [BT positions, V token ids]: a piece links the positions in its range that share a token and
  // adds their dout into the rows of its slice of dwte
  rec.inPieces(
    op,
    [B * T, V],
    {
      dwte: { tensor: dTokenTable, strides: [0, C], extent: C, write: true },
      dout: { tensor: d, strides: [C, 0], extent: C },
      inp: { tensor: ids, strides: [1, 0], extent: 1 },
    },
    (piece, views) => {
      const positions = piece.size[0];
      const links = rec.scratch(2 * positions, 'i32');
      rec.dispatch(encoderLinkTokensKernel, {
        tensors: { links, inp: views.inp },
        scalars: { BT: positions },
        groups: rec.grid(positions),
      });
      rec.dispatch(encoderBackwardTokensKernel, {
        tensors: { ...views, links },
        scalars: { BT: positions, C, vBase: piece.start[1], vCount: piece.size[1] },
        groups: rec.grid(positions),
      });
      rec.release(links);
    },
  );
}
