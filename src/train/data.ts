/**
 * Training and validation batches.
 *
 * Two kinds of data become rows of (inputs, next-token targets):
 * - a token stream, cut into non-overlapping windows of seqLen + 1 tokens (window i starts at
 *   i * seqLen, so consecutive windows share one boundary token and every token is a target once);
 * - a list of sequences (one name, one line...), each one row, padded to the longest row of the
 *   batch with the ignore index so that padding never counts in the loss.
 *
 * Training rows are visited in a seeded order, reshuffled at every epoch; a batch that crosses an
 * epoch boundary continues into the next epoch. Validation rows are visited in their natural order.
 */
import { IGNORE_INDEX } from '../backend/contract.js';
import { Rng, RngStream, type RngState } from '../util/rng.js';
import { fail } from '../util/describe.js';

export type TokenStream = Int32Array | Uint16Array | readonly number[];
export type SequenceList = readonly ArrayLike<number>[];

/** One supervised example: ids = prompt, response, end-of-text; only the tokens after the prompt are targets. */
export interface SupervisedExample {
  ids: Int32Array;
  /** the prompt's token count: targets at positions before it are ignored */
  promptLength: number;
}

/** Prompt/response examples (from sftDataset), one row each, the loss on the responses only. */
export interface SupervisedDataset {
  readonly kind: 'supervised';
  readonly examples: readonly SupervisedExample[];
}

/** what train()'s sequences and valSequences take */
export type SequenceData = SequenceList | SupervisedDataset;

/** a SupervisedDataset by its shape (it may come through a worker's structured clone) */
export function isSupervisedDataset(data: unknown): data is SupervisedDataset {
  return (
    data !== null &&
    typeof data === 'object' &&
    (data as SupervisedDataset).kind === 'supervised' &&
    Array.isArray((data as SupervisedDataset).examples)
  );
}

/** One batch, row-major [B, T]. */
export interface Batch {
  inputs: Int32Array;
  /** IGNORE_INDEX (-1) where a position is padding */
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
  /** number of targets that are not the ignore index */
  targetCount: number;
}

/** Where the training order stands: enough to replay it exactly after a restart. */
export interface DataPosition {
  epoch: number;
  /** rows of this epoch's order already handed out */
  cursor: number;
  /** the data-order RNG state before this epoch's shuffle */
  epochRngState: RngState;
}

/** A set of rows, each an (inputs, targets) pair of at most seqLen positions. */
export interface RowSource {
  readonly rowCount: number;
  /** the longest row any batch can have (T for streams) */
  readonly seqLen: number;
  rowLength(row: number): number;
  /** write row `row` into inputs/targets at element `at` (rowLength(row) positions) */
  writeRow(row: number, inputs: Int32Array, targets: Int32Array, at: number): void;
  /** a cheap fingerprint of the data, so a checkpoint can tell whether it resumes on the same data */
  fingerprint(): string;
}

/** Windows of seqLen + 1 tokens of one stream. */
export class StreamRows implements RowSource {
  readonly rowCount: number;

  constructor(
    private readonly tokens: TokenStream,
    readonly seqLen: number,
  ) {
    this.rowCount = Math.floor((tokens.length - 1) / seqLen);
  }

  rowLength(): number {
    return this.seqLen;
  }

  writeRow(row: number, inputs: Int32Array, targets: Int32Array, at: number): void {
    const start = row * this.seqLen;
    const tokens = this.tokens;
    for (let t = 0; t < this.seqLen; t++) {
      inputs[at + t] = tokens[start + t];
      targets[at + t] = tokens[start + t + 1];
    }
  }

  fingerprint(): string {
    let h = fnvStart(this.tokens.length);
    for (let i = 0; i < this.tokens.length; i++) h = fnvMix(h, this.tokens[i]);
    return `stream:${this.tokens.length}:${h.toString(16)}`;
  }
}

/** One row per sequence: inputs seq[0..L-2], targets seq[1..L-1]. */
export class SequenceRows implements RowSource {
  readonly rowCount: number;

  constructor(
    private readonly sequences: SequenceList,
    readonly seqLen: number,
  ) {
    this.rowCount = sequences.length;
  }

  rowLength(row: number): number {
    return this.sequences[row].length - 1;
  }

  writeRow(row: number, inputs: Int32Array, targets: Int32Array, at: number): void {
    const seq = this.sequences[row];
    for (let t = 0; t + 1 < seq.length; t++) {
      inputs[at + t] = seq[t];
      targets[at + t] = seq[t + 1];
    }
  }

