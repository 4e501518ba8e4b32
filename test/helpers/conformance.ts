/**
 * Op-by-op conformance cases that any Backend runs through the contract alone (alloc, upload, ops,
 * download), so a wasm or webgpu backend can be compared with the js reference on identical seeded
 * inputs:
 *
 *   for (const c of opCases) it(c.name, async () => {
 *     for (const r of await compareToReference(myBackend, c)) expect(r.ok, `${r.output}: ${r.message}`).toBe(true);
 *   });
 *
 * Backward cases start from random gradient buffers, so they also check that backward ops
 * accumulate. Pass larger shapes to exercise a backend's tiling.
 */
import type { Backend, OpName, Tensor } from '../../src/backend/contract.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { quantizeMatrix } from '../../src/model/quant.js';
import { Rng, compareClose, ints, normal32, uniform32, type CloseOptions, type CloseReport } from './random.js';

export interface OpShapes {
  B: number;
  T: number;
  C: number;
  NH: number;
  V: number;
  M: number;
  K: number;
  N: number;
}

/** odd, uneven sizes that catch index mix-ups */
export const SMALL_SHAPES: OpShapes = { B: 2, T: 5, C: 6, NH: 3, V: 7, M: 3, K: 5, N: 7 };

/** Allocation and upload for a case; every tensor it makes is freed after the case. */
export class CaseContext {
  private readonly made: Tensor[] = [];
  constructor(
    readonly be: Backend,
    readonly rng: Rng,
    readonly s: OpShapes,
  ) {}

  zeros(length: number): Tensor {
    const t = this.be.alloc(length);
    this.made.push(t);
    return t;
  }

  floats(data: Float32Array): Tensor {
    const t = this.zeros(data.length);
    this.be.upload(t, data);
    return t;
  }

  int32s(data: Int32Array): Tensor {
    const t = this.be.alloc(data.length, 'i32');
    this.made.push(t);
    this.be.upload(t, data);
    return t;
  }

  /** N(0, std^2) values */
  normal(length: number, std = 1): Tensor {
    return this.floats(normal32(this.rng, length, std));
  }

