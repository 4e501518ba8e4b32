/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors format):
 *
 *   [8 bytes: header length N, little-endian u64][N bytes: UTF-8 JSON header][data buffer]
 *
 * The header maps tensor names to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative
 * to the start of the data buffer) plus an optional `__metadata__` string-to-string map. Tensor
 * data is little-endian and row-major.
 *
 * The reader treats its input as hostile: every claim in the header is checked against the actual
 * byte count before anything is allocated, so no allocation is ever larger than the input.
 */

import { ModelFileError } from './errors.js';
import { describe } from '../util/describe.js';
import { float16BitsToFloat32 } from '../backend/contract.js';

export type SafetensorsDType =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

/** The typed array each dtype decodes to. F16/BF16 come back as raw bits (see `tensorToFloat32`). */
export interface DTypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
}

export type TensorData = DTypeArrays[SafetensorsDType];

/**
 * A tensor to encode. `data` is either the dtype's own typed array (see DTypeArrays), a Uint8Array
 * holding the raw little-endian bytes, or, for F16/BF16 only, a Float32Array that is rounded
 * (to nearest, ties to even) on the way out.
 */
export interface TensorInput {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: TensorData | Float32Array | Uint8Array;
}

export interface DecodedTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: TensorData;
}

export interface DecodedSafetensors {
  tensors: Record<string, DecodedTensor>;
  metadata: Record<string, string>;
}

export interface DecodeOptions {
  /** largest JSON header accepted, in bytes (default 100 MB) */
  maxHeaderBytes?: number;
  /**
   * Always copy tensor data out of `bytes` (default false: typed arrays are views into `bytes`
   * wherever the data is aligned for its element type, so they change if `bytes` does).
   */
  copy?: boolean;
}

/** Anything wrong with safetensors bytes or with tensors handed to the encoder. */
export class SafetensorsError extends ModelFileError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SafetensorsError';
  }
}

export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const TENSOR_FIELDS = ['dtype', 'shape', 'data_offsets'];

interface DTypeInfo {
  bytes: number;
  /** builds a typed array over (buffer, byteOffset, length in elements) */
  view: (buffer: ArrayBufferLike, byteOffset: number, length: number) => TensorData;
  /** the class name of the dtype's own typed array, for recognising encoder input */
  arrayName: string;
}

const DTYPES: Record<SafetensorsDType, DTypeInfo> = {
  F64: { bytes: 8, view: (b, o, n) => new Float64Array(b, o, n), arrayName: 'Float64Array' },
  F32: { bytes: 4, view: (b, o, n) => new Float32Array(b, o, n), arrayName: 'Float32Array' },
  F16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n), arrayName: 'Uint16Array' },
  BF16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n), arrayName: 'Uint16Array' },
  I64: { bytes: 8, view: (b, o, n) => new BigInt64Array(b, o, n), arrayName: 'BigInt64Array' },
  I32: { bytes: 4, view: (b, o, n) => new Int32Array(b, o, n), arrayName: 'Int32Array' },
  I16: { bytes: 2, view: (b, o, n) => new Int16Array(b, o, n), arrayName: 'Int16Array' },
  I8: { bytes: 1, view: (b, o, n) => new Int8Array(b, o, n), arrayName: 'Int8Array' },
  U64: { bytes: 8, view: (b, o, n) => new BigUint64Array(b, o, n), arrayName: 'BigUint64Array' },
  U32: { bytes: 4, view: (b, o, n) => new Uint32Array(b, o, n), arrayName: 'Uint32Array' },
  U16: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n), arrayName: 'Uint16Array' },
  U8: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n), arrayName: 'Uint8Array' },
  BOOL: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n), arrayName: 'Uint8Array' },
  F8_E4M3: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n), arrayName: 'Uint8Array' },
  F8_E5M2: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n), arrayName: 'Uint8Array' },
};

export const SAFETENSORS_DTYPES = Object.keys(DTYPES) as SafetensorsDType[];

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, value);
}

