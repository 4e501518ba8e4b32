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
   * a quantized model multiplies by its quantized weights here, unfused
   */
  linear?: (out: Tensor, inp: Tensor, name: string, M: number, K: number, N: number) => void;
  /**
   * inference: nothing is kept for backward, so LayerNorm folds into the product after it
   * (layerNormMatmulForward) and ln1, ln2 and their statistics are left unwritten
   */
  inference?: boolean;
  /**
   * inference: called after attention, which ran over all N rows (so the KV cache holds every new
   * position); returns the buffers and row count the rest of the block runs on instead, as a prompt
   * whose last positions alone need logits narrows its last block to them (absent: the same)
   */
  narrow?: (buf: BlockBuffers) => { buf: BlockBuffers; N: number };
}

/**
 * One pre-LN GPT-2 block, layer `l`:
 * residual2 = input + dropout(attn(ln_1(input)) @ c_proj); output = residual2 + dropout(gelu(ln_2(residual2) @ c_fc) @ c_proj).
 * Dropout sites are 1 + 2l (attention branch) and 2 + 2l (MLP branch); site 0 is the embedding.
 *
 * With the backend's own products (no `linear`), the elementwise steps ride in the products (see
 * the contract's fused products): GELU in c_fc's, each residual add in c_proj's (unless dropout
 * sits between them), and in inference each LayerNorm ahead of the product that follows it.
 */
export function blockForward(
  b: Backend,
  weight: (name: string) => Tensor,
  l: number,
  buf: BlockBuffers,
  dims: { N: number; C: number; F: number },
  step: BlockStep,
): void {
  if (step.linear) {
    unfusedBlockForward(b, weight, l, buf, dims, step, step.linear);
    return;
  }
  const { C, F } = dims;
  let N = dims.N;
  const h = `h.${l}.`;
  const w = (name: string) => weight(name + '.weight');
  const bias = (name: string) => weight(name + '.bias');
  const projectOnto = (out: Tensor, inp: Tensor, residual: Tensor, name: string, K: number, site: number) => {
    if (step.dropout) {
      b.matmulForward(buf.proj, inp, w(name), bias(name), N, K, C);
      step.dropout(buf.proj, site);
      b.residualForward(out, residual, buf.proj, N * C);
    } else {
      b.matmulResidualForward(out, inp, w(name), bias(name), residual, N, K, C);
    }
  };
  if (step.inference) {
    b.layerNormMatmulForward(
      buf.qkv,
      buf.input,
      w(h + 'ln_1'),
      bias(h + 'ln_1'),
      w(h + 'attn.c_attn'),
      bias(h + 'attn.c_attn'),
      N,
      C,
      3 * C,
    );
  } else {
    b.layerNormForward(buf.ln1, buf.ln1Mean, buf.ln1Rstd, buf.input, w(h + 'ln_1'), bias(h + 'ln_1'), N, C);
    b.matmulForward(buf.qkv, buf.ln1, w(h + 'attn.c_attn'), bias(h + 'attn.c_attn'), N, C, 3 * C);
  }
  step.attend(buf.qkv, buf.atty);
  if (step.narrow) ({ buf, N } = step.narrow(buf));
  projectOnto(buf.residual2, buf.atty, buf.input, h + 'attn.c_proj', C, 1 + 2 * l);
  if (step.inference) {
    b.layerNormMatmulForward(
      buf.fchGelu,
      buf.residual2,
      w(h + 'ln_2'),
      bias(h + 'ln_2'),
      w(h + 'mlp.c_fc'),
      bias(h + 'mlp.c_fc'),
      N,
      C,
      F,
      'gelu',
    );
  } else {
    b.layerNormForward(buf.ln2, buf.ln2Mean, buf.ln2Rstd, buf.residual2, w(h + 'ln_2'), bias(h + 'ln_2'), N, C);
    b.matmulGeluForward(buf.fchGelu, buf.fch, buf.ln2, w(h + 'mlp.c_fc'), bias(h + 'mlp.c_fc'), N, C, F);
  }
  projectOnto(buf.output, buf.fchGelu, buf.residual2, h + 'mlp.c_proj', F, 2 + 2 * l);
}

