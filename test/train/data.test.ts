import { describe, expect, it } from 'vitest';
import { orderedBatches, sequenceRows, ShuffledBatches, streamRows } from '../../src/train/data.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('stream windows', () => {
  it('cuts non-overlapping windows of seqLen + 1 whose targets are the next tokens', () => {
    const rows = streamRows(range(23), 5, 100, 'data');
    expect(rows.rowCount).toBe(4); // floor((23 - 1) / 5)
    const [batch] = [...orderedBatches(rows, 4)];
    expect(batch.seqLen).toBe(5);
    expect(Array.from(batch.inputs.subarray(5, 10))).toEqual([5, 6, 7, 8, 9]);
    expect(Array.from(batch.targets.subarray(5, 10))).toEqual([6, 7, 8, 9, 10]);
    expect(batch.targetCount).toBe(20);
  });

  it('visits every window once per epoch in a seeded order, reshuffled each epoch', () => {
    const rows = streamRows(Uint16Array.from(range(41)), 4, 100, 'data'); // 10 windows
    const firstRow = (b: { inputs: Int32Array }, r: number) => b.inputs[r * 4] / 4;
    const epochOrder = (batches: ShuffledBatches) => {
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) {
        const b = batches.next();
        seen.push(firstRow(b, 0), firstRow(b, 1));
      }
      return seen;
    };
    const a = new ShuffledBatches(rows, 2, 7);
    const e0 = epochOrder(a);
    const e1 = epochOrder(a);
    expect([...e0].sort((x, y) => x - y)).toEqual(range(10));
    expect([...e1].sort((x, y) => x - y)).toEqual(range(10));
    expect(e1).not.toEqual(e0);
    expect(epochOrder(new ShuffledBatches(rows, 2, 7))).toEqual(e0);
    expect(epochOrder(new ShuffledBatches(rows, 2, 8))).not.toEqual(e0);
  });

  it('a batch crossing an epoch boundary continues into the next epoch', () => {
    const rows = streamRows(range(31), 3, 100, 'data'); // 10 windows, batches of 4
    const b = new ShuffledBatches(rows, 4, 1);
    b.next();
    b.next();
    expect(b.epochsDone).toBeCloseTo(0.8, 12);
    b.next();
    expect(b.epochsDone).toBeCloseTo(1.2, 12);
  });

  it('restoring a saved position replays the exact same batches', () => {
    const rows = streamRows(Int32Array.from(range(200)), 7, 300, 'data');
    const a = new ShuffledBatches(rows, 3, 42);
    for (let i = 0; i < 11; i++) a.next(); // crosses an epoch (28 windows)
    const position = JSON.parse(JSON.stringify(a.getPosition()));
    const b = new ShuffledBatches(rows, 3, 42);
    b.setPosition(position);
    for (let i = 0; i < 25; i++) expect(b.next().inputs).toEqual(a.next().inputs);
  });

  it('rejects short streams, out-of-vocabulary ids and bad types, naming the option', () => {
    expect(() => streamRows(range(8), 8, 100, 'data')).toThrow('data has 8 tokens; it needs at least seqLen + 1 = 9');
    expect(() => streamRows([1, 2, 300, 4], 2, 256, 'valData')).toThrow(
      "valData[2] = 300 is not a token id of the model's vocabulary [0, 256)",
    );
    expect(() => streamRows([1, -1, 3], 1, 256, 'data')).toThrow('data[1] = -1');
    expect(() => streamRows([1, 2.5, 3], 1, 256, 'data')).toThrow('data[1] = 2.5');
    expect(() => streamRows(new Float32Array(4) as never, 1, 256, 'data')).toThrow(/data must be an Int32Array, Uint16Array or number\[\]/);
  });
});

describe('sequence rows', () => {
  it('pads each batch to its longest row with the ignore index on targets', () => {
    const rows = sequenceRows(
      [
        [0, 5, 6, 1],
        [0, 7, 1],
        [0, 8, 9, 9, 1],
      ],
      8,
      10,
      'sequences',
    );
    const [batch] = [...orderedBatches(rows, 3)];
    expect(batch.seqLen).toBe(4);
    expect(Array.from(batch.inputs)).toEqual([0, 5, 6, 0, 0, 7, 0, 0, 0, 8, 9, 9]);
    expect(Array.from(batch.targets)).toEqual([5, 6, 1, -1, 7, 1, -1, -1, 8, 9, 9, 1]);
    expect(batch.targetCount).toBe(3 + 2 + 4);
  });

  it('validation batches come in order, the last one smaller, capped by maxBatches', () => {
    const seqs = range(7).map((i) => [i, i + 1]);
    const rows = sequenceRows(seqs, 4, 10, 'valSequences');
    const sizes = [...orderedBatches(rows, 3)].map((b) => b.batchSize);
    expect(sizes).toEqual([3, 3, 1]);
    expect([...orderedBatches(rows, 3, 2)].length).toBe(2);
    expect([...orderedBatches(rows, 3)][1].inputs[0]).toBe(3);
  });

  it('rejects sequences that are too short, too long or out of vocabulary, naming the index', () => {
    expect(() => sequenceRows([[1, 2], [3]], 4, 10, 'sequences')).toThrow('sequences[1] has 1 tokens; a sequence needs at least 2');
    expect(() => sequenceRows([[1, 2, 3, 4, 5, 6]], 4, 10, 'sequences')).toThrow('sequences[0] has 6 tokens; at most seqLen + 1 = 5 fit');
    expect(() => sequenceRows([[1, 12]], 4, 10, 'valSequences')).toThrow(
      "valSequences[0][1] = 12 is not a token id of the model's vocabulary [0, 10)",
    );
    expect(() => sequenceRows([], 4, 10, 'sequences')).toThrow('sequences must be a non-empty array');
  });
});