  /** a [rows, cols] matrix of N(0, 1) values in the f16 weight format (i32 words of the halves) */
  halves(rows: number, cols: number): Tensor {
    const bytes = quantizeMatrix(normal32(this.rng, rows * cols, 1), rows, cols, 'f16').quants;
    return this.int32s(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
  }

  /** `t`, freed with the case's other tensors */
  keep(t: Tensor): Tensor {
    this.made.push(t);
    return t;
  }

  /** a gradient buffer that already holds something, so accumulation shows */
  grad(length: number): Tensor {
    return this.floats(uniform32(this.rng, length));
  }

  freeAll(): void {
    for (const t of this.made) this.be.free(t);
    this.made.length = 0;
  }
}

/** n rounded up to a multiple of the quantized formats' block of 32 */
const wholeBlocks = (n: number) => 32 * Math.ceil(n / 32);

export interface OpCase {
  name: string;
  /** the contract's op family, or 'quantized' for the optional quantized-weight ops (their own kernels, no split-K) */
  op: OpName | 'quantized';
  /** forward cases overwrite outputs; backward cases accumulate into gradients */
  kind: 'forward' | 'backward' | 'helper';
  /** run on ctx.be with inputs from ctx.rng; return the tensors to compare */
  run(ctx: CaseContext): Record<string, Tensor>;
}

export const opCases: OpCase[] = [
  {
    name: 'encoderForward at posOffset 1',
    op: 'encoder',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.B * s.T * s.C);
      ctx.be.encoderForward(
        out,
        ctx.int32s(ints(ctx.rng, s.B * s.T, 0, s.V)),
        ctx.normal(s.V * s.C),
        ctx.normal((s.T + 1) * s.C),
        s.B,
        s.T,
        s.C,
        1,
      );
      return { out };
    },
  },
  {
    name: 'encoderQuantForward, f16 table (C rounded up to whole blocks of 32) at posOffset 2',
    op: 'quantized',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const C = wholeBlocks(s.C);
      const out = ctx.zeros(s.B * s.T * C);
      const wte = ctx.halves(s.V, C);
      ctx.be.encoderQuantForward!(
        out,
        ctx.int32s(ints(ctx.rng, s.B * s.T, 0, s.V)),
        wte,
        null,
        ctx.normal((s.T + 2) * C),
        s.B,
        s.T,
        C,
        2,
        'f16',
      );
      return { out };
    },
  },
  {
    name: 'encoderBackward with repeated ids',
    op: 'encoder',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const ids = ints(ctx.rng, s.B * s.T, 0, s.V);
      ids[ids.length - 1] = ids[0]; // at least one repeat, so concurrent adds into one row show
      const dwte = ctx.grad(s.V * s.C);
      const dwpe = ctx.grad(s.T * s.C);
      ctx.be.encoderBackward(dwte, dwpe, ctx.normal(s.B * s.T * s.C), ctx.int32s(ids), s.B, s.T, s.C);
      return { dwte, dwpe };
    },
  },
  {
    name: 'encoderBackward into one table (the other frozen, null)',
    op: 'encoder',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const ids = ctx.int32s(ints(ctx.rng, s.B * s.T, 0, s.V));
      const dout = ctx.normal(s.B * s.T * s.C);
      const dwte = ctx.grad(s.V * s.C);
      const dwpe = ctx.grad(s.T * s.C);
      ctx.be.encoderBackward(dwte, null, dout, ids, s.B, s.T, s.C);
      ctx.be.encoderBackward(null, dwpe, dout, ids, s.B, s.T, s.C);
      return { dwte, dwpe };
    },
  },
  {
    name: 'layerNormForward',
    op: 'layerNorm',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const out = ctx.zeros(rows * s.C);
      const mean = ctx.zeros(rows);
      const rstd = ctx.zeros(rows);
      ctx.be.layerNormForward(out, mean, rstd, ctx.normal(rows * s.C, 2), ctx.normal(s.C), ctx.normal(s.C), rows, s.C);
      return { out, mean, rstd };
    },
  },
  {
    name: 'layerNormBackward',
    op: 'layerNorm',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const inp = ctx.normal(rows * s.C, 2);
      const weight = ctx.normal(s.C);
      const mean = ctx.zeros(rows);
      const rstd = ctx.zeros(rows);
      ctx.be.layerNormForward(ctx.zeros(rows * s.C), mean, rstd, inp, weight, ctx.normal(s.C), rows, s.C);
      const dinp = ctx.grad(rows * s.C);
      const dweight = ctx.grad(s.C);
      const dbias = ctx.grad(s.C);
      ctx.be.layerNormBackward(dinp, dweight, dbias, ctx.normal(rows * s.C), inp, weight, mean, rstd, rows, s.C);
      return { dinp, dweight, dbias };
    },
  },
  {
    name: 'layerNormBackward with dweight or dbias frozen (null)',
    op: 'layerNorm',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const inp = ctx.normal(rows * s.C, 2);
      const weight = ctx.normal(s.C);
      const mean = ctx.zeros(rows);
      const rstd = ctx.zeros(rows);
      ctx.be.layerNormForward(ctx.zeros(rows * s.C), mean, rstd, inp, weight, ctx.normal(s.C), rows, s.C);
      const dout = ctx.normal(rows * s.C);
      const dinp = ctx.grad(rows * s.C);
      const dweight = ctx.grad(s.C);
      const dbias = ctx.grad(s.C);
      ctx.be.layerNormBackward(dinp, dweight, null, dout, inp, weight, mean, rstd, rows, s.C);
      ctx.be.layerNormBackward(dinp, null, dbias, dout, inp, weight, mean, rstd, rows, s.C);
      ctx.be.layerNormBackward(dinp, null, null, dout, inp, weight, mean, rstd, rows, s.C);
      return { dinp, dweight, dbias };
    },
  },
  {
    name: 'matmulForward with bias',
    op: 'matmul',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.matmulForward(out, ctx.normal(s.M * s.K), ctx.normal(s.K * s.N), ctx.normal(s.N), s.M, s.K, s.N);
      return { out };
    },
  },
  {
    name: 'matmulForward without bias',
    op: 'matmul',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.matmulForward(out, ctx.normal(s.M * s.K), ctx.normal(s.K * s.N), null, s.M, s.K, s.N);
      return { out };
    },
  },
  {
    name: 'matmulQuantForward, f16 weights (K rounded up to whole blocks of 32)',
    op: 'quantized',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const K = wholeBlocks(s.K);
      const out = ctx.zeros(s.M * s.N);
      ctx.be.matmulQuantForward!(out, ctx.normal(s.M * K), ctx.halves(s.N, K), null, ctx.normal(s.N), s.M, K, s.N, 'f16');
      return { out };
    },
  },
  {
    name: 'matmulBackward with bias',
    op: 'matmul',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const dinp = ctx.grad(s.M * s.K);
      const dweight = ctx.grad(s.K * s.N);
      const dbias = ctx.grad(s.N);
      ctx.be.matmulBackward(dinp, dweight, dbias, ctx.normal(s.M * s.N), ctx.normal(s.M * s.K), ctx.normal(s.K * s.N), s.M, s.K, s.N);
      return { dinp, dweight, dbias };
    },
  },
  {
    name: 'matmulBackward with dinp and dbias null',
    op: 'matmul',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const dweight = ctx.grad(s.K * s.N);
      ctx.be.matmulBackward(null, dweight, null, ctx.normal(s.M * s.N), ctx.normal(s.M * s.K), ctx.normal(s.K * s.N), s.M, s.K, s.N);
      return { dweight };
    },
  },
  {
    name: 'matmulBackward with dweight frozen (null): the bias alone, then the input alone',
    op: 'matmul',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const dout = ctx.normal(s.M * s.N);
      const inp = ctx.normal(s.M * s.K);
      const weight = ctx.normal(s.K * s.N);
      const dinp = ctx.grad(s.M * s.K);
      const dbias = ctx.grad(s.N);
      ctx.be.matmulBackward(null, null, dbias, dout, inp, weight, s.M, s.K, s.N);
      ctx.be.matmulBackward(dinp, null, null, dout, inp, weight, s.M, s.K, s.N);
      return { dinp, dbias };
    },
  },
  {
    name: 'matmulGeluForward keeping pre',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      const pre = ctx.zeros(s.M * s.N);
      ctx.be.matmulGeluForward(out, pre, ctx.normal(s.M * s.K), ctx.normal(s.K * s.N, 0.5), ctx.normal(s.N), s.M, s.K, s.N);
      return { out, pre };
    },
  },
  {
    name: 'matmulGeluForward without pre or bias',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.matmulGeluForward(out, null, ctx.normal(s.M * s.K), ctx.normal(s.K * s.N, 0.5), null, s.M, s.K, s.N);
      return { out };
    },
  },
  {
    name: 'matmulResidualForward into a new buffer',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.matmulResidualForward(
        out,
        ctx.normal(s.M * s.K),
        ctx.normal(s.K * s.N),
        ctx.normal(s.N),
        ctx.normal(s.M * s.N),
        s.M,
        s.K,
        s.N,
      );
      return { out };
    },
  },
  {
    name: 'matmulResidualForward in place on the residual, no bias',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const stream = ctx.normal(s.M * s.N);
      ctx.be.matmulResidualForward(stream, ctx.normal(s.M * s.K), ctx.normal(s.K * s.N), null, stream, s.M, s.K, s.N);
      return { stream };
    },
  },
  {
    name: 'matmulGeluBackward with bias',
    op: 'matmulFused',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const pre = ctx.floats(uniform32(ctx.rng, s.M * s.K, -4, 4));
      const inp = ctx.zeros(s.M * s.K);
      ctx.be.geluForward(inp, pre, s.M * s.K);
      const dpre = ctx.grad(s.M * s.K);
      const dweight = ctx.grad(s.K * s.N);
      const dbias = ctx.grad(s.N);
      ctx.be.matmulGeluBackward(dpre, dweight, dbias, ctx.normal(s.M * s.N), inp, ctx.normal(s.K * s.N), pre, s.M, s.K, s.N);
      return { dpre, dweight, dbias };
    },
  },
  {
    name: 'matmulGeluBackward without bias',
    op: 'matmulFused',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const pre = ctx.floats(uniform32(ctx.rng, s.M * s.K, -4, 4));
      const inp = ctx.zeros(s.M * s.K);
      ctx.be.geluForward(inp, pre, s.M * s.K);
      const dpre = ctx.grad(s.M * s.K);
      const dweight = ctx.grad(s.K * s.N);
      ctx.be.matmulGeluBackward(dpre, dweight, null, ctx.normal(s.M * s.N), inp, ctx.normal(s.K * s.N), pre, s.M, s.K, s.N);
      return { dpre, dweight };
    },
  },
  {
    name: 'matmulGeluBackward with dweight frozen (null)',
    op: 'matmulFused',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const pre = ctx.floats(uniform32(ctx.rng, s.M * s.K, -4, 4));
      const inp = ctx.zeros(s.M * s.K);
      ctx.be.geluForward(inp, pre, s.M * s.K);
      const dpre = ctx.grad(s.M * s.K);
      const dbias = ctx.grad(s.N);
      ctx.be.matmulGeluBackward(dpre, null, dbias, ctx.normal(s.M * s.N), inp, ctx.normal(s.K * s.N), pre, s.M, s.K, s.N);
      return { dpre, dbias };
    },
  },
  {
    name: 'layerNormMatmulForward',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.layerNormMatmulForward(
        out,
        ctx.normal(s.M * s.K, 2),
        ctx.normal(s.K),
        ctx.normal(s.K),
        ctx.normal(s.K * s.N, 0.5),
        ctx.normal(s.N),
        s.M,
        s.K,
        s.N,
      );
      return { out };
    },
  },
  {
    name: 'layerNormMatmulForward with GELU, no bias',
    op: 'matmulFused',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.M * s.N);
      ctx.be.layerNormMatmulForward(
        out,
        ctx.normal(s.M * s.K, 2),
        ctx.normal(s.K),
        ctx.normal(s.K),
        ctx.normal(s.K * s.N, 0.5),
        null,
        s.M,
        s.K,
        s.N,
        'gelu',
      );
      return { out };
    },
  },
  {
    name: 'attentionForward',
    op: 'attention',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(s.B * s.T * s.C);
      const lse = ctx.zeros(s.B * s.NH * s.T);
      ctx.be.attentionForward(out, lse, ctx.normal(s.B * s.T * 3 * s.C), s.B, s.T, s.C, s.NH);
      return { out, lse };
    },
  },
  {
    name: 'attentionBackward',
    op: 'attention',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const qkv = ctx.normal(s.B * s.T * 3 * s.C);
      const out = ctx.zeros(s.B * s.T * s.C);
      const lse = ctx.zeros(s.B * s.NH * s.T);
      ctx.be.attentionForward(out, lse, qkv, s.B, s.T, s.C, s.NH);
      const dqkv = ctx.grad(s.B * s.T * 3 * s.C);
      ctx.be.attentionBackward(dqkv, ctx.normal(s.B * s.T * s.C), qkv, out, lse, s.B, s.T, s.C, s.NH);
      return { dqkv };
    },
  },
  {
    name: 'attentionCached: a prompt of T-1 positions, then one more',
    op: 'attentionCached',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const cacheLen = s.T + 2;
      const kCache = ctx.zeros(s.B * cacheLen * s.C);
      const vCache = ctx.zeros(s.B * cacheLen * s.C);
      const prompt = Math.max(1, s.T - 1);
      const outPrompt = ctx.zeros(s.B * prompt * s.C);
      ctx.be.attentionCached(outPrompt, ctx.normal(s.B * prompt * 3 * s.C), kCache, vCache, s.B, prompt, s.C, s.NH, 0, cacheLen);
      const outNext = ctx.zeros(s.B * s.C);
      ctx.be.attentionCached(outNext, ctx.normal(s.B * 3 * s.C), kCache, vCache, s.B, 1, s.C, s.NH, prompt, cacheLen);
      return { outPrompt, outNext, kCache, vCache };
    },
  },
  {
    name: 'geluForward',
    op: 'gelu',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const out = ctx.zeros(n);
      ctx.be.geluForward(out, ctx.floats(uniform32(ctx.rng, n, -6, 6)), n);
      return { out };
    },
  },
  {
    name: 'geluForward in place',
    op: 'gelu',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const x = ctx.floats(uniform32(ctx.rng, n, -6, 6));
      ctx.be.geluForward(x, x, n);
      return { x };
    },
  },
  {
    name: 'geluBackward',
    op: 'gelu',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const dinp = ctx.grad(n);
      ctx.be.geluBackward(dinp, ctx.floats(uniform32(ctx.rng, n, -6, 6)), ctx.normal(n), n);
      return { dinp };
    },
  },
  {
    name: 'residualForward in place on a',
    op: 'residual',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const a = ctx.normal(n);
      ctx.be.residualForward(a, a, ctx.normal(n), n);
      return { a };
    },
  },
  {
    name: 'accumulate',
    op: 'residual',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const dst = ctx.grad(n);
      ctx.be.accumulate(dst, ctx.normal(n), n);
      return { dst };
    },
  },
  {
    name: 'dropoutForward p=0.3 in place',
    op: 'dropout',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const x = ctx.normal(n);
      ctx.be.dropoutForward(x, x, n, 0.3, 12345);
      return { x };
    },
  },
  {
    name: 'dropoutBackward p=0.3',
    op: 'dropout',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.B * s.T * s.C;
      const dinp = ctx.grad(n);
      ctx.be.dropoutBackward(dinp, ctx.normal(n), n, 0.3, 12345);
      return { dinp };
    },
  },
  {
    name: 'crossEntropyForward with ignored targets',
    op: 'crossEntropy',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const targets = ints(ctx.rng, rows, 0, s.V);
      targets[0] = -1;
      const losses = ctx.zeros(rows);
      const probs = ctx.zeros(rows * s.V);
      ctx.be.crossEntropyForward(losses, probs, ctx.normal(rows * s.V, 3), ctx.int32s(targets), rows, s.V);
      return { losses, probs };
    },
  },
  {
    name: 'crossEntropyBackward with ignored targets',
    op: 'crossEntropy',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const targetIds = ints(ctx.rng, rows, 0, s.V);
      targetIds[0] = -1;
      const targets = ctx.int32s(targetIds);
      const probs = ctx.zeros(rows * s.V);
      ctx.be.crossEntropyForward(ctx.zeros(rows), probs, ctx.normal(rows * s.V, 3), targets, rows, s.V);
      const dlogits = ctx.grad(rows * s.V);
      ctx.be.crossEntropyBackward(dlogits, probs, targets, 1 / (rows - 1), rows, s.V);
      return { dlogits };
    },
  },
  {
    // ids equal or not (no tolerance applies): greedy is exact; the draw's uniforms keep clear of
    // the boundaries that float32 rounding could move
    name: 'sampleTokens: greedy, and temperature + top-k 3 + top-p 0.9 draws',
    op: 'sampleTokens',
    kind: 'forward',
    run: (ctx) => {
      const s = ctx.s;
      const rows = s.B * s.T;
      const logits = ctx.normal(rows * s.V, 2);
      const uniforms = Array.from({ length: rows }, (_, r) => (r * 0.37 + 0.05) % 1);
      const greedy = ctx.be.alloc(rows, 'i32');
      const drawn = ctx.be.alloc(rows, 'i32');
      ctx.be.sampleTokens(greedy, logits, uniforms, rows, s.V, { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0, allowed: s.V });
      ctx.be.sampleTokens(drawn, logits, uniforms, rows, s.V, {
        greedy: false,
        temperature: 0.8,
        topK: 3,
        topP: 0.9,
        minP: 0,
        allowed: s.V,
      });
      return { greedy: ctx.keep(greedy), drawn: ctx.keep(drawn) };
    },
  },
  {
    name: 'adamwUpdate, three steps with weight decay',
    op: 'adamw',
    kind: 'backward',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.K * s.N;
      const params = ctx.normal(n);
      const m = ctx.zeros(n);
      const v = ctx.zeros(n);
      for (let step = 1; step <= 3; step++) {
        ctx.be.adamwUpdate(params, ctx.normal(n), m, v, { learningRate: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step });
      }
      return { params, m, v };
    },
  },
  {
    name: 'squaredNorm',
    op: 'squaredNorm',
    kind: 'helper',
    run: (ctx) => {
      const s = ctx.s;
      const out = ctx.zeros(1);
      ctx.be.squaredNorm(out, ctx.normal(s.M * s.K * s.N));
      return { out };
    },
  },
  {
    name: 'scale a view, copy between views, zero a view, transpose',
    op: 'scale',
    kind: 'helper',
    run: (ctx) => {
      const s = ctx.s;
      const n = s.K * s.N;
      const base = ctx.normal(n + 4);
      ctx.be.scale(ctx.be.view(base, 2, n), -0.5);
      const copied = ctx.zeros(n + 3);
      ctx.be.copy(ctx.be.view(copied, 3, n), ctx.be.view(base, 1, n));
      ctx.be.zero(ctx.be.view(base, 0, 2));
      const transposed = ctx.zeros(n);
      ctx.be.transpose(transposed, ctx.be.view(base, 4, n), s.K, s.N);
      return { base, copied, transposed };
    },
  },
];

