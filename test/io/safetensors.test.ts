import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  SAFETENSORS_DTYPES,
  SafetensorsError,
  decodeSafetensors,
  dtypeByteSize,
  encodeSafetensors,
  float16BitsToFloat32,
  roundToBFloat16Bits,
  roundToFloat16Bits,
  tensorToFloat32,
  type SafetensorsDType,
  type TensorInput,
} from '../../src/io/safetensors.js';
import { Rng } from '../../src/util/rng.js';

/** Written by Hugging Face's safetensors 0.8.0 (see fixtures/make-reference.py). */
const reference = new Uint8Array(readFileSync(new URL('./fixtures/reference.safetensors', import.meta.url)));

function headerOf(bytes: Uint8Array): string {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + length));
}

/** Random data of the right typed array for each dtype. */
function randomTensor(dtype: SafetensorsDType, shape: number[], rng: Rng): TensorInput {
  const count = shape.reduce((a, b) => a * b, 1);
  const raw = new Uint8Array(count * dtypeByteSize(dtype));
  for (let i = 0; i < raw.length; i++) raw[i] = rng.nextU32() & 0xff;
  const b = raw.buffer;
  const data = {
    F64: () => new Float64Array(b),
    F32: () => new Float32Array(b),
    F16: () => new Uint16Array(b),
    BF16: () => new Uint16Array(b),
    I64: () => new BigInt64Array(b),
    I32: () => new Int32Array(b),
    I16: () => new Int16Array(b),
    I8: () => new Int8Array(b),
    U64: () => new BigUint64Array(b),
    U32: () => new Uint32Array(b),
    U16: () => new Uint16Array(b),
    U8: () => raw,
    BOOL: () => raw.map((x) => x & 1),
    F8_E4M3: () => raw,
    F8_E5M2: () => raw,
  }[dtype]();
  return { dtype, shape, data };
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

describe('decodeSafetensors on a file written by the reference implementation', () => {
  const { tensors, metadata } = decodeSafetensors(reference);

  it('reads every dtype, shape and value', () => {
    expect(metadata).toEqual({ format: 'np' });
    expect(Object.keys(tensors).sort()).toEqual([
      'bool',
      'empty',
      'f16',
      'f32',
      'f64',
      'i16',
      'i32',
      'i64',
      'i8',
      'transformer.h.0.attn.c_attn.weight',
      'u16',
      'u32',
      'u64',
      'u8',
    ]);
    expect(tensors.f64).toMatchObject({ dtype: 'F64', shape: [3] });
    expect(Array.from(tensors.f64.data as Float64Array)).toEqual([1.5, -2.25, 1e300]);
    expect(tensors.f32).toMatchObject({ dtype: 'F32', shape: [3, 4] });
    expect(Array.from(tensors.f32.data as Float32Array)).toEqual([-3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5]);
    expect(tensors.f16).toMatchObject({ dtype: 'F16', shape: [7] });
    expect(Array.from(tensorToFloat32(tensors.f16))).toEqual([1, -2, 65504, 2 ** -24, Infinity, -0, 0.333251953125]);
    expect(tensors.i64).toMatchObject({ dtype: 'I64', shape: [] });
    expect(Array.from(tensors.i64.data as BigInt64Array)).toEqual([-9007199254740993n]);
    expect(Array.from(tensors.i32.data as Int32Array)).toEqual([-2147483648, 2147483647]);
    expect(tensors.i32.shape).toEqual([1, 2]);
    expect(Array.from(tensors.i16.data as Int16Array)).toEqual([-32768, 32767]);
    expect(Array.from(tensors.i8.data as Int8Array)).toEqual([-128, 127, 0]);
    expect(Array.from(tensors.u64.data as BigUint64Array)).toEqual([18446744073709551615n]);
    expect(Array.from(tensors.u32.data as Uint32Array)).toEqual([4294967295, 1]);
    expect(Array.from(tensors.u16.data as Uint16Array)).toEqual([65535]);
    expect(Array.from(tensors.u8.data as Uint8Array)).toEqual([0, 255, 7]);
    expect(tensors.bool).toMatchObject({ dtype: 'BOOL', shape: [3] });
    expect(Array.from(tensors.bool.data as Uint8Array)).toEqual([1, 0, 1]);
    expect(tensors.empty).toMatchObject({ dtype: 'F32', shape: [0, 3] });
    expect(tensors.empty.data.length).toBe(0);
    expect(Array.from(tensors['transformer.h.0.attn.c_attn.weight'].data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('re-encodes them to the very same bytes as the reference writer', () => {
    const inputs: Record<string, TensorInput> = {};
    // insert in reverse order: the layout must not depend on it
    for (const name of Object.keys(tensors).reverse()) inputs[name] = tensors[name];
    const encoded = encodeSafetensors(inputs, metadata);
    expect(headerOf(encoded)).toBe(headerOf(reference));
    expect(Buffer.from(encoded).equals(Buffer.from(reference))).toBe(true);
  });

  it('lays out bfloat16, float8 and the other narrow types exactly as the reference writer', () => {
    const narrow = new Uint8Array(readFileSync(new URL('./fixtures/reference-narrow.safetensors', import.meta.url)));
    const decoded = decodeSafetensors(narrow);
    expect(Object.fromEntries(Object.entries(decoded.tensors).map(([name, t]) => [name, t.dtype]))).toEqual({
      a: 'BF16',
      b: 'F16',
      c: 'F8_E4M3',
      d: 'F8_E5M2',
      e: 'I8',
      f: 'U16',
      g: 'I16',
      h: 'U8',
      i: 'BOOL',
    });
    expect(Array.from(tensorToFloat32(decoded.tensors.a))).toEqual([1, -2]);
    expect(Array.from(decoded.tensors.g.data as Int16Array)).toEqual([-1]);
    const reversed = Object.fromEntries(Object.entries(decoded.tensors).reverse());
    expect(Buffer.from(encodeSafetensors(reversed)).equals(Buffer.from(narrow))).toBe(true);
  });

  it('returns aligned float tensors as views of the input and copies on request', () => {
    expect(tensors.f32.data.buffer).toBe(reference.buffer);
    const copied = decodeSafetensors(reference, { copy: true }).tensors.f32.data;
    expect(copied.buffer).not.toBe(reference.buffer);
    expect(Array.from(copied as Float32Array)).toEqual(Array.from(tensors.f32.data as Float32Array));
  });

  it('copies when the input sits at an offset that misaligns the data', () => {
    const shifted = new Uint8Array(reference.length + 1);
    shifted.set(reference, 1);
    const misaligned = shifted.subarray(1);
    const decoded = decodeSafetensors(misaligned).tensors;
    expect(decoded.f32.data.buffer).not.toBe(shifted.buffer);
    expect(Array.from(decoded.f32.data as Float32Array)).toEqual(Array.from(tensors.f32.data as Float32Array));
    expect(Array.from(decoded.u64.data as BigUint64Array)).toEqual([18446744073709551615n]);
  });
});

describe('encodeSafetensors / decodeSafetensors round trip', () => {
  it('round-trips every dtype, scalars, empty tensors and metadata bit for bit', () => {
    const rng = new Rng(7);
    const shapes = [[], [0], [3], [2, 5], [2, 0, 4], [1, 3, 2]];
    const tensors: Record<string, TensorInput> = {};
    for (const dtype of SAFETENSORS_DTYPES) {
      shapes.forEach((shape, i) => (tensors[`${dtype.toLowerCase()}.${i}`] = randomTensor(dtype, shape, rng)));
    }
    const metadata = { format: 'tinygpt', config: '{"a":1}', 'unicode ✓': 'värde 🙂', empty: '' };
    const bytes = encodeSafetensors(tensors, metadata);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual(metadata);
    expect(Object.keys(decoded.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, tensor] of Object.entries(tensors)) {
      const got = decoded.tensors[name];
      expect(got.dtype, name).toBe(tensor.dtype);
      expect(got.shape, name).toEqual(tensor.shape);
      expect(got.data.constructor, name).toBe(tensor.data.constructor === Uint8Array ? Uint8Array : tensor.data.constructor);
      expect(Buffer.from(bytesOf(got.data)).equals(Buffer.from(bytesOf(tensor.data))), name).toBe(true);
    }
  });

  it('starts the data 8-aligned with a space-padded header and aligns each tensor for its dtype', () => {
    for (const nameLength of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const bytes = encodeSafetensors({
        ['x'.repeat(nameLength)]: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
        w: { dtype: 'F64', shape: [1], data: new Float64Array([2]) },
        h: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      });
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect((8 + headerLength) % 8).toBe(0);
      const header = headerOf(bytes);
      expect(header).toMatch(/^\{.*\} *$/);
      const parsed = JSON.parse(header);
      expect(parsed.w.data_offsets).toEqual([0, 8]);
      expect(parsed.h.data_offsets).toEqual([8, 10]);
      expect(parsed['x'.repeat(nameLength)].data_offsets).toEqual([10, 13]);
    }
  });

  it('gives identical bytes for any key insertion order and on repeated runs', () => {
    const rng = new Rng(3);
    // integer-like names too: JS objects enumerate those first, the file must not
    const dtypes: Record<string, SafetensorsDType> = {
      'wte.weight': 'F32',
      '10': 'F16',
      '2': 'F32',
      'h.0.ln_1.bias': 'F16',
      'h.10.ln_1.bias': 'F32',
      Z: 'F32',
      a: 'F16',
      é: 'F32',
      '😀': 'F32',
      ￜ: 'F32',
    };
    const tensors = Object.entries(dtypes).map(([name, dtype]) => [name, randomTensor(dtype, [2, 3], rng)] as const);
    const metadata = [
      ['b', '1'],
      ['a', '2'],
      ['10', '3'],
    ] as const;
    const outputs = new Set<string>();
    const order = new Rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const shuffled = [...tensors];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = order.nextInt(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      const shuffledMeta = trial % 2 ? [...metadata].reverse() : [...metadata];
      outputs.add(Buffer.from(encodeSafetensors(Object.fromEntries(shuffled), Object.fromEntries(shuffledMeta))).toString('hex'));
    }
    expect(outputs.size).toBe(1);
    const header = headerOf(Buffer.from([...outputs][0], 'hex'));
    // F32 before F16; within each, code point order (UTF-8 byte order, as the reference writer):
    // U+FFDC before U+1F600 although UTF-16 code units would order them the other way
    const names = [...header.matchAll(/"([^"]+)":\{"(?:dtype|10|a|b)/g)].map((m) => m[1]);
    expect(names).toEqual(['__metadata__', '2', 'Z', 'h.10.ln_1.bias', 'wte.weight', 'é', 'ￜ', '😀', '10', 'a', 'h.0.ln_1.bias']);
    expect(header.startsWith('{"__metadata__":{"10":"3","a":"2","b":"1"},')).toBe(true);
  });

  it('stores a tensor named __proto__ as a plain entry', () => {
    const tensors = JSON.parse('{"__proto__": {"dtype": "U8", "shape": [1], "data": null}}');
    tensors.__proto__.data = new Uint8Array([9]);
    const decoded = decodeSafetensors(encodeSafetensors(tensors));
    expect(Object.keys(decoded.tensors)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(decoded.tensors)).toBe(Object.prototype);
    expect(Array.from(decoded.tensors.__proto__.data as Uint8Array)).toEqual([9]);
  });

  it('accepts raw little-endian bytes and Float32Array for half types', () => {
    const raw = new Uint8Array([0x00, 0x00, 0x80, 0x3f]); // 1.0f
    const fromRaw = decodeSafetensors(encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: raw } }));
    expect(Array.from(fromRaw.tensors.x.data as Float32Array)).toEqual([1]);
    const values = new Float32Array([1, -2, 0.1, 70000]);
    const half = decodeSafetensors(
      encodeSafetensors({
        h: { dtype: 'F16', shape: [4], data: values },
        b: { dtype: 'BF16', shape: [4], data: values },
      }),
    );
    expect(Array.from(half.tensors.h.data as Uint16Array)).toEqual([0x3c00, 0xc000, 0x2e66, 0x7c00]);
    expect(Array.from(half.tensors.b.data as Uint16Array)).toEqual([0x3f80, 0xc000, 0x3dcd, 0x4789]);
    expect(Array.from(tensorToFloat32(half.tensors.b))).toEqual([1, -2, 0.10009765625, 70144]);
  });

  it('takes typed arrays from another realm (a worker, an iframe, node:vm)', () => {
    const foreign = runInNewContext('({ w: new Float32Array([1.5, -2]), h: new Float32Array([0.5]), u: new Uint8Array([7]) })');
    expect(foreign.w instanceof Float32Array).toBe(false);
    const bytes = encodeSafetensors({
      w: { dtype: 'F32', shape: [2], data: foreign.w },
      h: { dtype: 'F16', shape: [1], data: foreign.h },
      u: { dtype: 'U8', shape: [1], data: foreign.u },
    });
    const foreignBytes = runInNewContext('(n) => new Uint8Array(n)')(bytes.length) as Uint8Array;
    foreignBytes.set(bytes);
    const { tensors } = decodeSafetensors(foreignBytes);
    expect(Array.from(tensors.w.data as Float32Array)).toEqual([1.5, -2]);
    expect(Array.from(tensorToFloat32(tensors.h))).toEqual([0.5]);
    expect(Array.from(tensors.u.data as Uint8Array)).toEqual([7]);
  });

  it('rejects bad encoder input naming the tensor and the field', () => {
    const ok = { dtype: 'F32', shape: [2], data: new Float32Array(2) } as const;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ x: { ...ok, dtype: 'F128' } }, /tensor "x": dtype "F128" is not one of F64, F32/],
      [{ x: { ...ok, shape: [2, -1] } }, /tensor "x": shape \[2, -1\] has dimension 1 = -1/],
      [{ x: { ...ok, shape: [1.5] } }, /dimension 0 = 1.5/],
      [{ x: { ...ok, shape: 'abc' } }, /tensor "x": shape must be an array/],
      [{ x: { ...ok, shape: [3] } }, /tensor "x" \(F32, shape \[3\]\): data has 2 elements, shape needs 3/],
      [{ x: { ...ok, data: new Int32Array(2) } }, /data is an Int32Array; expected Float32Array or Uint8Array/],
      [{ x: { ...ok, data: new Uint8Array(7) } }, /raw data has 7 bytes, shape needs 2 x 4 = 8/],
      [{ x: { ...ok, data: [1, 2] } }, /data is an array/],
      [{ x: null }, /tensor "x" must be an object/],
      [{ __metadata__: ok }, /"__metadata__" is reserved/],
    ];
    for (const [tensors, message] of cases) {
      expect(() => encodeSafetensors(tensors as Record<string, TensorInput>)).toThrow(SafetensorsError);
      expect(() => encodeSafetensors(tensors as Record<string, TensorInput>)).toThrow(message);
    }
    expect(() => encodeSafetensors({ x: ok }, { n: 1 as unknown as string })).toThrow(/metadata "n" must be a string, got 1/);
  });
});