  fingerprint(): string {
    let h = fnvStart(this.sequences.length);
    for (const seq of this.sequences) {
      h = fnvMix(h, seq.length);
      for (let i = 0; i < seq.length; i++) h = fnvMix(h, seq[i]);
    }
    return `sequences:${this.sequences.length}:${h.toString(16)}`;
  }
}

/** One row per example: inputs ids[0..L-2], targets ids[1..L-1], ignored where they are prompt tokens. */
export class SupervisedRows implements RowSource {
  readonly rowCount: number;

  constructor(
    private readonly examples: readonly SupervisedExample[],
    readonly seqLen: number,
  ) {
    this.rowCount = examples.length;
  }

  rowLength(row: number): number {
    return this.examples[row].ids.length - 1;
  }

  writeRow(row: number, inputs: Int32Array, targets: Int32Array, at: number): void {
    const { ids, promptLength } = this.examples[row];
    for (let t = 0; t + 1 < ids.length; t++) {
      inputs[at + t] = ids[t];
      // target t is token t + 1: part of the response (or the closing end-of-text) from promptLength on
      targets[at + t] = t + 1 >= promptLength ? ids[t + 1] : IGNORE_INDEX;
    }
  }

  fingerprint(): string {
    let h = fnvStart(this.examples.length);
    for (const { ids, promptLength } of this.examples) {
      h = fnvMix(fnvMix(h, ids.length), promptLength);
      for (let i = 0; i < ids.length; i++) h = fnvMix(h, ids[i]);
    }
    return `supervised:${this.examples.length}:${h.toString(16)}`;
  }
}

/** Gather rows into a [B, T] batch, T = the longest row; shorter rows are padded (input 0, target -1). */
export function assembleBatch(source: RowSource, rows: ArrayLike<number>): Batch {
  const B = rows.length;
  let T = 0;
  for (let i = 0; i < B; i++) T = Math.max(T, source.rowLength(rows[i]));
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  let targetCount = 0;
  for (let i = 0; i < B; i++) source.writeRow(rows[i], inputs, targets, i * T);
  for (let i = 0; i < targets.length; i++) if (targets[i] !== IGNORE_INDEX) targetCount++;
  return { inputs, targets, batchSize: B, seqLen: T, targetCount };
}

/** Training batches in a seeded order that is reshuffled every epoch. */
export class ShuffledBatches {
  private readonly rng: Rng;
  private order: Uint32Array;
  private epoch = 0;
  private cursor = 0;
  private epochRngState: RngState;

  constructor(
    readonly source: RowSource,
    readonly batchSize: number,
    seed: number,
  ) {
    this.rng = new Rng(seed, RngStream.dataOrder);
    this.order = new Uint32Array(source.rowCount);
    this.epochRngState = this.rng.getState();
    this.startEpoch(0);
  }

  next(): Batch {
    const rows = new Uint32Array(this.batchSize);
    for (let i = 0; i < this.batchSize; i++) {
      if (this.cursor === this.order.length) this.startEpoch(this.epoch + 1);
      rows[i] = this.order[this.cursor++];
    }
    return assembleBatch(this.source, rows);
  }

  /** epochs completed so far, fractional */
  get epochsDone(): number {
    return this.epoch + this.cursor / this.order.length;
  }

  getPosition(): DataPosition {
    return { epoch: this.epoch, cursor: this.cursor, epochRngState: this.epochRngState };
  }

  setPosition(p: DataPosition): void {
    if (!(Number.isInteger(p.cursor) && p.cursor >= 0 && p.cursor <= this.order.length)) {
      fail('data position: cursor', `an integer in [0, ${this.order.length}]`, p.cursor);
    }
    if (!(Number.isInteger(p.epoch) && p.epoch >= 0)) fail('data position: epoch', 'an integer >= 0', p.epoch);
    this.rng.setState(p.epochRngState);
    this.startEpoch(p.epoch);
    this.cursor = p.cursor;
  }

  private startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.cursor = 0;
    this.epochRngState = this.rng.getState();
    for (let i = 0; i < this.order.length; i++) this.order[i] = i;
    this.rng.shuffle(this.order);
  }
}

