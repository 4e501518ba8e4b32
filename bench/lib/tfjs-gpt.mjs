// A trainable GPT written with TensorFlow.js ops: the training baseline. Same architecture as
// tinygpt: pre-LN blocks, fused q/k/v projection, causal attention with scale 1/sqrt(HS), GELU
// (tanh form), final LayerNorm, LM head tied to the token embedding, init N(0, 0.02) with the
// residual output projections scaled by 1/sqrt(2 L). Trained with tf.variableGrads through
// tf.train.adam (tfjs has no AdamW, LR schedules or global-norm clipping; the SDK side does all three).
//
// Products and embeddings can be written two ways each (`style`, the fourth argument), so that each
// tfjs backend runs at its best. The defaults are the fair way on tfjs-backend-wasm (see
// shared/PEERS.md "Writing the peer fairly"):
// - products 'explicit-transposes' (default): every matmul goes through tf.customGrad with explicit
//   tf.transpose in its gradient, because the transposed products that autograd emits are several
//   times slower on tfjs-backend-wasm. 'transpose-flags': plain tf.matMul with transpose flags
//   (q k^T, the tied head x wte^T) and autograd's own transposed products, which a backend whose
//   matmul reads transposed operands in place (tfjs-backend-webgpu) runs without copies.
// - embedding 'one-hot' (default): one-hot matmuls, because gather has no gradient on wasm; the
//   one-hot is built as int32 and cast (float32 oneHot returns integer bit patterns on wasm).
//   'gather': tf.gather, whose gradient (UnsortedSegmentSum) exists on webgpu; it avoids a
//   [B*T, V] x [V, C] product, which for GPT-2's V = 50257 costs more than a transformer block.

/**
 * @param tf the @tensorflow/tfjs module (union package), backend already set
 * @param {{ vocabSize: number, maxSeqLen: number, dModel: number, nLayers: number, nHeads: number, dFF?: number, seed?: number }} config
 * @param {{ learningRate?: number, beta1?: number, beta2?: number, eps?: number }} [optim]
 * @param {{ products?: 'explicit-transposes' | 'transpose-flags', embedding?: 'one-hot' | 'gather' }} [style] see above
 */
