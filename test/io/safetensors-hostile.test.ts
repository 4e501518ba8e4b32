import { describe, expect, it } from 'vitest';
import { ModelFileError } from '../../src/io/errors.js';
import { SafetensorsError, decodeSafetensors, dtypeByteSize, encodeSafetensors, type TensorInput } from '../../src/io/safetensors.js';
import { Rng } from '../../src/util/rng.js';

const encoder = new TextEncoder();

/** A file with the given header text (padded to 8) and data bytes; headerLength overrides the prefix. */
function forge(header: string | object, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = encoder.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded + data.length);
  new DataView(bytes.buffer).setBigUint64(0, headerLength ?? BigInt(padded), true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + padded);
  bytes.set(data, 8 + padded);
  return bytes;
}

const f32 = (shape: unknown, data_offsets: unknown) => ({ dtype: 'F32', shape, data_offsets });

/** Runs decode and reports how far process-wide ArrayBuffer memory grew while it ran. */
function decodeMeasuringMemory(bytes: Uint8Array): { error: unknown; grewBy: number } {
  const before = process.memoryUsage().arrayBuffers;
  let error: unknown;
  try {
    decodeSafetensors(bytes);
  } catch (e) {
    error = e;
  }
  return { error, grewBy: process.memoryUsage().arrayBuffers - before };
}

