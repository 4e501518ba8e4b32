import type { Backend, Tensor } from '../backend/contract.js';

/**
 * The buffers one transformer block reads and writes, N = B*T rows. Training keeps each in its own
 * buffer for backward; cached inference passes the same residual stream as input, residual2 and
 * output (residualForward may write over its first input) and one buffer for fch and fchGelu (GELU
 * may run in place).
 */
export interface BlockBuffers {
  input: Tensor; // [N,C]
  ln1: Tensor; // [N,C]
  ln1Mean: Tensor; // [N]
  ln1Rstd: Tensor; // [N]
  qkv: Tensor; // [N,3C]
  atty: Tensor; // [N,C]
  proj: Tensor; // [N,C] scratch: attention / MLP output projection before the residual add
  residual2: Tensor; // [N,C]
  ln2: Tensor; // [N,C]
  ln2Mean: Tensor; // [N]
  ln2Rstd: Tensor; // [N]
  fch: Tensor; // [N,F]
  fchGelu: Tensor; // [N,F]
  output: Tensor; // [N,C]
}

export interface BlockStep {
  /** atty [N,C] from qkv [N,3C]: full causal attention in training, over the KV cache in inference */
  attend(qkv: Tensor, atty: Tensor): void;
  /** dropout in place on a branch output, at dropout site `site` (absent: no dropout) */
  dropout?(t: Tensor, site: number): void;
  /**
   * out[M,N] = inp[M,K] @ `${name}.weight` + `${name}.bias` (absent: matmulForward on weight(name));
   * a quantized model multiplies by its quantized weights here
   */
  linear?: (out: Tensor, inp: Tensor, name: string, M: number, K: number, N: number) => void;
}

/**
 * One pre-LN GPT-2 block, layer `l`:
 * residual2 = input + dropout(attn(ln_1(input)) @ c_proj); output = residual2 + dropout(gelu(ln_2(residual2) @ c_fc) @ c_proj).
 * Dropout sites are 1 + 2l (attention branch) and 2 + 2l (MLP branch); site 0 is the embedding.
 */
export function blockForward(
  b: Backend,
  weight: (name: string) => Tensor,
  l: number,
  buf: BlockBuffers,
  dims: { N: number; C: number; F: number },
  step: BlockStep,
): void {
  const { N, C, F } = dims;
  const h = `h.${l}.`;
  const linear =
    step.linear ??
    ((out: Tensor, inp: Tensor, name: string, M: number, K: number, Nout: number) =>
      b.matmulForward(out, inp, weight(name + '.weight'), weight(name + '.bias'), M, K, Nout));
  b.layerNormForward(buf.ln1, buf.ln1Mean, buf.ln1Rstd, buf.input, weight(h + 'ln_1.weight'), weight(h + 'ln_1.bias'), N, C);
  linear(buf.qkv, buf.ln1, h + 'attn.c_attn', N, C, 3 * C);
  step.attend(buf.qkv, buf.atty);
  linear(buf.proj, buf.atty, h + 'attn.c_proj', N, C, C);
  step.dropout?.(buf.proj, 1 + 2 * l);
  b.residualForward(buf.residual2, buf.input, buf.proj, N * C);
  b.layerNormForward(buf.ln2, buf.ln2Mean, buf.ln2Rstd, buf.residual2, weight(h + 'ln_2.weight'), weight(h + 'ln_2.bias'), N, C);
  linear(buf.fch, buf.ln2, h + 'mlp.c_fc', N, C, F);
  b.geluForward(buf.fchGelu, buf.fch, N * F);
  linear(buf.proj, buf.fchGelu, h + 'mlp.c_proj', N, F, C);
  step.dropout?.(buf.proj, 2 + 2 * l);
  b.residualForward(buf.output, buf.residual2, buf.proj, N * C);
}