/** Bytes per element of a dtype. */
export function dtypeByteSize(dtype: SafetensorsDType): number {
  return DTYPES[dtype].bytes;
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the byte order of each `width`-byte element in place (big-endian hosts only). */
function swapEachElement(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/**
 * The typed array's class name ('Float32Array', ...) or undefined for anything else. Read from the
 * built-in toStringTag rather than `instanceof`, so arrays from another realm (a worker's, an
 * iframe's, node:vm's) are recognised too.
 */
export function typedArrayName(value: unknown): string | undefined {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined;
  return (value as unknown as { [Symbol.toStringTag]: string })[Symbol.toStringTag];
}

/** Own-property assignment that is safe for any key, `__proto__` included. */
function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

function describeShape(shape: readonly unknown[]): string {
  return `[${shape.map((d) => (typeof d === 'number' ? String(d) : describe(d))).join(', ')}]`;
}

// ---------------------------------------------------------------------------------------------
// encoding

/**
 * The reference implementation's dtype order (its Rust enum); tensors are laid out from the last
 * of these to the first, so wider types come first and every tensor is aligned for its type.
 */
const DTYPE_RANK: readonly SafetensorsDType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

/** Compares by Unicode code point, which is the UTF-8 byte order the reference implementation uses. */
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return a.length - i - (b.length - j);
}

/** Deterministic layout, the same as the reference writer's: dtype rank descending, then name. */
function compareForLayout(a: [string, TensorInput], b: [string, TensorInput]): number {
  const rank = DTYPE_RANK.indexOf(b[1].dtype) - DTYPE_RANK.indexOf(a[1].dtype);
  return rank !== 0 ? rank : compareCodePoints(a[0], b[0]);
}

function elementCount(shape: readonly number[], where: string): number {
  let count = 1;
  for (let i = 0; i < shape.length; i++) {
    const dim = shape[i];
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(
        `${where}: shape ${describeShape(shape)} has dimension ${i} = ${describe(dim)}; dimensions must be non-negative safe integers`,
      );
    }
    count *= dim;
    if (!Number.isSafeInteger(count)) {
      throw new SafetensorsError(`${where}: shape ${describeShape(shape)} has more elements than 2^53`);
    }
  }
  return count;
}

/** The tensor's little-endian bytes (a view where possible, else a converted copy). */
function tensorBytes(name: string, tensor: TensorInput, count: number): Uint8Array {
  const info = DTYPES[tensor.dtype];
  const { data } = tensor;
  const where = `tensor ${JSON.stringify(name)} (${tensor.dtype}, shape ${describeShape(tensor.shape)})`;
  let bytes: Uint8Array;
  let fromNatural: boolean;
  const kind = typedArrayName(data);
  if (kind === info.arrayName) {
    if (data.length !== count) {
      throw new SafetensorsError(`${where}: data has ${data.length} elements, shape needs ${count}`);
    }
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    fromNatural = info.bytes > 1;
  } else if (kind === 'Float32Array' && (tensor.dtype === 'F16' || tensor.dtype === 'BF16')) {
    if (data.length !== count) {
      throw new SafetensorsError(`${where}: data has ${data.length} elements, shape needs ${count}`);
    }
    const values = data as Float32Array;
    const bits = tensor.dtype === 'F16' ? float32ArrayToFloat16Bits(values) : float32ArrayToBFloat16Bits(values);
    bytes = new Uint8Array(bits.buffer);
    fromNatural = true;
  } else if (kind === 'Uint8Array') {
    if (data.length !== count * info.bytes) {
      throw new SafetensorsError(
        `${where}: raw data has ${data.length} bytes, shape needs ${count} x ${info.bytes} = ${count * info.bytes}`,
      );
    }
    return data as Uint8Array;
  } else {
    throw new SafetensorsError(
      `${where}: data is ${describe(data)}; expected ${info.arrayName}${tensor.dtype === 'F16' || tensor.dtype === 'BF16' ? ', Float32Array' : ''} or Uint8Array of raw little-endian bytes`,
    );
  }
  if (fromNatural && !HOST_IS_LITTLE_ENDIAN) {
    bytes = bytes.slice();
    swapEachElement(bytes, info.bytes);
  }
  return bytes;
}

/**
 * Encodes tensors (and string metadata) as safetensors bytes. The output depends only on the
 * content, not on key insertion order or runtime. Tensors are laid out as the reference (Rust)
 * writer lays them out (widest dtype first, then by name), `__metadata__` comes first with sorted
 * keys, and the header is padded with spaces so the data buffer starts 8-byte aligned.
 */
