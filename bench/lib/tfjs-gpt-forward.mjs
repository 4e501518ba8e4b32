// A forward-only GPT written with TensorFlow.js ops: the generation baseline that recomputes the
// whole context for every new token (tfjs has no KV cache). Same architecture as tinygpt: pre-LN
// blocks, fused q/k/v projection, causal attention with scale 1/sqrt(HS), GELU (tanh form),
// final LayerNorm, LM head tied to the token embedding. Weights: tinygpt's own (so both sides
// compute the same function and the bench can check it), or random N(0, 0.02).
//
// Written to be fair on tfjs-backend-wasm (see shared/PEERS.md): products with a transposed
// operand are slow there, so k^T and the tied head wte^T are materialised with tf.transpose, and
// only the last position goes through the head.

/**
 * @param tf the @tensorflow/tfjs module, backend already set
 * @param {{ vocabSize: number, maxSeqLen: number, dModel: number, nLayers: number, nHeads: number, dFF?: number, seed?: number }} config
 * @param {Record<string, Float32Array>} [weights] tinygpt's parameters by GPT-2 name (model.getParameters()); random when absent
 */
export function createTfjsGPTForward(tf, config, weights) {
  const { vocabSize: V, maxSeqLen: maxT, dModel: C, nLayers: L, nHeads: NH } = config;
  const F = config.dFF ?? 4 * C;
  const HS = C / NH;
  let seed = config.seed ?? 1;
  const residualStd = 0.02 / Math.sqrt(2 * L);
  /** the named weight when given, else a fresh tensor from `init` */
  const param = (name, shape, init) => (weights ? tf.tensor(weights[name], shape) : init(shape));
  const normal = (std) => (shape) => tf.randomNormal(shape, 0, std, 'float32', seed++);
  const ones = (shape) => tf.ones(shape);
  const zeros = (shape) => tf.zeros(shape);

  const wte = param('wte.weight', [V, C], normal(0.02));
  const wteT = tf.transpose(wte); // [C, V] for the tied head
  const wpe = param('wpe.weight', [maxT, C], normal(0.02));
  const blocks = Array.from({ length: L }, (_, i) => {
    const h = `h.${i}.`;
    return {
      ln1g: param(h + 'ln_1.weight', [C], ones),
      ln1b: param(h + 'ln_1.bias', [C], zeros),
      attnW: param(h + 'attn.c_attn.weight', [C, 3 * C], normal(0.02)),
      attnB: param(h + 'attn.c_attn.bias', [3 * C], zeros),
      projW: param(h + 'attn.c_proj.weight', [C, C], normal(residualStd)),
      projB: param(h + 'attn.c_proj.bias', [C], zeros),
      ln2g: param(h + 'ln_2.weight', [C], ones),
      ln2b: param(h + 'ln_2.bias', [C], zeros),
      fcW: param(h + 'mlp.c_fc.weight', [C, F], normal(0.02)),
      fcB: param(h + 'mlp.c_fc.bias', [F], zeros),
      fcProjW: param(h + 'mlp.c_proj.weight', [F, C], normal(residualStd)),
      fcProjB: param(h + 'mlp.c_proj.bias', [C], zeros),
    };
  });
  const lnfg = param('ln_f.weight', [C], ones);
  const lnfb = param('ln_f.bias', [C], zeros);
  // additive causal mask [maxT, maxT]: 0 on and below the diagonal, -1e9 above
  const causal = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([maxT, maxT]), -1, 0)), -1e9));
  const geluScale = Math.sqrt(2 / Math.PI);

  const layerNorm = (x, g, b) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
  };
  const gelu = (x) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(geluScale, tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));

  /** logits [V] of the last position of `ids` (T <= maxSeqLen), recomputing every position */
  async function lastLogits(ids) {
    const T = ids.length;
    if (T > maxT) throw new RangeError(`tfjs GPT: context ${T} exceeds maxSeqLen ${maxT}`);
    const logits = tf.tidy(() => {
      const idx = tf.tensor1d(ids, 'int32');
      let x = tf.add(tf.gather(wte, idx), tf.slice(wpe, [0, 0], [T, C])); // [T, C]
      const mask = tf.slice(causal, [0, 0], [T, T]);
      for (const p of blocks) {
        const h = layerNorm(x, p.ln1g, p.ln1b);
        const qkv = tf.add(tf.matMul(h, p.attnW), p.attnB); // [T, 3C]
        const [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.transpose(tf.reshape(t, [T, NH, HS]), [1, 0, 2])); // [NH, T, HS]
        const kT = tf.transpose(k, [0, 2, 1]); // [NH, HS, T]
        const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, kT), 1 / Math.sqrt(HS)), mask)); // [NH, T, T]
        const y = tf.reshape(tf.transpose(tf.matMul(att, v), [1, 0, 2]), [T, C]);
        x = tf.add(x, tf.add(tf.matMul(y, p.projW), p.projB));
        const h2 = layerNorm(x, p.ln2g, p.ln2b);
        x = tf.add(x, tf.add(tf.matMul(gelu(tf.add(tf.matMul(h2, p.fcW), p.fcB)), p.fcProjW), p.fcProjB));
      }
      const last = layerNorm(tf.slice(x, [T - 1, 0], [1, C]), lnfg, lnfb);
      return tf.reshape(tf.matMul(last, wteT), [V]);
    });
    const data = await logits.data();
    logits.dispose();
    return data;
  }

  /** greedy decoding of `newTokens` after `prompt`, a full forward per token */
  async function generateGreedy(prompt, newTokens) {
    const ids = [...prompt];
    for (let i = 0; i < newTokens; i++) {
      const logits = await lastLogits(ids);
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
      ids.push(best);
    }
    return ids.slice(prompt.length);
  }

  function dispose() {
    tf.dispose([wte, wteT, wpe, lnfg, lnfb, causal, ...blocks.flatMap((p) => Object.values(p))]);
  }

  return { lastLogits, generateGreedy, dispose };
}
