// tinygpt's GPT written out as an ONNX model (opset 14) with a KV cache, for the ONNX Runtime peer of
// bench/decode.mjs: the graph the Hugging Face exporters produce for GPT-2 (per-layer
// past_key_values in, present_key_values out), encoded by hand (a few protobuf messages) so the
// bench needs no Python. Same architecture as tinygpt: pre-LN blocks, fused q/k/v projection, causal
// attention with scale 1/sqrt(HS), GELU (tanh form), final LayerNorm, LM head tied to the token
// embedding, logits for the last position only (as tinygpt computes them).
//
// LayerNorm and GELU are spelled as the PyTorch exporter spells them (ReduceMean/Sub/Pow/.../Add and
// the tanh polynomial), patterns onnxruntime fuses into its LayerNormalization and FastGelu kernels.
//
// Inputs: input_ids int64 [1, T], position_ids int64 [1, T], attention_bias float [T, P + T] (0 where
// visible, -1e9 where not), past_key_<l> / past_value_<l> float [1, H, P, HS]. Outputs: logits
// [1, 1, V], present_key_<l> / present_value_<l> [1, H, P + T, HS].

// ---- protobuf wire format (onnx.proto is proto2: repeated scalars written unpacked) ----

class Writer {
  parts = [];
  length = 0;
  push(bytes) {
    this.parts.push(bytes);
    this.length += bytes.length;
  }
  varint(value) {
    let v = BigInt.asUintN(64, BigInt(value));
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      out.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(out));
  }
  tag(field, wire) {
    this.varint((field << 3) | wire);
  }
  int(field, value) {
    this.tag(field, 0);
    this.varint(value);
  }
  float(field, value) {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }
  bytes(field, bytes) {
    this.tag(field, 2);
    this.varint(bytes.length);
    this.push(bytes);
  }
  string(field, s) {
    this.bytes(field, new TextEncoder().encode(s));
  }
  message(field, build) {
    const inner = new Writer();
    build(inner);
    this.bytes(field, inner.finish());
  }
  finish() {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** TensorProto */
function writeTensor(w, name, dims, dataType, raw) {
  for (const d of dims) w.int(1, d);
  w.int(2, dataType);
  w.string(8, name);
  w.bytes(9, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
}

/** ValueInfoProto for a tensor; dims are numbers or symbolic names */
function writeValueInfo(w, name, elemType, dims) {
  w.string(1, name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, elemType);
      tensor.message(2, (shape) => {
        for (const d of dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/**
 * @param {{ vocabSize: number, maxSeqLen: number, dModel: number, nLayers: number, nHeads: number, dFF?: number }} config
 * @param {Record<string, Float32Array>} weights tinygpt's parameters by GPT-2 name (model.getParameters())
 * @returns {Uint8Array} the ModelProto bytes
 */
export function gptToOnnx(config, weights) {
  const { vocabSize: V, maxSeqLen: maxT, dModel: C, nLayers: L, nHeads: NH } = config;
  const F = config.dFF ?? 4 * C;
  const HS = C / NH;
  const nodes = [];
  const inits = [];
  let counter = 0;
  const fresh = (hint) => `${hint}_${counter++}`;
  /** adds a node; returns its first output's name */
  const node = (op, inputs, attrs = {}, outputs = [fresh(op)]) => {
    nodes.push({ op, inputs, outputs, attrs });
    return outputs[0];
  };
  const init = (name, dims, data, type = FLOAT) => {
    inits.push({ name, dims, data, type });
    return name;
  };
  const scalar = (v) => init(fresh('c'), [], Float32Array.of(v));
  const int64s = (values) => init(fresh('i'), [values.length], BigInt64Array.from(values.map(BigInt)), INT64);
  const weight = (name, dims) => {
    const data = weights[name];
    if (!data || data.length !== dims.reduce((a, b) => a * b, 1))
      throw new Error(`gptToOnnx: weight ${name} missing or not ${dims.join('x')}`);
    return init(name, dims, data);
  };

  const eps = scalar(1e-5);
  const two = scalar(2);
  const layerNorm = (x, prefix) => {
    const mean = node('ReduceMean', [x], { axes: [-1] });
    const d = node('Sub', [x, mean]);
    const variance = node('ReduceMean', [node('Pow', [d, two])], { axes: [-1] });
    const normed = node('Div', [d, node('Sqrt', [node('Add', [variance, eps])])]);
    return node('Add', [node('Mul', [normed, weight(`${prefix}.weight`, [C])]), weight(`${prefix}.bias`, [C])]);
  };
  const linear = (x, prefix, K, N) => node('Add', [node('MatMul', [x, weight(`${prefix}.weight`, [K, N])]), weight(`${prefix}.bias`, [N])]);
  const half = scalar(0.5);
  const one = scalar(1);
  const geluScale = scalar(Math.sqrt(2 / Math.PI));
  const geluCube = scalar(0.044715);
  const gelu = (x) => {
    const cube = node('Mul', [node('Mul', [x, x]), x]);
    const inner = node('Mul', [node('Add', [x, node('Mul', [cube, geluCube])]), geluScale]);
    return node('Mul', [node('Mul', [x, half]), node('Add', [node('Tanh', [inner]), one])]);
  };

  const headsShape = int64s([1, -1, NH, HS]);
  const flatShape = int64s([1, -1, C]);
  const splitSizes = int64s([C, C, C]);
  const attnScale = scalar(1 / Math.sqrt(HS));
  const toHeads = (t) => node('Transpose', [node('Reshape', [t, headsShape])], { perm: [0, 2, 1, 3] });

  let x = node('Add', [
    node('Gather', [weight('wte.weight', [V, C]), 'input_ids'], { axis: 0 }),
    node('Gather', [weight('wpe.weight', [maxT, C]), 'position_ids'], { axis: 0 }),
  ]);
  for (let l = 0; l < L; l++) {
    const h = `h.${l}.`;
    const qkv = linear(layerNorm(x, h + 'ln_1'), h + 'attn.c_attn', C, 3 * C);
    const [q, k, v] = [fresh('q'), fresh('k'), fresh('v')];
    node('Split', [qkv, splitSizes], { axis: 2 }, [q, k, v]);
    const keys = node('Concat', [`past_key_${l}`, toHeads(k)], { axis: 2 }, [`present_key_${l}`]);
    const values = node('Concat', [`past_value_${l}`, toHeads(v)], { axis: 2 }, [`present_value_${l}`]);
    const scores = node('Add', [
      node('Mul', [node('MatMul', [toHeads(q), node('Transpose', [keys], { perm: [0, 1, 3, 2] })]), attnScale]),
      'attention_bias',
    ]);
    const y = node('MatMul', [node('Softmax', [scores], { axis: -1 }), values]);
    const merged = node('Reshape', [node('Transpose', [y], { perm: [0, 2, 1, 3] }), flatShape]);
    x = node('Add', [x, linear(merged, h + 'attn.c_proj', C, C)]);
    const fc = gelu(linear(layerNorm(x, h + 'ln_2'), h + 'mlp.c_fc', C, F));
    x = node('Add', [x, linear(fc, h + 'mlp.c_proj', F, C)]);
  }
  const lastRow = node('Slice', [x, int64s([-1]), int64s([2 ** 53 - 1]), int64s([1])]);
  const wteT = init('wte_t', [C, V], transpose(weights['wte.weight'], V, C));
  node('MatMul', [layerNorm(lastRow, 'ln_f'), wteT], {}, ['logits']);

  const model = new Writer();
  model.int(1, 8); // ir_version
  model.string(2, 'tinygpt-bench');
  model.message(8, (opset) => {
    opset.string(1, '');
    opset.int(2, 14);
  });
  model.message(7, (graph) => {
    for (const n of nodes) {
      graph.message(1, (w) => {
        for (const i of n.inputs) w.string(1, i);
        for (const o of n.outputs) w.string(2, o);
        w.string(3, n.outputs[0]);
        w.string(4, n.op);
        for (const [name, value] of Object.entries(n.attrs)) {
          w.message(5, (a) => {
            a.string(1, name);
            if (Array.isArray(value)) {
              for (const v of value) a.int(8, v);
              a.int(20, ATTR_INTS);
            } else if (Number.isInteger(value)) {
              a.int(3, value);
              a.int(20, ATTR_INT);
            } else {
              a.float(2, value);
              a.int(20, ATTR_FLOAT);
            }
          });
        }
      });
    }
    graph.string(2, 'gpt');
    for (const t of inits) graph.message(5, (w) => writeTensor(w, t.name, t.dims, t.type, t.data));
    const input = (name, type, dims) => graph.message(11, (w) => writeValueInfo(w, name, type, dims));
    input('input_ids', INT64, [1, 'T']);
    input('position_ids', INT64, [1, 'T']);
    input('attention_bias', FLOAT, ['T', 'L']);
    for (let l = 0; l < L; l++) {
      input(`past_key_${l}`, FLOAT, [1, NH, 'P', HS]);
      input(`past_value_${l}`, FLOAT, [1, NH, 'P', HS]);
    }
    const output = (name, type, dims) => graph.message(12, (w) => writeValueInfo(w, name, type, dims));
    output('logits', FLOAT, [1, 1, V]);
    for (let l = 0; l < L; l++) {
      output(`present_key_${l}`, FLOAT, [1, NH, 'L', HS]);
      output(`present_value_${l}`, FLOAT, [1, NH, 'L', HS]);
    }
  });
  return model.finish();
}

/** [rows, cols] -> [cols, rows] */
function transpose(a, rows, cols) {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}