export function encodeSafetensors(tensors: Record<string, TensorInput>, metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  if (tensors === null || typeof tensors !== 'object') {
    throw new SafetensorsError(`tensors must be an object mapping names to tensors, got ${describe(tensors)}`);
  }
  const entries = Object.entries(tensors);
  for (const [name, tensor] of entries) {
    if (name === METADATA_KEY) throw new SafetensorsError(`tensor name "${METADATA_KEY}" is reserved for metadata`);
    if (tensor === null || typeof tensor !== 'object') {
      throw new SafetensorsError(`tensor ${JSON.stringify(name)} must be an object { dtype, shape, data }, got ${describe(tensor)}`);
    }
    if (!isDType(tensor.dtype)) {
      throw new SafetensorsError(
        `tensor ${JSON.stringify(name)}: dtype ${describe(tensor.dtype)} is not one of ${SAFETENSORS_DTYPES.join(', ')}`,
      );
    }
    if (!Array.isArray(tensor.shape)) {
      throw new SafetensorsError(`tensor ${JSON.stringify(name)}: shape must be an array, got ${describe(tensor.shape)}`);
    }
  }
  entries.sort(compareForLayout);

  const headerParts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new SafetensorsError(`metadata must be an object of strings, got ${describe(metadata)}`);
    }
    const keys = Object.keys(metadata).sort(compareCodePoints);
    const fields: string[] = [];
    for (const key of keys) {
      const value = metadata[key];
      if (typeof value !== 'string') {
        throw new SafetensorsError(`metadata ${JSON.stringify(key)} must be a string, got ${describe(value)}`);
      }
      fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    headerParts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(',')}}`);
  }

  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of entries) {
    const where = `tensor ${JSON.stringify(name)}`;
    const count = elementCount(tensor.shape, where);
    const bytes = tensorBytes(name, tensor, count);
    const end = offset + bytes.length;
    // Built by hand rather than JSON.stringify on an object: engines move integer-like keys first.
    headerParts.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(tensor.dtype)},"shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    chunks.push(bytes);
    offset = end;
  }

  const json = new TextEncoder().encode(`{${headerParts.join(',')}}`);
  const headerLength = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// decoding

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

function parseOffsets(name: string, value: unknown, dataLength: number): [number, number] {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!Array.isArray(value) || value.length !== 2) {
    throw new SafetensorsError(`${where}: data_offsets must be [begin, end], got ${describe(value)}`);
  }
  const [begin, end] = value as unknown[];
  for (const [label, v] of [
    ['begin', begin],
    ['end', end],
  ] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new SafetensorsError(`${where}: data_offsets ${label} is ${describe(v)}; must be a non-negative safe integer`);
    }
  }
  const b = begin as number;
  const e = end as number;
  if (b > e) throw new SafetensorsError(`${where}: data_offsets [${b}, ${e}] end before begin`);
  if (e > dataLength) {
    throw new SafetensorsError(`${where}: data_offsets [${b}, ${e}] run past the data buffer (${dataLength} bytes)`);
  }
  return [b, e];
}

function parseEntry(name: string, value: unknown, dataLength: number): HeaderEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${where}: header entry must be an object, got ${describe(value)}`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!TENSOR_FIELDS.includes(key)) {
      throw new SafetensorsError(`${where}: unknown field ${JSON.stringify(key)}; allowed: ${TENSOR_FIELDS.join(', ')}`);
    }
  }
  const { dtype, shape } = record;
  if (!isDType(dtype)) {
    throw new SafetensorsError(`${where}: dtype ${describe(dtype)} is not one of ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape)) throw new SafetensorsError(`${where}: shape must be an array, got ${describe(shape)}`);
  const [begin, end] = parseOffsets(name, record.data_offsets, dataLength);
  for (let i = 0; i < shape.length; i++) {
    const dim: unknown = shape[i];
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(
        `${where}: shape ${describeShape(shape)} has dimension ${i} = ${describe(dim)}; dimensions must be non-negative safe integers`,
      );
    }
  }
  const dims = shape as number[];
  const span = end - begin;
  const width = DTYPES[dtype].bytes;
  let bytesNeeded = width;
  for (const dim of dims) bytesNeeded *= dim;
  if (dims.includes(0)) bytesNeeded = 0;
  if (bytesNeeded !== span) {
    const needed = Number.isSafeInteger(bytesNeeded) ? String(bytesNeeded) : 'more than 2^53';
    throw new SafetensorsError(
      `${where}: shape ${describeShape(dims)} of ${dtype} needs ${needed} bytes but data_offsets [${begin}, ${end}] hold ${span}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Checks that the entries tile [0, dataLength) exactly: no gap, no overlap, nothing left over. */
function checkCoverage(entries: HeaderEntry[], dataLength: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: HeaderEntry | undefined;
  for (const entry of sorted) {
    if (entry.begin < expected) {
      throw new SafetensorsError(
        `tensor ${JSON.stringify(entry.name)} data_offsets [${entry.begin}, ${entry.end}] overlap tensor ${JSON.stringify(previous!.name)} [${previous!.begin}, ${previous!.end}]`,
      );
    }
    if (entry.begin > expected) {
      throw new SafetensorsError(
        `data buffer has a hole: bytes [${expected}, ${entry.begin}) belong to no tensor (before tensor ${JSON.stringify(entry.name)})`,
      );
    }
    expected = entry.end;
    previous = entry;
  }
  if (expected !== dataLength) {
    throw new SafetensorsError(
      `data buffer has ${dataLength} bytes but the tensors cover only [0, ${expected}): ${dataLength - expected} bytes belong to no tensor`,
    );
  }
}

function parseMetadata(value: unknown): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (value === null || value === undefined) return metadata;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${METADATA_KEY} must be an object of strings, got ${describe(value)}`);
  }
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(`${METADATA_KEY} value ${JSON.stringify(key)} must be a string, got ${describe(v)}`);
    }
    setOwn(metadata, key, v);
  }
  return metadata;
}

function readHeader(bytes: Uint8Array, maxHeaderBytes: number): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new SafetensorsError(`file is ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  const headerLength = high * 4294967296 + low; // exact below 2^53; beyond that it is rejected anyway
  if (headerLength > maxHeaderBytes) {
    throw new SafetensorsError(
      `header length ${high === 0 ? headerLength : `~${headerLength.toExponential(3)}`} is over the limit of ${maxHeaderBytes} bytes (maxHeaderBytes)`,
    );
  }
  if (8 + headerLength > bytes.length) {
    throw new SafetensorsError(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);
  }
  if (headerLength < 2 || bytes[8] !== 0x7b) {
    throw new SafetensorsError(`header must be a JSON object starting with "{" (header length ${headerLength})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch (cause) {
    throw new SafetensorsError('header is not valid UTF-8', { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(`header is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SafetensorsError(`header must be a JSON object, got ${describe(parsed)}`);
  }
  return { header: parsed as Record<string, unknown>, dataStart: 8 + headerLength };
}

/**
 * Decodes safetensors bytes. Throws SafetensorsError naming the problem for anything that is not a
 * well-formed file; nothing is allocated before the header's claims are checked against the input.
 */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeOptions = {}): DecodedSafetensors {
  if (typedArrayName(bytes) !== 'Uint8Array') {
    throw new SafetensorsError(`bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!Number.isSafeInteger(maxHeaderBytes) || maxHeaderBytes < 2) {
    throw new SafetensorsError(`options.maxHeaderBytes must be an integer >= 2, got ${describe(maxHeaderBytes)}`);
  }
  const { header, dataStart } = readHeader(bytes, maxHeaderBytes);
  const dataLength = bytes.length - dataStart;

  const entries: HeaderEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value);
    else entries.push(parseEntry(name, value, dataLength));
  }
  checkCoverage(entries, dataLength);

  const tensors: Record<string, DecodedTensor> = {};
  for (const entry of entries) {
    const info = DTYPES[entry.dtype];
    const count = (entry.end - entry.begin) / info.bytes;
    const byteOffset = bytes.byteOffset + dataStart + entry.begin;
    let data: TensorData;
    if (!options.copy && HOST_IS_LITTLE_ENDIAN && byteOffset % info.bytes === 0) {
      data = info.view(bytes.buffer, byteOffset, count);
    } else {
      const copy = bytes.slice(dataStart + entry.begin, dataStart + entry.end);
      if (!HOST_IS_LITTLE_ENDIAN) swapEachElement(copy, info.bytes);
      data = info.view(copy.buffer, 0, count);
    }
    setOwn(tensors, entry.name, { dtype: entry.dtype, shape: entry.shape, data });
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// float conversions

const conversionView = new DataView(new ArrayBuffer(4));

// float16BitsToFloat32 lives beside the backend contract, whose f16 weight format widens with it
export { float16BitsToFloat32 };

/** float32 value -> IEEE half bits, round to nearest, ties to even; NaN stays NaN. */
export function roundToFloat16Bits(value: number): number {
  conversionView.setFloat32(0, value);
  const x = conversionView.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // subnormal half (or zero): shift the full 24-bit significand into place
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let half = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // a carry out of the mantissa correctly bumps the exponent (up to infinity)
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float32 value -> bfloat16 bits, round to nearest, ties to even; NaN stays NaN. */
export function roundToBFloat16Bits(value: number): number {
  conversionView.setFloat32(0, value);
  const x = conversionView.getUint32(0);
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float32ArrayToFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = roundToFloat16Bits(values[i]);
  return out;
}

export function float32ArrayToBFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = roundToBFloat16Bits(values[i]);
  return out;
}

/**
 * A float tensor's values as float32: F32 as is, F16/BF16 widened exactly, F64 rounded. Throws a
 * SafetensorsError for non-float dtypes.
 */
export function tensorToFloat32(tensor: DecodedTensor, name = 'tensor'): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensor.data as Float32Array;
    case 'F64':
      return Float32Array.from(tensor.data as Float64Array);
    case 'F16': {
      const bits = tensor.data as Uint16Array;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]);
      return out;
    }
    case 'BF16': {
      const bits = tensor.data as Uint16Array;
      const out = new Float32Array(bits.length);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
      return out;
    }
    default:
      throw new SafetensorsError(`${name} has dtype ${tensor.dtype}; expected a float dtype (F32, F16, BF16 or F64)`);
  }
}
