/**
 * Causal self-attention of the reference backend, over the views' elements: the loops that follow
 * contract.ts's attentionForward, attentionBackward and attentionCached. Scores and sums are
 * JavaScript doubles; the tensors come checked (shapes, aliasing) from CheckedBackend.
 */
export type FloatStorage = Float32Array | Float64Array;

/** out [B,T,C], lse [B,NH,T] from qkv [B,T,3C]: causal softmax(q k^T / sqrt(HS)) v per head */
export function attentionForward(
  o: FloatStorage,
  logSumExps: FloatStorage,
  x: FloatStorage,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const scores = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        // scores over the causal window t2 <= t
        let maxScore = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * 3 * C + C + h * HS;
          let dot = 0;
          for (let i = 0; i < HS; i++) dot += x[q + i] * x[k + i];
          scores[t2] = dot * scale;
          maxScore = Math.max(maxScore, scores[t2]);
        }
        let sumExp = 0;
        for (let t2 = 0; t2 <= t; t2++) sumExp += Math.exp(scores[t2] - maxScore);
        const rowLse = maxScore + Math.log(sumExp);
        logSumExps[(b * NH + h) * T + t] = rowLse;
        const outRow = (b * T + t) * C + h * HS;
        for (let i = 0; i < HS; i++) {
          let sum = 0;
          for (let t2 = 0; t2 <= t; t2++) {
            const v = (b * T + t2) * 3 * C + 2 * C + h * HS;
            sum += Math.exp(scores[t2] - rowLse) * x[v + i];
          }
          o[outRow + i] = sum;
        }
      }
    }
  }
}

/**
 * With p = softmax(s): dv += p * dout, dp = dout . v, ds = p * (dp - sum(p * dp)), and
 * s = scale * q . k gives dq += scale * ds * k, dk += scale * ds * q. The row sum(p * dp) equals
 * dout . out; it is computed from p here so that the oracle does not depend on `out`.
 */
export function attentionBackward(
  dx: FloatStorage,
  d: FloatStorage,
  x: FloatStorage,
  logSumExps: FloatStorage,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  const probs = new Float64Array(T);
  const dprobs = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * 3 * C + h * HS;
        const doutRow = (b * T + t) * C + h * HS;
        const rowLse = logSumExps[(b * NH + h) * T + t];
        let pdpSum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * 3 * C + C + h * HS;
          const v = k + C;
          let dot = 0;
          let dp = 0;
          for (let i = 0; i < HS; i++) {
            dot += x[q + i] * x[k + i];
            dp += d[doutRow + i] * x[v + i];
          }
          probs[t2] = Math.exp(dot * scale - rowLse);
          dprobs[t2] = dp;
          pdpSum += probs[t2] * dp;
        }
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * 3 * C + C + h * HS;
          const v = k + C;
          const dscore = probs[t2] * (dprobs[t2] - pdpSum);
          for (let i = 0; i < HS; i++) {
            dx[q + i] += scale * dscore * x[k + i];
            dx[k + i] += scale * dscore * x[q + i];
            dx[v + i] += probs[t2] * d[doutRow + i];
          }
        }
      }
    }
  }
}

/** out [B,Tn,C] from qkv [B,Tn,3C], after appending its k and v at startPos of the caches [B,cacheLen,C] */
export function attentionCached(
  o: FloatStorage,
  x: FloatStorage,
  keys: FloatStorage,
  values: FloatStorage,
  B: number,
  Tn: number,
  C: number,
  NH: number,
  startPos: number,
  cacheLen: number,
): void {
  const HS = C / NH;
  // append the new positions' k and v: cache [B, cacheLen, C]
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tn; i++) {
      const src = (b * Tn + i) * 3 * C;
      const dst = (b * cacheLen + startPos + i) * C;
      for (let c = 0; c < C; c++) {
        keys[dst + c] = x[src + C + c];
        values[dst + c] = x[src + 2 * C + c];
      }
    }
  }
  const scale = 1 / Math.sqrt(HS);
  const scores = new Float64Array(startPos + Tn);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < Tn; i++) {
        const q = (b * Tn + i) * 3 * C + h * HS;
        const lastPos = startPos + i;
        let maxScore = -Infinity;
        for (let pos = 0; pos <= lastPos; pos++) {
          const k = (b * cacheLen + pos) * C + h * HS;
          let dot = 0;
          for (let j = 0; j < HS; j++) dot += x[q + j] * keys[k + j];
          scores[pos] = dot * scale;
          maxScore = Math.max(maxScore, scores[pos]);
        }
        let sumExp = 0;
        for (let pos = 0; pos <= lastPos; pos++) sumExp += Math.exp(scores[pos] - maxScore);
        const rowLse = maxScore + Math.log(sumExp);
        const outRow = (b * Tn + i) * C + h * HS;
        for (let j = 0; j < HS; j++) {
          let sum = 0;
          for (let pos = 0; pos <= lastPos; pos++) {
            sum += Math.exp(scores[pos] - rowLse) * values[(b * cacheLen + pos) * C + h * HS + j];
          }
          o[outRow + j] = sum;
        }
      }
    }
  }
}