/** Validation batches: rows in their natural order, the last batch possibly smaller. */
export function* orderedBatches(source: RowSource, batchSize: number, maxBatches = Infinity): Generator<Batch> {
  let produced = 0;
  for (let start = 0; start < source.rowCount && produced < maxBatches; start += batchSize, produced++) {
    const end = Math.min(source.rowCount, start + batchSize);
    const rows = new Uint32Array(end - start);
    for (let i = 0; i < rows.length; i++) rows[i] = start + i;
    yield assembleBatch(source, rows);
  }
}

/**
 * Check a token stream against the model and build its rows. `field` names the option in errors
 * ('data' or 'valData').
 */
export function streamRows(tokens: TokenStream, seqLen: number, vocabSize: number, field: string): StreamRows {
  if (!(tokens instanceof Int32Array || tokens instanceof Uint16Array || Array.isArray(tokens))) {
    throw new TypeError(`${field} must be an Int32Array, Uint16Array or number[] of token ids`);
  }
  if (tokens.length < seqLen + 1) {
    throw new RangeError(`${field} has ${tokens.length} tokens; it needs at least seqLen + 1 = ${seqLen + 1}`);
  }
  checkIds(tokens, vocabSize, field);
  return new StreamRows(tokens, seqLen);
}

/** Check a list of sequences (or supervised examples) against the model and build its rows. */
export function sequenceRows(sequences: SequenceData, seqLen: number, vocabSize: number, field: string): RowSource {
  if (isSupervisedDataset(sequences)) return supervisedRows(sequences, seqLen, vocabSize, field);
  if (!Array.isArray(sequences) || sequences.length === 0) {
    throw new RangeError(`${field} must be a non-empty array of token-id sequences`);
  }
  (sequences as SequenceList).forEach((seq, i) => {
    if (seq == null || typeof seq.length !== 'number') throw new TypeError(`${field}[${i}] must be an array of token ids`);
    if (seq.length < 2)
      throw new RangeError(`${field}[${i}] has ${seq.length} tokens; a sequence needs at least 2 (an input and its target)`);
    if (seq.length > seqLen + 1) {
      throw new RangeError(`${field}[${i}] has ${seq.length} tokens; at most seqLen + 1 = ${seqLen + 1} fit (raise seqLen or split it)`);
    }
    checkIds(seq, vocabSize, `${field}[${i}]`);
  });
  return new SequenceRows(sequences, seqLen);
}

function supervisedRows(data: SupervisedDataset, seqLen: number, vocabSize: number, field: string): SupervisedRows {
  if (data.examples.length === 0) throw new RangeError(`${field} must hold at least one example`);
  data.examples.forEach((example, i) => {
    const ids: unknown = example?.ids;
    if (!(ids instanceof Int32Array)) throw new TypeError(`${field}.examples[${i}].ids must be an Int32Array of token ids`);
    if (ids.length < 2) throw new RangeError(`${field}.examples[${i}] has ${ids.length} tokens; an example needs at least 2`);
    if (ids.length > seqLen + 1) {
      throw new RangeError(
        `${field}.examples[${i}] has ${ids.length} tokens; at most seqLen + 1 = ${seqLen + 1} fit (raise seqLen or shorten the example)`,
      );
    }
    const p = example.promptLength;
    if (!Number.isInteger(p) || p < 0 || p >= ids.length) {
      fail(`${field}.examples[${i}].promptLength`, `an integer in [0, ${ids.length - 1}]`, p);
    }
    checkIds(ids, vocabSize, `${field}.examples[${i}].ids`);
  });
  return new SupervisedRows(data.examples, seqLen);
}

/** The longest sequence minus one: the seqLen that fits every sequence of a list. */
export function longestRow(sequences: SequenceData): number {
  const rows: readonly (ArrayLike<number> | undefined)[] = isSupervisedDataset(sequences)
    ? sequences.examples.map((e) => e?.ids)
    : sequences;
  let longest = 0;
  for (const seq of rows) longest = Math.max(longest, (seq?.length ?? 0) - 1);
  return longest;
}

function checkIds(ids: ArrayLike<number>, vocabSize: number, field: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
      throw new RangeError(`${field}[${i}] = ${id} is not a token id of the model's vocabulary [0, ${vocabSize})`);
    }
  }
}

function fnvStart(length: number): number {
  return fnvMix(0x811c9dc5, length);
}

function fnvMix(h: number, value: number): number {
  return Math.imul(h ^ (value >>> 0), 0x01000193) >>> 0;
}