/** Run one case with inputs from `seed`; download its outputs and free what it allocated. */
export async function runCase(
  be: Backend,
  c: OpCase,
  seed: number,
  shapes: OpShapes = SMALL_SHAPES,
): Promise<Record<string, Float32Array | Int32Array>> {
  const ctx = new CaseContext(be, new Rng(seed), shapes);
  try {
    const outputs = c.run(ctx);
    const host: Record<string, Float32Array | Int32Array> = {};
    for (const [name, t] of Object.entries(outputs)) host[name] = await be.download(t);
    return host;
  } finally {
    ctx.freeAll();
  }
}

export interface CaseReport extends CloseReport {
  output: string;
}

export interface CompareOptions {
  seed?: number;
  shapes?: OpShapes;
  /** default { rtol: 1e-4, atol: 1e-5 }: float32 kernels against float64 arithmetic rounded to float32 */
  tolerance?: CloseOptions;
}

/**
 * Run `c` on `be` and on the reference (JsBackend in float64, downloaded as float32) with the same
 * seeded inputs; one report per output tensor.
 */
export async function compareToReference(be: Backend, c: OpCase, options: CompareOptions = {}): Promise<CaseReport[]> {
  const seed = options.seed ?? 1;
  const shapes = options.shapes ?? SMALL_SHAPES;
  const tolerance = options.tolerance ?? { rtol: 1e-4, atol: 1e-5 };
  const reference = new JsBackend({ precision: 'f64' });
  const expected = await runCase(reference, c, seed, shapes);
  reference.dispose();
  const actual = await runCase(be, c, seed, shapes);
  return Object.keys(expected).map((output) => ({ output, ...compareClose(actual[output], expected[output], tolerance) }));
}