/** the block op by op, every product through `linear` */
function unfusedBlockForward(
  b: Backend,
  weight: (name: string) => Tensor,
  l: number,
  buf: BlockBuffers,
  dims: { N: number; C: number; F: number },
  step: BlockStep,
  linear: NonNullable<BlockStep['linear']>,
): void {
  const { C, F } = dims;
  let N = dims.N;
  const h = `h.${l}.`;
  b.layerNormForward(buf.ln1, buf.ln1Mean, buf.ln1Rstd, buf.input, weight(h + 'ln_1.weight'), weight(h + 'ln_1.bias'), N, C);
  linear(buf.qkv, buf.ln1, h + 'attn.c_attn', N, C, 3 * C);
  step.attend(buf.qkv, buf.atty);
  if (step.narrow) ({ buf, N } = step.narrow(buf));
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

/** What training keeps of a block for backward: its buffers and attention's log-sum-exps. */
export interface BlockActivations extends BlockBuffers {
  lse: Tensor; // [B,NH,T]
}

/** Gradient scratch of blockBackward, N = B*T rows each. */
export interface BlockGradientScratch {
  /** d(loss)/d(output) on entry, d(loss)/d(input) on return: the residual stream's gradient */
  dres: Tensor; // [N,C]
  dC: Tensor; // [N,C]
  dqkv: Tensor; // [N,3C]
  dF: Tensor; // [N,F]
}

/**
 * How a LoRA fine-tune takes the block's products backward: the model's weights are frozen and each
 * product's input gradient gains the adapter's term, so the products run unfused.
 */
export interface BlockBackwardHooks {
  /** dinp[M,K] += the gradient through projection `name` (its weights' gradients are the hook's business); dout [M,N], inp [M,K] */
  linearBackward: (dinp: Tensor, dout: Tensor, inp: Tensor, name: string, M: number, K: number, N: number) => void;
  /** [N,F] scratch: c_proj's input gradient, which the fused c_proj + GELU backward never materialises */
  hiddenGradient: Tensor;
}

/**
 * The gradient of blockForward for layer `l`: parameter gradients are added into grad(name) (null:
 * frozen, no gradient work), and scratch.dres goes from the block's output gradient to its input
 * gradient. `branchGradient(site)` gives the gradient of a branch output before its dropout at
 * `site` (dres itself without dropout).
 */
export function blockBackward(
  b: Backend,
  weight: (name: string) => Tensor,
  grad: (name: string) => Tensor | null,
  l: number,
  acts: BlockActivations,
  scratch: BlockGradientScratch,
  dims: { B: number; T: number; C: number; NH: number; F: number },
  branchGradient: (site: number) => Tensor,
  hooks?: BlockBackwardHooks,
): void {
  const { B, T, C, NH, F } = dims;
  const N = B * T;
  const h = `h.${l}.`;
  const { dres, dC, dqkv, dF: dfch } = scratch;
  const linearBackward =
    hooks?.linearBackward ??
    ((dinp: Tensor, dout: Tensor, inp: Tensor, name: string, M: number, K: number, Nout: number) =>
      b.matmulBackward(dinp, grad(name + '.weight'), grad(name + '.bias'), dout, inp, weight(name + '.weight'), M, K, Nout));
  // MLP branch: output = residual2 + dropout(fchGelu @ Wproj + b)
  const dproj = branchGradient(2 + 2 * l);
  b.zero(dfch);
  if (hooks) {
    b.zero(hooks.hiddenGradient);
    linearBackward(hooks.hiddenGradient, dproj, acts.fchGelu, h + 'mlp.c_proj', N, F, C);
    b.geluBackward(dfch, acts.fch, hooks.hiddenGradient, N * F);
  } else {
    // through c_proj and the GELU before it in one product (GELU's backward its epilogue)
    b.matmulGeluBackward(
      dfch,
      grad(h + 'mlp.c_proj.weight'),
      grad(h + 'mlp.c_proj.bias'),
      dproj,
      acts.fchGelu,
      weight(h + 'mlp.c_proj.weight'),
      acts.fch,
      N,
      F,
      C,
    );
  }
  const dln2 = dC;
  b.zero(dln2);
  linearBackward(dln2, dfch, acts.ln2, h + 'mlp.c_fc', N, C, F);
  b.layerNormBackward(
    dres,
    grad(h + 'ln_2.weight'),
    grad(h + 'ln_2.bias'),
    dln2,
    acts.residual2,
    weight(h + 'ln_2.weight'),
    acts.ln2Mean,
    acts.ln2Rstd,
    N,
    C,
  );

  // attention branch: residual2 = input + dropout(atty @ Wproj + b)
  const dattproj = branchGradient(1 + 2 * l);
  const datty = dC;
  b.zero(datty);
  linearBackward(datty, dattproj, acts.atty, h + 'attn.c_proj', N, C, C);
  b.zero(dqkv);
  b.attentionBackward(dqkv, datty, acts.qkv, acts.atty, acts.lse, B, T, C, NH);
  const dln1 = dC;
  b.zero(dln1);
  linearBackward(dln1, dqkv, acts.ln1, h + 'attn.c_attn', N, C, 3 * C);
  b.layerNormBackward(
    dres,
    grad(h + 'ln_1.weight'),
    grad(h + 'ln_1.bias'),
    dln1,
    acts.input,
    weight(h + 'ln_1.weight'),
    acts.ln1Mean,
    acts.ln1Rstd,
    N,
    C,
  );
}