describe('decodeSafetensors rejects forged files with a message naming the problem', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than the length prefix', new Uint8Array(5), /file is 5 bytes; a safetensors file starts with an 8-byte header length/],
    ['header length past the file', forge({}, new Uint8Array(0), 1000n), /header length 1000 runs past the end of the file \(16 bytes\)/],
    [
      'header length over the bound',
      forge({}, new Uint8Array(0), 100_000_001n),
      /header length 100000001 is over the limit of 100000000 bytes/,
    ],
    ['header length with high bits', forge({}, new Uint8Array(0), 1n << 50n), /header length ~1\.126e\+15 is over the limit/],
    ['header length 2^64 - 1', forge({}, new Uint8Array(0), (1n << 64n) - 1n), /header length ~1\.845e\+19 is over the limit/],
    ['empty header', forge('', new Uint8Array(0), 0n), /header must be a JSON object starting with "\{" \(header length 0\)/],
    ['a JSON array', forge('[1,2]'), /header must be a JSON object starting with "\{"/],
    ['leading whitespace', forge(' {}'), /header must be a JSON object starting with "\{"/],
    ['invalid JSON', forge('{"a": '), /header is not valid JSON/],
    ['trailing garbage after the object', forge('{} x'), /header is not valid JSON/],
    ['an entry that is a number', forge({ a: 5 }), /tensor "a": header entry must be an object, got 5/],
    ['an entry that is an array', forge({ a: [1] }), /tensor "a": header entry must be an object, got an array/],
    ['an entry that is null', forge({ a: null }), /tensor "a": header entry must be an object, got null/],
    [
      'an unknown dtype',
      forge({ a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /tensor "a": dtype "F128" is not one of F64, F32/,
    ],
    ['a missing dtype', forge({ a: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor "a": dtype undefined is not one of/],
    [
      'a lower-case dtype',
      forge({ a: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /dtype "f32" is not one of/,
    ],
    [
      'a dtype inherited from Object.prototype',
      forge({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /dtype "toString" is not one of/,
    ],
    [
      'an unknown entry field',
      forge({ a: { ...f32([1], [0, 4]), extra: 1 } }, new Uint8Array(4)),
      /tensor "a": unknown field "extra"; allowed: dtype, shape, data_offsets/,
    ],
    ['a shape that is not an array', forge({ a: f32(4, [0, 16]) }, new Uint8Array(16)), /tensor "a": shape must be an array, got 4/],
    [
      'a negative dimension',
      forge({ a: f32([-1], [0, 4]) }, new Uint8Array(4)),
      /tensor "a": shape \[-1\] has dimension 0 = -1; dimensions must be non-negative safe integers/,
    ],
    ['a fractional dimension', forge({ a: f32([2, 0.5], [0, 4]) }, new Uint8Array(4)), /shape \[2, 0.5\] has dimension 1 = 0.5/],
    ['a string dimension', forge({ a: f32(['1'], [0, 4]) }, new Uint8Array(4)), /shape \["1"\] has dimension 0 = "1"/],
    [
      'a dimension past 2^53',
      forge('{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}', new Uint8Array(4)),
      /dimension 0 = 9007199254740992; dimensions must be non-negative safe integers/,
    ],
    ['a bad dimension after a zero one', forge({ a: f32([0, 'x'], [0, 0]) }), /dimension 1 = "x"/],
    [
      'offsets that are not a pair',
      forge({ a: f32([1], [0, 4, 8]) }, new Uint8Array(8)),
      /tensor "a": data_offsets must be \[begin, end\], got an array/,
    ],
    [
      'offsets missing',
      forge({ a: { dtype: 'F32', shape: [1] } }, new Uint8Array(4)),
      /tensor "a": data_offsets must be \[begin, end\], got undefined/,
    ],
    [
      'a negative offset',
      forge({ a: f32([1], [-4, 0]) }, new Uint8Array(4)),
      /data_offsets begin is -4; must be a non-negative safe integer/,
    ],
    ['a string offset', forge({ a: f32([1], [0, '4']) }, new Uint8Array(4)), /data_offsets end is "4"/],
    ['end before begin', forge({ a: f32([0], [4, 0]) }, new Uint8Array(4)), /data_offsets \[4, 0\] end before begin/],
    [
      'offsets past the data',
      forge({ a: f32([2], [0, 8]) }, new Uint8Array(4)),
      /tensor "a": data_offsets \[0, 8\] run past the data buffer \(4 bytes\)/,
    ],
    [
      'offsets claiming 2^50 bytes',
      forge({ a: f32([2 ** 48], [0, 2 ** 50]) }, new Uint8Array(4)),
      /data_offsets \[0, 1125899906842624\] run past the data buffer \(4 bytes\)/,
    ],
    [
      'overlapping tensors',
      forge({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, new Uint8Array(12)),
      /tensor "b" data_offsets \[4, 12\] overlap tensor "a" \[0, 8\]/,
    ],
    ['two tensors on the same bytes', forge({ a: f32([1], [0, 4]), b: f32([1], [0, 4]) }, new Uint8Array(4)), /overlap/],
    [
      'a hole between tensors',
      forge({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, new Uint8Array(12)),
      /data buffer has a hole: bytes \[4, 8\) belong to no tensor \(before tensor "b"\)/,
    ],
    ['a hole at the start', forge({ a: f32([1], [4, 8]) }, new Uint8Array(8)), /hole: bytes \[0, 4\)/],
    [
      'data left over at the end',
      forge({ a: f32([1], [0, 4]) }, new Uint8Array(8)),
      /data buffer has 8 bytes but the tensors cover only \[0, 4\): 4 bytes belong to no tensor/,
    ],
    ['data with no tensors', forge({}, new Uint8Array(8)), /data buffer has 8 bytes but the tensors cover only \[0, 0\)/],
    [
      'a size that disagrees with the shape',
      forge({ a: f32([3], [0, 8]) }, new Uint8Array(8)),
      /tensor "a": shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      'a shape claiming 2^52 elements',
      forge({ a: f32([2 ** 40, 2 ** 12], [0, 8]) }, new Uint8Array(8)),
      /shape \[1099511627776, 4096\] of F32 needs more than 2\^53 bytes but data_offsets \[0, 8\] hold 8/,
    ],
    [
      'a shape claiming 2^40 elements',
      forge({ a: f32([2 ** 20, 2 ** 20], [0, 8]) }, new Uint8Array(8)),
      /shape \[1048576, 1048576\] of F32 needs 4398046511104 bytes/,
    ],
    ['an empty shape with data too short', forge({ a: f32([], [0, 2]) }, new Uint8Array(2)), /shape \[\] of F32 needs 4 bytes/],
    [
      'a zero dimension with bytes',
      forge({ a: f32([0, 4], [0, 4]) }, new Uint8Array(4)),
      /shape \[0, 4\] of F32 needs 0 bytes but data_offsets \[0, 4\] hold 4/,
    ],
    ['a metadata value that is a number', forge({ __metadata__: { a: 1 } }), /__metadata__ value "a" must be a string, got 1/],
    ['metadata that is an array', forge({ __metadata__: ['a'] }), /__metadata__ must be an object of strings, got an array/],
    ['metadata that is a string', forge({ __metadata__: 'x' }), /__metadata__ must be an object of strings, got "x"/],
  ];

  for (const [what, bytes, message] of cases) {
    it(what, () => {
      expect(() => decodeSafetensors(bytes)).toThrow(message);
      expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsError);
    });
  }

  it('reports invalid UTF-8 in a key as such', () => {
    const bytes = forge('{"\u0000":{}}');
    const at = bytes.indexOf(0, 8);
    bytes[at] = 0xff; // a byte that never occurs in UTF-8
    expect(() => decodeSafetensors(bytes)).toThrow(/header is not valid UTF-8/);
  });

  it('accepts the optional pieces: null metadata, empty files, zero-size tensors anywhere', () => {
    expect(decodeSafetensors(forge({ __metadata__: null }))).toEqual({ tensors: {}, metadata: {} });
    const decoded = decodeSafetensors(
      forge({ a: f32([0], [0, 0]), b: f32([1], [0, 4]), c: f32([2, 0], [4, 4]) }, new Uint8Array([0, 0, 0x80, 0x3f])),
    );
    expect(Object.keys(decoded.tensors).sort()).toEqual(['a', 'b', 'c']);
    expect(Array.from(decoded.tensors.b.data as Float32Array)).toEqual([1]);
  });

  it('SafetensorsError is a ModelFileError', () => {
    expect(() => decodeSafetensors(new Uint8Array(0))).toThrow(ModelFileError);
  });
});

describe('huge claims are refused before anything is allocated', () => {
  const claims: [string, Uint8Array][] = [
    ['a header length of 2^50', forge({}, new Uint8Array(0), 1n << 50n)],
    ['a header length of 10^9', forge({}, new Uint8Array(0), 1_000_000_000n)],
    ['offsets of 2^50 bytes', forge({ a: f32([2 ** 48], [0, 2 ** 50]) }, new Uint8Array(8))],
    ['a shape of 2^60 elements over 8 bytes', forge({ a: f32([2 ** 30, 2 ** 30], [0, 8]) }, new Uint8Array(8))],
  ];
  for (const [what, bytes] of claims) {
    it(what, () => {
      const { error, grewBy } = decodeMeasuringMemory(bytes);
      expect(error).toBeInstanceOf(SafetensorsError);
      // nothing near the claimed size: less than the input plus a small margin for the runtime
      expect(grewBy).toBeLessThan(bytes.length + (1 << 20));
    });
  }

  it('a 10^9-byte header length is refused even with a raised bound, as it runs past the file', () => {
    const bytes = forge({}, new Uint8Array(0), 1_000_000_000n);
    expect(() => decodeSafetensors(bytes, { maxHeaderBytes: 2_000_000_000 })).toThrow(
      /header length 1000000000 runs past the end of the file \(16 bytes\)/,
    );
  });

  it('the header bound is an option', () => {
    const bytes = encodeSafetensors({ a: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    expect(() => decodeSafetensors(bytes, { maxHeaderBytes: 16 })).toThrow(/over the limit of 16 bytes \(maxHeaderBytes\)/);
    expect(() => decodeSafetensors(bytes, { maxHeaderBytes: 1.5 })).toThrow(/options.maxHeaderBytes must be an integer >= 2, got 1.5/);
  });
});

// a generous bound so a loaded CI machine is not mistaken for a hang
describe('random damage to a valid file ends in SafetensorsError or a self-consistent decode', { timeout: 60_000 }, () => {
  const rng = new Rng(2024);
  const tensors: Record<string, TensorInput> = {};
  const shapes: Record<string, number[]> = {
    'wte.weight': [16, 8],
    'wpe.weight': [8, 8],
    'h.0.ln_1.weight': [8],
    'h.0.attn.c_attn.weight': [8, 24],
    'h.0.attn.c_attn.bias': [24],
    'ln_f.bias': [8],
    'h.0.attn.bias': [1, 1, 8, 8],
  };
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => rng.normal());
    tensors[name] = { dtype: 'F32', shape, data };
  }
  tensors.half = { dtype: 'F16', shape: [3], data: new Float32Array([1, 2, 3]) };
  tensors.ids = { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n]) };
  const valid = encodeSafetensors(tensors, { format: 'tinygpt', config: '{"vocabSize":16,"dModel":8}' });

  /** Decodes; on success checks that every tensor is exactly what its header entry claims. */
  function decodeChecked(bytes: Uint8Array): 'error' | 'decoded' {
    let decoded;
    try {
      decoded = decodeSafetensors(bytes);
    } catch (error) {
      if (!(error instanceof SafetensorsError)) throw error;
      return 'error';
    }
    let total = 0;
    for (const { dtype, shape, data } of Object.values(decoded.tensors)) {
      const count = shape.reduce((a, b) => a * b, 1);
      expect(data.length).toBe(count);
      expect(data.byteLength).toBe(count * dtypeByteSize(dtype));
      total += data.byteLength;
    }
    expect(total).toBeLessThanOrEqual(bytes.length);
    for (const value of Object.values(decoded.metadata)) expect(typeof value).toBe('string');
    return 'decoded';
  }

  it('1,000 random truncations', () => {
    const outcomes = { error: 0, decoded: 0 };
    for (let trial = 0; trial < 1000; trial++) {
      const length = rng.nextInt(valid.length);
      outcomes[decodeChecked(valid.slice(0, length))]++;
    }
    // every strict prefix loses data bytes the header accounts for
    expect(outcomes).toEqual({ error: 1000, decoded: 0 });
  });

  it('1,000 random bit flips (1 to 3 bits each)', () => {
    const outcomes = { error: 0, decoded: 0 };
    for (let trial = 0; trial < 1000; trial++) {
      const damaged = valid.slice();
      const flips = 1 + rng.nextInt(3);
      for (let f = 0; f < flips; f++) {
        const bit = rng.nextInt(damaged.length * 8);
        damaged[bit >> 3] ^= 1 << (bit & 7);
      }
      outcomes[decodeChecked(damaged)]++;
    }
    // flips inside tensor data decode to other values; flips in the prefix or header mostly fail
    expect(outcomes.error).toBeGreaterThan(50);
    expect(outcomes.decoded).toBeGreaterThan(50);
  });

  it('1,000 random header rewrites (digits and punctuation swapped)', () => {
    const headerLength = Number(new DataView(valid.buffer).getBigUint64(0, true));
    const alphabet = encoder.encode('0123456789-.,:[]{}"e ');
    const outcomes = { error: 0, decoded: 0 };
    for (let trial = 0; trial < 1000; trial++) {
      const damaged = valid.slice();
      const at = 8 + rng.nextInt(headerLength);
      damaged[at] = alphabet[rng.nextInt(alphabet.length)];
      outcomes[decodeChecked(damaged)]++;
    }
    expect(outcomes.error).toBeGreaterThan(0);
  });
});