describe('half-precision conversions', () => {
  /** NaN halves have an all-ones exponent and a non-zero mantissa */
  const isNaNHalf = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;

  it('float16 -> float32 -> float16 is the identity on all 65,536 bit patterns', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToFloat32(bits);
      if (isNaNHalf(bits)) {
        expect(Number.isNaN(value)).toBe(true);
        expect(isNaNHalf(roundToFloat16Bits(value))).toBe(true);
      } else if (roundToFloat16Bits(value) !== bits) {
        expect.fail(`bits 0x${bits.toString(16)} -> ${value} -> 0x${roundToFloat16Bits(value).toString(16)}`);
      }
    }
  });

  it('hand-worked float16 values and ties to even', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000],
      [2 ** -25 * 1.5, 0x0001],
      [3 * 2 ** -25, 0x0002],
      [-0, 0x8000],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [1 + 2 ** -10, 0x3c01],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1e-10, 0],
      [1e10, 0x7c00],
      [(1023.5 / 1024) * 2 ** -14, 0x0400],
    ];
    for (const [value, bits] of cases) expect(roundToFloat16Bits(value), String(value)).toBe(bits);
  });

  it('rounds random float32 values to a nearest float16 and bfloat16', () => {
    const rng = new Rng(5);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const bf16ToValue = (bits: number) => {
      u32[0] = bits << 16;
      return f32[0];
    };
    for (let i = 0; i < 20000; i++) {
      // random finite float32 inside the half range, all magnitudes
      u32[0] = (rng.nextU32() & 0x807fffff) | ((rng.nextInt(143) + 0) << 23);
      const x = f32[0];
      const h = roundToFloat16Bits(x);
      if (Math.abs(x) >= 65520) {
        expect(h & 0x7fff).toBe(0x7c00); // past the largest half by at least half an ulp: overflow
        continue;
      }
      const err = Math.abs(float16BitsToFloat32(h) - x);
      for (const neighbour of [h - 1, h + 1]) {
        if ((neighbour & 0x7fff) < 0x7c00 && (neighbour & 0x8000) === (h & 0x8000)) {
          expect(err).toBeLessThanOrEqual(Math.abs(float16BitsToFloat32(neighbour) - x));
        }
      }
      u32[0] = rng.nextU32();
      const y = f32[0];
      if (!Number.isFinite(y)) continue;
      const b = roundToBFloat16Bits(y);
      const bErr = Math.abs(bf16ToValue(b) - y);
      for (const neighbour of [b - 1, b + 1]) {
        if ((neighbour & 0x7fff) < 0x7f80) expect(bErr).toBeLessThanOrEqual(Math.abs(bf16ToValue(neighbour) - y));
      }
    }
    expect(roundToBFloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
  });

  it('tensorToFloat32 rejects integer tensors', () => {
    expect(() => tensorToFloat32({ dtype: 'I32', shape: [1], data: new Int32Array(1) }, 'wte.weight')).toThrow(
      /wte.weight has dtype I32; expected a float dtype/,
    );
  });
});