export function createTfjsGPT(tf, config, optim = {}, style = {}) {
  const products = style.products ?? 'explicit-transposes';
  const embedding = style.embedding ?? 'one-hot';
  if (products !== 'explicit-transposes' && products !== 'transpose-flags') {
    throw new Error(`createTfjsGPT: style.products must be 'explicit-transposes' or 'transpose-flags', got ${products}`);
  }
  if (embedding !== 'one-hot' && embedding !== 'gather')
    throw new Error(`createTfjsGPT: style.embedding must be 'one-hot' or 'gather', got ${embedding}`);
  const flags = products === 'transpose-flags';
  const { vocabSize: V, maxSeqLen: maxT, dModel: C, nLayers: L, nHeads: NH } = config;
  const F = config.dFF ?? 4 * C;
  const HS = C / NH;
  let seed = config.seed ?? 1;
  const normal = (shape, std = 0.02) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', seed++));
  const ones = (n) => tf.variable(tf.ones([n]));
  const zeros = (n) => tf.variable(tf.zeros([n]));
  const residualStd = 0.02 / Math.sqrt(2 * L);

  const wte = normal([V, C]);
  const wpe = normal([maxT, C]);
  const blocks = Array.from({ length: L }, () => ({
    ln1g: ones(C),
    ln1b: zeros(C),
    attnW: normal([C, 3 * C]),
    attnB: zeros(3 * C),
    projW: normal([C, C], residualStd),
    projB: zeros(C),
    ln2g: ones(C),
    ln2b: zeros(C),
    fcW: normal([C, F]),
    fcB: zeros(F),
    fcProjW: normal([F, C], residualStd),
    fcProjB: zeros(C),
  }));
  const lnfg = ones(C);
  const lnfb = zeros(C);
  const variables = [wte, wpe, ...blocks.flatMap((p) => Object.values(p)), lnfg, lnfb];
  const numParameters = variables.reduce((n, v) => n + v.size, 0);
  // additive causal mask [maxT, maxT]: 0 on and below the diagonal, -1e9 above
  const causal = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([maxT, maxT]), -1, 0)), -1e9));
  const geluScale = Math.sqrt(2 / Math.PI);

  // a[M,K] @ b[K,N]; with explicit transposes, the gradients dy @ b^T and a^T @ dy materialise them
  const matmul = flags
    ? (a, b) => tf.matMul(a, b)
    : tf.customGrad((a, b, save) => {
        save([a, b]);
        return { value: tf.matMul(a, b), gradFunc: (dy, [sa, sb]) => [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)] };
      });
  // batched a[G,M,K] @ b[G,K,N], the same way
  const batchedMatmul = flags
    ? (a, b) => tf.matMul(a, b)
    : tf.customGrad((a, b, save) => {
        save([a, b]);
        return {
          value: tf.matMul(a, b),
          gradFunc: (dy, [sa, sb]) => [tf.matMul(dy, tf.transpose(sb, [0, 2, 1])), tf.matMul(tf.transpose(sa, [0, 2, 1]), dy)],
        };
      });
  // a @ b^T: q[G,T,HS] k[G,T,HS]^T in attention, x[N,C] wte[V,C]^T in the tied head
  const matmulTransposedB = (a, b) => {
    if (flags) return tf.matMul(a, b, false, true);
    return b.rank === 3 ? batchedMatmul(a, tf.transpose(b, [0, 2, 1])) : matmul(a, tf.transpose(b));
  };
  const linear = (x, w, b) => tf.add(matmul(x, w), b); // x [N, in]
  const layerNorm = (x, g, b) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
  };
  const gelu = (x) => tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(tf.mul(geluScale, tf.add(x, tf.mul(0.044715, tf.mul(tf.mul(x, x), x)))))));
  const oneHot = (ids, depth) => tf.cast(tf.oneHot(ids, depth), 'float32'); // ids int32 [N]
  // rows of table[V, C] for ids [N]: [N, C]
  const embed = (ids, table) => (embedding === 'gather' ? tf.gather(table, ids) : matmul(oneHot(ids, table.shape[0]), table));

  /** mean cross-entropy of next-token targets; inputs/targets int32 tensors [B*T] */
  function loss(inputs, targets, B, T) {
    const N = B * T;
    const mask = tf.slice(causal, [0, 0], [T, T]);
    const tok = embed(inputs, wte); // [N, C]
    let x = tf.reshape(tf.add(tf.reshape(tok, [B, T, C]), tf.slice(wpe, [0, 0], [T, C])), [N, C]);
    for (const p of blocks) {
      const h = layerNorm(x, p.ln1g, p.ln1b);
      const qkv = linear(h, p.attnW, p.attnB); // [N, 3C]
      // [B*NH, T, HS] each
      const [q, k, v] = tf
        .split(qkv, 3, 1)
        .map((t) => tf.reshape(tf.transpose(tf.reshape(t, [B, T, NH, HS]), [0, 2, 1, 3]), [B * NH, T, HS]));
      const scores = tf.add(tf.mul(matmulTransposedB(q, k), 1 / Math.sqrt(HS)), mask); // [B*NH, T, T]
      const y = batchedMatmul(tf.softmax(scores), v); // [B*NH, T, HS]
      const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, NH, T, HS]), [0, 2, 1, 3]), [N, C]);
      x = tf.add(x, linear(merged, p.projW, p.projB));
      const h2 = layerNorm(x, p.ln2g, p.ln2b);
      x = tf.add(x, linear(gelu(linear(h2, p.fcW, p.fcB)), p.fcProjW, p.fcProjB));
    }
    const logits = matmulTransposedB(layerNorm(x, lnfg, lnfb), wte); // [N, V], tied head
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot(targets, V), tf.logSoftmax(logits)), -1)));
  }

  const optimizer = tf.train.adam(optim.learningRate ?? 1e-3, optim.beta1 ?? 0.9, optim.beta2 ?? 0.99, optim.eps ?? 1e-8);

  /** one Adam step on inputs/targets (Int32Array [B*T]); resolves with the loss */
  async function trainStep(inputIds, targetIds, B, T) {
    const inputs = tf.tensor1d(inputIds, 'int32');
    const targets = tf.tensor1d(targetIds, 'int32');
    const lossTensor = optimizer.minimize(() => loss(inputs, targets, B, T), true, variables);
    const value = (await lossTensor.data())[0];
    tf.dispose([inputs, targets, lossTensor]);
    return value;
  }

  /** the variables under tinygpt's GPT-2 names, for copying one model's weights into the other */
  function namedVariables() {
    const named = { 'wte.weight': wte, 'wpe.weight': wpe, 'ln_f.weight': lnfg, 'ln_f.bias': lnfb };
    blocks.forEach((p, i) => {
      Object.assign(named, {
        [`h.${i}.ln_1.weight`]: p.ln1g,
        [`h.${i}.ln_1.bias`]: p.ln1b,
        [`h.${i}.attn.c_attn.weight`]: p.attnW,
        [`h.${i}.attn.c_attn.bias`]: p.attnB,
        [`h.${i}.attn.c_proj.weight`]: p.projW,
        [`h.${i}.attn.c_proj.bias`]: p.projB,
        [`h.${i}.ln_2.weight`]: p.ln2g,
        [`h.${i}.ln_2.bias`]: p.ln2b,
        [`h.${i}.mlp.c_fc.weight`]: p.fcW,
        [`h.${i}.mlp.c_fc.bias`]: p.fcB,
        [`h.${i}.mlp.c_proj.weight`]: p.fcProjW,
        [`h.${i}.mlp.c_proj.bias`]: p.fcProjB,
      });
    });
    return named;
  }

  /** the loss without a training step (for checking the two models compute the same function) */
  async function evalLoss(inputIds, targetIds, B, T) {
    const value = tf.tidy(() => loss(tf.tensor1d(inputIds, 'int32'), tf.tensor1d(targetIds, 'int32'), B, T));
    const result = (await value.data())[0];
    value.dispose();
    return result;
  }

  function dispose() {
    optimizer.dispose();
    tf.dispose([...variables, causal]);
  }

  return { trainStep, evalLoss, namedVariables, numParameters, dispose };
}
