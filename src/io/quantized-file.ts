/**
 * Quantized models in tinygpt's model files (saveModel / loadModel of a QuantizedGPT).
 *
 * The metadata is a float32 file's plus `quantization` ("q8_0", "q4_0" or "f16"). Each quantized matrix
 * (wte.weight [V,C] as it is; the blocks' c_attn, attn.c_proj, c_fc and mlp.c_proj weights
 * transposed to [out, in], so that blocks of 32 run along the input) is two tensors:
 *   - `<name>.q8_0`: I8 [rows, cols], the codes; or `<name>.q4_0`: U8 [rows, cols / 2], 16 bytes per
 *     block of 32, byte j holding weight j (low nibble) and weight j + 16 (high nibble), code - 8;
 *   - `<name>.scales`: F16 [rows, cols / 32], one scale per block (ggml's Q8_0 / Q4_0 block d);
 * or, for f16, one tensor `<name>.f16`: F16 [rows, cols], the weights themselves.
 * Every other parameter (wpe, LayerNorms, biases) is F32 under its own name.
 */
import type { GPTConfig } from '../model/types.js';
import { buildParamLayout } from '../model/params.js';
import { checkQuantFormat, halfBits, quantBlockBytes, QUANT_BLOCK, type QuantFormat, type QuantizedMatrix } from '../model/quant.js';
import { isQuantizedParameter, quantizedOrientation, QuantizedGPT } from '../model/quantized.js';
import { ModelFileError } from './errors.js';
import type { LoadModelOptions } from './model-file.js';
import { tensorToFloat32, type DecodedTensor, type TensorInput } from './safetensors.js';

/** The file tensors of a quantized model. */
export async function quantizedTensors(model: QuantizedGPT): Promise<Record<string, TensorInput>> {
  const tensors: Record<string, TensorInput> = {};
  for (const [name, m] of await model.getQuantizedMatrices()) {
    if (m.format === 'f16') {
      tensors[`${name}.f16`] = {
        dtype: 'F16',
        shape: [m.rows, m.cols],
        data: Uint16Array.from({ length: m.rows * m.cols }, (_, i) => halfBits(m.quants, i)),
      };
      continue;
    }
    tensors[`${name}.${m.format}`] =
      m.format === 'q8_0'
        ? { dtype: 'I8', shape: [m.rows, m.cols], data: new Int8Array(m.quants.buffer, m.quants.byteOffset, m.quants.length) }
        : { dtype: 'U8', shape: [m.rows, m.cols / 2], data: m.quants };
    tensors[`${name}.scales`] = { dtype: 'F16', shape: [m.rows, m.cols / QUANT_BLOCK], data: m.scales };
  }
  for (const [name, values] of Object.entries(await model.getFloatParameters())) {
    tensors[name] = { dtype: 'F32', shape: model.paramLayout.find((e) => e.name === name)!.shape, data: values };
  }
  return tensors;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * A QuantizedGPT from a file's tensors, each checked against the config before anything is built.
 * `stated` is the metadata's format text and the key it came from (model-file.ts's QUANTIZATION_KEY:
 * model-file.ts imports this module only when a file is quantized, and this one does not import it).
 */
export async function quantizedModelFromTensors(
  tensors: Record<string, DecodedTensor>,
  stated: { text: string; key: string },
  config: GPTConfig,
  options: LoadModelOptions,
): Promise<QuantizedGPT> {
  let format: QuantFormat;
  try {
    format = checkQuantFormat(stated.text, `metadata "${stated.key}"`);
  } catch (cause) {
    throw new ModelFileError((cause as Error).message, { cause });
  }
  const expected = new Set<string>();
  const need = (name: string, dtype: string, shape: number[]): DecodedTensor => {
    expected.add(name);
    const tensor = tensors[name];
    if (tensor === undefined) throw new ModelFileError(`quantized model file: tensor ${name} is missing`);
    if (tensor.dtype !== dtype || shapeText(tensor.shape) !== shapeText(shape)) {
      throw new ModelFileError(
        `quantized model file: ${name} is ${tensor.dtype} ${shapeText(tensor.shape)}, the config needs ${dtype} ${shapeText(shape)}`,
      );
    }
    return tensor;
  };
  const matrices = new Map<string, QuantizedMatrix>();
  const floats: Record<string, Float32Array> = {};
  for (const entry of buildParamLayout(config).entries) {
    if (!isQuantizedParameter(entry.name)) {
      const values = tensorToFloat32(need(entry.name, 'F32', entry.shape), entry.name);
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new ModelFileError(`tensor ${entry.name} holds a non-finite value (${values[bad]}) at element ${bad}`);
      floats[entry.name] = values;
      continue;
    }
    const { rows, cols } = quantizedOrientation(entry);
    if (cols % QUANT_BLOCK !== 0)
      throw new ModelFileError(`quantized model file: ${entry.name} rows of ${cols} are not whole blocks of 32`);
    if (format === 'f16') {
      const bits = need(`${entry.name}.f16`, 'F16', [rows, cols]).data as Uint16Array;
      const bad = bits.findIndex((b) => (b & 0x7c00) === 0x7c00);
      if (bad >= 0) throw new ModelFileError(`tensor ${entry.name}.f16 holds a non-finite value at element ${bad}`);
      const quants = new Uint8Array(bits.length * 2);
      bits.forEach((b, i) => ((quants[2 * i] = b & 0xff), (quants[2 * i + 1] = b >> 8)));
      matrices.set(entry.name, { format, rows, cols, quants, scales: new Uint16Array(0) });
      continue;
    }
    const codes = need(`${entry.name}.${format}`, format === 'q8_0' ? 'I8' : 'U8', format === 'q8_0' ? [rows, cols] : [rows, cols / 2]);
    const scales = need(`${entry.name}.scales`, 'F16', [rows, cols / QUANT_BLOCK]);
    const bits = scales.data as Uint16Array;
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & 0x7c00) === 0x7c00) throw new ModelFileError(`${entry.name}.scales holds a non-finite scale at element ${i}`);
    }
    const bytes = codes.data as Int8Array | Uint8Array;
    const quants = new Uint8Array(bytes.buffer, bytes.byteOffset, (rows * cols * quantBlockBytes(format)) / QUANT_BLOCK);
    matrices.set(entry.name, { format, rows, cols, quants, scales: bits });
  }
  const extra = Object.keys(tensors).filter((name) => !expected.has(name));
  if (extra.length)
    throw new ModelFileError(
      `quantized model file: ${extra.length} tensor(s) the config has no place for: ${extra.slice(0, 8).join(', ')}`,
    );
  return QuantizedGPT.create(config, format, matrices, floats, {
    ...options,
    // 'auto' stays wasm: on an H200 WebGPU's quantized decoding was no faster than its float32 (README)
    backend: options.backend === undefined || options.backend === 'auto' ? 'wasm' : options.backend,
  });
}
